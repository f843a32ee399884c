//! The catalog catches every defect of runtime-cache's defect zoo, and passes on the correct
//! cache: CI fails the day a scenario stops catching its bug.

use scenarios::catalog::{RuntimeCacheCatalog, Sizes};
use scenarios::defect_hunt::DefectHunt;
use scenarios::defects::Defect;
use scenarios::plan::InitFailure;

#[test]
fn catalog_catches_every_defect_and_passes_the_correct_cache() {
    let jobs = std::thread::available_parallelism().map_or(2, usize::from);
    let hunt = DefectHunt::run(env!("CARGO_BIN_EXE_scenario-child").as_ref(), Sizes::defect_hunt(), jobs, |_, _| {});
    assert!(hunt.passed(), "the defect hunt failed:\n{}", hunt.table());
}

/// A cell that injects a failure of its own (`FAILPOINTS=read=return`) still runs against the
/// defect: both settings reach the child in one `FAILPOINTS` value. With early-register (a hook
/// registered before the failing read, never rolled back) the registry outgrows the live handles.
#[test]
fn a_cells_own_failpoint_keeps_the_defects_seams() {
    let catalog = RuntimeCacheCatalog::new(env!("CARGO_BIN_EXE_scenario-child"), Sizes::defect_hunt());
    let read_fails = InitFailure::Failpoint("read".into());
    let correct = catalog.partial_init_failure(read_fails.clone()).run();
    assert!(correct.passed(), "the correct cache fails {}:\n{}", correct.name, correct.failures().join("\n"));
    let defective = catalog.with_defect(Defect::EarlyRegister).partial_init_failure(read_fails).run();
    let failed: Vec<&str> =
        defective.verdicts.iter().filter(|v| v.verdict.evidence().is_some()).map(|v| v.id.as_str()).collect();
    assert!(failed.contains(&"registry_bound"), "early-register was not caught by {}: {failed:?}", defective.name);
}
