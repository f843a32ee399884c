//! The `runtime-cache-scenarios` command line, as a user runs it.

use assert_cmd::Command;
use predicates::prelude::*;

fn runtime_cache_scenarios() -> Command {
    Command::new(env!("CARGO_BIN_EXE_runtime-cache-scenarios"))
}

#[test]
fn list_names_every_cell_with_its_family() {
    runtime_cache_scenarios()
        .arg("list")
        .assert()
        .success()
        .stdout(predicate::str::contains("survive/main-thread-local/exit-3\tsurvive-to-exit"))
        .stdout(predicate::str::contains("crash-mid-save/mid-write\tcrash-mid-save"))
        .stdout(predicate::str::contains("partial-init/nvrtc-missing\tpartial-init-failure"));
}

#[test]
fn check_runs_the_filtered_cells_and_reports_them() {
    runtime_cache_scenarios()
        .args(["check", "--filter", "survive/static/", "--jobs", "2"])
        .assert()
        .success()
        .stdout(predicate::str::contains("survive/static/sigterm-handler"))
        .stdout(predicate::str::contains("\n9 passed, 0 failed\n"));
}

#[test]
fn check_json_follows_the_report_schema() {
    let output = runtime_cache_scenarios().args(["check", "--filter", "corrupt-on-open", "--json"]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    assert_eq!(report["schema"], "exit-harness.report", "{report}");
    assert_eq!(report["cells"][0]["name"], "corrupt-on-open", "{report}");
}

#[test]
fn a_filter_matching_nothing_is_a_usage_error() {
    runtime_cache_scenarios()
        .args(["check", "--filter", "no-such-cell"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no cell matches the filter \"no-such-cell\""));
}

#[test]
fn an_unknown_subcommand_is_a_usage_error() {
    runtime_cache_scenarios()
        .arg("frobnicate")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unrecognized subcommand"));
}

#[test]
fn scenario_files_are_the_generic_binarys_not_the_catalogs() {
    runtime_cache_scenarios()
        .args(["run", "x.toml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unrecognized subcommand 'run'"));
}
