//! What one scenario cell asks the child program to do: the [`ChildPlan`], passed to the child as
//! one JSON argument. The catalog builds plans; the child program carries them out.

use serde::{Deserialize, Serialize};

use crate::contract::{Ending, Hostile};

/// Where the engine (and so its engine-implicit cache handle) lives when the process ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Holder {
    /// A local variable of `main`.
    MainLocal,
    /// A `static` (never dropped).
    Static,
    /// `Box::leak`.
    BoxLeak,
    /// `std::mem::forget`.
    MemForget,
    /// An `Arc` cycle (never dropped).
    ArcCycle,
    /// A `thread_local!` of the main thread (destroyed before atexit handlers run).
    MainThreadLocal,
    /// Owned by a thread that is still running when the process exits.
    RunningThread,
}

impl Holder {
    /// Every holder.
    pub const ALL: [Holder; 7] = [
        Holder::MainLocal,
        Holder::Static,
        Holder::BoxLeak,
        Holder::MemForget,
        Holder::ArcCycle,
        Holder::MainThreadLocal,
        Holder::RunningThread,
    ];

    /// Kebab-case name, as in cell names.
    pub fn name(self) -> &'static str {
        match self {
            Holder::MainLocal => "main-local",
            Holder::Static => "static",
            Holder::BoxLeak => "box-leak",
            Holder::MemForget => "mem-forget",
            Holder::ArcCycle => "arc-cycle",
            Holder::MainThreadLocal => "main-thread-local",
            Holder::RunningThread => "running-thread",
        }
    }
}

/// A point inside a save where the crash-mid-save family kills the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SaveStep {
    /// The temp file exists, empty.
    AfterTempCreated,
    /// Half of the first chunk is written to the temp file.
    MidWrite,
    /// The temp file is complete and synced, not yet renamed.
    BeforeRename,
    /// The rename is done.
    AfterRename,
}

impl SaveStep {
    /// Every step.
    pub const ALL: [SaveStep; 4] =
        [SaveStep::AfterTempCreated, SaveStep::MidWrite, SaveStep::BeforeRename, SaveStep::AfterRename];

    /// The runtime-cache failpoint at this step.
    pub fn failpoint(self) -> &'static str {
        match self {
            SaveStep::AfterTempCreated => "save-after-temp-created",
            SaveStep::MidWrite => "save-mid-write",
            SaveStep::BeforeRename => "save-before-rename",
            SaveStep::AfterRename => "save-after-rename",
        }
    }
}

/// What goes wrong while an engine is built, in the partial-init-failure family: the compiler
/// (construction fails with a typed error), or the cache (the engine is built and runs cold with a
/// typed reason, or, for the lock, opens its cache anyway: opening never needs the lock).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InitFailure {
    /// A runtime-cache failpoint set to return an error.
    Failpoint(String),
    /// The cache path is a folder.
    PathIsFolder,
    /// The cache's parent folder cannot be created (a path component is a regular file).
    ParentNotCreatable,
    /// The cache file is writable by others: refused as untrusted.
    UntrustedFile,
    /// `Backend::Nvrtc` with the library not loadable.
    NvrtcMissing,
}

/// How a save fails in the save-failure family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SaveFailure {
    /// RLIMIT_FSIZE below the file's size, SIGXFSZ ignored: the write fails with EFBIG.
    DiskFull,
    /// Another process holds `<path>.lock` for the whole run.
    LockHeld,
}

/// What another thread changes in the handle while an explicit save runs (after the save's
/// snapshot, before its commit), in the save-race family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RaceChange {
    /// Compiles a kernel the save did not snapshot.
    NewEntry,
    /// Re-inserts a key the save snapshotted, with a new artifact.
    ReplacedEntry,
    /// Removes an old entry, which the file holds.
    RemovedEntry,
    /// Removes the entry another handle appended just before the save, which the save reads
    /// back from the file.
    RemovedAppendedEntry,
    /// Clears the handle, after another handle appended an entry that the save reads back.
    Cleared,
    /// Inserts the entry another handle appended just before the save, with the same bytes.
    EntryAlreadyOnDisk,
    /// Inserts, under the key another handle appended just before the save, other bytes.
    EntryOnDiskWithOtherBytes,
}

impl RaceChange {
    /// Every change.
    pub const ALL: [RaceChange; 7] = [
        RaceChange::NewEntry,
        RaceChange::ReplacedEntry,
        RaceChange::RemovedEntry,
        RaceChange::RemovedAppendedEntry,
        RaceChange::Cleared,
        RaceChange::EntryAlreadyOnDisk,
        RaceChange::EntryOnDiskWithOtherBytes,
    ];

    /// The cell's name for this change.
    pub fn name(self) -> &'static str {
        match self {
            RaceChange::NewEntry => "new-entry",
            RaceChange::ReplacedEntry => "replaced-entry",
            RaceChange::RemovedEntry => "removed-entry",
            RaceChange::RemovedAppendedEntry => "removed-appended-entry",
            RaceChange::Cleared => "cleared",
            RaceChange::EntryAlreadyOnDisk => "entry-already-on-disk",
            RaceChange::EntryOnDiskWithOtherBytes => "entry-on-disk-with-other-bytes",
        }
    }

    /// Whether the cell starts from the old cache file (the changes that act on what the file
    /// holds), rather than from no file.
    pub fn seeds_old_file(self) -> bool {
        !matches!(self, RaceChange::NewEntry | RaceChange::ReplacedEntry)
    }

    /// Whether another handle appends its entry before the save, so that the save reads it back.
    pub fn another_handle_appends_first(self) -> bool {
        !matches!(self, RaceChange::NewEntry | RaceChange::ReplacedEntry | RaceChange::RemovedEntry)
    }
}

/// What the child does between building its engine and ending.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    /// Nothing at all: the child returns at once (the baseline of the overhead benchmark).
    Nothing,
    /// The engine lives to the end, in `holder`.
    SurviveToExit,
    /// The engine is dropped mid-program, before the `mid-program` marker.
    MidProgramDrop,
    /// `engines` engines created and dropped one after another; every `dirty_every`-th compiles.
    Churn {
        /// How many engines.
        engines: u32,
        /// Every n-th engine is dirty.
        dirty_every: u32,
    },
    /// Part of an engine's construction fails (a compiler: a typed error; a cache: a cold
    /// engine); then a later construction in the same process works.
    PartialInitFailure(InitFailure),
    /// A dirty engine, then `fork()`; the child ends by `child_exit` (None: returns from main).
    Fork {
        /// The forked child's `process::exit` code, or `None` to return from main.
        child_exit: Option<i32>,
    },
    /// `processes` processes share one cache path, each compiles distinct kernels, all exit together.
    Concurrent {
        /// How many processes.
        processes: u32,
    },
    /// SIGKILL at `step` of the exit save.
    CrashMidSave(SaveStep),
    /// The exit save fails.
    SaveFails(SaveFailure),
    /// An engine dropped on another thread while main exits, in `rounds` processes.
    DropExitRace {
        /// How many processes (rounds).
        rounds: u32,
    },
    /// Settings moved to a second cache path mid-program.
    Swap,
    /// The cache file is corrupt when the engine opens it.
    CorruptOnOpen,
    /// An explicit `save()` mid-program; with `compile_after`, more kernels are compiled after it.
    ExplicitSave {
        /// Whether the engine is dirty again after the explicit save.
        compile_after: bool,
    },
    /// A first process compiles and saves; then this one opens the same file and compiles the
    /// same kernels: every one a cache hit, and nothing to save.
    WarmStart,
    /// Another process holds the lock for a moment while the engine opens, saves explicitly, and
    /// saves at drop: each waits (bounded) and succeeds.
    LockContention,
    /// A save fails because another open file description holds `<path>.lock` (an explicit
    /// `save()`, or with `write_through` every insert's save); the lock is then released and the
    /// same handle saves at drop.
    SaveRecovery {
        /// Whether the cache saves after every insert.
        write_through: bool,
    },
    /// An engine opens the seeded file and compiles; another handle appends an entry; the
    /// engine's explicit save fails once (failpoint `save-before-rename`, after it read that
    /// append), and a second explicit save succeeds; then the engine is dropped.
    FailedAppendThenLearns,
    /// While an explicit save is between its snapshot and its commit (failpoint
    /// `save-before-rename`), another thread makes `change` to the handle; then the engine is
    /// dropped.
    SaveRace {
        /// What the other thread changes.
        change: RaceChange,
    },
    /// The termination handler is installed, the exit budget is short, and the harness sends
    /// SIGTERM well after the budget has run out (at the `awaiting-signal` marker).
    LateSignal,
    /// A worker ends with `handles` dirty engines leaked, all blocked on `<path>.lock`, which the
    /// parent holds: one exit budget for them all. With `busy`, one more engine, registered
    /// first, is in an explicit save on a thread, itself waiting for the lock.
    ExitBudget {
        /// How many leaked dirty engines.
        handles: u32,
        /// Whether an explicit save is running on another thread at exit.
        busy: bool,
    },
    /// The cache path holds a valid file of a later format version: at open, or (`at_save`)
    /// written by a newer build between this engine's open and its save.
    OtherVersion {
        /// The newer build writes the file after the open (the save finds it) instead of before.
        at_save: bool,
    },
    /// The parent holds `<path>.lock` while a worker opens its engine (between the markers
    /// `opening` and the `opened` event), until the worker has opened or 3 s have passed.
    OpenWhileLocked,
    /// Settings moved to a path that cannot be used (a folder): the engine runs cold.
    FailedSwap,
    /// An engine opens the seeded file and inserts the first old entry again, with the very bytes
    /// it holds; then it is dropped.
    ReinsertSameBytes,
    /// The cache keeps at most two entries (`FormatLimits::max_entries`): an engine opens the
    /// seeded file of two entries, the first used two days ago and the second one day ago,
    /// compiles one kernel and is dropped: its save drops the least recently used entry.
    LeastRecentlyUsedDropped,
    /// As [`Family::LeastRecentlyUsedDropped`], but before the engine compiles, another handle
    /// caches the first (older) seeded key with other bytes and saves: an append that stamps it
    /// used now. The engine's save merges (ours win on the bytes, the later last use stands), so
    /// it drops the second seeded entry instead.
    LastUseFromAnotherHandle {
        /// The engine also caches an entry of its own and removes it, so its save is a rewrite
        /// from the start (removals always rewrite), which re-reads the file for the merge;
        /// without, its save starts as an append, reads the other handle's frame, and becomes a
        /// rewrite at the entry limit.
        with_removal: bool,
    },
    /// The cache keeps at most one entry: an engine opens the seeded file of two entries, the
    /// first of unknown last use (0, as a version-1 file's entries have), the second used a
    /// day ago, and is dropped without compiling: the open trims the day-old entry (an unknown last
    /// use counts from the open), and nothing is saved.
    TrimmedAtOpen,
    /// An engine opens the seeded file, whose first entry was made by another build of the
    /// compiler the engine uses, compiles one kernel and is dropped: its save prunes that entry.
    OtherBuildPruned,
    /// The cache's files may hold at most 1 KiB: an engine opens the seeded file, which is
    /// larger, compiles one kernel and is dropped: the open does not read the file, the save
    /// replaces it.
    OverMaxFileBytes,
    /// The cache keeps at most one entry: an engine on a missing file compiles two kernels and
    /// is dropped: its save keeps one and evicts the other, which it compiled (dirty).
    DirtyEntryEvicted,
    /// An engine on a missing file caches one key again and again, with other bytes each time,
    /// of the sizes [`Supersession::artifact_sizes`] lists, saving explicitly after each; then it
    /// is dropped (clean).
    Supersede(Supersession),
    /// The cache keeps at most three entries, and its files at most the seeded file's size plus
    /// one appended frame of one kernel ([`at_the_limits_file_bytes`]): an engine opens the
    /// seeded file of two entries, compiles one kernel and is dropped: its save, which leaves the
    /// file exactly at both limits, appends.
    AtTheLimits,
    /// An engine opens the seeded file and compiles one kernel; another handle then removes the
    /// first old entry and saves two entries of its own: a full rewrite, to a file larger than
    /// the one the engine read. The engine's save finds a file it has not read, reads it whole
    /// and appends.
    AppendAfterAnotherRewrite,
    /// An engine opens a missing file and compiles one kernel; a worker process creates the file
    /// (an explicit save), then dies by SIGKILL half-way through writing its next save's frame.
    /// The engine's save finds a file it has not read with a torn last frame: it rewrites the
    /// file without that frame (and warns).
    TornTailByAnotherProcess,
    /// Two handles of one file, in one process: the first creates the file (a rewrite), then
    /// they take turns appending one new entry each, [`runtime_cache::MAX_APPENDED_FRAMES`]
    /// frames in all, each reading the other's frames before appending its own; the first
    /// handle's next save rewrites the file.
    FramesSinceRewrite,
    /// An engine opens the seeded file and, without compiling, removes the first old entry (or,
    /// with `clear`, every entry); then it is dropped.
    Remove {
        /// `clear()` instead of `remove(key)`.
        clear: bool,
    },
    /// An engine opens the seeded file; another handle then appends an entry of its own (an
    /// explicit save); then the engine removes the first old entry and is dropped: its save, a
    /// full rewrite (removals always rewrite), must re-read what was appended since it opened.
    RemoveAfterAnotherAppend,
    /// The engine opens a missing file and inserts its own artifact under the first old key;
    /// then another writer saves the seeded file (both old entries, the other artifact under
    /// that key) before the engine's drop saves: an append (the later frame wins).
    SharedKey,
    /// As [`Family::SharedKey`], but the other writer leaves a file of the previous format
    /// version, so the engine's save is a full rewrite: the merge path (re-read, union, ours win).
    SharedKeyInRewrite,
    /// Something hostile is planted at or around the cache path (see [`Hostile`]); the dirty
    /// engine lives to the end in the plan's holder, so the exit meets what was planted.
    Hostile(Hostile),
    /// `processes` processes share one large cache file (the seed), each compiles distinct
    /// kernels, all drop their engines together; with the cache's default options.
    ManyWriters {
        /// How many processes.
        processes: u32,
    },
    /// A dirty engine saves explicitly; while its save holds `<path>.lock` (at the failpoint
    /// `save-before-rename`), the process forks a child that sleeps for a second and ends with
    /// `_exit`. After the save, another handle saves with a 300 ms lock timeout: the lock the
    /// child inherited must not hold it up.
    ForkDuringSave,
    /// The termination handler is installed (the plan's `handler`), a dirty engine, then
    /// `fork()`; the forked child raises SIGTERM and must die by it, saving nothing; the parent
    /// then ends holding its engine.
    ForkChildSigterm,
    /// An engine that compiles nothing has its settings moved to the second cache path and
    /// compiles nothing there either: clean throughout, it writes neither path.
    CleanSwap,
    /// A dirty engine's settings are moved to no cache at all: the old cache saves at the swap;
    /// the engine then keeps its kernels in memory only.
    SwapToNoCache,
    /// An engine with write-through (`CacheOptions::write_through`) compiles its kernels, each
    /// saved before `kernel()` returns, then the process ends by the plan's ending.
    WriteThrough,
    /// A `RuntimeCache` opened without autosave (the default options) is dirty and alive at
    /// exit: it is never registered with the exit hook and never saved.
    NoAutosave,
}

/// Everything the child program needs for one cell.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildPlan {
    /// The cache file's name inside the scratch folder.
    pub cache: String,
    /// The second cache file (swap family).
    pub second_cache: String,
    /// Where the engine lives.
    pub holder: Holder,
    /// How the process ends.
    pub ending: Ending,
    /// Whether the termination handler is installed first.
    pub handler: bool,
    /// What happens in between.
    pub family: Family,
    /// Distinct kernels each engine compiles (0: the engine stays clean).
    pub kernels: u32,
    /// Distinguishes the kernels of concurrent processes.
    pub kernel_seed: u32,
    /// Synthetic artifact size in bytes.
    pub artifact_bytes: usize,
}

/// The size limit of [`Family::AtTheLimits`]: the seeded file (two entries) with one frame
/// appended that holds one entry of `artifact_bytes` bytes.
pub fn at_the_limits_file_bytes(artifact_bytes: usize) -> u64 {
    use runtime_cache::format::{ENTRY_OVERHEAD, FRAME_OVERHEAD};
    crate::catalog::old_cache_bytes().len() as u64 + FRAME_OVERHEAD + ENTRY_OVERHEAD + artifact_bytes as u64
}

/// The cache file's name in every plan made by [`ChildPlan::new`].
pub const CACHE_FILE: &str = "kernels.rtc";

/// The hostile family's cache path for `hostile`, relative to the scratch folder: inside the
/// folder `shared` when the folder itself is the attack, behind the planted folder link `link`
/// for [`Hostile::FolderIsSymlink`], else [`CACHE_FILE`].
pub fn hostile_cache_path(hostile: Hostile) -> &'static str {
    match hostile {
        Hostile::FolderWorldWritable | Hostile::FolderOwnedByAnotherUser => "shared/kernels.rtc",
        Hostile::FolderIsSymlink => "link/kernels.rtc",
        _ => CACHE_FILE,
    }
}

/// Where the symlink planted by the hostile family points (relative to the scratch folder),
/// for the cases that plant one: a file that must never be created
/// ([`Hostile::SymlinkedLock`]), the victim's private file ([`Hostile::SymlinkBeforeExitSave`]),
/// or the victim's own cache folder ([`Hostile::FolderIsSymlink`]).
pub fn hostile_link_target(hostile: Hostile) -> Option<&'static str> {
    match hostile {
        Hostile::SymlinkedLock => Some("created-through-the-link"),
        Hostile::SymlinkBeforeExitSave => Some("secret"),
        Hostile::FolderIsSymlink => Some("victim"),
        _ => None,
    }
}

/// The torn temp file of the cache's own that [`Hostile::TempLookalikes`] plants beside it:
/// `.<file name>.tmp-` and 10 letters or digits, as a crashed save leaves it.
pub const OWN_TORN_TEMP: &str = ".kernels.rtc.tmp-XyZ0123456";

/// The lookalikes [`Hostile::TempLookalikes`] plants beside the cache file, which are not its
/// own: another cache's temp file (of the cache `kernels.rtc.tmp-b`) and a file another user
/// owns (both seeded by the cell), and a symlink to the cache file (planted by the child).
pub const TEMP_LOOKALIKES: [&str; 3] =
    [".kernels.rtc.tmp-b.tmp-AbCdEf1234", ".kernels.rtc.tmp-FoReIgN123", ".kernels.rtc.tmp-LiNk012345"];

/// Which sizes [`Family::Supersede`] caches its one key with, one save each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Supersession {
    /// 768 KiB, 1 KiB, 768 KiB, 1 KiB: the second and third saves leave superseded bytes under
    /// runtime-cache's `DEAD_BYTES_FLOOR` (1 MiB), so they append; the fourth leaves 1.5 MiB,
    /// over the floor and over half the file, so it rewrites the file to its live entry.
    Compacted,
    /// Three saves; the third leaves exactly `DEAD_BYTES_FLOOR` superseded bytes (the first two
    /// copies with their entry headers, and the two appended frames' overheads), which is not
    /// over the floor: it appends.
    AtTheFloor,
    /// As [`Supersession::AtTheFloor`] with a first copy one byte longer: the third save is one
    /// byte over the floor, and over half the file, so it rewrites the file.
    JustOverTheFloor,
    /// Two saves: the first copy is 1 MiB, and the second is sized so that the superseded bytes
    /// (the first copy with its entry header, and the appended frame's overhead) are exactly
    /// half the file: over the floor but not over half, so it appends.
    HalfTheFile,
}

impl Supersession {
    /// Every sequence, for the catalog.
    pub const ALL: [Supersession; 4] =
        [Supersession::Compacted, Supersession::AtTheFloor, Supersession::JustOverTheFloor, Supersession::HalfTheFile];

    /// The sizes of the artifacts, one per save.
    pub fn artifact_sizes(self) -> Vec<usize> {
        use runtime_cache::format::{ENTRY_OVERHEAD, FILE_OVERHEAD, FRAME_OVERHEAD};
        const SMALL: u64 = 1 << 10;
        // After three saves of one key, what runtime-cache counts as superseded: the two
        // appended frames' overheads, and the first two copies with their entry headers (the
        // file header and the first frame's overhead count as live).
        let superseded_besides_first = 2 * FRAME_OVERHEAD + 2 * ENTRY_OVERHEAD + SMALL;
        let first_at_the_floor = runtime_cache::DEAD_BYTES_FLOOR - superseded_besides_first;
        let size = |bytes: u64| usize::try_from(bytes).expect("artifact sizes fit in memory");
        match self {
            Supersession::Compacted => vec![768 << 10, 1 << 10, 768 << 10, 1 << 10],
            Supersession::AtTheFloor => vec![size(first_at_the_floor), size(SMALL), size(SMALL)],
            Supersession::JustOverTheFloor => vec![size(first_at_the_floor + 1), size(SMALL), size(SMALL)],
            // After the append the file is FILE_OVERHEAD + ENTRY_OVERHEAD + first (the rewrite)
            // + FRAME_OVERHEAD + ENTRY_OVERHEAD + second, of which ENTRY_OVERHEAD + first +
            // FRAME_OVERHEAD is superseded: exactly half when second = first + FRAME_OVERHEAD -
            // FILE_OVERHEAD.
            Supersession::HalfTheFile => {
                let first = runtime_cache::DEAD_BYTES_FLOOR;
                vec![size(first), size(first + FRAME_OVERHEAD - FILE_OVERHEAD)]
            }
        }
    }

    /// The cell's name.
    pub fn name(self) -> &'static str {
        match self {
            Supersession::Compacted => "superseded-entries-compacted",
            Supersession::AtTheFloor => "superseded-bytes-at-the-floor",
            Supersession::JustOverTheFloor => "superseded-bytes-just-over-the-floor",
            Supersession::HalfTheFile => "superseded-bytes-exactly-half-the-file",
        }
    }
}

/// The default synthetic artifact size of the catalog.
pub const ARTIFACT_BYTES: usize = 512;

impl ChildPlan {
    /// A plan with one cache, three kernels, no termination handler, and the given holder, ending
    /// and family.
    pub fn new(holder: Holder, ending: Ending, family: Family) -> Self {
        Self {
            cache: CACHE_FILE.into(),
            second_cache: "swapped.rtc".into(),
            holder,
            ending,
            handler: false,
            family,
            kernels: 3,
            kernel_seed: 0,
            artifact_bytes: ARTIFACT_BYTES,
        }
    }

    /// The same plan with the termination handler installed first (or not).
    #[must_use]
    pub fn with_handler(mut self, handler: bool) -> Self {
        self.handler = handler;
        self
    }

    /// The plan as the child's command-line argument.
    pub fn to_arg(&self) -> String {
        serde_json::to_string(self).expect("plans always serialize")
    }

    /// Parses the child's command-line argument.
    pub fn from_arg(arg: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(arg)
    }
}
