//! `runtime-cache`: a persistent, crash-safe, process-safe cache of compiled GPU kernels whose
//! engine-implicit handles autosave exactly once, at drop or at process exit.
//!
//! # Design
//!
//! - [`Engine`] compiles a [`KernelSpec`] through a [`KernelCompiler`] ([`NvrtcCompiler`], or the
//!   [`SyntheticCompiler`] test double) and caches the artifact under a stable 32-byte
//!   [`KernelKey`] in its engine-implicit [`RuntimeCache`]. A hit compiles nothing.
//! - The file ([`format`](mod@format)) is versioned and checksummed with bounded lengths (checksum before
//!   version: damage is set aside, a sealed file of another version is left alone). Opening
//!   reads it without waiting for the lock (saves rename whole files into place); a damaged file
//!   is set aside byte-exact (only the newest [`SET_ASIDE_KEPT`] are kept) and the cache starts
//!   cold; temp files of a crashed save are removed when the lock is free. A save locks
//!   `<path>.lock` ([`lock_timeout`](crate::CacheOptions::lock_timeout) bounds the wait),
//!   re-reads and merges what other processes saved meanwhile, writes a uniquely named `O_EXCL`
//!   temp file in the same folder and renames it into place. A clean cache writes nothing.
//! - [`Engine`] never fails because of its cache: a cache that cannot be used makes it run cold
//!   with kernels in memory, reporting [`Event::CacheUnavailable`] with an
//!   [`UnavailableReason`] ([`Engine::cache_unavailable`] keeps the [`CacheError`]).
//! - Autosave: each autosaving handle has an atomic state (armed, saving, done) and a slot in one
//!   process-global exit registry of `Weak` refs, served by a single `atexit` callback. Whichever
//!   of drop, exit, swap or termination signal comes first saves; the others do nothing. The
//!   registry's size equals the number of live autosave handles ([`exit_registry_len`]). A
//!   `fork()`ed child never saves its parent's handles. The exit path never panics, never prints,
//!   never touches a thread-local and finishes within [`set_exit_deadline`].
//! - [`load_on_device`] proves a cached PTX artifact valid by loading it on a GPU, with typed
//!   errors where the CUDA driver or a GPU is missing.
//! - Everything that happens is reported as a typed [`Event`] to the [`set_observer`] hook and,
//!   for failures, to the `log` crate under target `runtime_cache`.
//!
//! # Trust
//!
//! Kernels are code that runs on the GPU, and a cache folder may be shared with other local
//! users. The folder is opened once (`O_DIRECTORY | O_NOFOLLOW`) and must be owned by this user
//! (or root) and not group/world-writable unless sticky, as OpenSSH's StrictModes requires
//! ([`CacheError::UntrustedFolder`]); every later step is relative to that handle (`openat`,
//! `renameat`, `linkat`, `unlinkat`). No name is opened through a symlink
//! ([`CacheError::Symlink`]) and none blocks on a FIFO ([`CacheError::NotAFile`]). A cache file
//! owned by another user, or writable by group or others, is refused with
//! [`CacheError::UntrustedFile`] rather than loaded (and rather than silently replaced at the
//! next save); the size limit is checked on `fstat` before a byte is read. Clean-up removes only
//! regular files this user owns, with this cache's exact temp-name shape. Files this crate
//! creates are 0600 in folders it creates 0700.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod autosave;
mod bounded;
mod cache;
pub mod compiler;
#[cfg_attr(not(feature = "defects"), allow(dead_code))]
mod defect;
mod device;
mod engine;
mod error;
pub mod format;
mod key;
mod location;
mod lock;
mod observer;
mod registry;
mod store;
#[allow(unsafe_code)]
mod sys;
mod termination;
#[doc(hidden)]
pub mod testing;

pub use cache::{CacheOptions, RuntimeCache, SaveOutcome};
pub use compiler::{
    Backend, BackendSelection, CompileError, KernelCompiler, NvrtcCompiler, SyntheticCompiler, nvrtc_available,
};
#[cfg(feature = "defects")]
pub use defect::{DEFECT_ENV, Defect};
pub use device::{DeviceError, DeviceReport, load_on_device};
pub use engine::{Engine, Kernel, KernelOrigin, RuntimeSettings};
pub use error::{CacheError, EngineError};
pub use format::{FormatError, FormatLimits};
pub use key::{CompilerIdentity, KernelKey, KernelSpec};
pub use observer::{Event, SkipReason, Trigger, UnavailableReason, clear_observer, set_observer};
pub use registry::{HookToken, exit_registry_len, set_exit_deadline};
pub use store::{Durability, SET_ASIDE_KEPT};
pub use termination::{TERMINATION_SIGNALS, install_termination_handler};
