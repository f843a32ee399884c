//! Crash exploration end to end: real strace, real child processes (python3 saves, right and
//! wrong), every step killed, every modelled power loss recovered and judged. Each check is shown
//! failing on the bug it exists for.
//!
//! strace is required: without it these tests fail with the reason (CI installs it).

use std::path::{Path, PathBuf};

use exit_harness::crash::{self, CrashScenario, Exploration, ExploreOptions, POWER_LOSS, PROCESS_CRASH};
use exit_harness::oracle::{ExitStatus, FileContent, QuietStderr};
use exit_harness::{Cell, ChildSpec, FileUnderTest};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/crash/save.py")
}

fn require_strace() {
    if let Err(why) = crash::trace::strace_available() {
        panic!("crash exploration needs strace: {why}");
    }
}

fn save(mode: &'static str) -> CrashScenario {
    CrashScenario::new(format!("python save ({mode})"), move || {
        Cell::new(mode, "crash-test", ChildSpec::new("python3").arg(script()).arg(mode).arg("{scratch}/data.txt"))
            .file(FileUnderTest::new("data.txt").seeded("old contents\n"))
            .oracle(ExitStatus::success())
            .oracle(QuietStderr::empty())
            .oracle(FileContent::equals("new contents\n").of("data.txt"))
    })
}

fn explore(scenario: &CrashScenario) -> Exploration {
    require_strace();
    let exploration = crash::explore(scenario, &ExploreOptions::default()).expect("explored");
    eprintln!("{}", exploration.summary());
    assert!(exploration.reference.passed(), "the uncrashed run fails: {:?}", exploration.reference.failures());
    exploration
}

/// The failing states of `family`, as `(state, failures)`.
fn failing<'a>(exploration: &'a Exploration, family: &str) -> Vec<(&'a str, Vec<String>)> {
    exploration.failing().filter(|r| r.family.ends_with(family)).map(|r| (r.name.as_str(), r.failures())).collect()
}

fn oracles_failing(exploration: &Exploration, family: &str) -> Vec<String> {
    let mut ids: Vec<String> = failing(exploration, family)
        .into_iter()
        .flat_map(|(_, failures)| failures.into_iter().map(|f| f.split(':').next().unwrap_or("").to_owned()))
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

#[test]
fn a_durable_save_survives_every_process_crash_and_power_loss() {
    let exploration = explore(&save("durable").durable(true));
    assert!(exploration.count(PROCESS_CRASH) >= 5, "{}", exploration.summary());
    assert!(exploration.count(POWER_LOSS) >= 3, "{}", exploration.summary());
    assert!(exploration.passed(), "{:#?}", failing(&exploration, ""));
}

#[test]
fn a_save_without_fsync_tears_under_power_loss_only() {
    let exploration = explore(&save("no-fsync"));
    assert_eq!(failing(&exploration, PROCESS_CRASH), Vec::<(&str, Vec<String>)>::new());
    let torn = failing(&exploration, POWER_LOSS);
    assert!(!torn.is_empty(), "no power-loss state tore the file: {}", exploration.summary());
    assert_eq!(oracles_failing(&exploration, POWER_LOSS), ["old_or_new"], "{torn:#?}");
    assert!(
        torn.iter().any(|(state, f)| state.contains("after the program ended")
            && state.contains("not on disk: step")
            && f.iter().any(|f| f.contains("data.txt: neither the old nor the new content") || f.contains("0 B"))),
        "{torn:#?}"
    );
}

#[test]
fn a_save_without_a_folder_fsync_can_be_undone_but_never_tears() {
    let exploration = explore(&save("atomic").durable(true));
    assert_eq!(failing(&exploration, PROCESS_CRASH), Vec::<(&str, Vec<String>)>::new());
    assert_eq!(oracles_failing(&exploration, POWER_LOSS), ["durable"], "{:#?}", failing(&exploration, POWER_LOSS));
    let undone = failing(&exploration, POWER_LOSS);
    assert!(
        undone.iter().all(|(state, _)| state.contains("not on disk: step") && state.contains("rename")),
        "{undone:#?}"
    );
}

#[test]
fn a_save_in_place_is_torn_by_a_process_crash() {
    let exploration = explore(&save("in-place"));
    let torn = failing(&exploration, PROCESS_CRASH);
    assert!(!torn.is_empty(), "no kill tore the file: {}", exploration.summary());
    assert!(oracles_failing(&exploration, PROCESS_CRASH).contains(&"old_or_new".to_owned()), "{torn:#?}");
    assert!(
        torn.iter().any(|(state, _)| state.starts_with("kill before step") && state.contains("write(")),
        "{torn:#?}"
    );
}

#[test]
fn a_scenario_file_with_crash_and_recovery_tables() {
    require_strace();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/crash/durable.toml");
    let scenario = crash::file::load(&path).expect("loads");
    let exploration = explore(&scenario);
    assert!(exploration.passed(), "{:#?}", failing(&exploration, ""));
    // `exit-harness run` accepts the same file as a plain scenario.
    assert!(exit_harness::scenario_file::load(&path).expect("run reads it").run().passed());
}

#[test]
fn the_python_example_of_the_seed_is_explored() {
    // pytorch/TensorRT #4359's fixed design: atomic and fsynced, so no state tears; but nothing
    // removes a crashed save's temp file, which the exploration reports.
    require_strace();
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../third-party/scenarios/tensorrt-4359-del-autosave/fixed.toml");
    let exploration = explore(&crash::file::load(&path).expect("loads"));
    assert!(exploration.count(PROCESS_CRASH) >= 8, "{}", exploration.summary());
    for family in [PROCESS_CRASH, POWER_LOSS] {
        let ids = oracles_failing(&exploration, family);
        assert!(ids.iter().all(|id| id == "recovered_clean" || id == "run failed"), "{family}: {ids:?}");
    }
    assert!(oracles_failing(&exploration, POWER_LOSS).contains(&"recovered_clean".to_owned()));
}
