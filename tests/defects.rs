//! The catalog catches every defect of runtime-cache's defect zoo, and passes on the correct
//! cache: CI fails the day a scenario stops catching its bug.

use scenarios::catalog::Sizes;
use scenarios::defect_hunt::DefectHunt;

#[test]
fn catalog_catches_every_defect_and_passes_the_correct_cache() {
    let jobs = std::thread::available_parallelism().map_or(2, usize::from);
    let hunt = DefectHunt::run(env!("CARGO_BIN_EXE_scenario-child").as_ref(), Sizes::defect_hunt(), jobs, |_, _| {});
    assert!(hunt.passed(), "the defect hunt failed:\n{}", hunt.table());
}
