//! runtime-cache's save under crash exploration (`runtime-cache-scenarios crash`, issue #13): one
//! scenario per [`Durability`] level and [`SaveShape`] (an append to a version-3 file, or the
//! full rewrite of a previous-version file). The save is the survive-to-exit cell (a dirty
//! engine, local to `main`, saved when `main` returns; the file seeded with two old kernels); the recovery
//! is the next process on the same file: it opens the crash state, compiles three other
//! kernels and saves, judged as that cell is (one save, exit 0, quiet stderr, the file valid
//! and holding every key it held before, no entry the journal reported lost).
//!
//! What each level promises, and so what the explorer demands of it: every level survives any
//! process crash (old or new, never torn; the next open removes the temp file; the next save
//! works); only `SyncFileAndFolder` promises that a power loss after the save returned keeps the
//! new file (`durable`).

use std::time::Duration;

use exit_harness::crash::CrashScenario;
use exit_harness::oracle::{
    ExitStatus, FileIntact, NoLeakedProcesses, NoLostEntries, QuietStderr, RegistryBound, SaveCount,
};
use exit_harness::{Cell, ChildSpec};
use runtime_cache::Durability;

use crate::catalog::{cache_file, old_cache_bytes, previous_version_cache_bytes};
use crate::contract::Ending;
use crate::defects::{self, Defect, FAILPOINTS_ENV};
use crate::plan::{ChildPlan, Family, Holder};

/// The variable that sets the durability level of the `scenario-child` program's caches
/// (`none`, `sync-file`, `sync-file-and-folder`).
pub const DURABILITY_ENV: &str = "SCENARIO_CHILD_DURABILITY";

/// Every durability level, weakest first.
pub const LEVELS: [Durability; 3] = [Durability::None, Durability::SyncFile, Durability::SyncFileAndFolder];

/// The level's name as [`DURABILITY_ENV`] spells it.
pub fn level_name(level: Durability) -> &'static str {
    match level {
        Durability::None => "none",
        Durability::SyncFile => "sync-file",
        Durability::SyncFileAndFolder => "sync-file-and-folder",
    }
}

/// Which path of the save a scenario explores, chosen by the file it seeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveShape {
    /// The seed is a version-3 file: the save appends one frame (`fallocate`, `pwrite`, `fsync`).
    Append,
    /// The seed is a version-2 file: the save rewrites it whole (temp file, `fsync`, rename).
    Rewrite,
}

impl SaveShape {
    /// Both shapes.
    pub const ALL: [SaveShape; 2] = [SaveShape::Append, SaveShape::Rewrite];

    fn seed(self) -> Vec<u8> {
        match self {
            SaveShape::Append => old_cache_bytes(),
            SaveShape::Rewrite => previous_version_cache_bytes(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            SaveShape::Append => "append",
            SaveShape::Rewrite => "rewrite",
        }
    }
}

/// The crash scenario of one save of `shape` at `level`, run by `child` (the `scenario-child`
/// program), optionally against a defect of the defect zoo (its recipe in `FAILPOINTS`).
pub fn save_scenario(
    child: &std::path::Path,
    level: Durability,
    shape: SaveShape,
    defect: Option<Defect>,
) -> CrashScenario {
    let name = format!(
        "runtime-cache save ({}), Durability::{level:?}{}",
        shape.name(),
        defect.map(|d| format!(" [defect {}]", d.name())).unwrap_or_default()
    );
    let (save_child, recovery_child) = (child.to_owned(), child.to_owned());
    let cell_name = name.clone();
    let recovery_name = name.clone();
    CrashScenario::new(name, move || cell(&save_child, &cell_name, level, shape, defect, 0))
        .recovery(move || cell(&recovery_child, &format!("{recovery_name} recovery"), level, shape, defect, 1))
        // The lock file the cache keeps beside its file.
        .allow_after_recovery("*.lock")
        .durable(level == Durability::SyncFileAndFolder)
}

/// Every shape's and level's scenario whose name contains `filter`.
pub fn scenarios(child: &std::path::Path, filter: Option<&str>) -> Vec<CrashScenario> {
    SaveShape::ALL
        .into_iter()
        .flat_map(|shape| LEVELS.into_iter().map(move |level| (shape, level)))
        .map(|(shape, level)| save_scenario(child, level, shape, None))
        .filter(|s| filter.is_none_or(|f| s.name.contains(f)))
        .collect()
}

/// A process that opens the cache (seeded with two old kernels, in the file `shape` calls for),
/// compiles three kernels of `kernel_seed` and saves them when `main` returns.
fn cell(
    child: &std::path::Path,
    name: &str,
    level: Durability,
    shape: SaveShape,
    defect: Option<Defect>,
    kernel_seed: u32,
) -> Cell {
    let plan = ChildPlan { kernel_seed, ..ChildPlan::new(Holder::MainLocal, Ending::Return, Family::SurviveToExit) };
    let mut spec = ChildSpec::new(child)
        .arg(plan.to_arg())
        .env(DURABILITY_ENV, level_name(level))
        .timeout(Duration::from_secs(60));
    if let Some(failpoints) = defects::failpoints(defect, &[]) {
        spec = spec.env(FAILPOINTS_ENV, failpoints);
    }
    Cell::new(name, "crash", spec)
        .file(cache_file(&plan.cache).seeded(shape.seed()))
        .oracle(SaveCount::exactly(1).of(&plan.cache))
        .oracle(ExitStatus::success())
        .oracle(QuietStderr::empty())
        .oracle(FileIntact::new().of(&plan.cache))
        .oracle(NoLostEntries::new().of(&plan.cache))
        .oracle(NoLeakedProcesses)
        .oracle(RegistryBound::new())
}
