//! The scenario catalog: every row of the cache's contract table (DESIGN.md), for every holder,
//! plus the families (mid-program drop, churn, partial init failure, fork, concurrent processes,
//! crash mid-save, save failure, drop-exit race, swap, corrupt file, explicit save, warm start,
//! lock contention) and the campaign's cells (save recovery, save race, late signal, exit budget,
//! other format version, open while locked, removals, and more cells of the concurrent, swap and
//! corrupt-file families), each a [`Cell`] with its expectation spelled out as oracles.

use std::path::{Path, PathBuf};
use std::time::Duration;

use exit_harness::oracle::{
    ExitStatus, FileIntact, JournalEvents, MarkerSeen, NoLeakedProcesses, NoLeftoverFiles, NoLostEntries, QuietStderr,
    RegistryBound, ReportedEntries, SaveCount, SaveTriggers, SavedBefore, WithinDeadline,
};
use exit_harness::{Catalog, Cell, ChildSpec, FileUnderTest, FolderUnderTest, ValidContent};
use runtime_cache::format::{self, FormatLimits};
use runtime_cache::{
    CompilerIdentity, EvictReason, KernelCompiler, KernelKey, KernelSpec, SaveKind, SyntheticCompiler,
    UnavailableReason,
};
use signal_hook::consts::{SIGKILL, SIGTERM};

use crate::cache_oracles::{self, LastUse, ListedEntry, Planted, SizeChange};
use crate::contract::{Ending, Hostile, HostileOutcome, contract, hostile_contract};
use crate::defects::{self, Defect, FAILPOINTS_ENV};
use crate::plan::{
    CACHE_FILE, ChildPlan, Family, Holder, InitFailure, OWN_TORN_TEMP, RaceChange, SaveFailure, SaveStep, Supersession,
    TEMP_LOOKALIKES, at_the_limits_file_bytes, hostile_cache_path, hostile_link_target,
};

/// The rows of the contract table the survive-to-exit family covers: each ending, and whether
/// the termination handler is installed.
pub const CONTRACT_ROWS: [(Ending, bool); 9] = [
    (Ending::Return, false),
    (Ending::Exit(0), false),
    (Ending::Exit(3), false),
    (Ending::Panic, false),
    (Ending::SigTerm, true),
    (Ending::SigTerm, false),
    (Ending::SigInt, true),
    (Ending::Abort, false),
    (Ending::SigKill, false),
];

/// A row's name in cell names: the ending's (`exit-3`), `-handler` when the handler is installed.
pub fn row_name(ending: Ending, handler: bool) -> String {
    if handler { format!("{}-handler", ending.name()) } else { ending.name() }
}

/// How big the heavy families are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizes {
    /// Engines in the churn cell.
    pub churn_engines: u32,
    /// Processes in the concurrent cell.
    pub concurrent_processes: u32,
    /// Processes (rounds) in the drop-exit race cell.
    pub race_rounds: u32,
    /// Processes in the many-writers cell, which share a large cache file.
    pub many_writers: u32,
    /// Entries of 4 KiB in the many-writers cell's large cache file.
    pub large_cache_entries: u32,
}

impl Default for Sizes {
    /// The sizes CI runs: 10 000 engines, 8 processes, 25 rounds, 64 writers on a cache of
    /// 4 096 entries (16 MiB).
    fn default() -> Self {
        Self {
            churn_engines: 10_000,
            concurrent_processes: 8,
            race_rounds: 25,
            many_writers: 64,
            large_cache_entries: 4096,
        }
    }
}

impl Sizes {
    /// The sizes of a defect hunt, run once per defect: 1 000 engines, 8 processes, 25 rounds,
    /// 16 writers on a cache of 1 024 entries (4 MiB).
    pub fn defect_hunt() -> Self {
        Self { churn_engines: 1_000, many_writers: 16, large_cache_entries: 1024, ..Self::default() }
    }
}

/// The runtime-cache catalog, bound to the child program that carries out its plans.
#[derive(Clone, Debug)]
pub struct RuntimeCacheCatalog {
    child: PathBuf,
    sizes: Sizes,
    defect: Option<Defect>,
}

impl RuntimeCacheCatalog {
    /// A catalog whose cells run `child` (the `scenario-child` program).
    pub fn new(child: impl Into<PathBuf>, sizes: Sizes) -> Self {
        Self { child: child.into(), sizes, defect: None }
    }

    /// The same catalog, run against `defect` of the defect zoo (every child gets its recipe in
    /// `FAILPOINTS`, with the cell's own failpoints).
    pub fn with_defect(mut self, defect: Defect) -> Self {
        self.defect = Some(defect);
        self
    }

    /// A catalog running the `scenario-child` program that sits next to the current executable
    /// (where cargo puts both), with CI sizes.
    pub fn locate() -> Self {
        let exe = std::env::current_exe().unwrap_or_default();
        let child = exe.with_file_name("scenario-child");
        Self::new(child, Sizes::default())
    }

    /// The child program this catalog runs.
    pub fn child(&self) -> &Path {
        &self.child
    }

    fn spec(&self, plan: &ChildPlan) -> ChildSpec {
        self.spec_with_failpoints(plan, &[])
    }

    /// The child's spec, with the cell's own failpoint settings (`name=actions`) besides the
    /// defect's recipe.
    fn spec_with_failpoints(&self, plan: &ChildPlan, cell_failpoints: &[&str]) -> ChildSpec {
        let spec = ChildSpec::new(&self.child).arg(plan.to_arg()).timeout(Duration::from_secs(60));
        match defects::failpoints(self.defect, cell_failpoints) {
            Some(failpoints) => spec.env(FAILPOINTS_ENV, failpoints),
            None => spec,
        }
    }
}

impl Catalog for RuntimeCacheCatalog {
    fn cells(&self) -> Vec<Cell> {
        let mut cells = Vec::new();
        for holder in Holder::ALL {
            for (ending, handler) in CONTRACT_ROWS {
                cells.push(self.survive_to_exit(holder, ending, handler));
            }
        }
        for ending in [Ending::Return, Ending::Exit(0), Ending::Panic] {
            cells.push(self.mid_program_drop(ending));
        }
        cells.push(self.churn());
        for cause in init_failures() {
            cells.push(self.partial_init_failure(cause));
        }
        for child_exit in [None, Some(0)] {
            cells.push(self.fork(child_exit));
        }
        cells.push(self.fork_during_save());
        cells.push(self.concurrent());
        for step in SaveStep::ALL {
            cells.push(self.crash_mid_save(step));
        }
        cells.push(self.save_fails(SaveFailure::DiskFull));
        cells.push(self.save_fails(SaveFailure::LockHeld));
        cells.push(self.disk_full_in_a_rewrite());
        cells.push(self.drop_exit_race());
        for ending in [Ending::Return, Ending::Exit(0)] {
            cells.push(self.swap(ending));
        }
        cells.push(self.corrupt_on_open(false));
        cells.push(self.corrupt_on_open(true));
        for compile_after in [false, true] {
            cells.push(self.explicit_save(compile_after));
        }
        cells.push(self.warm_start());
        cells.push(self.lock_contention());
        // The campaign's blind spots (README, "campaign").
        for write_through in [false, true] {
            cells.push(self.save_recovery(write_through));
        }
        cells.push(self.failed_append_then_learns());
        for change in RaceChange::ALL {
            cells.push(self.save_race(change));
        }
        cells.push(self.late_signal());
        for busy in [false, true] {
            cells.push(self.exit_budget(busy));
        }
        cells.push(self.corrupt_beside_set_aside());
        for at_save in [false, true] {
            cells.push(self.other_version(at_save));
        }
        cells.push(self.open_while_locked());
        cells.push(self.concurrent_cold());
        cells.push(self.failed_swap());
        for clear in [false, true] {
            cells.push(self.remove(clear));
        }
        cells.push(self.remove_after_another_append());
        cells.push(self.reinsert_same_bytes());
        cells.push(self.least_recently_used_dropped());
        cells.push(self.last_use_from_another_handle(false));
        cells.push(self.last_use_from_another_handle(true));
        cells.push(self.trimmed_at_open());
        cells.push(self.other_build_pruned());
        cells.push(self.over_max_file_bytes());
        cells.push(self.dirty_entry_evicted());
        cells.push(self.at_the_limits());
        for supersession in Supersession::ALL {
            cells.push(self.supersede(supersession));
        }
        cells.push(self.append_after_another_rewrite());
        cells.push(self.torn_tail_by_another_process());
        cells.push(self.frames_since_rewrite());
        cells.push(self.shared_key(false));
        cells.push(self.shared_key(true));
        // Issue #12: hostile cache paths, and many writers on a large cache.
        for hostile in Hostile::ALL {
            cells.push(self.hostile(hostile));
        }
        cells.push(self.many_writers());
        // Issue #14: the lifecycle promises of the crate tests that no cell checked yet.
        cells.push(self.fork_child_sigterm());
        cells.push(self.clean_swap());
        cells.push(self.swap_to_no_cache());
        for ending in [Ending::Return, Ending::SigKill] {
            cells.push(self.write_through(ending));
        }
        cells.push(self.no_autosave());
        cells
    }
}

/// The partial-init-failure causes: each failpoint, and the real causes. See [`init_outcome`]
/// for what the contract says comes of each.
pub fn init_failures() -> Vec<InitFailure> {
    let failpoints = ["lock", "read", "parse", "compiler-init", "before-hook-registration", "after-hook-registration"];
    let mut causes: Vec<InitFailure> = failpoints.iter().map(|name| InitFailure::Failpoint(name.to_string())).collect();
    causes.extend([
        InitFailure::PathIsFolder,
        InitFailure::ParentNotCreatable,
        InitFailure::UntrustedFile,
        InitFailure::NvrtcMissing,
    ]);
    causes
}

/// What comes of a partial-init-failure cause, by the cache's contract (DESIGN.md: "a cache that
/// cannot be used degrades to a cold start with a typed, observable reason, never a failed
/// engine").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitOutcome {
    /// `Engine::new` fails with a typed error: the compiler cannot be loaded.
    Fails,
    /// The engine is built and runs cold, kernels in memory only: `Engine::cache_unavailable`
    /// and one `Event::CacheUnavailable` give this reason; no exit hook is registered and the
    /// cache path is never written.
    RunsCold(UnavailableReason),
    /// The engine is built with its cache open and the file loaded: opening never needs the
    /// lock (it only tries it, to clean up after a crashed save), so a lock that cannot be
    /// taken at open changes nothing.
    OpensCache,
}

/// What the contract says comes of `cause` (see [`InitOutcome`]).
pub fn init_outcome(cause: &InitFailure) -> InitOutcome {
    match cause {
        InitFailure::Failpoint(point) => match point.as_str() {
            "compiler-init" => InitOutcome::Fails,
            "lock" => InitOutcome::OpensCache,
            // An injected failure is the step's own error: the hook could not be registered...
            "before-hook-registration" | "after-hook-registration" => {
                InitOutcome::RunsCold(UnavailableReason::ExitHookUnavailable)
            }
            // ... the file could not be read or decoded (`read`, `parse`): `CacheError::Io`.
            _ => InitOutcome::RunsCold(UnavailableReason::Io),
        },
        InitFailure::PathIsFolder => InitOutcome::RunsCold(UnavailableReason::NotAFile),
        InitFailure::ParentNotCreatable => InitOutcome::RunsCold(UnavailableReason::Io),
        InitFailure::UntrustedFile => InitOutcome::RunsCold(UnavailableReason::UntrustedFile),
        InitFailure::NvrtcMissing => InitOutcome::Fails,
    }
}

/// Validates a cache file by decoding it; its keys are the entries' hex keys.
pub fn cache_file(name: &str) -> FileUnderTest {
    FileUnderTest::new(name).validated_by(|bytes| {
        let bytes = bytes::Bytes::copy_from_slice(bytes);
        format::decode(&bytes, &FormatLimits::default())
            .map(|entries| ValidContent::with_keys(entries.iter().map(|(key, _)| key.to_hex())))
            .map_err(|error| error.to_string())
    })
}

/// Groups of oracles that many cells share, named for what they expect.
trait SharedExpectations {
    /// The process exits with code 0 and writes nothing on stderr.
    fn exits_cleanly(self) -> Self;
    /// `workers` worker processes ended, each with exit code 0.
    fn workers_exit_cleanly(self, workers: usize) -> Self;
    /// Exactly `saves` saves of `cache`, and the final file holds every entry a save committed.
    fn saves_without_loss(self, cache: &str, saves: u64) -> Self;
}

impl SharedExpectations for Cell {
    fn exits_cleanly(self) -> Self {
        self.oracle(ExitStatus::success()).oracle(QuietStderr::empty())
    }

    fn workers_exit_cleanly(self, workers: usize) -> Self {
        self.oracle(JournalEvents::of_kind("worker_exit").exactly(workers).each("code", 0))
    }

    fn saves_without_loss(self, cache: &str, saves: u64) -> Self {
        self.oracle(SaveCount::exactly(saves).of(cache)).oracle(NoLostEntries::new().of(cache))
    }
}

/// The oracles every cell carries.
fn common(cell: Cell) -> Cell {
    cell.oracle(NoLeakedProcesses).oracle(RegistryBound::new())
}

impl RuntimeCacheCatalog {
    fn cell(&self, name: String, family: &str, plan: &ChildPlan) -> Cell {
        common(Cell::new(name, family, self.spec(plan)))
    }

    /// survive to exit: the dirty handle lives to the end in `holder`, and the process ends by
    /// `ending` (with the termination handler installed first when `handler`): the contract row.
    pub fn survive_to_exit(&self, holder: Holder, ending: Ending, handler: bool) -> Cell {
        let plan = ChildPlan::new(holder, ending, Family::SurviveToExit).with_handler(handler);
        let row = contract(ending, handler);
        let cell = self
            .cell(format!("survive/{}/{}", holder.name(), row_name(ending, handler)), "survive-to-exit", &plan)
            .file(cache_file(&plan.cache).seeded(old_cache_bytes()))
            .oracle(SaveCount::exactly(row.save_count()).of(&plan.cache))
            .oracle(row.exit_status())
            .oracle(row.quiet_stderr());
        if row.saves {
            cell.oracle(FileIntact::new().of(&plan.cache)).oracle(NoLostEntries::new().of(&plan.cache))
        } else {
            cell.oracle(FileIntact::unchanged().of(&plan.cache))
        }
    }

    /// mid-program drop: exactly one save, at the drop, before the `mid-program` marker.
    pub fn mid_program_drop(&self, ending: Ending) -> Cell {
        let plan = ChildPlan::new(Holder::MainLocal, ending, Family::MidProgramDrop);
        let row = contract(ending, false);
        self.cell(format!("mid-program-drop/{}", ending.name()), "mid-program-drop", &plan)
            .file(cache_file(&plan.cache))
            .saves_without_loss(&plan.cache, 1)
            .oracle(SavedBefore::new(&plan.cache, "mid-program"))
            .oracle(row.exit_status())
            .oracle(row.quiet_stderr())
    }

    /// engine churn: N engines, every 10th dirty: saves == dirty count, registry bounded, memory bounded.
    pub fn churn(&self) -> Cell {
        let engines = self.sizes.churn_engines;
        let dirty_every = 10;
        let plan = ChildPlan {
            artifact_bytes: 64,
            ..ChildPlan::new(Holder::MainLocal, Ending::Return, Family::Churn { engines, dirty_every })
        };
        let dirty = u64::from(engines.div_ceil(dirty_every));
        Cell::new(format!("churn/{engines}-engines"), "engine-churn", self.spec(&plan))
            .file(cache_file(&plan.cache))
            .saves_without_loss(&plan.cache, dirty)
            .oracle(RegistryBound::new().max_growth(0))
            .oracle(cache_oracles::rss_growth_at_most(16 * 1024))
            .exits_cleanly()
            .oracle(NoLeakedProcesses)
    }

    /// partial init failure: part of the construction fails (see [`init_outcome`]).
    /// - The compiler (`compiler-init`, `nvrtc-missing`): `Engine::new` fails with a typed error
    ///   and leaves the exit registry unchanged.
    /// - The cache (`read`, `parse`, `before-`/`after-hook-registration`, path is a folder,
    ///   parent not creatable, untrusted file): the engine is built and runs cold;
    ///   `cache_unavailable()` and one `CacheUnavailable` event give the expected typed reason;
    ///   the exit registry is unchanged; the engine compiles its kernels, then finds them in
    ///   memory; leaked, it is alive at exit and still never writes its cache path.
    /// - The lock (`lock`): opening never needs it, so the engine opens its cache with the old
    ///   entries loaded, registers one exit hook, and (alive at exit) saves once, keeping them.
    ///
    /// In every case: no stderr, exit 0, the cache file byte-identical unless the engine opened
    /// it, and a later construction in the same process (second cache) works and saves once.
    pub fn partial_init_failure(&self, cause: InitFailure) -> Cell {
        let name = match &cause {
            InitFailure::Failpoint(point) => format!("failpoint-{point}"),
            InitFailure::PathIsFolder => "path-is-folder".into(),
            InitFailure::ParentNotCreatable => "parent-not-creatable".into(),
            InitFailure::UntrustedFile => "untrusted-file".into(),
            InitFailure::NvrtcMissing => "nvrtc-missing".into(),
        };
        let outcome = init_outcome(&cause);
        let plan = ChildPlan::new(Holder::MainLocal, Ending::Return, Family::PartialInitFailure(cause.clone()));
        let mut spec = self.spec(&plan);
        match &cause {
            InitFailure::Failpoint(point) => spec = self.spec_with_failpoints(&plan, &[&format!("{point}=return")]),
            // No library on the loader's path: `Backend::Nvrtc` must fail with a typed error.
            InitFailure::NvrtcMissing => spec = spec.env_remove("LD_LIBRARY_PATH"),
            _ => {}
        }
        let kernels = plan.kernels as usize;
        let mut cell = common(Cell::new(format!("partial-init/{name}"), "partial-init-failure", spec))
            .file(cache_file(&plan.second_cache))
            .oracle(SaveCount::exactly(1).of(&plan.second_cache))
            .oracle(MarkerSeen::new("recovered"))
            .exits_cleanly();
        cell = match outcome {
            InitOutcome::Fails => cell
                .oracle(JournalEvents::of_kind("init_failed"))
                .oracle(JournalEvents::of_kind("engine_built").none())
                .oracle(cache_oracles::registry_growth(0)),
            InitOutcome::RunsCold(reason) => cell
                .oracle(JournalEvents::of_kind("init_failed").none())
                .oracle(cache_oracles::cache_unavailable(&plan.cache, reason))
                .oracle(cache_oracles::registry_growth(0))
                .oracle(cache_oracles::compiled_then_found("engine-works", "engine-worked", kernels)),
            InitOutcome::OpensCache => cell
                .oracle(JournalEvents::of_kind("init_failed").none())
                .oracle(JournalEvents::of_kind("cache_unavailable").none())
                .oracle(cache_oracles::cache_opened(2))
                .oracle(cache_oracles::registry_growth(1))
                .oracle(cache_oracles::compiled_then_found("engine-works", "engine-worked", kernels)),
        };
        if cause == InitFailure::PathIsFolder {
            // The cache path is the folder the child made: there is no file to compare.
            return cell;
        }
        cell = cell.file(cache_file(&plan.cache).seeded(old_cache_bytes()));
        match outcome {
            InitOutcome::OpensCache => cell
                .oracle(SaveCount::exactly(1).of(&plan.cache))
                .oracle(SaveTriggers::exactly(&plan.cache, ["exit"]))
                .oracle(FileIntact::new().of(&plan.cache))
                .oracle(NoLostEntries::new().of(&plan.cache)),
            InitOutcome::Fails | InitOutcome::RunsCold(_) => {
                cell.oracle(SaveCount::none().of(&plan.cache)).oracle(FileIntact::unchanged().of(&plan.cache))
            }
        }
    }

    /// fork child: the forked child never saves its parent's handle; the parent saves once.
    pub fn fork(&self, child_exit: Option<i32>) -> Cell {
        let plan = ChildPlan::new(Holder::MainLocal, Ending::Return, Family::Fork { child_exit });
        let name = match child_exit {
            None => "child-returns".to_string(),
            Some(code) => format!("child-exit-{code}"),
        };
        self.cell(format!("fork/{name}"), "fork-child", &plan)
            .file(cache_file(&plan.cache))
            .saves_without_loss(&plan.cache, 1)
            .oracle(cache_oracles::forked_child_saves_nothing())
            .oracle(JournalEvents::of_kind("save_skipped").matching("reason", "forked child"))
            .oracle(JournalEvents::of_kind("fork_child_exit").exactly(1).each("code", child_exit.unwrap_or(0)))
            .exits_cleanly()
    }

    /// fork during a save: while the engine's explicit save holds `<path>.lock`, the process
    /// forks a child that lives on for a second; right after the save, another handle saves with
    /// a 300 ms lock timeout, and must not wait for the child: two saves, no `save_failed`. The
    /// forked child shares the lock's open file description, so a lock released only by closing
    /// the file stays held until the child exits. Catches that.
    pub fn fork_during_save(&self) -> Cell {
        let plan = ChildPlan::new(Holder::MainLocal, Ending::Return, Family::ForkDuringSave);
        self.cell("fork/child-forked-during-a-save".into(), "fork-child", &plan)
            .file(cache_file(&plan.cache))
            .saves_without_loss(&plan.cache, 2)
            .oracle(SaveTriggers::exactly(&plan.cache, ["explicit", "explicit"]))
            .oracle(JournalEvents::of_kind("save_failed").none())
            .oracle(MarkerSeen::new("forked-during-save"))
            .oracle(cache_oracles::forked_child_saves_nothing())
            .oracle(JournalEvents::of_kind("fork_child_exit").exactly(1).each("code", 0))
            .exits_cleanly()
    }

    /// concurrent processes: K processes share one path: K saves, no lost entries, valid file.
    pub fn concurrent(&self) -> Cell {
        let processes = self.sizes.concurrent_processes;
        let plan = ChildPlan::new(Holder::MainLocal, Ending::Return, Family::Concurrent { processes });
        self.cell(format!("concurrent/{processes}-processes"), "concurrent-processes", &plan)
            .file(cache_file(&plan.cache).seeded(old_cache_bytes()))
            .saves_without_loss(&plan.cache, u64::from(processes))
            .workers_exit_cleanly(processes as usize)
            .oracle(ReportedEntries::of(CACHE_FILE))
            .oracle(FileIntact::new().of(&plan.cache))
            .exits_cleanly()
    }

    /// crash mid-save: SIGKILL at `step` of a full rewrite; the file is the old or the new
    /// content, and the next open succeeds (and cleans the temp file). The seed is a file of the
    /// previous format version, which a save always rewrites whole (temp file, rename), so every
    /// step of the rewrite is reached; an append's crash states are explored syscall by syscall by
    /// `exit-harness crash` (`tests/crash.rs`).
    pub fn crash_mid_save(&self, step: SaveStep) -> Cell {
        let plan = ChildPlan::new(Holder::MainLocal, Ending::Return, Family::CrashMidSave(step));
        let mut cell = self
            .cell(format!("crash-mid-save/{}", step.failpoint().trim_start_matches("save-")), "crash-mid-save", &plan)
            .file(cache_file(&plan.cache).seeded(previous_version_cache_bytes()))
            .oracle(MarkerSeen::new("crash-point"))
            .oracle(JournalEvents::of_kind("worker_exit").exactly(1).each("signal", SIGKILL))
            .oracle(JournalEvents::of_kind("reopened"))
            .oracle(FileIntact::new().of(&plan.cache))
            .exits_cleanly();
        if step != SaveStep::AfterRename {
            cell = cell.oracle(JournalEvents::of_kind("temp_removed"));
        }
        cell
    }

    /// save failure, disk full in a full rewrite: as `save-failure/disk-full` (whose save is an
    /// append: space reserved first, so nothing is written), with the file of the previous
    /// format version, so the save rewrites it and its temp file's write is what fails: the temp
    /// file must not be left beside the cache.
    pub fn disk_full_in_a_rewrite(&self) -> Cell {
        self.save_fails_on(SaveFailure::DiskFull, "-rewrite", previous_version_cache_bytes())
    }

    /// save failure: no panic, no stderr, failure journaled, old file intact, exit in time.
    pub fn save_fails(&self, failure: SaveFailure) -> Cell {
        self.save_fails_on(failure, "", old_cache_bytes())
    }

    /// [`Self::save_fails`] with the cache file seeded with `seed`, the cell's name ending in `suffix`.
    fn save_fails_on(&self, failure: SaveFailure, suffix: &str, seed: Vec<u8>) -> Cell {
        let (name, holder, plan_bytes) = match failure {
            SaveFailure::DiskFull => ("disk-full", Holder::Static, 64 * 1024),
            SaveFailure::LockHeld => ("lock-held", Holder::Static, crate::plan::ARTIFACT_BYTES),
        };
        let plan = ChildPlan {
            artifact_bytes: plan_bytes,
            ..ChildPlan::new(holder, Ending::Return, Family::SaveFails(failure))
        };
        // Bounded lock waits end in well under a second; the timeout catches unbounded ones.
        let spec = self.spec(&plan).timeout(Duration::from_secs(10));
        let mut cell = common(Cell::new(format!("save-failure/{name}{suffix}"), "save-failure", spec));
        if failure == SaveFailure::LockHeld {
            // The worker's exit deadline is 300 ms, its lock timeout 5 s: the exit gives up in time.
            cell = cell.oracle(WithinDeadline::from_marker("ending", "save_failed", Duration::from_secs(2)));
        }
        if failure == SaveFailure::DiskFull {
            // The failed write leaves no temp file beside the cache (campaign bug 06); the lock
            // file stays, by design.
            cell = cell.folder(FolderUnderTest::new(".")).oracle(NoLeftoverFiles::new().allow("*.lock"));
        }
        cell.file(cache_file(&plan.cache).seeded(seed))
            .oracle(SaveCount::none().of(&plan.cache))
            .oracle(JournalEvents::of_kind("save_failed"))
            .oracle(FileIntact::unchanged().of(&plan.cache))
            .exits_cleanly()
    }

    /// drop-exit race: a thread drops the engine while main exits, in many processes: exactly one
    /// save in each.
    pub fn drop_exit_race(&self) -> Cell {
        let rounds = self.sizes.race_rounds;
        let plan = ChildPlan::new(Holder::MainLocal, Ending::Return, Family::DropExitRace { rounds });
        self.cell(format!("drop-exit-race/{rounds}-rounds"), "drop-exit-race", &plan)
            .file(cache_file(&plan.cache))
            .saves_without_loss(&plan.cache, u64::from(rounds))
            .workers_exit_cleanly(rounds as usize)
            .oracle(cache_oracles::one_save_per_saving_process(rounds as usize))
            .oracle(JournalEvents::of_kind("save_skipped").matching("reason", "exit deadline exceeded").none())
            .exits_cleanly()
    }

    /// swap: the old cache saves once at the swap, the new one once at the end.
    pub fn swap(&self, ending: Ending) -> Cell {
        let plan = ChildPlan::new(Holder::MainLocal, ending, Family::Swap);
        let row = contract(ending, false);
        self.cell(format!("swap/{}", ending.name()), "swap", &plan)
            .file(cache_file(&plan.cache))
            .file(cache_file(&plan.second_cache))
            .oracle(SaveCount::exactly(1).of(&plan.cache))
            .oracle(SaveCount::exactly(1).of(&plan.second_cache))
            .oracle(SavedBefore::new(&plan.cache, "swapped"))
            .oracle(SaveTriggers::every(&plan.cache, "swap"))
            .oracle(row.exit_status())
            .oracle(row.quiet_stderr())
            .oracle(NoLostEntries::new())
    }

    /// explicit save: one save at the `save()` call; at exit, a second only if the engine is
    /// dirty again.
    pub fn explicit_save(&self, compile_after: bool) -> Cell {
        let plan = ChildPlan::new(Holder::MainLocal, Ending::Exit(0), Family::ExplicitSave { compile_after });
        let name = if compile_after { "dirty-again-at-exit" } else { "clean-at-exit" };
        let cell = self
            .cell(format!("explicit-save/{name}"), "explicit-save", &plan)
            .file(cache_file(&plan.cache))
            .exits_cleanly()
            .oracle(NoLostEntries::new().of(&plan.cache));
        if compile_after {
            cell.oracle(SaveCount::exactly(2).of(&plan.cache))
                .oracle(SaveTriggers::exactly(&plan.cache, ["explicit", "exit"]))
        } else {
            cell.oracle(SaveCount::exactly(1).of(&plan.cache))
                .oracle(SaveTriggers::exactly(&plan.cache, ["explicit"]))
                .oracle(JournalEvents::of_kind("save_skipped").matching("reason", "clean"))
        }
    }

    /// warm start: a second process finds every kernel in the file the first one saved, compiles
    /// nothing, and (clean) writes nothing.
    pub fn warm_start(&self) -> Cell {
        let plan = ChildPlan::new(Holder::MainLocal, Ending::Return, Family::WarmStart);
        self.cell("warm-start".into(), "warm-start", &plan)
            .file(cache_file(&plan.cache))
            .oracle(SaveCount::exactly(1).of(&plan.cache))
            .oracle(cache_oracles::hits_after("warm", plan.kernels as usize))
            .oracle(JournalEvents::of_kind("save_skipped").matching("reason", "clean"))
            .workers_exit_cleanly(1)
            .exits_cleanly()
    }

    /// lock contention: another process holds the lock for a moment while the engine opens,
    /// saves explicitly and saves at drop; each waits and succeeds.
    pub fn lock_contention(&self) -> Cell {
        let plan = ChildPlan::new(Holder::MainLocal, Ending::Return, Family::LockContention);
        self.cell("lock-contention".into(), "lock-contention", &plan)
            .file(cache_file(&plan.cache))
            .saves_without_loss(&plan.cache, 2)
            .oracle(SaveTriggers::exactly(&plan.cache, ["explicit", "drop"]))
            .oracle(JournalEvents::of_kind("save_failed").none())
            .workers_exit_cleanly(1)
            .oracle(ReportedEntries::of(CACHE_FILE))
            .exits_cleanly()
    }

    /// corrupt file on open: set aside byte-exact, cold start, a valid file at exit (one save).
    /// `clean_engine`: the engine compiles nothing, and the open sets the damaged file aside all
    /// the same (once), though nothing is saved. Catches a damaged file set aside only by a later
    /// save, which a process that never saves leaves in place for every later open to trip on.
    pub fn corrupt_on_open(&self, clean_engine: bool) -> Cell {
        let mut plan = ChildPlan::new(Holder::MainLocal, Ending::Return, Family::CorruptOnOpen);
        if clean_engine {
            plan.kernels = 0;
        }
        let garbage = torn_old_cache_bytes();
        let set_aside: &'static str = Box::leak(format!("{}.corrupt-0", plan.cache).into_boxed_str());
        let name = if clean_engine { "corrupt-on-open/clean-engine" } else { "corrupt-on-open" };
        let cell = self
            .cell(name.into(), "corrupt-file", &plan)
            .file(cache_file(&plan.cache).seeded(garbage.clone()))
            .file(FileUnderTest::new(set_aside))
            .oracle(JournalEvents::of_kind("quarantined").exactly(1))
            .oracle(cache_oracles::set_aside_byte_exact(set_aside, garbage));
        match clean_engine {
            true => cell.oracle(SaveCount::none().of(&plan.cache)),
            false => cell.saves_without_loss(&plan.cache, 1),
        }
        .exits_cleanly()
    }
}

/// A torn cache file: the first half of [`old_cache_bytes`], as a writer without temp-and-rename
/// leaves it.
fn torn_old_cache_bytes() -> Vec<u8> {
    let mut torn = old_cache_bytes();
    torn.truncate(torn.len() / 2);
    torn
}

/// The campaign's cells: each covers a blind spot of the families above, and its doc names the
/// campaign bug (`/tmp/campaign-bugs/NN-*.patch`, README "campaign") it was shown to catch.
impl RuntimeCacheCatalog {
    /// save recovery: a save fails on a held lock, the lock is released, and the same handle's
    /// drop saves every entry (trigger `drop`, one save).
    /// - `explicit-then-drop`: the failing save is an explicit `save()`. Catches bug 01 (the
    ///   failed save took the dirty set: the drop writes nothing).
    /// - `write-through-then-drop`: with write-through, every insert's save fails. Catches bug 05
    ///   (a failed write-through save marks the entry clean).
    pub fn save_recovery(&self, write_through: bool) -> Cell {
        let plan = ChildPlan::new(Holder::MainLocal, Ending::Return, Family::SaveRecovery { write_through });
        let name = if write_through { "write-through-then-drop" } else { "explicit-then-drop" };
        let failures = if write_through { plan.kernels as usize } else { 1 };
        self.cell(format!("save-recovery/{name}"), "save-recovery", &plan)
            .file(cache_file(&plan.cache).seeded(old_cache_bytes()))
            .oracle(JournalEvents::of_kind("save_failed").exactly(failures))
            .saves_without_loss(&plan.cache, 1)
            .oracle(SaveTriggers::exactly(&plan.cache, ["drop"]))
            .oracle(ReportedEntries::of(CACHE_FILE))
            .oracle(FileIntact::new().of(&plan.cache))
            .exits_cleanly()
    }

    /// save recovery, the handle's view: the engine's explicit save reads what another handle
    /// appended and then fails (failpoint `save-before-rename`); the next explicit save succeeds
    /// and the handle holds the other handle's entry (journaled `learned held=1`); its drop then
    /// writes nothing. Fails when a failed save keeps the view of the file it moved past what it
    /// read (the handle never learns that entry).
    pub fn failed_append_then_learns(&self) -> Cell {
        let plan = ChildPlan::new(Holder::MainLocal, Ending::Return, Family::FailedAppendThenLearns);
        self.cell("save-recovery/failed-append-then-learns".into(), "save-recovery", &plan)
            .file(cache_file(&plan.cache).seeded(old_cache_bytes()))
            .oracle(JournalEvents::of_kind("save_failed").exactly(1))
            .oracle(JournalEvents::of_kind("learned").exactly(1).each("failed", 1).each("saved", 1).each("held", 1))
            .oracle(SaveCount::exactly(2).of(&plan.cache))
            .oracle(SaveTriggers::exactly(&plan.cache, ["explicit", "explicit"]))
            .oracle(NoLostEntries::new().of(&plan.cache))
            .oracle(FileIntact::new().of(&plan.cache))
            .exits_cleanly()
    }

    /// save race: while an explicit save is between its snapshot and its commit, another thread
    /// changes the handle. What the save did not write must stay to save, and what it read back
    /// from the file must not undo the change:
    /// - `new-entry`, `replaced-entry`: a kernel the save did not snapshot, or a snapshotted key
    ///   re-inserted with a new artifact, stays dirty: the drop saves it (`explicit`, `drop`).
    ///   Catch bugs 02 (the commit clears the whole dirty set) and 19 (it cleans every
    ///   snapshotted key, replaced or not).
    /// - `removed-entry`: an old entry removed stays a pending removal: the drop rewrites the file
    ///   without it.
    /// - `removed-appended-entry`: another handle appended an entry first; it is removed while
    ///   the save reads it back, and must not merge back: the drop rewrites the file without it.
    /// - `cleared`: another handle appended an entry first, which the save reads back; nothing
    ///   merges back into the cleared handle, and the drop empties the file.
    /// - `entry-already-on-disk`: the entry inserted is the one another handle appended just
    ///   before, byte for byte; the save finds it in the file, so the handle is clean after it
    ///   and the drop writes nothing (two saves: the other handle's and this one's).
    /// - `entry-on-disk-with-other-bytes`: the same key, other bytes: the save reads the other
    ///   handle's bytes back, the handle stays dirty, and the drop writes ours (the saver wins).
    pub fn save_race(&self, change: RaceChange) -> Cell {
        let plan = ChildPlan::new(Holder::MainLocal, Ending::Return, Family::SaveRace { change });
        let mut file = cache_file(&plan.cache);
        if change.seeds_old_file() {
            file = file.seeded(old_cache_bytes());
        }
        let cell = self
            .cell(format!("save-race/{}", change.name()), "save-race", &plan)
            .file(file)
            .oracle(MarkerSeen::new("changed-during-save"))
            .exits_cleanly();
        let [old, other_old] = old_cache_keys().map(|key| key.to_hex());
        let (other_key, _) = other_writer_entry();
        let other = other_key.to_hex();
        match change {
            RaceChange::NewEntry | RaceChange::ReplacedEntry => {
                cell.saves_without_loss(&plan.cache, 2).oracle(SaveTriggers::exactly(&plan.cache, ["explicit", "drop"]))
            }
            RaceChange::RemovedEntry => cell
                .oracle(SaveCount::exactly(2).of(&plan.cache))
                .oracle(SaveTriggers::exactly(&plan.cache, ["explicit", "drop"]))
                .oracle(NoLostEntries::new().of(&plan.cache))
                .oracle(cache_oracles::file_keys(&plan.cache, vec![other_old], vec![old])),
            // The old entries and the engine's kernels stay; the removed one does not come back.
            RaceChange::RemovedAppendedEntry => cell
                .oracle(SaveCount::exactly(3).of(&plan.cache))
                .oracle(SaveTriggers::exactly(&plan.cache, ["explicit", "explicit", "drop"]))
                .oracle(cache_oracles::file_keys(&plan.cache, vec![old, other_old], vec![other]))
                .oracle(cache_oracles::file_key_count(&plan.cache, 2 + plan.kernels as usize)),
            RaceChange::Cleared => cell
                .oracle(SaveCount::exactly(3).of(&plan.cache))
                .oracle(SaveTriggers::exactly(&plan.cache, ["explicit", "explicit", "drop"]))
                .oracle(cache_oracles::file_key_count(&plan.cache, 0)),
            RaceChange::EntryOnDiskWithOtherBytes => cell
                .oracle(SaveCount::exactly(3).of(&plan.cache))
                .oracle(SaveTriggers::exactly(&plan.cache, ["explicit", "explicit", "drop"]))
                .oracle(NoLostEntries::new().of(&plan.cache))
                .oracle(cache_oracles::file_artifact(&plan.cache, other_key, our_artifact(plan.artifact_bytes))),
            RaceChange::EntryAlreadyOnDisk => cell
                .oracle(SaveCount::exactly(2).of(&plan.cache))
                .oracle(SaveTriggers::exactly(&plan.cache, ["explicit", "explicit"]))
                .oracle(NoLostEntries::new().of(&plan.cache))
                .oracle(cache_oracles::file_keys(&plan.cache, vec![old, other_old, other], Vec::new())),
        }
    }

    /// late signal: the termination handler is installed, the exit budget is 300 ms, and SIGTERM
    /// comes from the harness 600 ms later: still exactly one save, death by SIGTERM. Catches
    /// bug 04 (the deadline counted from the handler's installation: 0 saves).
    pub fn late_signal(&self) -> Cell {
        let plan = ChildPlan::new(Holder::MainLocal, Ending::SigTerm, Family::LateSignal).with_handler(true);
        let row = contract(Ending::SigTerm, true);
        let spec = self.spec(&plan).signal_on_marker("awaiting-signal", SIGTERM);
        common(Cell::new("late-signal/sigterm-after-budget", "late-signal", spec))
            .file(cache_file(&plan.cache).seeded(old_cache_bytes()))
            .saves_without_loss(&plan.cache, 1)
            .oracle(SaveTriggers::exactly(&plan.cache, ["signal 15"]))
            .oracle(JournalEvents::of_kind("save_skipped").none())
            .oracle(row.exit_status())
            .oracle(row.quiet_stderr())
    }

    /// exit budget: a worker's exit meets dirty handles all blocked on the lock the parent holds;
    /// the exit budget is 300 ms, the lock timeout 5 s. The whole exit ends within 1 s of the
    /// worker's last step (measured by the parent), saves nothing, leaves the file intact.
    /// - `5-handles-locked`: 5 leaked handles. Catches bug 03 (a fresh budget per handle: ~1.8 s)
    ///   and bug 17 (the exit's lock wait ignores the budget: 5 s per handle).
    /// - `saving-on-a-thread`: the first registered handle is in an explicit save on another
    ///   thread, waiting for the lock (5 s), and one leaked handle follows. Catches bug 23 (the
    ///   exit waits unbounded for the running save: ~5 s).
    pub fn exit_budget(&self, busy: bool) -> Cell {
        let handles = if busy { 1 } else { 5 };
        let plan = ChildPlan::new(Holder::BoxLeak, Ending::Return, Family::ExitBudget { handles, busy });
        let name = if busy { "saving-on-a-thread".to_string() } else { format!("{handles}-handles-locked") };
        let spec = self.spec(&plan).timeout(Duration::from_secs(45));
        common(Cell::new(format!("exit-budget/{name}"), "exit-budget", spec))
            .file(cache_file(&plan.cache).seeded(old_cache_bytes()))
            .oracle(WithinDeadline::from_marker("worker-ending", "worker_exit", Duration::from_secs(1)))
            .workers_exit_cleanly(1)
            .oracle(SaveCount::none().of(&plan.cache))
            .oracle(FileIntact::unchanged().of(&plan.cache))
            .exits_cleanly()
    }

    /// corrupt file beside earlier set-aside files: `.corrupt-1..3` are there (0 was pruned
    /// before); the torn cache file goes to `.corrupt-4`, `.corrupt-2` and `.corrupt-3` stay
    /// byte-exact (the oldest, 1, may be pruned). Catches bug 07 (numbered by count: renamed onto
    /// `.corrupt-3`, destroying it) and bug 08 (the prune keeps the oldest: `.corrupt-4` removed
    /// at once).
    pub fn corrupt_beside_set_aside(&self) -> Cell {
        let plan = ChildPlan::new(Holder::MainLocal, Ending::Return, Family::CorruptOnOpen);
        let garbage = torn_old_cache_bytes();
        let set_aside = |n: u32| -> &'static str { Box::leak(format!("{}.corrupt-{n}", plan.cache).into_boxed_str()) };
        let earlier = |n: u32| format!("an earlier corrupt file, set aside as number {n}\n").into_bytes();
        let mut cell = self
            .cell("corrupt-on-open/beside-set-aside-files".into(), "corrupt-file", &plan)
            .file(cache_file(&plan.cache).seeded(garbage.clone()))
            .file(FileUnderTest::new(set_aside(1)).seeded(earlier(1)))
            .file(FileUnderTest::new(set_aside(4)))
            .oracle(JournalEvents::of_kind("quarantined").exactly(1))
            .oracle(cache_oracles::set_aside_byte_exact(set_aside(4), garbage))
            .saves_without_loss(&plan.cache, 1)
            .exits_cleanly();
        for n in [2, 3] {
            cell = cell
                .file(FileUnderTest::new(set_aside(n)).seeded(earlier(n)))
                .oracle(cache_oracles::set_aside_byte_exact(set_aside(n), earlier(n)));
        }
        cell
    }

    /// another format version: a valid file of a later version (v3) is neither set aside nor
    /// overwritten.
    /// - `at-open`: the engine finds it at open and runs cold (reason `unsupported`), writes
    ///   nothing at drop. Catches bug 10 (open sets it aside as damage, then saves over it).
    /// - `at-save`: a newer build writes it between our open and our drop; our save fails
    ///   (reported), the v3 file stays byte-exact. Catches bug 09 (the save's re-read sets it
    ///   aside and replaces it). No save count here: the newer build's own rename is a write the
    ///   black box sees.
    pub fn other_version(&self, at_save: bool) -> Cell {
        let plan = ChildPlan::new(Holder::MainLocal, Ending::Return, Family::OtherVersion { at_save });
        let name = if at_save { "at-save" } else { "at-open" };
        let cache: &'static str = Box::leak(plan.cache.clone().into_boxed_str());
        let seed = if at_save { old_cache_bytes() } else { future_version_bytes() };
        let cell = self
            .cell(format!("other-version/{name}"), "other-version", &plan)
            .file(FileUnderTest::new(cache).seeded(seed))
            .folder(FolderUnderTest::new("."))
            .oracle(cache_oracles::set_aside_byte_exact(cache, future_version_bytes()))
            .oracle(JournalEvents::of_kind("quarantined").none())
            .oracle(NoLeftoverFiles::new().allow("*.lock"))
            .exits_cleanly();
        if at_save {
            cell.oracle(cache_oracles::cache_opened(2))
                .oracle(MarkerSeen::new("newer-build-saved"))
                .oracle(JournalEvents::of_kind("save_failed").exactly(1))
        } else {
            cell.oracle(cache_oracles::cache_unavailable(&plan.cache, UnavailableReason::Unsupported))
                .oracle(SaveCount::none().of(&plan.cache))
        }
    }

    /// open while locked: another process holds the lock (for up to 3 s) while a worker opens
    /// its engine: the open takes under 1 s (it only tries the lock), and the drop, once the lock
    /// is free, saves once. Catches bug 13 (open waits up to 2 s for the lock).
    pub fn open_while_locked(&self) -> Cell {
        let plan = ChildPlan::new(Holder::MainLocal, Ending::Return, Family::OpenWhileLocked);
        self.cell("open-while-locked".into(), "open-while-locked", &plan)
            .file(cache_file(&plan.cache).seeded(old_cache_bytes()))
            .oracle(WithinDeadline::from_marker("opening", "opened", Duration::from_secs(1)))
            .workers_exit_cleanly(1)
            .saves_without_loss(&plan.cache, 1)
            .exits_cleanly()
    }

    /// concurrent processes, cold: as [`Self::concurrent`], but no file exists when the
    /// processes open. Catches bug 18 (a handle that opened on a missing file never re-reads it
    /// before saving: the last writer wins).
    pub fn concurrent_cold(&self) -> Cell {
        let processes = self.sizes.concurrent_processes;
        let plan = ChildPlan::new(Holder::MainLocal, Ending::Return, Family::Concurrent { processes });
        self.cell(format!("concurrent/{processes}-processes-cold"), "concurrent-processes", &plan)
            .file(cache_file(&plan.cache))
            .saves_without_loss(&plan.cache, u64::from(processes))
            .workers_exit_cleanly(processes as usize)
            .oracle(ReportedEntries::of(CACHE_FILE))
            .oracle(FileIntact::new().of(&plan.cache))
            .exits_cleanly()
    }

    /// failed swap: settings moved to a path that is a folder. The old cache saves once, with
    /// trigger `swap`, before the swap returns; the engine then runs cold (one `CacheUnavailable`,
    /// reason `not-a-file`) and nothing more is written to the old path. Catches bug 26 (the old
    /// cache is kept, and written at drop instead).
    pub fn failed_swap(&self) -> Cell {
        let plan = ChildPlan::new(Holder::MainLocal, Ending::Return, Family::FailedSwap);
        self.cell("swap/to-unusable-path".into(), "swap", &plan)
            .file(cache_file(&plan.cache))
            .saves_without_loss(&plan.cache, 1)
            .oracle(SaveTriggers::exactly(&plan.cache, ["swap"]))
            .oracle(SavedBefore::new(&plan.cache, "swapped"))
            .oracle(cache_oracles::cache_unavailable(&plan.second_cache, UnavailableReason::NotAFile))
            .exits_cleanly()
    }

    /// removals: the engine opens the seeded file (two old entries) and, compiling nothing,
    /// removes the first (`remove-one`) or clears everything (`clear`); its drop saves once and
    /// the file no longer holds what was removed. Catches bug 25 (dirty means only new entries:
    /// nothing is saved).
    pub fn remove(&self, clear: bool) -> Cell {
        let plan =
            ChildPlan { kernels: 0, ..ChildPlan::new(Holder::MainLocal, Ending::Return, Family::Remove { clear }) };
        let keys = old_cache_keys();
        let (name, removed, kept) =
            if clear { ("clear", &keys[..], &keys[..0]) } else { ("remove-one", &keys[..1], &keys[1..]) };
        self.cell(format!("remove/{name}"), "removal", &plan)
            .file(cache_file(&plan.cache).seeded(old_cache_bytes()))
            .oracle(SaveCount::exactly(1).of(&plan.cache))
            .oracle(SaveTriggers::exactly(&plan.cache, ["drop"]))
            .oracle(cache_oracles::file_keys(
                &plan.cache,
                kept.iter().map(KernelKey::to_hex).collect(),
                removed.iter().map(KernelKey::to_hex).collect(),
            ))
            .exits_cleanly()
    }

    /// the same bytes again: the engine opens the seeded file and inserts an old entry again with
    /// the bytes it already holds: nothing changed, so the handle stays clean, its drop writes
    /// nothing (skip reason `clean`) and the file stays byte-identical.
    pub fn reinsert_same_bytes(&self) -> Cell {
        let plan =
            ChildPlan { kernels: 0, ..ChildPlan::new(Holder::MainLocal, Ending::Return, Family::ReinsertSameBytes) };
        self.cell("insert/same-bytes-again".into(), "removal", &plan)
            .file(cache_file(&plan.cache).seeded(old_cache_bytes()))
            .oracle(JournalEvents::of_kind("inserted").exactly(1).each("dirty", 0))
            .oracle(SaveCount::none().of(&plan.cache))
            .oracle(FileIntact::unchanged().of(&plan.cache))
            .exits_cleanly()
    }

    /// last use from another handle: as `least-recently-used-dropped` (at most two entries, the
    /// first seeded entry used two days ago, the second one day ago), but another handle first
    /// caches the first seeded key with other bytes and saves (an append: used now). The engine
    /// then compiles one kernel and is dropped: its save, over the entry limit, rewrites the file,
    /// merging what the other handle wrote: on the key both hold our bytes win and the later last
    /// use stands, so the save drops the second seeded entry, not the first, and the file holds
    /// our bytes under the first. Catches a merge that keeps our stale last use (the entry another
    /// process uses now is evicted).
    /// - `with_removal`: the engine also caches an entry of its own and removes it, so its save
    ///   is a rewrite from the start, which re-reads the file; without, the save starts as an
    ///   append, which reads the other handle's frame, and becomes a rewrite at the entry limit
    ///   (without re-reading: the last use comes from what the append read). Each is a path of
    ///   its own to the later last use.
    pub fn last_use_from_another_handle(&self, with_removal: bool) -> Cell {
        let plan = ChildPlan {
            kernels: 1,
            ..ChildPlan::new(Holder::MainLocal, Ending::Return, Family::LastUseFromAnotherHandle { with_removal })
        };
        let (removed, _) = other_writer_entry();
        let (name, removed) = match with_removal {
            false => ("limits/last-use-from-another-handle", vec![]),
            true => ("limits/last-use-from-another-handle-then-a-removal", vec![removed.to_hex()]),
        };
        let [used_elsewhere, older] = old_cache_keys();
        let now = unix_now_secs();
        let seed =
            old_cache_bytes_with([unknown_origin_used_at(now - 2 * DAY_SECS), unknown_origin_used_at(now - DAY_SECS)]);
        let ours = SyntheticCompiler::new(plan.artifact_bytes, Duration::ZERO).artifact_for(&used_elsewhere);
        let mut gone = removed;
        gone.push(older.to_hex());
        self.cell(name.into(), "limits", &plan)
            .file(cache_file(&plan.cache).seeded(seed))
            .oracle(SaveTriggers::exactly(&plan.cache, ["explicit", "drop"]))
            .oracle(cache_oracles::save_kinds(&plan.cache, vec![SaveKind::Appended, SaveKind::Rewritten]))
            .oracle(NoLostEntries::new().of(&plan.cache))
            .oracle(cache_oracles::file_key_count(&plan.cache, 2))
            .oracle(cache_oracles::file_keys(&plan.cache, vec![used_elsewhere.to_hex()], gone))
            .oracle(cache_oracles::file_artifact(&plan.cache, used_elsewhere, ours))
            .oracle(cache_oracles::evicted_once(&plan.cache, vec![(older.to_hex(), EvictReason::Capacity)]))
            .oracle(cache_oracles::compiled_kernels_committed(&plan.cache))
            .exits_cleanly()
    }

    /// least recently used: the cache keeps at most two entries; the engine opens the seeded
    /// file ([`old_cache_bytes_with`]: the first old entry used two days ago, the second one day
    /// ago), compiles one kernel, lists its entries (`entries()`: the old ones clean with their
    /// last uses, the new one dirty and used since the seed was made) and is dropped. Its one
    /// save keeps the new kernel and the second old entry and drops the first (one `evicted`
    /// event names it, and only it); the save commits the kernel it compiled. Catches a new
    /// entry stamped with no last use (it would be the one dropped), a save that evicts without
    /// saying so, and `entries()` misreporting a last use or dirtiness.
    pub fn least_recently_used_dropped(&self) -> Cell {
        let plan = ChildPlan {
            kernels: 1,
            ..ChildPlan::new(Holder::MainLocal, Ending::Return, Family::LeastRecentlyUsedDropped)
        };
        let [oldest, newer] = old_cache_keys();
        let now = unix_now_secs();
        let (two_days_ago, a_day_ago) = (now - 2 * DAY_SECS, now - DAY_SECS);
        let seed = old_cache_bytes_with([unknown_origin_used_at(two_days_ago), unknown_origin_used_at(a_day_ago)]);
        self.cell("limits/least-recently-used-dropped".into(), "limits", &plan)
            .file(cache_file(&plan.cache).seeded(seed))
            .saves_without_loss(&plan.cache, 1)
            .oracle(SaveTriggers::exactly(&plan.cache, ["drop"]))
            .oracle(cache_oracles::file_key_count(&plan.cache, 2))
            .oracle(cache_oracles::file_keys(&plan.cache, vec![newer.to_hex()], vec![oldest.to_hex()]))
            .oracle(cache_oracles::evicted_once(&plan.cache, vec![(oldest.to_hex(), EvictReason::Capacity)]))
            .oracle(cache_oracles::compiled_kernels_committed(&plan.cache))
            .oracle(cache_oracles::listed_entries(vec![
                ListedEntry {
                    role: "oldest seeded entry",
                    key: Some(oldest.to_hex()),
                    last_used: LastUse::Exactly(two_days_ago),
                    dirty: false,
                },
                ListedEntry {
                    role: "newer seeded entry",
                    key: Some(newer.to_hex()),
                    last_used: LastUse::Exactly(a_day_ago),
                    dirty: false,
                },
                ListedEntry { role: "compiled kernel", key: None, last_used: LastUse::AtLeast(now), dirty: true },
            ]))
            .exits_cleanly()
    }

    /// trimmed at open: the cache keeps at most one entry; the engine opens the seeded file (the
    /// first old entry of unknown last use, the second used a day ago) and is dropped without
    /// compiling. The open trims the second, since an unknown last use counts from the open: one
    /// `over_limits` and one `evicted` event, naming it. The handle stays clean: nothing is
    /// saved and the file stays byte-identical until a save has something to write. Catches an
    /// unknown last use taken as the oldest, and a trim that goes unreported.
    pub fn trimmed_at_open(&self) -> Cell {
        let plan = ChildPlan { kernels: 0, ..ChildPlan::new(Holder::MainLocal, Ending::Return, Family::TrimmedAtOpen) };
        let [_, day_old] = old_cache_keys();
        let seed =
            old_cache_bytes_with([unknown_origin_used_at(0), unknown_origin_used_at(unix_now_secs() - DAY_SECS)]);
        self.cell("limits/trimmed-at-open".into(), "limits", &plan)
            .file(cache_file(&plan.cache).seeded(seed))
            .oracle(JournalEvents::of_kind("over_limits").exactly(1))
            .oracle(cache_oracles::evicted_once(&plan.cache, vec![(day_old.to_hex(), EvictReason::Capacity)]))
            .oracle(SaveCount::none().of(&plan.cache))
            .oracle(FileIntact::unchanged().of(&plan.cache))
            .exits_cleanly()
    }

    /// another build pruned: the engine opens the seeded file, whose first old entry was made by
    /// another build of the compiler the engine uses (the second is of unknown origin),
    /// compiles one kernel and is dropped. With `prune_other_builds` (the default), its one save
    /// drops that entry, since no build in use can ever hit it again, and keeps the other.
    /// Catches an engine that never declares the compiler it uses.
    pub fn other_build_pruned(&self) -> Cell {
        let plan =
            ChildPlan { kernels: 1, ..ChildPlan::new(Holder::MainLocal, Ending::Return, Family::OtherBuildPruned) };
        let [other_build, unknown] = old_cache_keys();
        // Another build of the compiler the child's engine uses (whose identity is the synthetic
        // compiler's own business).
        let ours = SyntheticCompiler::new(plan.artifact_bytes, Duration::ZERO);
        let previous = CompilerIdentity { version: "a previous build".into(), ..ours.identity().clone() };
        let made_by_previous = format::EntryMeta {
            compiler: previous.compiler_tag(),
            build: previous.build_tag(),
            last_used: unix_now_secs(),
        };
        self.cell("limits/other-build-pruned".into(), "limits", &plan)
            .file(cache_file(&plan.cache).seeded(old_cache_bytes_with([made_by_previous, unknown_origin_used_at(0)])))
            .saves_without_loss(&plan.cache, 1)
            .oracle(cache_oracles::file_keys(&plan.cache, vec![unknown.to_hex()], vec![other_build.to_hex()]))
            .oracle(cache_oracles::evicted_once(&plan.cache, vec![(other_build.to_hex(), EvictReason::OtherBuild)]))
            .oracle(cache_oracles::compiled_kernels_committed(&plan.cache))
            .exits_cleanly()
    }

    /// over the size limit: the cache's files may hold at most 1 KiB (`max_file_bytes`); the
    /// engine opens the seeded file, valid but larger (two entries of 512 bytes), compiles one
    /// kernel and is dropped. The open does not read the file (an `over_limits` event, no entry
    /// loaded); the save replaces it instead of appending to it (a second `over_limits` event):
    /// the file then holds the new kernel only. Catches an append onto a file over the limit.
    pub fn over_max_file_bytes(&self) -> Cell {
        let plan =
            ChildPlan { kernels: 1, ..ChildPlan::new(Holder::MainLocal, Ending::Return, Family::OverMaxFileBytes) };
        self.cell("limits/over-max-file-bytes".into(), "limits", &plan)
            .file(cache_file(&plan.cache).seeded(old_cache_bytes()))
            .oracle(JournalEvents::of_kind("over_limits").exactly(2))
            .oracle(JournalEvents::of_kind("opened").exactly(1).each("entries", 0))
            .saves_without_loss(&plan.cache, 1)
            .oracle(cache_oracles::file_key_count(&plan.cache, 1))
            .oracle(cache_oracles::file_keys(&plan.cache, Vec::new(), old_cache_keys().map(|key| key.to_hex()).into()))
            .oracle(cache_oracles::compiled_kernels_committed(&plan.cache))
            .exits_cleanly()
    }

    /// superseded entries: the engine caches one key again and again, with other bytes each
    /// time, and saves explicitly after each; the file's sizes after the saves (`save` events)
    /// show which appended and which rewrote the file, and it ends holding the key with the last
    /// bytes.
    /// - `compacted` (768 KiB, 1 KiB, 768 KiB, 1 KiB): the second and third saves append (768
    ///   KiB, then 769 KiB superseded, under the 1 MiB floor); the fourth finds 1.5 MiB
    ///   superseded, over the floor and over half the file, and rewrites it to its live entry.
    /// - `at-the-floor`: the third save leaves exactly 1 MiB superseded, not over the floor: it
    ///   appends. `just-over-the-floor`: one byte more, and it rewrites.
    ///
    /// Catches superseded bytes miscounted (even by an entry header), and a floor or a
    /// half-the-file rule that compacts too early, too late or never.
    pub fn supersede(&self, supersession: Supersession) -> Cell {
        let plan = ChildPlan {
            kernels: 0,
            ..ChildPlan::new(Holder::MainLocal, Ending::Return, Family::Supersede(supersession))
        };
        let [key, _] = old_cache_keys();
        let sizes = supersession.artifact_sizes();
        let last = bytes::Bytes::from(vec![(sizes.len() - 1) as u8; sizes[sizes.len() - 1]]);
        let changes = match supersession {
            Supersession::Compacted => vec![SizeChange::Grew, SizeChange::Grew, SizeChange::Shrank],
            Supersession::AtTheFloor => vec![SizeChange::Grew, SizeChange::Grew],
            Supersession::JustOverTheFloor => vec![SizeChange::Grew, SizeChange::Shrank],
            Supersession::HalfTheFile => vec![SizeChange::Grew],
        };
        self.cell(format!("append/{}", supersession.name()), "append", &plan)
            .file(cache_file(&plan.cache))
            .oracle(SaveTriggers::exactly(&plan.cache, vec!["explicit"; sizes.len()]))
            .oracle(cache_oracles::file_size_changes(&plan.cache, changes))
            .oracle(cache_oracles::file_key_count(&plan.cache, 1))
            .oracle(cache_oracles::file_artifact(&plan.cache, key, last))
            .exits_cleanly()
    }

    /// dirty entry evicted: the cache keeps at most one entry; the engine opens a missing file,
    /// compiles two kernels (used in the same second, so either may go) and is dropped. Its one
    /// save writes one of them and evicts the other (one `evicted` event); its `committed`
    /// event lists only the kernel it wrote, since `no_lost_entries` holds the file to every
    /// committed key. Catches a save that reports an entry it evicted as written.
    pub fn dirty_entry_evicted(&self) -> Cell {
        let plan =
            ChildPlan { kernels: 2, ..ChildPlan::new(Holder::MainLocal, Ending::Return, Family::DirtyEntryEvicted) };
        self.cell("limits/dirty-entry-evicted".into(), "limits", &plan)
            .file(cache_file(&plan.cache))
            .saves_without_loss(&plan.cache, 1)
            .oracle(cache_oracles::file_key_count(&plan.cache, 1))
            .oracle(JournalEvents::of_kind("evicted").exactly(1))
            .oracle(cache_oracles::compiled_kernels_committed(&plan.cache))
            .exits_cleanly()
    }

    /// removal after another append: the engine opens the seeded file, another handle appends an
    /// entry of its own, then the engine removes the first old entry and its drop saves by a full
    /// rewrite, which must re-read the appended entry (a view that is no longer the file's end
    /// must not pass for current). Two saves of the file (the other's explicit append, the
    /// drop's rewrite); the file holds the second old entry and the other's, not the removed one.
    pub fn remove_after_another_append(&self) -> Cell {
        let plan = ChildPlan {
            kernels: 0,
            ..ChildPlan::new(Holder::MainLocal, Ending::Return, Family::RemoveAfterAnotherAppend)
        };
        let [removed, kept] = old_cache_keys();
        let (other, _) = other_writer_entry();
        self.cell("remove/after-another-append".into(), "removal", &plan)
            .file(cache_file(&plan.cache).seeded(old_cache_bytes()))
            .oracle(SaveCount::exactly(2).of(&plan.cache))
            .oracle(SaveTriggers::exactly(&plan.cache, ["explicit", "drop"]))
            .oracle(cache_oracles::file_keys(&plan.cache, vec![kept.to_hex(), other.to_hex()], vec![removed.to_hex()]))
            .exits_cleanly()
    }

    /// exactly at the limits: the cache keeps at most three entries, and its files at most the
    /// seeded file's size plus one frame of one kernel; the engine opens the seeded file (two
    /// entries), compiles one kernel and is dropped. Its save leaves the file exactly at both
    /// limits, which is within them: it appends, and evicts nothing. Catches a limit taken as
    /// exclusive (an append that reaches a limit rewritten, or evicting).
    pub fn at_the_limits(&self) -> Cell {
        let plan = ChildPlan { kernels: 1, ..ChildPlan::new(Holder::MainLocal, Ending::Return, Family::AtTheLimits) };
        let bytes = at_the_limits_file_bytes(plan.artifact_bytes);
        self.cell("limits/exactly-at-the-limits".into(), "limits", &plan)
            .file(cache_file(&plan.cache).seeded(old_cache_bytes()))
            .saves_without_loss(&plan.cache, 1)
            .oracle(cache_oracles::save_kinds(&plan.cache, vec![SaveKind::Appended]))
            .oracle(JournalEvents::of_kind("save").exactly(1).each("bytes", bytes).each("entries", 3))
            .oracle(JournalEvents::of_kind("evicted").exactly(0))
            .oracle(cache_oracles::compiled_kernels_committed(&plan.cache))
            .exits_cleanly()
    }

    /// append after another handle's rewrite: the engine opens the seeded file and compiles one
    /// kernel; another handle then removes the first old entry and saves two entries of its own,
    /// a rewrite to a larger file than the engine read. The engine's save finds a file it has not
    /// read: it reads it whole and appends its kernel (a rewrite is due only for a torn tail, the
    /// limits, eviction or compaction). The file keeps the other handle's entries and the second
    /// old one. Catches a save that takes a replaced file for the one it read (reading on from
    /// its old offset), or that rewrites a replaced file it could append to.
    pub fn append_after_another_rewrite(&self) -> Cell {
        let plan = ChildPlan {
            kernels: 1,
            ..ChildPlan::new(Holder::MainLocal, Ending::Return, Family::AppendAfterAnotherRewrite)
        };
        let [_, kept] = old_cache_keys();
        let mut keys: Vec<String> = other_writer_entries(2).iter().map(|(key, _)| key.to_hex()).collect();
        keys.push(kept.to_hex());
        self.cell("append/after-another-handle-rewrote".into(), "append", &plan)
            .file(cache_file(&plan.cache).seeded(old_cache_bytes()))
            .oracle(SaveTriggers::exactly(&plan.cache, ["explicit", "drop"]))
            .oracle(cache_oracles::save_kinds(&plan.cache, vec![SaveKind::Rewritten, SaveKind::Appended]))
            .oracle(NoLostEntries::new().of(&plan.cache))
            .oracle(cache_oracles::file_keys(&plan.cache, keys, Vec::new()))
            .oracle(cache_oracles::compiled_kernels_committed(&plan.cache))
            .oracle(cache_oracles::warnings(Vec::new()))
            .exits_cleanly()
    }

    /// torn tail left by another process: the engine opens a missing file and compiles one
    /// kernel; a worker creates the file (an explicit save) and dies by SIGKILL half-way through
    /// its next save's frame. The engine's save finds a file it has not read, with a torn last
    /// frame: it rewrites the file without that frame, and warns that it dropped it. The file
    /// holds the worker's first kernel and the engine's, is valid, and nothing is set aside.
    /// Catches an append after a torn tail (an invalid frame followed by a valid one: the next
    /// open sets the whole file aside) and a torn frame dropped without a word.
    pub fn torn_tail_by_another_process(&self) -> Cell {
        let plan = ChildPlan {
            kernels: 1,
            ..ChildPlan::new(Holder::MainLocal, Ending::Return, Family::TornTailByAnotherProcess)
        };
        self.cell("append/torn-tail-left-by-another-process".into(), "append", &plan)
            .file(cache_file(&plan.cache))
            .oracle(MarkerSeen::new("crash-point"))
            .oracle(JournalEvents::of_kind("worker_exit").exactly(1).each("signal", SIGKILL))
            .oracle(SaveTriggers::exactly(&plan.cache, ["explicit", "drop"]))
            .oracle(cache_oracles::save_kinds(&plan.cache, vec![SaveKind::Rewritten, SaveKind::Rewritten]))
            .oracle(NoLostEntries::new().of(&plan.cache))
            .oracle(cache_oracles::file_key_count(&plan.cache, 2))
            .oracle(JournalEvents::of_kind("quarantined").exactly(0))
            .oracle(cache_oracles::warnings(vec![
                "a full rewrite drops an invalid last frame: the file's last frame is torn or damaged",
            ]))
            .exits_cleanly()
    }

    /// frames since the last rewrite: two handles of one file take turns appending one new entry
    /// each, `MAX_APPENDED_FRAMES` (64) frames in all, each reading the other's frames first;
    /// the next save rewrites the file, which bounds what a reader of the file decodes. Catches
    /// frames miscounted, whether a handle's own or those it read.
    pub fn frames_since_rewrite(&self) -> Cell {
        let plan =
            ChildPlan { kernels: 0, ..ChildPlan::new(Holder::MainLocal, Ending::Return, Family::FramesSinceRewrite) };
        let frames = usize::try_from(runtime_cache::MAX_APPENDED_FRAMES).expect("64 fits");
        let mut kinds = vec![SaveKind::Rewritten];
        kinds.extend(std::iter::repeat_n(SaveKind::Appended, frames));
        kinds.push(SaveKind::Rewritten);
        self.cell("append/rewritten-after-64-frames".into(), "append", &plan)
            .file(cache_file(&plan.cache))
            .oracle(SaveTriggers::exactly(&plan.cache, vec!["explicit"; frames + 2]))
            .oracle(cache_oracles::save_kinds(&plan.cache, kinds))
            .oracle(NoLostEntries::new().of(&plan.cache))
            .oracle(cache_oracles::file_key_count(&plan.cache, frames + 2))
            .oracle(cache_oracles::warnings(Vec::new()))
            .exits_cleanly()
    }

    /// shared key: the engine opens a missing file and inserts its own artifact under the first
    /// old key; another writer then saves the seeded file (the other artifact under that key, and
    /// a second old entry) before the engine's drop saves. The file holds both old keys, and
    /// our artifact under the shared one (the merge: union; ours win on a key both hold). Catches
    /// bug 14 (the file's entry wins the merge).
    /// `in_rewrite`: the other writer leaves a version-2 file, so the engine's save is a full
    /// rewrite, the one path that still re-reads and merges (an append adds a later frame, which
    /// wins by itself). Catches bugs 14 and 18 of the campaign there (the file's entry wins the
    /// merge; a cold start's rewrite never re-reads the file).
    pub fn shared_key(&self, in_rewrite: bool) -> Cell {
        let (family, name) = match in_rewrite {
            false => (Family::SharedKey, "merge/shared-key-ours-win"),
            true => (Family::SharedKeyInRewrite, "merge/shared-key-ours-win-in-rewrite"),
        };
        let plan = ChildPlan { kernels: 0, ..ChildPlan::new(Holder::MainLocal, Ending::Return, family) };
        let [shared, other] = old_cache_keys();
        self.cell(name.into(), "merge", &plan)
            .file(cache_file(&plan.cache))
            .oracle(MarkerSeen::new("other-saved"))
            .oracle(cache_oracles::file_keys(&plan.cache, vec![shared.to_hex(), other.to_hex()], Vec::new()))
            .oracle(cache_oracles::file_artifact(&plan.cache, shared, our_artifact(plan.artifact_bytes)))
            .exits_cleanly()
    }
}

/// Issue #12's cells: what the cache meets in a shared folder, and under load.
impl RuntimeCacheCatalog {
    /// hostile cache path: `hostile` is planted at or around the cache path (see [`Hostile`])
    /// while a dirty engine, alive at exit (a `static`), uses it; what must come of it is the
    /// contract's hostile row ([`hostile_contract`]). Every cell: the engine is built within 1 s
    /// (nothing blocks), it compiles its kernels and finds them again, the process exits 0
    /// with nothing on stderr (a save blocked on a FIFO would never let it end: the cell's
    /// 10 s timeout fails it).
    /// - runs cold (a FIFO at open; a folder that is a symlink, world-writable, or another
    ///   user's): one `CacheUnavailable` with the typed reason, nothing written at the path or
    ///   in its folder (the victim's file byte-identical), the planted FIFO still a FIFO.
    /// - save refused (a symlinked lock of another user's; a FIFO or a symlink to the victim's
    ///   private file planted after the open): the cache opened, the exit save fails once
    ///   (`save_failed`) within 2 s of the `ending` marker, nothing quarantined, nothing
    ///   created through the link (no new entry but the lock), the planted object untouched,
    ///   the victim's files byte-identical.
    /// - set aside (one flipped bit in the version field): the checksum finds the damage, the
    ///   file goes byte-exact to `.corrupt-0` (not "unsupported"), cold start, and the exit
    ///   save writes a valid file with every entry.
    pub fn hostile(&self, hostile: Hostile) -> Cell {
        let plan = ChildPlan {
            cache: hostile_cache_path(hostile).into(),
            ..ChildPlan::new(Holder::Static, Ending::Return, Family::Hostile(hostile))
        };
        let spec = self.spec(&plan).timeout(Duration::from_secs(10));
        let kernels = plan.kernels as usize;
        let cell = common(Cell::new(format!("hostile/{}", hostile.name()), "hostile", spec))
            .oracle(WithinDeadline::from_marker("opening", "engine_built", Duration::from_secs(1)))
            .oracle(cache_oracles::compiled_then_found("engine-works", "engine-worked", kernels))
            .exits_cleanly();
        match hostile_contract(hostile) {
            HostileOutcome::RunsCold(reason) => {
                // Where the engine would write: through a folder link, into the victim's folder.
                let written = match (hostile, hostile_link_target(hostile)) {
                    (Hostile::FolderIsSymlink, Some(victim)) => format!("{victim}/{CACHE_FILE}"),
                    _ => plan.cache.clone(),
                };
                let folder = Path::new(&written).parent().map(Path::to_string_lossy).unwrap_or_default().to_string();
                let folder = if folder.is_empty() { ".".to_string() } else { folder };
                let cell = cell
                    .folder(FolderUnderTest::new(folder.clone()))
                    .oracle(NoLeftoverFiles::new().of(folder))
                    .oracle(cache_oracles::cache_unavailable(CACHE_FILE, reason))
                    .oracle(SaveCount::none().of(&written));
                if hostile == Hostile::FifoAtOpen {
                    cell.file(cache_file(&written)).oracle(cache_oracles::planted_kept(&written, Planted::Fifo))
                } else {
                    cell.file(cache_file(&written).seeded(old_cache_bytes()))
                        .oracle(FileIntact::unchanged().of(&written))
                }
            }
            HostileOutcome::SaveRefused => {
                let seeded = hostile == Hostile::SymlinkedLock;
                let cell = cell
                    .folder(FolderUnderTest::new("."))
                    .oracle(NoLeftoverFiles::new().allow("*.lock"))
                    .oracle(cache_oracles::cache_opened(if seeded { 2 } else { 0 }))
                    .oracle(JournalEvents::of_kind("save_failed").exactly(1))
                    .oracle(WithinDeadline::from_marker("ending", "save_failed", Duration::from_secs(2)))
                    .oracle(JournalEvents::of_kind("quarantined").none())
                    .oracle(SaveCount::none().of(&plan.cache));
                let target = hostile_link_target(hostile).unwrap_or_default();
                match hostile {
                    Hostile::SymlinkedLock => cell
                        .file(cache_file(&plan.cache).seeded(old_cache_bytes()))
                        .oracle(FileIntact::unchanged().of(&plan.cache))
                        .oracle(cache_oracles::planted_kept(&format!("{}.lock", plan.cache), Planted::Link(target))),
                    Hostile::SymlinkBeforeExitSave => cell
                        .file(cache_file(&plan.cache))
                        .file(FileUnderTest::new(target).seeded(VICTIMS_SECRET))
                        .oracle(FileIntact::unchanged().of(target))
                        .oracle(cache_oracles::planted_kept(&plan.cache, Planted::Link(target))),
                    _ => cell
                        .file(cache_file(&plan.cache))
                        .oracle(cache_oracles::planted_kept(&plan.cache, Planted::Fifo)),
                }
            }
            HostileOutcome::NotReadThenReplaced => cell
                .file(cache_file(&plan.cache))
                .oracle(cache_oracles::cache_opened(0))
                // One at the open (not read), one at the save (replaced).
                .oracle(JournalEvents::of_kind("over_limits").exactly(2))
                .oracle(JournalEvents::of_kind("quarantined").none())
                .oracle(JournalEvents::of_kind("cache_unavailable").none())
                .saves_without_loss(&plan.cache, 1)
                .oracle(SaveTriggers::exactly(&plan.cache, ["exit"])),
            HostileOutcome::SparesWhatIsNotItsOwn => {
                let [other_cache, foreign, link] = TEMP_LOOKALIKES;
                let earlier = |name: &str| format!("{name}: not this cache's temp file\n").into_bytes();
                cell.folder(FolderUnderTest::new("."))
                    .file(cache_file(&plan.cache).seeded(old_cache_bytes()))
                    .file(FileUnderTest::new(OWN_TORN_TEMP).seeded(b"a torn temp file of this cache".to_vec()))
                    .file(FileUnderTest::new(other_cache).seeded(earlier(other_cache)))
                    .file(FileUnderTest::new(foreign).seeded(earlier(foreign)))
                    .oracle(cache_oracles::cache_opened(2))
                    .oracle(JournalEvents::of_kind("temp_removed").exactly(1).each("count", 1))
                    .oracle(cache_oracles::set_aside_byte_exact(other_cache, earlier(other_cache)))
                    .oracle(cache_oracles::set_aside_byte_exact(foreign, earlier(foreign)))
                    .oracle(cache_oracles::planted_kept(link, Planted::Link(CACHE_FILE)))
                    .oracle(NoLeftoverFiles::new().allow("*.lock").allow(link))
                    .saves_without_loss(&plan.cache, 1)
                    .oracle(FileIntact::new().of(&plan.cache))
            }
            HostileOutcome::SetAsideThenSaves => {
                let damaged = flipped_header_bit_bytes();
                let set_aside: &'static str = Box::leak(format!("{}.corrupt-0", plan.cache).into_boxed_str());
                cell.file(cache_file(&plan.cache).seeded(damaged.clone()))
                    .file(FileUnderTest::new(set_aside))
                    .oracle(JournalEvents::of_kind("quarantined").exactly(1))
                    .oracle(JournalEvents::of_kind("cache_unavailable").none())
                    .oracle(cache_oracles::set_aside_byte_exact(set_aside, damaged))
                    .oracle(cache_oracles::cache_opened(0))
                    .saves_without_loss(&plan.cache, 1)
                    .oracle(SaveTriggers::exactly(&plan.cache, ["exit"]))
            }
        }
    }

    /// many writers on a large cache: `many_writers` processes (64) share one cache file of
    /// `large_cache_entries` entries of 4 KiB (16 MiB), each compiles 3 distinct kernels, and all
    /// drop their engines at once, with the cache's default options (2 s lock timeout). Every
    /// writer's save succeeds (one save each, no `save_failed`), no committed entry is lost, and
    /// every old entry is kept.
    pub fn many_writers(&self) -> Cell {
        let processes = self.sizes.many_writers;
        let entries = self.sizes.large_cache_entries;
        let plan = ChildPlan::new(Holder::MainLocal, Ending::Return, Family::ManyWriters { processes });
        let large = large_cache_bytes(entries, LARGE_CACHE_ARTIFACT_BYTES);
        let mebibytes = large.len() / (1024 * 1024);
        self.cell(format!("many-writers/{processes}-processes-{mebibytes}-mib"), "many-writers", &plan)
            .file(cache_file(&plan.cache).seeded(large))
            .saves_without_loss(&plan.cache, u64::from(processes))
            .oracle(JournalEvents::of_kind("save_failed").none())
            .workers_exit_cleanly(processes as usize)
            .oracle(FileIntact::new().of(&plan.cache))
            .exits_cleanly()
    }
}

/// Issue #14: cells for the lifecycle promises that the crate tests (cache-under-test/tests)
/// checked and no cell did; the README's mapping names the crate test behind each.
impl RuntimeCacheCatalog {
    /// fork child with the termination handler: the forked child of a process that installed
    /// the handler raises SIGTERM and dies by it (the handler's thread is not in the child: a
    /// handler left in place would swallow the signal and hang it), saving nothing; the parent
    /// saves once.
    pub fn fork_child_sigterm(&self) -> Cell {
        let plan = ChildPlan::new(Holder::MainLocal, Ending::Return, Family::ForkChildSigterm).with_handler(true);
        let spec = self.spec(&plan).timeout(Duration::from_secs(10));
        common(Cell::new("fork/child-sigterm-with-handler", "fork-child", spec))
            .file(cache_file(&plan.cache))
            .oracle(JournalEvents::of_kind("fork_child_exit").exactly(1).each("signal", SIGTERM))
            .oracle(cache_oracles::forked_child_saves_nothing())
            .saves_without_loss(&plan.cache, 1)
            .exits_cleanly()
    }

    /// clean swap: an engine that compiles nothing is moved to the second cache path and ends
    /// with nothing compiled there: a clean handle never writes, at the swap or at the end. No
    /// file appears at either path (only their lock files, which opening creates by design).
    pub fn clean_swap(&self) -> Cell {
        let plan = ChildPlan { kernels: 0, ..ChildPlan::new(Holder::MainLocal, Ending::Return, Family::CleanSwap) };
        self.cell("swap/clean-writes-nothing".into(), "swap", &plan)
            .folder(FolderUnderTest::new("."))
            .file(cache_file(&plan.cache))
            .file(cache_file(&plan.second_cache))
            .oracle(SaveCount::none().of(&plan.cache))
            .oracle(SaveCount::none().of(&plan.second_cache))
            .oracle(NoLeftoverFiles::new().allow("*.lock"))
            .oracle(MarkerSeen::new("swapped"))
            .exits_cleanly()
    }

    /// swap to no cache: a dirty engine's settings are moved to no cache at all: the old cache
    /// saves once, with trigger `swap`, before the swap returns, and never again; the engine
    /// then compiles and finds its kernels in memory; the registry is back to 0.
    pub fn swap_to_no_cache(&self) -> Cell {
        let plan = ChildPlan::new(Holder::MainLocal, Ending::Return, Family::SwapToNoCache);
        self.cell("swap/to-no-cache".into(), "swap", &plan)
            .file(cache_file(&plan.cache))
            .saves_without_loss(&plan.cache, 1)
            .oracle(SaveTriggers::exactly(&plan.cache, ["swap"]))
            .oracle(SavedBefore::new(&plan.cache, "swapped"))
            .oracle(cache_oracles::compiled_then_found("engine-works", "engine-worked", plan.kernels as usize))
            .exits_cleanly()
    }

    /// write-through: every compiled kernel is saved before `kernel()` returns (trigger
    /// `insert`, one save each, all before the `compiled` marker).
    /// - `return`: the handle is clean at its drop, which writes nothing more (skip reason
    ///   `clean`).
    /// - `sigkill`: killed with the engine alive (no drop, no exit hook), every kernel is on
    ///   disk anyway.
    pub fn write_through(&self, ending: Ending) -> Cell {
        let plan = ChildPlan::new(Holder::MainLocal, ending, Family::WriteThrough);
        let row = contract(ending, false);
        let kernels = u64::from(plan.kernels);
        let cell = self
            .cell(format!("write-through/{}", ending.name()), "write-through", &plan)
            .file(cache_file(&plan.cache).seeded(old_cache_bytes()))
            .saves_without_loss(&plan.cache, kernels)
            .oracle(SaveTriggers::every(&plan.cache, "insert"))
            .oracle(SavedBefore::new(&plan.cache, "compiled"))
            .oracle(FileIntact::new().of(&plan.cache))
            .oracle(row.exit_status())
            .oracle(row.quiet_stderr());
        match ending {
            Ending::SigKill => cell,
            _ => cell.oracle(JournalEvents::of_kind("save_skipped").exactly(1).matching("reason", "clean")),
        }
    }

    /// no autosave: a `RuntimeCache` opened with the default options (no autosave) is dirty
    /// and alive at exit: the open leaves the exit registry unchanged and nothing ever writes
    /// the file.
    pub fn no_autosave(&self) -> Cell {
        let plan = ChildPlan::new(Holder::BoxLeak, Ending::Return, Family::NoAutosave);
        self.cell("no-autosave/dirty-at-exit".into(), "no-autosave", &plan)
            .file(cache_file(&plan.cache).seeded(old_cache_bytes()))
            .oracle(JournalEvents::of_kind("inserted").exactly(1).each("dirty", 1))
            .oracle(cache_oracles::registry_growth(0))
            .oracle(SaveCount::none().of(&plan.cache))
            .oracle(FileIntact::unchanged().of(&plan.cache))
            .exits_cleanly()
    }
}

/// The victim's private file a hostile symlink points to.
const VICTIMS_SECRET: &[u8] = b"SECRET: the victim's private file, which no cache may read or replace\n";

/// The artifact size of the many-writers cell's large cache file.
const LARGE_CACHE_ARTIFACT_BYTES: usize = 4096;

/// The byte of the version field that [`flipped_header_bit_bytes`] damages.
const VERSION_FIELD_BYTE: usize = 8;

/// [`old_cache_bytes`] with one bit flipped in the header's version field: damage, which only
/// the checksum tells from a file of another version.
pub fn flipped_header_bit_bytes() -> Vec<u8> {
    let mut bytes = old_cache_bytes();
    bytes[VERSION_FIELD_BYTE] ^= 0x02;
    bytes
}

/// A valid cache file of `entries` entries of `artifact_bytes` bytes each, as many earlier runs
/// would have left it.
pub fn large_cache_bytes(entries: u32, artifact_bytes: usize) -> Vec<u8> {
    let identity = CompilerIdentity { name: "previous-runs".into(), version: "1".into() };
    let compiler = SyntheticCompiler::new(artifact_bytes, Duration::ZERO);
    let entries: Vec<(KernelKey, bytes::Bytes)> = (0..entries)
        .map(|index| KernelKey::derive(&KernelSpec::new("old.cu", format!("// old kernel {index}"), "old"), &identity))
        .map(|key| (key, compiler.artifact_for(&key)))
        .collect();
    let mut out = Vec::new();
    format::encode(&mut out, entries.iter().map(|(key, artifact)| (key, artifact))).expect("writing to a Vec");
    out
}

/// The artifact the shared-key cell's engine inserts under the first old key: unlike the
/// synthetic compiler's artifact for that key, which the other writer saves.
pub fn our_artifact(len: usize) -> bytes::Bytes {
    bytes::Bytes::from(vec![0x5a; len])
}

/// The keys of [`old_cache_bytes`]'s two entries.
pub fn old_cache_keys() -> [KernelKey; 2] {
    let identity = CompilerIdentity { name: "previous-run".into(), version: "1".into() };
    [0, 1]
        .map(|index| KernelKey::derive(&KernelSpec::new("old.cu", format!("// old kernel {index}"), "old"), &identity))
}

/// A valid file of a later format version (4), as a newer build would write it: the bytes of
/// [`old_cache_bytes`] with the version field set to 4 and the header's XXH3-64 (bytes 32..40,
/// which every version from 3 on keeps) recomputed.
pub fn future_version_bytes() -> Vec<u8> {
    let mut bytes = old_cache_bytes();
    bytes[8..10].copy_from_slice(&(format::VERSION + 1).to_le_bytes());
    let checksum = xxhash_rust::xxh3::xxh3_64(&bytes[..32]);
    bytes[32..40].copy_from_slice(&checksum.to_le_bytes());
    bytes
}

/// [`old_cache_bytes`]'s two entries in a file of the previous format version (2: a 16-byte
/// header with the entry count, the entries sorted by key, an XXH3-64 trailer of every byte
/// before it), as the previous release wrote it. Still read; a save rewrites it whole.
pub fn previous_version_cache_bytes() -> Vec<u8> {
    let compiler = SyntheticCompiler::new(crate::plan::ARTIFACT_BYTES, Duration::ZERO);
    let mut entries: Vec<(KernelKey, bytes::Bytes)> =
        old_cache_keys().into_iter().map(|key| (key, compiler.artifact_for(&key))).collect();
    entries.sort_by_key(|(key, _)| *key);
    let mut out = Vec::new();
    out.extend_from_slice(&format::MAGIC);
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for (key, artifact) in &entries {
        out.extend_from_slice(&key.0);
        out.extend_from_slice(&[0; 24]); // compiler tag, build tag, last use: unknown
        out.extend_from_slice(&(artifact.len() as u32).to_le_bytes());
        out.extend_from_slice(artifact);
    }
    let checksum = xxhash_rust::xxh3::xxh3_64(&out);
    out.extend_from_slice(&checksum.to_le_bytes());
    out
}

/// The entry another handle appends in `remove/after-another-append`.
pub fn other_writer_entry() -> (KernelKey, bytes::Bytes) {
    (KernelKey([0x5a; 32]), bytes::Bytes::from_static(b"appended by another handle"))
}

/// `count` distinct entries of another handle, small and distinct in key and bytes: the `n`th
/// has key `[0xa0, n (4 bytes, little-endian), 0, ...]` and the bytes `appended by another
/// handle: n`.
pub fn other_writer_entries(count: usize) -> Vec<(KernelKey, bytes::Bytes)> {
    (0..count)
        .map(|n| {
            let mut key = [0u8; 32];
            key[0] = 0xa0;
            key[1..5].copy_from_slice(&(n as u32).to_le_bytes());
            (KernelKey(key), bytes::Bytes::from(format!("appended by another handle: {n}")))
        })
        .collect()
}

/// A day, in seconds.
const DAY_SECS: u64 = 24 * 3600;

/// Now, in Unix seconds (runtime-cache stamps a last use with the same clock). A clock before
/// 1970 is a broken machine, not a cell's business: the catalog cannot be built on it.
fn unix_now_secs() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.expect("the system clock is set before 1970").as_secs()
}

/// A file of the two [`old_cache_keys`] with the artifacts of [`old_cache_bytes`] and the
/// metadata `metas` (their origin and last use).
pub fn old_cache_bytes_with(metas: [format::EntryMeta; 2]) -> Vec<u8> {
    let compiler = SyntheticCompiler::new(crate::plan::ARTIFACT_BYTES, Duration::ZERO);
    let entries: Vec<(KernelKey, format::EntryMeta, bytes::Bytes)> =
        old_cache_keys().into_iter().zip(metas).map(|(key, meta)| (key, meta, compiler.artifact_for(&key))).collect();
    let mut out = Vec::new();
    format::encode_entries(&mut out, entries.iter().map(|(key, meta, artifact)| (key, meta, artifact)))
        .expect("writing to a Vec");
    out
}

/// An entry's metadata: of unknown origin (never pruned as another compiler build's), last
/// used at `last_used` (Unix seconds; 0 is unknown).
fn unknown_origin_used_at(last_used: u64) -> format::EntryMeta {
    format::EntryMeta { compiler: 0, build: 0, last_used }
}

/// A valid cache file holding two "old" entries, as a previous run would have left it.
pub fn old_cache_bytes() -> Vec<u8> {
    old_cache_bytes_with([unknown_origin_used_at(0); 2])
}
