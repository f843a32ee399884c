#!/usr/bin/env bash
# Re-runs the campaign of hand-made bugs (campaign/bugs/NN-*.patch) against the project's three
# bug finders, and records caught/missed per tool in campaign/results.tsv.
#
#   campaign/run.sh                 # every patch
#   campaign/run.sh 03 18 22        # some patches, by number or name (NN, NN-name, or a path)
#   campaign/run.sh --baseline      # also the unpatched tree first (every tool must pass: no false alarms)
#   campaign/run.sh --check-only    # only (a) below, the cheapest faithful measure: writes
#                                   # campaign/results-check.tsv (bug, verdict, seconds, failing cells)
#
# For each patch: `git apply` it to cache-under-test/src, `cargo build -p scenarios` (the
# exit-harness and scenario-child binaries), then
#   (a) check : target/debug/runtime-cache-scenarios check                       (the scenario catalog)
#   (b) test  : cargo test --workspace                                (the README's test command)
#   (c) fuzz  : target/debug/runtime-cache-scenarios fuzz --cases 3000 --seed 1 --out /tmp/campaign-fuzz
# each under `timeout`. A tool "caught" the bug when it exits non-zero; `timeout` is recorded
# separately (judge by hand whether the bug really causes a hang). The patch is always reverted
# with `git apply -R` (trap on EXIT, INT, TERM), so the tree is left clean even on failure or
# Ctrl-C. Full logs go to target/campaign/<bug>/ (ignored); results.tsv keeps one row per bug,
# with the first failing cells/tests as evidence.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export LD_LIBRARY_PATH="$ROOT/.nvrtc/nvidia/cuda_nvrtc/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export CARGO_TERM_COLOR=never

RESULTS=campaign/results.tsv
LOGS=target/campaign
CHECK_TIMEOUT=${CHECK_TIMEOUT:-900}
TEST_TIMEOUT=${TEST_TIMEOUT:-1800}
FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-600}
HEADER=$'bug\tcheck\tcargo_test\tfuzz\tany\tcheck_s\ttest_s\tfuzz_s\tcheck_evidence\ttest_evidence\tfuzz_evidence'
check_only=false
for arg in "$@"; do
    if [ "$arg" = --check-only ]; then
        check_only=true
        RESULTS=campaign/results-check.tsv
        HEADER=$'bug\tcheck\tcheck_s\tfailing_cells'
    fi
done

if ! git diff --quiet -- cache-under-test/src || ! git diff --cached --quiet -- cache-under-test/src; then
    echo "campaign: cache-under-test/src has uncommitted changes; refusing to patch it" >&2
    exit 2
fi

applied=""
revert() {
    if [ -n "$applied" ]; then
        if ! git apply -R "$applied"; then
            echo "campaign: git apply -R $applied failed; restoring cache-under-test/src from HEAD" >&2
            git checkout -- cache-under-test/src
        fi
        applied=""
    fi
}
trap revert EXIT
trap 'echo "campaign: interrupted" >&2; revert; exit 130' INT TERM

# The patches to run.
patches=()
baseline=false
for arg in "$@"; do
    if [ "$arg" = --baseline ]; then baseline=true; continue; fi
    if [ "$arg" = --check-only ]; then continue; fi
    if [ -f "$arg" ]; then patches+=("$arg"); continue; fi
    matches=(campaign/bugs/"$arg"*.patch)
    if [ ! -f "${matches[0]}" ]; then echo "campaign: no patch matches $arg" >&2; exit 2; fi
    patches+=("${matches[@]}")
done
# No patch named: every patch.
[ ${#patches[@]} -eq 0 ] && patches=(campaign/bugs/*.patch)

# A results file written with other columns (an older layout) is started afresh.
if [ ! -f "$RESULTS" ] || [ "$(head -n 1 "$RESULTS")" != "$HEADER" ]; then echo "$HEADER" > "$RESULTS"; fi
mkdir -p "$LOGS"

# Runs "$@" under timeout, logging to $1 (first arg); prints caught|missed|timeout.
judge() {
    local log=$1 limit=$2
    shift 2
    timeout --kill-after=30 "$limit" "$@" > "$log" 2>&1
    local rc=$?
    echo "rc=$rc" >> "$log"
    case $rc in
        0) echo missed ;;
        124 | 137) echo timeout ;;
        *) echo caught ;;
    esac
}

# One line of evidence per tool, tab-free: which cells, tests or fuzz case failed.
check_evidence() {
    local cells
    cells=$(sed -nE 's/^ *(FAIL|CANNOT-JUDGE) +\[[^]]*\] +[^ ]+ +([^ ]+).*/\2/p' "$1" | sort -u)
    [ -n "$cells" ] && echo "$(echo "$cells" | wc -l) cell(s): $(echo "$cells" | head -6 | paste -sd ' ' -)"
}
test_evidence() {
    local tests
    tests=$(sed -nE 's/^test (.*) \.\.\. FAILED$/\1/p' "$1" | tr -s ' ' | sort -u)
    local out=""
    [ -n "$tests" ] && out="$(echo "$tests" | wc -l) test(s): $(echo "$tests" | head -8 | paste -sd ' ' -)"
    grep -q '^error: could not compile' "$1" && out="$out; did not compile"
    echo "$out" | tr -d '\t' | cut -c1-600
}
fuzz_evidence() {
    grep -q '^fuzz: FAILED' "$1" || return 0
    local ops failed
    ops=$(sed -nE 's/^ +[0-9]+\. (.*)$/\1/p; s/^ +end: (.*)$/end \1/p' "$1" | paste -sd ',' -)
    failed=$(sed -nE 's/^- (.*)$/\1/p' "$1" | head -2 | paste -sd ';' -)
    echo "case: $ops | $failed" | tr -d '\t' | cut -c1-600
}

record() {
    local name=$1 row=$2
    local tmp
    tmp=$(mktemp)
    { echo "$HEADER"; tail -n +2 "$RESULTS" | awk -F'\t' -v n="$name" '$1 != n'; echo "$row"; } \
        | { read -r head; echo "$head"; sort; } > "$tmp"
    mv "$tmp" "$RESULTS"
}

run_one() {
    local name=$1
    local dir=$LOGS/$name
    rm -rf "$dir"
    mkdir -p "$dir"
    echo "=== $name ($(date +%T))"
    if ! cargo build -p scenarios > "$dir/build.log" 2>&1; then
        echo "    build failed: see $dir/build.log"
        if $check_only; then record "$name" "$name"$'\tbuild-failed\t0\t'; return; fi
        record "$name" "$name"$'\tbuild-failed\tbuild-failed\tbuild-failed\t-\t0\t0\t0\t\t\t'
        return
    fi
    local t0 t1 t2 t3 check test fuzz any
    t0=$(date +%s)
    check=$(judge "$dir/check.log" "$CHECK_TIMEOUT" target/debug/runtime-cache-scenarios check)
    t1=$(date +%s)
    echo "    check: $check ($((t1 - t0)) s)"
    if $check_only; then
        record "$name" "$name"$'\t'"$check"$'\t'"$((t1 - t0))"$'\t'"$(check_evidence "$dir/check.log")"
        return
    fi
    rm -rf /tmp/campaign-fuzz
    fuzz=$(judge "$dir/fuzz.log" "$FUZZ_TIMEOUT" target/debug/runtime-cache-scenarios fuzz --cases 3000 --seed 1 --out /tmp/campaign-fuzz)
    t2=$(date +%s)
    echo "    fuzz: $fuzz ($((t2 - t1)) s)"
    test=$(judge "$dir/test.log" "$TEST_TIMEOUT" cargo test --workspace --no-fail-fast)
    t3=$(date +%s)
    echo "    cargo test: $test ($((t3 - t2)) s)"
    any=missed
    for verdict in "$check" "$test" "$fuzz"; do
        [ "$verdict" = caught ] && any=caught
    done
    if [ "$any" = missed ]; then
        for verdict in "$check" "$test" "$fuzz"; do
            [ "$verdict" = timeout ] && any=timeout
        done
    fi
    local ce te fe
    ce=$(check_evidence "$dir/check.log")
    te=$(test_evidence "$dir/test.log")
    fe=$(fuzz_evidence "$dir/fuzz.log")
    record "$name" "$name"$'\t'"$check"$'\t'"$test"$'\t'"$fuzz"$'\t'"$any"$'\t'"$((t1 - t0))"$'\t'"$((t3 - t2))"$'\t'"$((t2 - t1))"$'\t'"$ce"$'\t'"$te"$'\t'"$fe"
}

if $baseline; then
    run_one 00-baseline
fi
for patch in "${patches[@]}"; do
    name=$(basename "$patch" .patch)
    if ! git apply --check "$patch" 2>/dev/null; then
        echo "=== $name: does not apply to this tree" >&2
        if $check_only; then record "$name" "$name"$'\tno-apply\t0\t'; continue; fi
        record "$name" "$name"$'\tno-apply\tno-apply\tno-apply\t-\t0\t0\t0\t\t\t'
        continue
    fi
    git apply "$patch" && applied=$patch
    run_one "$name"
    revert
done
# Leave the binaries matching the clean tree.
echo "=== rebuilding the unpatched tree"
cargo build -p scenarios > "$LOGS/rebuild.log" 2>&1 || echo "campaign: rebuilding the clean tree failed: see $LOGS/rebuild.log" >&2
if $check_only; then column -t -s $'\t' <(cut -f1-3 "$RESULTS"); else column -t -s $'\t' <(cut -f1-5 "$RESULTS"); fi
