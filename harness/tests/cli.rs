//! The generic `exit-harness` command line (scenario files, any program), as a user runs it.

use assert_cmd::Command;
use predicates::prelude::*;

fn exit_harness() -> Command {
    Command::new(env!("CARGO_BIN_EXE_exit-harness"))
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

#[test]
fn crash_needs_scenario_files_and_catalog_commands_are_not_here() {
    exit_harness().arg("crash").assert().code(2).stderr(predicate::str::contains("name one or more scenario files"));
    exit_harness().arg("check").assert().code(2).stderr(predicate::str::contains("unrecognized subcommand 'check'"));
}

#[test]
fn crash_refuses_a_fifo_or_a_huge_scenario_file_as_run_does() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.toml");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    exit_harness()
        .arg("crash")
        .arg(&fifo)
        .timeout(std::time::Duration::from_secs(20))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not a regular file"));
    let huge = dir.path().join("huge.toml");
    std::fs::write(&huge, format!("name = \"x\"\ncommand = [\"true\"]\n#{}\n[expect]\n", "x".repeat(2 << 20))).unwrap();
    exit_harness().arg("crash").arg(&huge).assert().code(2).stderr(predicate::str::contains("larger than"));
}

#[test]
fn a_trigger_that_never_fires_is_named_not_reported_as_the_expected_signal() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("partial-line.toml");
    std::fs::write(
        &scenario,
        "name = \"ready without a newline\"\ncommand = [\"sh\", \"-c\", \"printf ready; exec sleep 30\"]\n\
         timeout_ms = 300\n[signal]\nsend = \"SIGTERM\"\nwhen_output = \"ready\"\n[expect]\nexit = \"signal SIGTERM\"\n",
    )
    .unwrap();
    exit_harness()
        .arg("run")
        .arg(&scenario)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("only because the harness's timeout ended the run: no signal trigger fired"));
}
