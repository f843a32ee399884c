//! Every shipped reproducer under `scenarios/reproducers/`, one test per file (as trybuild does):
//! each is replayed in a real child process and must pass on runtime-cache, and must fail on the
//! defect of the defect zoo it names (the proof that it can fail). The fuzzer's thread, failing
//! save, wait, lost-update and removal reproducers name no defect: each was found by `runtime-cache-scenarios fuzz`
//! against a bug planted in runtime-cache's source and never committed ([`PROVED_BY_A_PLANT`]
//! says which; the file's comments tell how it was found). Then the tools themselves:
//! a malformed file is refused naming its line, and `fuzz` finds a planted defect and writes a
//! reproducer that `repro` replays.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;
use scenarios::fuzz::replay;
use scenarios::fuzz::reproducer::Reproducer;

const CHILD: &str = env!("CARGO_BIN_EXE_scenario-child");
const RUNTIME_CACHE_SCENARIOS: &str = env!("CARGO_BIN_EXE_runtime-cache-scenarios");

/// The shipped reproducers; `every_shipped_reproducer_has_a_test` keeps this list complete.
const SHIPPED: [&str; 12] = [
    "many-engines-alive-at-exit.toml",
    "swap-saves-old-cache-once.toml",
    "two-processes-share-one-file.toml",
    "fork-does-not-duplicate-exit-hook.toml",
    "thread-local-handle-at-exit.toml",
    "static-handle-process-exit.toml",
    "thread-compile-during-save.toml",
    "failed-save-then-recovery.toml",
    "signal-after-a-wait-saves-every-handle.toml",
    "spawn-between-two-saves-of-one-handle.toml",
    "removal-reaches-the-file.toml",
    "failed-append-then-learns.toml",
];

/// Reproducers proved able to fail by a bug planted in runtime-cache (not in the defect zoo),
/// with the bug: the file, and what the plant did.
const PROVED_BY_A_PLANT: [(&str, &str); 6] = [
    (
        "thread-compile-during-save.toml",
        "a save marks every entry clean after its write, including one a thread inserted after its snapshot",
    ),
    (
        "failed-save-then-recovery.toml",
        "a save takes the dirty set before its write and does not restore it on failure",
    ),
    (
        "signal-after-a-wait-saves-every-handle.toml",
        "the termination handler's exit deadline starts when it is installed, not when the signal arrives",
    ),
    (
        "spawn-between-two-saves-of-one-handle.toml",
        "a handle that wrote the file last skips the re-read before its next save",
    ),
    ("removal-reaches-the-file.toml", "`remove` takes the entry out of the handle without recording the removal"),
    (
        "failed-append-then-learns.toml",
        "without the fix: a failed save keeps the view of the file it moved past what it read",
    ),
];

fn folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("reproducers")
}

/// Replays `name` on runtime-cache (must pass) and on its defect (must fail).
fn replay_shipped(name: &str) {
    let reproducer = Reproducer::load(&folder().join(name)).unwrap_or_else(|error| panic!("{error}"));
    replay(CHILD.as_ref(), &reproducer, None).assert_passed();
    if reproducer.defect.is_none() && PROVED_BY_A_PLANT.iter().any(|(file, _)| *file == name) {
        return;
    }
    let defect = reproducer.defect.unwrap_or_else(|| panic!("{name} names no defect to prove it can fail"));
    let result = replay(CHILD.as_ref(), &reproducer, Some(defect));
    assert!(!result.passed(), "{name} does not catch defect {}:\n{}", defect.name(), reproducer.case);
}

#[test]
fn many_engines_alive_at_exit() {
    replay_shipped("many-engines-alive-at-exit.toml");
}

#[test]
fn swap_saves_old_cache_once() {
    replay_shipped("swap-saves-old-cache-once.toml");
}

#[test]
fn two_processes_share_one_file() {
    replay_shipped("two-processes-share-one-file.toml");
}

#[test]
fn fork_does_not_duplicate_exit_hook() {
    replay_shipped("fork-does-not-duplicate-exit-hook.toml");
}

#[test]
fn thread_local_handle_at_exit() {
    replay_shipped("thread-local-handle-at-exit.toml");
}

#[test]
fn static_handle_process_exit() {
    replay_shipped("static-handle-process-exit.toml");
}

#[test]
fn thread_compile_during_save() {
    replay_shipped("thread-compile-during-save.toml");
}

#[test]
fn failed_save_then_recovery() {
    replay_shipped("failed-save-then-recovery.toml");
}

#[test]
fn signal_after_a_wait_saves_every_handle() {
    replay_shipped("signal-after-a-wait-saves-every-handle.toml");
}

#[test]
fn spawn_between_two_saves_of_one_handle() {
    replay_shipped("spawn-between-two-saves-of-one-handle.toml");
}

#[test]
fn removal_reaches_the_file() {
    replay_shipped("removal-reaches-the-file.toml");
}

#[test]
fn failed_append_then_learns() {
    replay_shipped("failed-append-then-learns.toml");
}

#[test]
fn every_shipped_reproducer_has_a_test() {
    let mut files: Vec<String> = std::fs::read_dir(folder())
        .expect("scenarios/reproducers")
        .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".toml"))
        .collect();
    files.sort();
    let mut shipped: Vec<String> = SHIPPED.iter().map(|name| name.to_string()).collect();
    shipped.sort();
    assert_eq!(files, shipped, "add a test (and an entry in SHIPPED) for each file in scenarios/reproducers/");
}

#[test]
fn repro_replays_files_and_its_status_says_pass_or_fail() {
    let file = folder().join("fork-does-not-duplicate-exit-hook.toml");
    Command::new(RUNTIME_CACHE_SCENARIOS)
        .arg("repro")
        .arg(&file)
        .assert()
        .success()
        .stdout(predicate::str::contains("  PASS [").and(predicate::str::contains("\n1 passed, 0 failed\n")));
    Command::new(RUNTIME_CACHE_SCENARIOS)
        .args(["repro", "--defect", "fork-unaware"])
        .arg(&file)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("  FAIL [").and(predicate::str::contains("fork-3 saved a.rtc 1x")))
        .stdout(
            predicate::str::contains("saves_per_process: saw")
                .and(predicate::str::contains("rerun: runtime-cache-scenarios repro")),
        );
}

#[test]
fn a_malformed_reproducer_is_refused_naming_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "title = \"bad\"\nops = [\n  \"create e0 a.rtc\",\n  \"compile e1 k1\",\n]\nending = \"return\"\n",
    )
    .expect("write");
    Command::new(RUNTIME_CACHE_SCENARIOS)
        .arg("repro")
        .arg(&file)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("bad.toml:4: op 2: e1 was never created"));
}

#[test]
fn fuzz_finds_a_planted_defect_and_writes_a_reproducer_that_replays() {
    let out = tempfile::tempdir().expect("tempdir");
    let run = Command::new(RUNTIME_CACHE_SCENARIOS)
        .args(["fuzz", "--cases", "500", "--seed", "1", "--jobs", "1", "--defect", "swap-double-save", "--out"])
        .arg(out.path())
        .assert()
        .code(1)
        .stdout(predicate::str::contains("runtime-cache-scenarios repro --defect swap-double-save"));
    let stdout = String::from_utf8_lossy(&run.get_output().stdout).into_owned();
    let written: Vec<PathBuf> = std::fs::read_dir(out.path()).expect("out").map(|e| e.expect("entry").path()).collect();
    assert_eq!(written.len(), 1, "one reproducer expected:\n{stdout}");
    let reproducer = Reproducer::load(&written[0]).unwrap_or_else(|error| panic!("{error}"));
    assert!(reproducer.case.ops.iter().any(|op| op.to_string().starts_with("swap")), "{}", reproducer.case);
    assert!(reproducer.case.ops.len() <= 4, "not shrunk:\n{}", reproducer.case);
    Command::new(RUNTIME_CACHE_SCENARIOS).arg("repro").arg(&written[0]).assert().success();
    Command::new(RUNTIME_CACHE_SCENARIOS)
        .args(["repro", "--defect", "swap-double-save"])
        .arg(&written[0])
        .assert()
        .code(1);
}

#[test]
fn fuzz_passes_on_runtime_cache() {
    let out = tempfile::tempdir().expect("tempdir");
    Command::new(RUNTIME_CACHE_SCENARIOS)
        .args(["fuzz", "--cases", "300", "--seed", "2", "--jobs", "2", "--out"])
        .arg(out.path())
        .assert()
        .success()
        .stdout(predicate::str::contains("fuzz: pass: 300 cases"));
}
