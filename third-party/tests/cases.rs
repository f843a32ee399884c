//! Every third-party case is a pair of scenario files with the same expectations: the buggy
//! variant is caught, with the evidence a user needs, and the fixed variant passes. Both are
//! loaded and judged exactly as `exit-harness run FILE` does.

use std::path::{Path, PathBuf};

use exit_harness::{CellResult, scenario_file};

fn scenario(case: &str, variant: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios").join(case).join(format!("{variant}.toml"))
}

/// Runs one scenario file, with `{env:THIRD_PARTY_BIN}` naming this crate's binaries.
fn run(case: &str, variant: &str) -> CellResult {
    let bin = Path::new(env!("CARGO_BIN_EXE_tempfile-exit")).parent().expect("binaries live in a folder");
    let vars = [("THIRD_PARTY_BIN", bin.to_str().expect("a UTF-8 target folder"))];
    let path = scenario(case, variant);
    scenario_file::load_with_vars(&path, &vars).unwrap_or_else(|e| panic!("{e}")).run()
}

/// The fixed variant passes; the buggy one fails, and each of `evidence` (an oracle id and
/// what its evidence must quote) is among its failures.
#[track_caller]
fn pair(case: &str, evidence: &[(&str, &[&str])]) {
    let fixed = run(case, "fixed");
    assert!(fixed.passed(), "{case}/fixed should pass:\n{}", fixed.failures().join("\n"));
    let buggy = run(case, "buggy");
    assert!(!buggy.passed(), "{case}/buggy passed");
    let failures = buggy.failures();
    for (id, needles) in evidence {
        let failure = failures
            .iter()
            .find(|f| f.starts_with(&format!("{id}:")))
            .unwrap_or_else(|| panic!("{case}/buggy: no failure of {id}:\n{}", failures.join("\n")));
        for needle in *needles {
            assert!(failure.contains(needle), "{case}/buggy: {id} lacks {needle:?}:\n{failure}");
        }
    }
}

#[test]
fn tensorrt_4359_del_autosave_loses_both_caches_and_says_so_once_per_cache() {
    pair(
        "tensorrt-4359-del-autosave",
        &[
            ("save_count[cache-a.bin]", &["expected exactly 1 (black box only", "black box: 0"]),
            ("save_count[cache-b.bin]", &["black box: 0"]),
            ("quiet_stderr", &["Exception ignored in", "sys.meta_path is None"]),
        ],
    );
    let buggy = run("tensorrt-4359-del-autosave", "buggy");
    let stderr = &buggy.observation.as_ref().unwrap().stderr;
    assert_eq!(stderr.matches("Exception ignored in").count(), 2, "once per cache:\n{stderr}");
}

#[test]
fn bufwriter_in_a_static_loses_its_buffer_when_main_returns() {
    pair("bufwriter-static", &[("file_content[app.log]", &["10 of 10 expected line(s) missing", "line 01"])]);
}

#[test]
fn named_temp_file_is_left_behind_by_process_exit() {
    pair("tempfile-process-exit", &[("no_leftover_files", &["1 entr(y/ies) left behind", ".part", "created "])]);
}

#[test]
fn buffered_logger_loses_its_lines_at_process_exit() {
    pair("buffered-logger-process-exit", &[("file_content[app.log]", &["10 of 10 expected line(s) missing"])]);
}

#[test]
fn the_two_files_of_a_pair_differ_only_in_name_and_command() {
    for case in
        ["tensorrt-4359-del-autosave", "bufwriter-static", "tempfile-process-exit", "buffered-logger-process-exit"]
    {
        let [fixed, buggy] = ["fixed", "buggy"].map(|variant| {
            let mut doc: toml::Table = std::fs::read_to_string(scenario(case, variant)).unwrap().parse().unwrap();
            doc.remove("name");
            doc.remove("command");
            doc
        });
        assert_eq!(fixed, buggy, "{case}: the expectations must be the same contract");
    }
}
