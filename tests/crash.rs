//! runtime-cache's save under crash exploration (issue #13): SIGKILL at every step and every
//! modelled power loss, at each `Durability` level, for both shapes of a save (an append to a
//! version-3 file, the full rewrite of a version-2 one), with real strace and real processes.
//! What each level can lose is pinned here, so a change to the fsync calls of the save path (or a
//! mutant of them) changes a verdict.

use exit_harness::crash::{self, CrashScenario, Exploration, ExploreOptions, POWER_LOSS, PROCESS_CRASH};
use runtime_cache::Durability;
use scenarios::crash::{LEVELS, SaveShape};
use scenarios::defects::Defect;

fn explore(level: Durability, shape: SaveShape, defect: Option<Defect>, demand_durable: bool) -> Exploration {
    if let Err(why) = crash::trace::strace_available() {
        panic!("crash exploration needs strace: {why}");
    }
    let child = std::path::Path::new(env!("CARGO_BIN_EXE_scenario-child"));
    let scenario: CrashScenario = scenarios::crash::save_scenario(child, level, shape, defect).durable(demand_durable);
    let exploration = crash::explore(&scenario, &ExploreOptions::default()).expect("explored");
    eprintln!("{}", exploration.summary());
    assert!(exploration.reference.passed(), "uncrashed run: {:?}", exploration.reference.failures());
    exploration
}

/// The ids of the oracles failing in `family`'s states, sorted, once each.
fn failing(exploration: &Exploration, family: &str) -> Vec<String> {
    let mut ids: Vec<String> = exploration
        .failing()
        .filter(|r| r.family.ends_with(family))
        .flat_map(|r| r.failures())
        .map(|f| f.split(':').next().unwrap_or("").to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

fn report(exploration: &Exploration) -> String {
    exploration.failing().map(|r| format!("{}\n  {}", r.name, r.failures().join("\n  "))).collect::<Vec<_>>().join("\n")
}

#[test]
fn sync_file_and_folder_survives_every_state() {
    let exploration = explore(Durability::SyncFileAndFolder, SaveShape::Rewrite, None, true);
    assert!(exploration.count(PROCESS_CRASH) >= 5 && exploration.count(POWER_LOSS) >= 3, "{}", exploration.summary());
    assert!(exploration.passed(), "{}", report(&exploration));
}

/// An append is committed by its `pwrite` and made durable by the file's `fsync` (no rename,
/// no folder to sync): at every level a process crash or a power loss at any step leaves the old
/// file (the torn or lost frame is ignored, then dropped by the next save) or the new one, and
/// from `SyncFile` on a power loss after the save returned keeps it.
#[test]
fn an_append_survives_every_state_at_every_level() {
    for level in LEVELS {
        let exploration = explore(level, SaveShape::Append, None, level != Durability::None);
        assert!(
            exploration.count(PROCESS_CRASH) >= 3 && exploration.count(POWER_LOSS) >= 3,
            "{}",
            exploration.summary()
        );
        assert!(exploration.passed(), "{level:?}:\n{}", report(&exploration));
    }
}

#[test]
fn sync_file_never_tears_but_a_power_loss_can_undo_the_last_rewrite() {
    let exploration = explore(Durability::SyncFile, SaveShape::Rewrite, None, true);
    assert_eq!(failing(&exploration, PROCESS_CRASH), Vec::<String>::new(), "{}", report(&exploration));
    assert_eq!(failing(&exploration, POWER_LOSS), ["durable"], "{}", report(&exploration));
    let undone: Vec<_> = exploration.failing().collect();
    assert_eq!(undone.len(), 1, "{}", report(&exploration));
    assert!(undone[0].name.contains("after the program ended") && undone[0].name.contains("not on disk: step"));
    assert!(undone[0].name.contains("renameat"), "{}", undone[0].name);
}

#[test]
fn no_fsync_can_leave_a_torn_file_after_a_power_loss_in_a_rewrite() {
    let exploration = explore(Durability::None, SaveShape::Rewrite, None, false);
    assert_eq!(failing(&exploration, PROCESS_CRASH), Vec::<String>::new(), "{}", report(&exploration));
    assert_eq!(failing(&exploration, POWER_LOSS), ["old_or_new", "recovered_clean"], "{}", report(&exploration));
    assert!(report(&exploration).contains("kernels.rtc: torn or invalid"), "{}", report(&exploration));
}

#[test]
fn an_in_place_save_is_torn_by_a_process_crash() {
    let exploration = explore(Durability::SyncFile, SaveShape::Append, Some(Defect::InPlaceWrite), false);
    let ids = failing(&exploration, PROCESS_CRASH);
    assert!(ids.contains(&"old_or_new".to_owned()), "{ids:?}\n{}", report(&exploration));
    assert!(
        exploration.failing().any(|r| r.name.starts_with("kill before step") && r.name.contains("write(<kernels.rtc>")),
        "{}",
        report(&exploration)
    );
}
