//! The `exit-harness` command line, as a user runs it.

use assert_cmd::Command;
use predicates::prelude::*;

fn exit_harness() -> Command {
    Command::new(env!("CARGO_BIN_EXE_exit-harness"))
}

#[test]
fn list_names_every_cell_with_its_family() {
    exit_harness()
        .arg("list")
        .assert()
        .success()
        .stdout(predicate::str::contains("survive/main-thread-local/exit-3\tsurvive-to-exit"))
        .stdout(predicate::str::contains("crash-mid-save/mid-write\tcrash-mid-save"))
        .stdout(predicate::str::contains("partial-init/nvrtc-missing\tpartial-init-failure"));
}

#[test]
fn check_runs_the_filtered_cells_and_reports_them() {
    exit_harness()
        .args(["check", "--filter", "survive/static/", "--jobs", "2"])
        .assert()
        .success()
        .stdout(predicate::str::contains("survive/static/sigterm-handler"))
        .stdout(predicate::str::contains("\n9 passed, 0 failed\n"));
}

#[test]
fn check_json_follows_the_report_schema() {
    let output = exit_harness().args(["check", "--filter", "corrupt-on-open", "--json"]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    assert_eq!(report["schema"], "exit-harness.report", "{report}");
    assert_eq!(report["cells"][0]["name"], "corrupt-on-open", "{report}");
}

#[test]
fn a_filter_matching_nothing_is_a_usage_error() {
    exit_harness()
        .args(["check", "--filter", "no-such-cell"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no cell matches the filter \"no-such-cell\""));
}

#[test]
fn an_unknown_subcommand_is_a_usage_error() {
    exit_harness().arg("frobnicate").assert().code(2).stderr(predicate::str::contains("unrecognized subcommand"));
}

/// The Python pair of the third-party cases (pytorch/TensorRT #4359): no Rust in the child.
fn python_case(variant: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../third-party/scenarios/tensorrt-4359-del-autosave")
        .join(format!("{variant}.toml"))
}

#[test]
fn run_judges_a_python_program_from_its_scenario_file_alone() {
    exit_harness()
        .args(["run", "--runs", "2"])
        .arg(python_case("fixed"))
        .assert()
        .success()
        .stdout(predicate::str::contains("[run 2/2]").and(predicate::str::contains("\n2 passed, 0 failed\n")));
    exit_harness()
        .arg("run")
        .arg(python_case("buggy"))
        .assert()
        .code(1)
        .stdout(predicate::str::contains("save_count[cache-a.bin]: cache-a.bin: expected exactly 1 (black box only"))
        .stdout(predicate::str::contains("Exception ignored in"));
}

#[test]
fn run_names_the_file_and_line_of_a_malformed_scenario_and_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "name = \"x\"\ncommand = [\"true\"]\n[expect]\nexit = \"code zero\"\n").unwrap();
    exit_harness()
        .arg("run")
        .arg(python_case("fixed"))
        .arg(&bad)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!("{}:4: `exit = \"code zero\"`", bad.display())))
        .stdout(predicate::str::is_empty());
}
