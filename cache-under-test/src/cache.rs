//! [`RuntimeCache`]: one handle on one cache file, with optional autosave.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::autosave::{AutosaveState, Claim};
use crate::bounded;
use crate::budget::Budget;
use crate::error::CacheError;
use crate::eviction::{self, Candidate, EvictReason, EvictionPolicy};
use crate::format::{EntryMeta, FormatLimits};
use crate::key::{CompilerIdentity, KernelKey};
use crate::location::CacheLocation;
use crate::lock::FileLock;
use crate::observer::{self, Event, SkipReason, Trigger};
use crate::registry::{self, ExitSave, HookToken};
use crate::seam;
use crate::store::{self, DiskView, Durability, SaveInput, SaveKind, SaveRules, Stored};

/// How a cache reads, locks and writes its file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheOptions {
    /// fsync policy of a save.
    pub durability: Durability,
    /// Longest wait for `<path>.lock` (at open, and per save).
    pub lock_timeout: Duration,
    /// Size and count limits of the file, enforced at every save by evicting the least recently
    /// used entries (a file over them at open is trimmed, never an open failure).
    pub limits: FormatLimits,
    /// Age and compiler-build pruning at every save.
    pub eviction: EvictionPolicy,
    /// Save once at drop or at process exit, whichever comes first. Engines turn this on for the
    /// cache they own.
    pub autosave: bool,
    /// Write-through: save right after every insert (trigger [`Trigger::Insert`]), so a kernel is
    /// on disk before `insert` (or [`crate::Engine::kernel`]) returns and survives a SIGKILL.
    /// A failed save is reported (log, observer) and leaves the entry dirty; the one autosave at
    /// drop or exit then saves whatever is still dirty, exactly once, as without write-through.
    pub write_through: bool,
}

impl Default for CacheOptions {
    /// Sync the file, wait up to 2 s for the lock, default limits and eviction, no autosave, no
    /// write-through.
    fn default() -> Self {
        Self {
            durability: Durability::default(),
            lock_timeout: Duration::from_secs(2),
            limits: FormatLimits::default(),
            eviction: EvictionPolicy::default(),
            autosave: false,
            write_through: false,
        }
    }
}

/// What a save did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveOutcome {
    /// Nothing was dirty; nothing was written.
    Clean,
    /// The save reached the file: one frame appended, or the whole file rewritten.
    Committed {
        /// Entries in the file after the merge and eviction.
        entries: usize,
        /// Size of the file.
        bytes: u64,
        /// Entries the save evicted (see [`Event::Evicted`]).
        evicted: usize,
        /// Whether it appended a frame or rewrote the file.
        kind: SaveKind,
    },
}

/// One entry of a [`RuntimeCache`], as [`RuntimeCache::entries`] lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryInfo {
    /// Its key.
    pub key: KernelKey,
    /// Its artifact's size in bytes.
    pub bytes: usize,
    /// When it was last used, to the second; `None` if unknown.
    pub last_used: Option<SystemTime>,
    /// [`CompilerIdentity::compiler_tag`] of the compiler that made it (0: unknown).
    pub compiler_tag: u64,
    /// [`CompilerIdentity::build_tag`] of that compiler's build (0: unknown).
    pub build_tag: u64,
    /// Whether it is not on disk yet.
    pub dirty: bool,
}

/// A handle on one cache file.
///
/// Loaded under the lock at [`open`](Self::open). Entries added with [`insert`](Self::insert) are
/// dirty until a save; a save merges with whatever other processes saved meanwhile. With
/// [`CacheOptions::autosave`], the handle saves exactly once when it is dropped or, if it is still
/// alive, when the process exits, whichever comes first.
#[derive(Debug)]
pub struct RuntimeCache {
    shared: Arc<Shared>,
    /// The one autosave (at drop, swap, or exit if still alive) is still to come.
    autosave_pending: bool,
    /// Its exit-registry entry, while one is registered.
    hook: Option<HookToken>,
}

#[derive(Debug)]
struct Shared {
    path: PathBuf,
    /// The trusted folder handle every file operation goes through.
    location: CacheLocation,
    options: CacheOptions,
    /// A `fork()`ed child inherits the handle and the exit hook; only the owner saves.
    owner_pid: u32,
    autosave: AutosaveState,
    /// Serialises saves of this handle (explicit vs autosave).
    saving: Mutex<()>,
    contents: Mutex<Contents>,
    /// What this handle knows of the file (see [`DiskView`]); only saves, serialised by
    /// `saving`, touch it.
    disk: Mutex<DiskView>,
}

#[derive(Debug, Default)]
struct Contents {
    entries: HashMap<KernelKey, Stored>,
    /// Inserted or replaced since the last save.
    dirty: HashSet<KernelKey>,
    /// Removed since the last save: a save keeps them out of the file.
    removed: HashSet<KernelKey>,
    /// `clear()` calls so far, and how many of them a committed save has carried out.
    clears: u64,
    clears_saved: u64,
    /// Compiler tag -> build tag of every compiler in use with this handle.
    builds: HashMap<u64, u64>,
}

impl Contents {
    fn is_dirty(&self) -> bool {
        !self.dirty.is_empty() || !self.removed.is_empty() || self.clears != self.clears_saved
    }
}

impl RuntimeCache {
    /// Opens the cache at `path`, loading the file without waiting for the lock (a save appends a
    /// sealed frame, whose in-flight tail a reader ignores, or renames a whole file into place). The folder is created 0700 if missing and must be trusted (owned
    /// by this user or root, not group/world-writable unless sticky, not a symlink). A missing
    /// file is a cold start; a damaged one is set aside as `<path>.corrupt-<n>` (byte-exact; only
    /// the newest [`crate::SET_ASIDE_KEPT`] are kept) and the cache starts cold; a symlink, a
    /// non-file, an unreadable or untrusted file, or a valid file of another format version, is an
    /// error and is left as it is. A file over this process's [`FormatLimits`] is no error: one
    /// over `max_file_bytes` is not read (cold start), one over the other limits is loaded and
    /// trimmed here (least recently used first), and either is replaced by the next save
    /// ([`Event::OverLimits`]). If the lock is free, temp files left by a
    /// crashed save are removed. With autosave on, the exit hook is registered last, after every
    /// fallible step: a failed open leaves the exit registry unchanged and writes nothing.
    ///
    /// [`crate::Engine`] never fails on these errors: it runs cold without a persisted cache.
    pub fn open(path: impl AsRef<Path>, options: CacheOptions) -> Result<Self, CacheError> {
        let path =
            std::path::absolute(path.as_ref()).map_err(|source| CacheError::io("resolve", path.as_ref(), source))?;
        // Seam register-before-open: a hook goes in before the fallible steps, with no rollback.
        let early = match options.autosave && seam::active!("register-before-open") {
            true => Some(registry::register(Weak::<Shared>::new() as Weak<dyn ExitSave>)?),
            false => None,
        };
        let location = CacheLocation::open(&path)?;
        store::check_path(&location)?;
        // No lock: saves append sealed frames or rename whole files, so the read sees old or new.
        let on_disk = store::load(&location, &options.limits)?;
        let now = eviction::now_secs();
        let candidates = on_disk
            .entries
            .into_iter()
            .map(|entry| {
                // A version-1 entry's last use is unknown: count it from now.
                let last_used = if entry.meta.last_used == 0 { now } else { entry.meta.last_used };
                Candidate { key: entry.key, meta: EntryMeta { last_used, ..entry.meta }, artifact: entry.artifact }
            })
            .collect();
        let (kept, trimmed) = eviction::evict(candidates, &options.limits, &options.eviction, &HashMap::new(), now);
        let entries: HashMap<KernelKey, Stored> = kept
            .into_iter()
            .map(|candidate| (candidate.key, Stored { artifact: candidate.artifact, meta: candidate.meta }))
            .collect();
        let loaded = entries.len();
        if let Some(detail) = on_disk.over_limit {
            log::warn!(target: "runtime_cache", "{}: {detail}", path.display());
            observer::emit(|| Event::OverLimits { path: path.clone(), detail: detail.clone() });
        }
        if !trimmed.is_empty() {
            let detail = format!(
                "{} entries over this process's limits dropped at open; the next save trims the file",
                trimmed.len()
            );
            log::info!(target: "runtime_cache", "{}: {detail}", path.display());
            observer::emit(|| Event::OverLimits { path: path.clone(), detail: detail.clone() });
            observer::emit(|| Event::Evicted { path: path.clone(), evicted: trimmed.clone() });
        }
        let shared = Arc::new(Shared {
            path,
            location,
            autosave: AutosaveState::armed(),
            owner_pid: std::process::id(),
            saving: Mutex::new(()),
            contents: Mutex::new(Contents { entries, ..Contents::default() }),
            disk: Mutex::new(on_disk.view),
            options,
        });
        if let Some(early) = early {
            registry::unregister(early);
        }
        // Registration is the last step; no `RuntimeCache` (and so no `Drop`) exists before it
        // succeeds, so a failure here cannot trigger an autosave either.
        let autosave = shared.options.autosave;
        let hook = if autosave && !seam::active!("skip-exit-hook") {
            // An injected failure is the step's own: the exit hook could not be registered.
            fail::fail_point!("before-hook-registration", |_| Err(CacheError::ExitHookUnavailable));
            let token = registry::register(Arc::downgrade(&shared) as Weak<dyn ExitSave>)?;
            fail::fail_point!("after-hook-registration", |_| {
                // Roll back: leave the registry as it was.
                registry::unregister(token);
                Err(CacheError::ExitHookUnavailable)
            });
            Some(token)
        } else {
            None
        };
        let cache = RuntimeCache { shared, autosave_pending: autosave, hook };
        #[cfg(feature = "failpoints")]
        seam::touch_thread_local();
        observer::emit(|| Event::Opened { path: cache.shared.path.clone(), entries: loaded });
        Ok(cache)
    }

    /// The cache file's absolute path.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The artifact cached under `key` (and marks it used now, for eviction).
    pub fn get(&self, key: &KernelKey) -> Option<Bytes> {
        let mut contents = bounded::lock(&self.shared.contents);
        let stored = contents.entries.get_mut(key)?;
        stored.meta.last_used = eviction::now_secs();
        Some(stored.artifact.clone())
    }

    /// Caches `artifact` under `key`, of unknown origin (never pruned as another compiler
    /// build's); the entry is dirty until the next save (at once with
    /// [`CacheOptions::write_through`]).
    pub fn insert(&self, key: KernelKey, artifact: Bytes) {
        self.insert_with_meta(key, artifact, EntryMeta::default());
    }

    /// Caches `artifact` under `key`, made by `compiler` (its tags are stored with the entry, so a
    /// later save by a process using another build of that compiler prunes it). Dirty until the
    /// next save (at once with [`CacheOptions::write_through`]).
    pub fn insert_compiled(&self, key: KernelKey, artifact: Bytes, compiler: &CompilerIdentity) {
        let meta = EntryMeta { compiler: compiler.compiler_tag(), build: compiler.build_tag(), last_used: 0 };
        self.insert_with_meta(key, artifact, meta);
    }

    fn insert_with_meta(&self, key: KernelKey, artifact: Bytes, meta: EntryMeta) {
        let changed = {
            let mut contents = bounded::lock(&self.shared.contents);
            let meta = EntryMeta { last_used: eviction::now_secs(), ..meta };
            contents.removed.remove(&key);
            match contents.entries.get_mut(&key) {
                Some(stored) if stored.artifact == artifact => {
                    stored.meta = meta;
                    false
                }
                _ => {
                    contents.entries.insert(key, Stored { artifact, meta });
                    contents.dirty.insert(key);
                    true
                }
            }
        };
        if changed && self.shared.options.write_through {
            let _ = self.shared.save_reporting(Trigger::Insert, Budget::MidProgram);
        }
    }

    /// Removes the entry under `key`; the next save keeps it out of the file too (it is not
    /// merged back from disk). Returns whether this handle held it. With
    /// [`CacheOptions::write_through`], saves at once.
    pub fn remove(&self, key: &KernelKey) -> bool {
        let held = {
            let mut contents = bounded::lock(&self.shared.contents);
            contents.dirty.remove(key);
            contents.removed.insert(*key);
            contents.entries.remove(key).is_some()
        };
        if self.shared.options.write_through {
            let _ = self.shared.save_reporting(Trigger::Insert, Budget::MidProgram);
        }
        held
    }

    /// Removes every entry; the next save writes a file holding only what was inserted after
    /// this call (entries other processes saved meanwhile are dropped too). With
    /// [`CacheOptions::write_through`], saves at once.
    pub fn clear(&self) {
        {
            let mut contents = bounded::lock(&self.shared.contents);
            contents.entries.clear();
            contents.dirty.clear();
            contents.removed.clear();
            contents.clears += 1;
        }
        if self.shared.options.write_through {
            let _ = self.shared.save_reporting(Trigger::Insert, Budget::MidProgram);
        }
    }

    /// Every entry this handle holds, sorted by key.
    pub fn entries(&self) -> Vec<EntryInfo> {
        let contents = bounded::lock(&self.shared.contents);
        let mut entries: Vec<EntryInfo> = contents
            .entries
            .iter()
            .map(|(key, stored)| EntryInfo {
                key: *key,
                bytes: stored.artifact.len(),
                last_used: (stored.meta.last_used != 0)
                    .then(|| UNIX_EPOCH + Duration::from_secs(stored.meta.last_used)),
                compiler_tag: stored.meta.compiler,
                build_tag: stored.meta.build,
                dirty: contents.dirty.contains(key),
            })
            .collect();
        entries.sort_by_key(|entry| entry.key);
        entries
    }

    /// Declares that `compiler` is in use with this cache: with
    /// [`EvictionPolicy::prune_other_builds`], a save drops entries of other builds of it.
    pub(crate) fn use_compiler(&self, compiler: &CompilerIdentity) {
        bounded::lock(&self.shared.contents).builds.insert(compiler.compiler_tag(), compiler.build_tag());
    }

    /// Number of entries held.
    pub fn len(&self) -> usize {
        bounded::lock(&self.shared.contents).entries.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether something is not on disk yet (entries added or removed, a pending clear).
    pub fn is_dirty(&self) -> bool {
        bounded::lock(&self.shared.contents).is_dirty()
    }

    /// Whether this handle's autosave is still to come (at drop, or at exit if it is still
    /// alive); false for a cache opened without autosave, and after an engine swapped it out.
    pub fn autosaves(&self) -> bool {
        self.autosave_pending
    }

    /// Saves now if dirty (lock, then append a frame of the new entries, or rewrite the file). The autosave stays armed:
    /// entries added later are still saved at drop or exit.
    pub fn save(&self) -> Result<SaveOutcome, CacheError> {
        self.shared.save_reporting(Trigger::Explicit, Budget::MidProgram)
    }

    /// Ends this handle's autosave now with `trigger`, exactly as a drop would (used when an
    /// engine swaps to another cache path): saves once if dirty, then unregisters.
    pub(crate) fn finish(mut self, trigger: Trigger) {
        if seam::active!("swap-skips-disarm") {
            // Saves, and leaves the autosave armed: the drop below saves again what is dirty.
            let _ = self.shared.save_reporting(trigger, Budget::MidProgram);
            return;
        }
        self.finish_autosave(trigger);
    }

    fn finish_autosave(&mut self, trigger: Trigger) {
        if !std::mem::take(&mut self.autosave_pending) {
            return;
        }
        if std::process::id() != self.shared.owner_pid && !seam::active!("skip-owner-check") {
            // A forked child's copy of its parent's handle: not ours to save, and the registry
            // is the child's own copy (its lock may have been held by a parent thread at fork).
            return self.shared.skipped(trigger, SkipReason::ForkedChild);
        }
        #[cfg(feature = "failpoints")]
        if seam::active!("pin-dropped-handle") {
            // Kept alive, still registered: nothing happens until exit.
            return seam::pin(self.shared.clone());
        }
        // Save while still registered: an exit racing this drop on another thread then finds
        // the handle, sees the save in progress and waits for it (bounded), instead of ending
        // the process in the middle of it with nothing saved.
        self.shared.autosave(trigger, Budget::MidProgram);
        if let Some(token) = self.hook.take()
            && !seam::active!("skip-unregister")
        {
            registry::unregister(token);
        }
    }
}

impl Drop for RuntimeCache {
    fn drop(&mut self) {
        self.finish_autosave(Trigger::Drop);
    }
}

impl Shared {
    /// Saves, reporting the outcome to the observer and the log. Never panics.
    fn save_reporting(&self, trigger: Trigger, budget: Budget) -> Result<SaveOutcome, CacheError> {
        let result = self.save_now(trigger, budget);
        match &result {
            Ok(SaveOutcome::Clean) => self.skipped(trigger, SkipReason::Clean),
            Ok(SaveOutcome::Committed { .. }) => {}
            Err(error) => {
                log::warn!(target: "runtime_cache", "save of {} ({trigger}) failed: {error}", self.path.display());
                observer::emit(|| Event::SaveFailed { path: self.path.clone(), trigger, error: error.to_string() });
            }
        }
        result
    }

    /// Saves if dirty, every wait bounded by `budget`: an exit-time save (`Exit`, `Signal`) by
    /// its deadline; a mid-program save (`Drop`, `Swap`, `Explicit`, `Insert`) waits for a save
    /// running on another thread (rather than give up and lose what was inserted after that
    /// save's snapshot), then gives its other waits `lock_timeout`.
    fn save_now(&self, trigger: Trigger, budget: Budget) -> Result<SaveOutcome, CacheError> {
        let _serial = budget.lock(&self.saving).ok_or(CacheError::DeadlineExceeded)?;
        let deadline = budget.wait_until(self.options.lock_timeout);
        let (entries, dirty, removed, clears, builds) = {
            let contents = bounded::lock_until(&self.contents, deadline).ok_or(CacheError::DeadlineExceeded)?;
            // Seam skip-once-guard: every autosave trigger writes, dirty or not.
            let unconditional = seam::active!("skip-once-guard") && trigger != Trigger::Explicit;
            if !contents.is_dirty() && !unconditional {
                return Ok(SaveOutcome::Clean);
            }
            let cleared = contents.clears != contents.clears_saved;
            (
                contents.entries.clone(),
                contents.dirty.clone(),
                contents.removed.clone(),
                cleared.then_some(contents.clears),
                contents.builds.clone(),
            )
        };
        observer::emit(|| Event::SaveStarted { path: self.path.clone(), trigger });
        let lock_deadline = deadline.min(Instant::now() + self.options.lock_timeout);
        let committed = {
            let mut view = bounded::lock_until(&self.disk, deadline).ok_or(CacheError::DeadlineExceeded)?;
            let _lock = FileLock::acquire(&self.location, lock_deadline)?;
            let input = SaveInput {
                ours: &entries,
                dirty: &dirty,
                removed: &removed,
                cleared: clears.is_some(),
                builds: &builds,
            };
            let options = &self.options;
            let rules =
                SaveRules { limits: &options.limits, policy: &options.eviction, durability: options.durability };
            store::save(&self.location, rules, input, &mut view)?
        };
        let evicted: HashMap<KernelKey, EvictReason> = committed.evicted.iter().copied().collect();
        // The file is committed: record that, even if the exit deadline passed meanwhile. Mid-program
        // this waits for the contents lock as long as it takes (it is held for a moment, by code
        // that waits on nothing a save holds): skipping this would leave the handle believing
        // the save never happened. On the exit path, at most 100 ms.
        let guard = match budget {
            Budget::MidProgram => Some(bounded::lock(&self.contents)),
            Budget::Exit(_) => bounded::lock_until(&self.contents, Instant::now() + Duration::from_millis(100)),
        };
        if let Some(mut guard) = guard {
            let contents = &mut *guard;
            let unchanged = |contents: &Contents, key: &KernelKey| {
                contents.entries.get(key).map(|stored| &stored.artifact)
                    == entries.get(key).map(|stored| &stored.artifact)
            };
            // Still dirty: entries inserted, or replaced, while the save ran.
            if !(trigger == Trigger::Swap && seam::active!("swap-save-keeps-dirty")) {
                let saved: Vec<KernelKey> =
                    contents.dirty.iter().filter(|key| unchanged(contents, key)).copied().collect();
                for key in saved {
                    contents.dirty.remove(&key);
                }
            }
            // Evicted by the save, unless replaced meanwhile: gone from memory too.
            for key in evicted.keys() {
                if entries.contains_key(key) && unchanged(contents, key) {
                    contents.entries.remove(key);
                    contents.dirty.remove(key);
                }
            }
            contents.removed.retain(|key| !removed.contains(key));
            if let Some(clears) = clears {
                contents.clears_saved = clears;
            }
            let cleared_since = contents.clears != contents.clears_saved;
            for (key, stored) in &committed.merged_from_disk {
                if cleared_since || contents.removed.contains(key) {
                    continue;
                }
                match contents.entries.get(key) {
                    // Inserted while the save ran, with the bytes the file now holds (another
                    // process saved the same kernel): nothing is left to save.
                    Some(ours) if ours.artifact == stored.artifact => {
                        contents.dirty.remove(key);
                    }
                    Some(_) => {}
                    None => {
                        contents.entries.insert(*key, stored.clone());
                    }
                }
            }
        }
        if !committed.evicted.is_empty() {
            observer::emit(|| Event::Evicted { path: self.path.clone(), evicted: committed.evicted.clone() });
        }
        observer::emit(|| Event::SaveCommitted {
            path: self.path.clone(),
            trigger,
            entries: committed.entries,
            bytes: committed.bytes,
            keys: dirty.iter().filter(|key| !evicted.contains_key(key)).copied().collect(),
            kind: committed.how,
        });
        Ok(SaveOutcome::Committed {
            entries: committed.entries,
            bytes: committed.bytes,
            evicted: committed.evicted.len(),
            kind: committed.how,
        })
    }

    fn skipped(&self, trigger: Trigger, reason: SkipReason) {
        observer::emit(|| Event::SaveSkipped { path: self.path.clone(), trigger, reason });
    }
}

impl ExitSave for Shared {
    fn autosave(&self, trigger: Trigger, budget: Budget) {
        if std::process::id() != self.owner_pid && !seam::active!("skip-owner-check") {
            return self.skipped(trigger, SkipReason::ForkedChild);
        }
        // Seam skip-once-guard: every trigger wins.
        let claim = if seam::active!("skip-once-guard") { Claim::Won } else { self.autosave.claim() };
        match claim {
            Claim::Won => {}
            Claim::InProgress => {
                // The exit path waits (bounded) for a drop saving on another thread, so the
                // process does not end in the middle of that save.
                let reason = if self.autosave.wait_done(budget.wait_until(self.options.lock_timeout)) {
                    SkipReason::AlreadySaved
                } else {
                    SkipReason::DeadlineExceeded
                };
                return self.skipped(trigger, reason);
            }
            Claim::Done => return self.skipped(trigger, SkipReason::AlreadySaved),
        }
        #[cfg(feature = "failpoints")]
        seam::touch_thread_local();
        if budget.is_spent() {
            self.skipped(trigger, SkipReason::DeadlineExceeded);
        } else {
            let _ = self.save_reporting(trigger, budget);
        }
        self.autosave.finish();
    }
}
