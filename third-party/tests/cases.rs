//! Every third-party case: the buggy variant is caught with the right evidence, the fixed variant
//! passes, both judged by the expectations of the case's scenario files.
//!
//! The scenario runner (`exit-harness run FILE...`) is being written against the same files;
//! until it lands, this test reads the subset of the format the cases use (`command`, `env`,
//! `timeout_ms`, `[[file]]`, `[[folder]]`, `[expect]` with `exit`, `stderr`, `saves`,
//! `contains_lines`, `leftovers`) and judges each run through the harness's library API, the
//! black box alone (`journal = false`). The folder listing after the run is taken by a small
//! `sh` wrapper around the command, since the library's observation does not list folders.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use exit_harness::observation::ValidContent;
use exit_harness::oracle::{ExitStatus, QuietStderr};
use exit_harness::{ChildSpec, FileUnderTest, Observation, Oracle};
use toml::{Table, Value};

const CASES: [&str; 4] =
    ["tensorrt-4359-del-autosave", "bufwriter-static", "tempfile-process-exit", "buffered-logger-process-exit"];

fn scenarios() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

/// The folder holding this crate's binaries (what `{env:THIRD_PARTY_BIN}` names).
fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_tempfile-exit")).parent().expect("binaries live in a folder").to_owned()
}

fn load(case: &str, variant: &str) -> Table {
    let path = scenarios().join(case).join(format!("{variant}.toml"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.parse().unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().map(|s| s.as_str().expect("a string").to_owned()).collect())
        .unwrap_or_default()
}

/// `{env:THIRD_PARTY_BIN}` replaced; `{scratch}` is left to the harness.
fn expand(s: &str) -> String {
    s.replace("{env:THIRD_PARTY_BIN}", bin_dir().to_str().expect("a UTF-8 target folder"))
}

/// What one run did that its scenario's `[expect]` rejects: expectation -> evidence.
type Failures = BTreeMap<&'static str, String>;

/// Runs `case`'s `variant` scenario and judges it by its own expectations.
fn judge(case: &str, variant: &str) -> (Failures, Observation) {
    let doc = load(case, variant);
    assert_eq!(doc.get("journal").and_then(Value::as_bool), Some(false), "{case}: these cases journal nothing");
    let command: Vec<String> = strings(doc.get("command")).iter().map(|s| expand(s)).collect();
    assert!(!command.is_empty(), "{case}/{variant}: no command");

    let listing = tempfile::NamedTempFile::new().expect("a listing file");
    let mut spec = ChildSpec::new("sh")
        .arg("-c")
        .arg(r#""$@"; rc=$?; ls -A "$EXIT_HARNESS_SCRATCH" > "$THIRD_PARTY_LISTING"; exit $rc"#)
        .arg(case)
        .args(&command)
        .env("THIRD_PARTY_LISTING", listing.path())
        .current_dir(scenarios().join(case))
        .timeout(Duration::from_millis(doc.get("timeout_ms").and_then(Value::as_integer).unwrap_or(10_000) as u64));
    if let Some(env) = doc.get("env").and_then(Value::as_table) {
        for (k, v) in env {
            spec = spec.env(k, expand(v.as_str().expect("a string")));
        }
    }

    let mut declared = Vec::new();
    let mut files = Vec::new();
    for f in doc.get("file").and_then(Value::as_array).into_iter().flatten() {
        let name = f["name"].as_str().expect("a file name").to_owned();
        // Keys = lines, so `contains_lines` can read them from the after snapshot.
        let mut fut = FileUnderTest::new(&name).validated_by(|bytes| {
            Ok(ValidContent::with_keys(String::from_utf8_lossy(bytes).lines().map(str::to_owned)))
        });
        if let Some(seed) = f.get("seed").and_then(Value::as_str) {
            fut = fut.seeded(seed);
        }
        declared.push(name);
        files.push(fut);
    }
    let obs = spec.run(&files).expect("the run produces an observation");

    let expect = doc["expect"].as_table().expect("[expect]");
    let mut failures = Failures::new();
    let mut oracle = |key: &'static str, o: &dyn Oracle| {
        if let Some(evidence) = o.judge(&obs).evidence() {
            failures.insert(key, evidence.to_owned());
        }
    };
    match expect.get("exit").and_then(Value::as_str) {
        Some("code 0") => oracle("exit", &ExitStatus::code(0)),
        Some("any") | None => {}
        Some(other) => panic!("{case}: exit = {other:?} is not used by these cases"),
    }
    match expect.get("stderr").and_then(Value::as_str) {
        Some("empty") => oracle("stderr", &QuietStderr::empty()),
        Some("any") | None => {}
        Some(other) => panic!("{case}: stderr = {other:?} is not used by these cases"),
    }

    let mut evidence = Vec::new();
    for (name, want) in expect.get("saves").and_then(Value::as_table).into_iter().flatten() {
        let want = want.as_integer().expect("a count") as u64;
        let f = obs.file(name).unwrap_or_else(|| panic!("{case}: `saves` names undeclared {name}"));
        let got = f.black_box.saves();
        if got != want {
            evidence.push(format!(
                "{name}: expected exactly {want} save(s), black box: {got} ({} rename(s) onto it, {} write(s) in place); after: {}",
                f.black_box.renames_onto,
                f.black_box.in_place_writes,
                f.after.describe()
            ));
        }
    }
    if !evidence.is_empty() {
        failures.insert("saves", evidence.join("\n"));
    }

    let mut evidence = Vec::new();
    for (name, lines) in expect.get("contains_lines").and_then(Value::as_table).into_iter().flatten() {
        let f = obs.file(name).unwrap_or_else(|| panic!("{case}: `contains_lines` names undeclared {name}"));
        let have = f.after.keys().cloned().unwrap_or_default();
        let missing: Vec<String> = strings(Some(lines)).into_iter().filter(|l| !have.contains(l)).collect();
        if !missing.is_empty() {
            evidence.push(format!(
                "{name}: {} expected line(s) missing: {missing:?}; after: {}",
                missing.len(),
                f.after.describe()
            ));
        }
    }
    if !evidence.is_empty() {
        failures.insert("contains_lines", evidence.join("\n"));
    }

    if let Some(leftovers) = expect.get("leftovers").and_then(Value::as_table) {
        let allow = strings(leftovers.get("allow"));
        assert!(allow.is_empty(), "{case}: glob allow-lists are not used by these cases");
        let listed = std::fs::read_to_string(listing.path()).expect("the wrapper listed the scratch folder");
        let left: Vec<&str> = listed.lines().filter(|n| !declared.iter().any(|d| d == n)).collect();
        if !left.is_empty() {
            failures.insert("leftovers", format!("{} file(s) left behind in `.`: {left:?}", left.len()));
        }
    }
    (failures, obs)
}

/// The fixed variant meets every expectation; returns the buggy variant's failures.
#[track_caller]
fn buggy_failures(case: &str) -> (Failures, Observation) {
    let (fixed, obs) = judge(case, "fixed");
    assert!(fixed.is_empty(), "{case}/fixed should pass but: {fixed:#?}\n{obs:#?}");
    judge(case, "buggy")
}

#[track_caller]
fn evidence_has(failures: &Failures, key: &str, needles: &[&str]) {
    let evidence = failures.get(key).unwrap_or_else(|| panic!("`{key}` should fail: {failures:#?}"));
    for needle in needles {
        assert!(evidence.contains(needle), "`{key}` evidence lacks {needle:?}:\n{evidence}");
    }
}

#[test]
fn scenario_pairs_differ_only_in_name_and_command() {
    let mut found: Vec<String> = std::fs::read_dir(scenarios())
        .expect("the scenarios folder")
        .map(|e| e.expect("an entry").file_name().into_string().expect("a UTF-8 name"))
        .collect();
    found.sort();
    let mut known = CASES.map(str::to_owned).to_vec();
    known.sort();
    assert_eq!(found, known, "every case folder is judged by a test here");

    for case in CASES {
        let mut buggy = load(case, "buggy");
        let mut fixed = load(case, "fixed");
        assert_ne!(buggy["command"], fixed["command"], "{case}");
        for doc in [&buggy, &fixed] {
            let command = strings(doc.get("command"));
            let program = expand(&command[0]);
            if program == "python3" {
                let script = scenarios().join(case).join(&command[1]);
                assert!(script.is_file(), "{case}: {} is missing", script.display());
            } else {
                assert!(Path::new(&program).is_file(), "{case}: {program} is not a binary of this crate");
            }
        }
        for doc in [&mut buggy, &mut fixed] {
            doc.remove("name");
            doc.remove("command");
        }
        assert_eq!(buggy, fixed, "{case}: the expectations of buggy and fixed differ");
    }
}

#[test]
fn tensorrt_4359_del_autosave_loses_both_caches_and_says_so_once_per_cache() {
    let (failures, obs) = buggy_failures("tensorrt-4359-del-autosave");
    assert_eq!(failures.keys().copied().collect::<Vec<_>>(), ["saves", "stderr"], "{failures:#?}");
    evidence_has(&failures, "saves", &["cache-a.bin: expected exactly 1 save(s), black box: 0", "cache-b.bin"]);
    evidence_has(
        &failures,
        "stderr",
        &["Exception ignored in: <function KernelCache.__del__", "ImportError: sys.meta_path is None"],
    );
    let per_object = obs.stderr.matches("Exception ignored in: <function KernelCache.__del__").count();
    assert_eq!(per_object, 2, "once per surviving cache:\n{}", obs.stderr);
    for f in &obs.files {
        assert_eq!(f.before, f.after, "{}: the old content stays", f.name);
    }
}

#[test]
fn bufwriter_in_a_static_loses_its_buffer_when_main_returns() {
    let (failures, obs) = buggy_failures("bufwriter-static");
    assert_eq!(failures.keys().copied().collect::<Vec<_>>(), ["contains_lines"], "{failures:#?}");
    evidence_has(&failures, "contains_lines", &["app.log: 10 expected line(s) missing", "line 01", "line 10"]);
    let log = obs.file("app.log").expect("app.log");
    assert!(log.after.exists && log.after.size == 0, "created, never written: {}", log.after.describe());
}

#[test]
fn named_temp_file_is_left_behind_by_process_exit() {
    let (failures, _) = buggy_failures("tempfile-process-exit");
    assert_eq!(failures.keys().copied().collect::<Vec<_>>(), ["leftovers"], "{failures:#?}");
    evidence_has(&failures, "leftovers", &["1 file(s) left behind", "upload-", ".part"]);
}

#[test]
fn buffered_logger_loses_its_lines_at_process_exit() {
    let (failures, obs) = buggy_failures("buffered-logger-process-exit");
    assert_eq!(failures.keys().copied().collect::<Vec<_>>(), ["contains_lines"], "{failures:#?}");
    evidence_has(&failures, "contains_lines", &["app.log: 10 expected line(s) missing"]);
    let log = obs.file("app.log").expect("app.log");
    assert!(log.after.exists && log.after.size == 0, "{}", log.after.describe());
}
