//! [`RuntimeCache`]: one handle on one cache file, with optional autosave.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::autosave::{AutosaveState, Claim};
use crate::bounded;
use crate::defect::{self, Defect};
use crate::error::CacheError;
use crate::format::FormatLimits;
use crate::key::KernelKey;
use crate::location::CacheLocation;
use crate::lock::FileLock;
use crate::observer::{self, Event, SkipReason, Trigger};
use crate::registry::{self, ExitSave, HookToken};
use crate::store::{self, Durability, FileStamp};

/// How a cache reads, locks and writes its file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheOptions {
    /// fsync policy of a save.
    pub durability: Durability,
    /// Longest wait for `<path>.lock` (at open, and per save).
    pub lock_timeout: Duration,
    /// Bounds the decoder enforces on the file.
    pub limits: FormatLimits,
    /// Save once at drop or at process exit, whichever comes first. Engines turn this on for the
    /// cache they own.
    pub autosave: bool,
}

impl Default for CacheOptions {
    /// Sync the file, wait up to 2 s for the lock, default limits, no autosave.
    fn default() -> Self {
        Self {
            durability: Durability::default(),
            lock_timeout: Duration::from_secs(2),
            limits: FormatLimits::default(),
            autosave: false,
        }
    }
}

/// What a save did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveOutcome {
    /// Nothing was dirty; nothing was written.
    Clean,
    /// The file was replaced.
    Committed {
        /// Entries in the file after the merge.
        entries: usize,
        /// Size of the file.
        bytes: u64,
    },
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
}

#[derive(Debug, Default)]
struct Contents {
    entries: HashMap<KernelKey, Bytes>,
    dirty: HashSet<KernelKey>,
    last_seen: Option<FileStamp>,
}

impl RuntimeCache {
    /// Opens the cache at `path`, loading the file without waiting for the lock (saves rename
    /// whole files into place). The folder is created 0700 if missing and must be trusted (owned
    /// by this user or root, not group/world-writable unless sticky, not a symlink). A missing
    /// file is a cold start; a damaged one is set aside as `<path>.corrupt-<n>` (byte-exact; only
    /// the newest [`crate::SET_ASIDE_KEPT`] are kept) and the cache starts cold; a symlink, a
    /// non-file, an unreadable, untrusted or oversized file, or a valid file of another format
    /// version, is an error and is left as it is. If the lock is free, temp files left by a
    /// crashed save are removed. With autosave on, the exit hook is registered last, after every
    /// fallible step: a failed open leaves the exit registry unchanged and writes nothing.
    ///
    /// [`crate::Engine`] never fails on these errors: it runs cold without a persisted cache.
    pub fn open(path: impl AsRef<Path>, options: CacheOptions) -> Result<Self, CacheError> {
        let path =
            std::path::absolute(path.as_ref()).map_err(|source| CacheError::io("resolve", path.as_ref(), source))?;
        // Defect early-register: a hook goes in before the fallible steps, with no rollback.
        let early = match options.autosave && defect::active(Defect::EarlyRegister) {
            true => Some(registry::register(Weak::<Shared>::new() as Weak<dyn ExitSave>)?),
            false => None,
        };
        let location = CacheLocation::open(&path)?;
        store::check_path(&location)?;
        // No lock: saves rename whole files into place, so the read sees an old or a new file.
        let on_disk = store::load(&location, &options.limits)?;
        let entries: HashMap<KernelKey, Bytes> = on_disk.entries.into_iter().collect();
        let loaded = entries.len();
        let shared = Arc::new(Shared {
            path,
            location,
            autosave: AutosaveState::armed(),
            owner_pid: std::process::id(),
            saving: Mutex::new(()),
            contents: Mutex::new(Contents { entries, dirty: HashSet::new(), last_seen: on_disk.stamp }),
            options,
        });
        if let Some(early) = early {
            registry::unregister(early);
        }
        // Registration is the last step; no `RuntimeCache` (and so no `Drop`) exists before it
        // succeeds, so a failure here cannot trigger an autosave either.
        let autosave = shared.options.autosave;
        let hook = if autosave && !defect::active(Defect::DropOnly) {
            fail::fail_point!("before-hook-registration", |_| Err(CacheError::Failpoint("before-hook-registration")));
            let token = registry::register(Arc::downgrade(&shared) as Weak<dyn ExitSave>)?;
            fail::fail_point!("after-hook-registration", |_| {
                // Roll back: leave the registry as it was.
                registry::unregister(token);
                Err(CacheError::Failpoint("after-hook-registration"))
            });
            Some(token)
        } else {
            None
        };
        let cache = RuntimeCache { shared, autosave_pending: autosave, hook };
        defect::count_save_in_thread_local();
        observer::emit(|| Event::Opened { path: cache.shared.path.clone(), entries: loaded });
        Ok(cache)
    }

    /// The cache file's absolute path.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The artifact cached under `key`.
    pub fn get(&self, key: &KernelKey) -> Option<Bytes> {
        bounded::lock(&self.shared.contents).entries.get(key).cloned()
    }

    /// Caches `artifact` under `key`; the entry is dirty until the next save.
    pub fn insert(&self, key: KernelKey, artifact: Bytes) {
        let mut contents = bounded::lock(&self.shared.contents);
        if contents.entries.get(&key) != Some(&artifact) {
            contents.entries.insert(key, artifact);
            contents.dirty.insert(key);
        }
    }

    /// Number of entries held.
    pub fn len(&self) -> usize {
        bounded::lock(&self.shared.contents).entries.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether some entries are not on disk yet.
    pub fn is_dirty(&self) -> bool {
        !bounded::lock(&self.shared.contents).dirty.is_empty()
    }

    /// Whether this handle's autosave is still to come (at drop, or at exit if it is still
    /// alive); false for a cache opened without autosave, and after an engine swapped it out.
    pub fn autosaves(&self) -> bool {
        self.autosave_pending
    }

    /// Saves now if dirty (lock, re-read, merge, write temp, rename). The autosave stays armed:
    /// entries added later are still saved at drop or exit.
    pub fn save(&self) -> Result<SaveOutcome, CacheError> {
        // A mid-program save bounds its own waits (see `Shared::save_now`).
        self.shared.save_reporting(Trigger::Explicit, Instant::now())
    }

    /// Ends this handle's autosave now with `trigger`, exactly as a drop would (used when an
    /// engine swaps to another cache path): saves once if dirty, then unregisters.
    pub(crate) fn finish(mut self, trigger: Trigger) {
        if defect::active(Defect::SwapDoubleSave) {
            // Saves, leaves the entries dirty, and lets the drop below save them again.
            let _ = self.shared.save_reporting(trigger, Instant::now());
            return;
        }
        self.finish_autosave(trigger);
    }

    fn finish_autosave(&mut self, trigger: Trigger) {
        if !std::mem::take(&mut self.autosave_pending) {
            return;
        }
        if std::process::id() != self.shared.owner_pid && !defect::active(Defect::ForkUnaware) {
            // A forked child's copy of its parent's handle: not ours to save, and the registry
            // is the child's own copy (its lock may have been held by a parent thread at fork).
            return self.shared.skipped(trigger, SkipReason::ForkedChild);
        }
        if defect::active(Defect::StrongHook) {
            // The registry keeps the handle alive: nothing happens until exit.
            return registry::pin(self.shared.clone());
        }
        // Save while still registered: an exit racing this drop on another thread then finds
        // the handle, sees the save in progress and waits for it (bounded), instead of ending
        // the process in the middle of it with nothing saved.
        let deadline = Instant::now() + self.shared.options.lock_timeout;
        self.shared.autosave(trigger, deadline);
        if let Some(token) = self.hook.take()
            && !defect::active(Defect::NoUnregister)
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
    fn save_reporting(&self, trigger: Trigger, deadline: Instant) -> Result<SaveOutcome, CacheError> {
        let result = self.save_now(trigger, deadline);
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

    /// Saves if dirty. `deadline` bounds every wait of an exit-time save (`Exit`, `Signal`); a
    /// mid-program save (`Drop`, `Swap`, `Explicit`) ignores it: it waits for a save running on
    /// another thread, then gives the file lock its own `lock_timeout`.
    fn save_now(&self, trigger: Trigger, deadline: Instant) -> Result<SaveOutcome, CacheError> {
        let exiting = matches!(trigger, Trigger::Exit | Trigger::Signal(_));
        let (_serial, deadline) = if exiting {
            (bounded::lock_until(&self.saving, deadline).ok_or(CacheError::DeadlineExceeded)?, deadline)
        } else {
            // Mid-program, wait for a save running on another thread (itself bounded by the lock
            // timeout) rather than give up and lose what was inserted after its snapshot.
            let serial = bounded::lock(&self.saving);
            (serial, Instant::now() + self.options.lock_timeout)
        };
        let (entries, dirty, last_seen) = {
            let contents = bounded::lock_until(&self.contents, deadline).ok_or(CacheError::DeadlineExceeded)?;
            // Defect no-once-guard: every autosave trigger writes, dirty or not.
            let unconditional = defect::active(Defect::NoOnceGuard) && trigger != Trigger::Explicit;
            if contents.dirty.is_empty() && !unconditional {
                return Ok(SaveOutcome::Clean);
            }
            (contents.entries.clone(), contents.dirty.clone(), contents.last_seen)
        };
        observer::emit(|| Event::SaveStarted { path: self.path.clone(), trigger });
        let lock_deadline = deadline.min(Instant::now() + self.options.lock_timeout);
        let committed = {
            let _lock = FileLock::acquire(&self.location, lock_deadline)?;
            store::save(&self.location, &self.options.limits, self.options.durability, &entries, last_seen)?
        };
        // The file is committed: record that, even if the exit deadline passed meanwhile (the
        // contents lock is only ever held for a moment).
        if let Some(mut guard) = bounded::lock_until(&self.contents, Instant::now() + Duration::from_millis(100)) {
            let contents = &mut *guard;
            // Still dirty: entries inserted, or replaced, while the save ran.
            if !defect::keeps_dirty_after(trigger) {
                contents.dirty.retain(|key| contents.entries.get(key) != entries.get(key));
            }
            for (key, artifact) in &committed.merged_from_disk {
                contents.entries.entry(*key).or_insert_with(|| artifact.clone());
            }
            contents.last_seen = committed.stamp;
        }
        observer::emit(|| Event::SaveCommitted {
            path: self.path.clone(),
            trigger,
            entries: committed.entries,
            bytes: committed.bytes,
            keys: dirty.iter().copied().collect(),
        });
        Ok(SaveOutcome::Committed { entries: committed.entries, bytes: committed.bytes })
    }

    fn skipped(&self, trigger: Trigger, reason: SkipReason) {
        observer::emit(|| Event::SaveSkipped { path: self.path.clone(), trigger, reason });
    }
}

impl ExitSave for Shared {
    fn autosave(&self, trigger: Trigger, deadline: Instant) {
        if std::process::id() != self.owner_pid && !defect::active(Defect::ForkUnaware) {
            return self.skipped(trigger, SkipReason::ForkedChild);
        }
        // Defect no-once-guard: every trigger wins.
        let claim = if defect::active(Defect::NoOnceGuard) { Claim::Won } else { self.autosave.claim() };
        match claim {
            Claim::Won => {}
            Claim::InProgress => {
                // The exit path waits (bounded) for a drop saving on another thread, so the
                // process does not end in the middle of that save.
                let reason = if self.autosave.wait_done(deadline) {
                    SkipReason::AlreadySaved
                } else {
                    SkipReason::DeadlineExceeded
                };
                return self.skipped(trigger, reason);
            }
            Claim::Done => return self.skipped(trigger, SkipReason::AlreadySaved),
        }
        defect::count_save_in_thread_local();
        if Instant::now() >= deadline {
            self.skipped(trigger, SkipReason::DeadlineExceeded);
        } else {
            let _ = self.save_reporting(trigger, deadline);
        }
        self.autosave.finish();
    }
}
