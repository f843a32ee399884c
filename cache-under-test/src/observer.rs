//! The observer: one process-global hook that receives a typed [`Event`] for everything the cache
//! does to its files and its exit registry.
//!
//! The cache knows nothing of any harness; a harness (or a metrics exporter) installs a hook with
//! [`set_observer`]. Events are delivered synchronously on the thread that caused them, including
//! the exit path and the signal-handling thread, so a hook must not panic (a panic is caught and
//! the event dropped) and should not block.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::compiler::CompileError;
use crate::engine::KernelOrigin;
use crate::eviction::EvictReason;
use crate::key::KernelKey;
use crate::registry::HookToken;
use crate::store::SaveKind;

/// What made a save happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// The last handle was dropped mid-program (or during unwinding / TLS destruction).
    Drop,
    /// The process is exiting (atexit) with the handle still alive.
    Exit,
    /// [`crate::RuntimeCache::save`] was called.
    Explicit,
    /// The engine's settings moved to another cache path; the old cache saves once.
    Swap,
    /// A termination signal arrived and the termination handler is installed.
    Signal(i32),
    /// Write-through ([`crate::CacheOptions::write_through`]): an insert, remove or clear.
    Insert,
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trigger::Drop => f.write_str("drop"),
            Trigger::Exit => f.write_str("exit"),
            Trigger::Explicit => f.write_str("explicit"),
            Trigger::Swap => f.write_str("swap"),
            Trigger::Signal(signal) => write!(f, "signal {signal}"),
            Trigger::Insert => f.write_str("insert"),
        }
    }
}

/// Why a save wrote nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SkipReason {
    /// Nothing was dirty: a clean handle never writes.
    Clean,
    /// This process is a `fork()`ed child; the handle belongs to its parent.
    ForkedChild,
    /// Another trigger already saved this handle (drop vs exit vs signal: the first one wins).
    AlreadySaved,
    /// The exit path's total deadline passed before this handle's turn, or before a save of it
    /// running on another thread finished.
    DeadlineExceeded,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SkipReason::Clean => "clean",
            SkipReason::ForkedChild => "forked child",
            SkipReason::AlreadySaved => "already saved",
            SkipReason::DeadlineExceeded => "exit deadline exceeded",
        })
    }
}

/// Why an engine runs without its persisted cache (see [`Event::CacheUnavailable`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UnavailableReason {
    /// The cache file, its lock file or its folder is a symbolic link.
    Symlink,
    /// The cache folder is owned by another user, or writable by group or others.
    UntrustedFolder,
    /// The cache file is owned by another user, or writable by group or others.
    UntrustedFile,
    /// The cache path is not a regular file (a folder, a FIFO, a socket, ...).
    NotAFile,
    /// The file is valid for another format version: it is left as it is, neither set aside nor
    /// overwritten.
    Unsupported,
    /// An I/O error: unreadable file, folder that cannot be created, ...
    Io,
    /// The exit hook could not be registered.
    ExitHookUnavailable,
    /// Anything else (a failpoint, a lock timeout).
    Other,
}

impl fmt::Display for UnavailableReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UnavailableReason::Symlink => "symlink",
            UnavailableReason::UntrustedFolder => "untrusted folder",
            UnavailableReason::UntrustedFile => "untrusted file",
            UnavailableReason::NotAFile => "not a file",
            UnavailableReason::Unsupported => "unsupported",
            UnavailableReason::Io => "i/o error",
            UnavailableReason::ExitHookUnavailable => "exit hook unavailable",
            UnavailableReason::Other => "other",
        })
    }
}

/// Something the cache did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// An engine resolved its compiler backend.
    BackendSelected {
        /// Which backend and why, e.g. "nvrtc: found /usr/lib/libnvrtc.so.12 (12.9 build ...)".
        reason: String,
    },
    /// An engine has no compiler ([`crate::Backend::Auto`] without NVRTC): it serves
    /// [`crate::Engine::get_or_compile`] from its cache, and [`crate::Engine::kernel`] fails with
    /// this error.
    CompilerUnavailable {
        /// Why, as a type.
        error: CompileError,
    },
    /// [`crate::Engine::kernel`] or [`crate::Engine::get_or_compile`] returned an artifact: the
    /// per-kernel statistics ([`crate::Engine::stats`] sums them).
    KernelServed {
        /// Its key.
        key: KernelKey,
        /// Its program name (empty for `get_or_compile`).
        program: String,
        /// Hit, compiled, or awaited (compiled by a concurrent call).
        origin: KernelOrigin,
        /// How long this call's compile took (`None` for a hit or an awaited compile).
        compile_time: Option<Duration>,
    },
    /// A compile failed (nothing was cached).
    CompileFailed {
        /// The key it would have been cached under.
        key: KernelKey,
        /// Its program name (empty for `get_or_compile`).
        program: String,
        /// The error, rendered.
        error: String,
    },
    /// A kernel was compiled and returned, but not cached: its key might not cover what was
    /// compiled.
    NotCached {
        /// The key.
        key: KernelKey,
        /// Its program name.
        program: String,
        /// Why (an included header changed during the compile; the include scan hit a bound).
        reason: String,
    },
    /// The file is over this process's [`crate::FormatLimits`]: trimmed in memory at open, or not
    /// read at all (over `max_file_bytes`); the next save writes a file within the limits.
    OverLimits {
        /// The cache path.
        path: PathBuf,
        /// What is over which limit, and what happens.
        detail: String,
    },
    /// Entries were dropped by a save (or trimmed at open) per the limits and eviction policy.
    Evicted {
        /// The cache path.
        path: PathBuf,
        /// Each dropped key and why.
        evicted: Vec<(KernelKey, EvictReason)>,
    },
    /// A cache was opened; `entries` were loaded from the file (0 for a cold start).
    Opened {
        /// The cache path.
        path: PathBuf,
        /// Entries loaded.
        entries: usize,
    },
    /// An engine's cache could not be used: the engine runs cold, keeping kernels in memory
    /// only, and never writes that path. The file (if any) is left as it is.
    CacheUnavailable {
        /// The cache path.
        path: PathBuf,
        /// Why, as a type.
        reason: UnavailableReason,
        /// The error, rendered.
        error: String,
    },
    /// A corrupt file was set aside, byte-exact, and the cache started cold.
    Quarantined {
        /// The cache path.
        path: PathBuf,
        /// Where the corrupt file now is (`<path>.corrupt-<n>`).
        moved_to: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
    /// Temp files left by a crashed save were removed.
    TempFilesRemoved {
        /// The cache path.
        path: PathBuf,
        /// How many were removed.
        count: usize,
    },
    /// An autosave handle joined the exit registry.
    HookRegistered {
        /// Its token.
        token: HookToken,
        /// The registry's size afterwards.
        registry_len: usize,
    },
    /// An autosave handle left the exit registry.
    HookUnregistered {
        /// Its token.
        token: HookToken,
        /// The registry's size afterwards.
        registry_len: usize,
    },
    /// A save began.
    SaveStarted {
        /// The cache path.
        path: PathBuf,
        /// What caused it.
        trigger: Trigger,
    },
    /// A save was committed: one frame appended to the file, or a new file renamed into place.
    SaveCommitted {
        /// The cache path.
        path: PathBuf,
        /// What caused it.
        trigger: Trigger,
        /// Entries in the file after the merge.
        entries: usize,
        /// Bytes of the file.
        bytes: u64,
        /// The keys this handle contributed (its dirty entries).
        keys: Vec<KernelKey>,
        /// How the save wrote: an append, or a full rewrite (see [`SaveKind`] for when each).
        kind: SaveKind,
    },
    /// A save failed; the old file is intact.
    SaveFailed {
        /// The cache path.
        path: PathBuf,
        /// What caused it.
        trigger: Trigger,
        /// The error, rendered.
        error: String,
    },
    /// A save wrote nothing (an autosave for any [`SkipReason`]; an explicit save when clean).
    SaveSkipped {
        /// The cache path.
        path: PathBuf,
        /// What caused it.
        trigger: Trigger,
        /// Why nothing was written.
        reason: SkipReason,
    },
}

type Hook = Arc<dyn Fn(&Event) + Send + Sync>;

static OBSERVER: RwLock<Option<Hook>> = RwLock::new(None);

/// Installs the process-global observer, replacing any previous one.
pub fn set_observer(hook: impl Fn(&Event) + Send + Sync + 'static) {
    let mut slot = OBSERVER.write().unwrap_or_else(|poisoned| poisoned.into_inner());
    *slot = Some(Arc::new(hook));
}

/// Removes the observer.
pub fn clear_observer() {
    let mut slot = OBSERVER.write().unwrap_or_else(|poisoned| poisoned.into_inner());
    *slot = None;
}

/// Delivers `event` to the observer, if any. Never panics, never prints.
pub(crate) fn emit(event: impl FnOnce() -> Event) {
    // `try_read`: only `set_observer` writes, for an instant; a forked child may inherit the lock
    // mid-write from a parent thread, and the exit path must not block on it. Such an event is
    // dropped.
    let hook = match OBSERVER.try_read() {
        Ok(slot) => slot.clone(),
        Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner().clone(),
        Err(std::sync::TryLockError::WouldBlock) => None,
    };
    if let Some(hook) = hook {
        let event = event();
        let _ = catch_unwind(AssertUnwindSafe(|| hook(&event)));
    }
}
