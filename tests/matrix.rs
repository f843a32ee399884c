//! Every cell of the scenario catalog under `cargo test`: one test per family, each running its
//! cells in real child processes and failing with the report of every failing cell.
//!
//! Works with cargo-nextest too (`cargo nextest run --partition hash:1/2`): each family is its own
//! test, so partitions split the matrix.

use exit_harness::{Catalog, CellResult};
use scenarios::catalog::{RuntimeCacheCatalog, Sizes};

fn catalog() -> RuntimeCacheCatalog {
    RuntimeCacheCatalog::new(env!("CARGO_BIN_EXE_scenario-child"), Sizes::default())
}

/// Runs every cell of `family` and fails with the evidence of each failing cell.
fn run_family(family: &str) {
    let cells: Vec<_> = catalog().cells().into_iter().filter(|cell| cell.scenario.family == family).collect();
    assert!(!cells.is_empty(), "no cell in family {family}");
    let results: Vec<CellResult> = cells.iter().map(|cell| cell.run()).collect();
    exit_harness::finish_cleanup();
    let failures: Vec<String> = results
        .iter()
        .filter(|result| !result.passed())
        .map(|result| format!("{}: {}", result.name, result.failures().join("\n")))
        .collect();
    assert!(failures.is_empty(), "{} of {} cells failed:\n{}", failures.len(), results.len(), failures.join("\n"));
}

#[test]
fn survive_to_exit() {
    run_family("survive-to-exit");
}

#[test]
fn mid_program_drop() {
    run_family("mid-program-drop");
}

#[test]
fn engine_churn() {
    run_family("engine-churn");
}

#[test]
fn partial_init_failure() {
    run_family("partial-init-failure");
}

#[test]
fn fork_child() {
    run_family("fork-child");
}

#[test]
fn concurrent_processes() {
    run_family("concurrent-processes");
}

#[test]
fn crash_mid_save() {
    run_family("crash-mid-save");
}

#[test]
fn save_failure() {
    run_family("save-failure");
}

#[test]
fn drop_exit_race() {
    run_family("drop-exit-race");
}

#[test]
fn swap() {
    run_family("swap");
}

#[test]
fn corrupt_file() {
    run_family("corrupt-file");
}

#[test]
fn explicit_save() {
    run_family("explicit-save");
}

#[test]
fn warm_start() {
    run_family("warm-start");
}

#[test]
fn lock_contention() {
    run_family("lock-contention");
}
