#!/usr/bin/env bash
# Confirms that each campaign bug is real: builds campaign/probe (small deterministic programs, one
# per contract promise the bugs break) against the tree with the patch applied, and records which
# probes it breaks in campaign/probes.tsv. The unpatched tree must break none (`--baseline`).
#
#   campaign/probe.sh                 # every patch
#   campaign/probe.sh 03 18           # some patches (NN, NN-name, or a path)
#   campaign/probe.sh --baseline      # also the unpatched tree first
#
# Like run.sh, the patch is always reverted with `git apply -R` (trap on EXIT, INT, TERM). Needs
# strace for the `synced-before-rename` probe (otherwise that probe reports it cannot judge).
set -uo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="$PWD/target/campaign-probe"
RESULTS=campaign/probes.tsv
HEADER=$'bug\tbroken_probes'

if ! git diff --quiet -- cache-under-test/src || ! git diff --cached --quiet -- cache-under-test/src; then
    echo "probe: cache-under-test/src has uncommitted changes; refusing to patch it" >&2
    exit 2
fi
applied=""
revert() {
    if [ -n "$applied" ]; then
        git apply -R "$applied" || git checkout -- cache-under-test/src
        applied=""
    fi
}
trap revert EXIT
trap 'revert; exit 130' INT
trap 'revert; exit 143' TERM

patches=()
baseline=false
for arg in "$@"; do
    if [ "$arg" = --baseline ]; then baseline=true; continue; fi
    if [ -f "$arg" ]; then patches+=("$arg"); continue; fi
    matches=(campaign/bugs/"$arg"*.patch)
    [ -f "${matches[0]}" ] || { echo "probe: no patch matches $arg" >&2; exit 2; }
    patches+=("${matches[@]}")
done
[ ${#patches[@]} -eq 0 ] && patches=(campaign/bugs/*.patch)
[ -f "$RESULTS" ] || echo "$HEADER" > "$RESULTS"

record() {
    local tmp
    tmp=$(mktemp)
    { echo "$HEADER"; tail -n +2 "$RESULTS" | awk -F'\t' -v n="$1" '$1 != n'; echo "$1"$'\t'"$2"; } \
        | { read -r head; echo "$head"; sort; } > "$tmp"
    mv "$tmp" "$RESULTS"
}

probe_one() {
    local name=$1 out broken
    if ! (cd campaign/probe && cargo build -q --offline) > "/tmp/campaign-probe-build.log" 2>&1; then
        echo "$name: probe build failed (see /tmp/campaign-probe-build.log)"
        record "$name" "build-failed"
        return
    fi
    out=$(timeout 300 "$CARGO_TARGET_DIR/debug/campaign-probe" 2>&1)
    broken=$(echo "$out" | sed -nE 's/^BROKEN ([^:]+):.*/\1/p' | paste -sd ' ' -)
    echo "$name: ${broken:-none broken}"
    echo "$out" | grep '^BROKEN' | sed 's/^/    /'
    record "$name" "${broken:--}"
}

$baseline && probe_one 00-baseline
for patch in "${patches[@]}"; do
    name=$(basename "$patch" .patch)
    git apply "$patch" && applied=$patch
    probe_one "$name"
    revert
done
