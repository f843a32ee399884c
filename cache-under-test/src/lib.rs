//! `runtime-cache`: a persistent, crash-safe, process-safe cache of compiled GPU kernels whose
//! engine-implicit handles autosave exactly once, at drop or at process exit.
//!
//! # Design
//!
//! - [`Engine`] compiles a [`KernelSpec`] through a [`KernelCompiler`] ([`NvrtcCompiler`], or the
//!   [`SyntheticCompiler`] test double) and caches the artifact under a stable 32-byte
//!   [`KernelKey`] in its engine-implicit [`RuntimeCache`]. A hit compiles nothing.
//! - The file ([`format`]) is versioned and checksummed with bounded lengths. Opening loads it
//!   under an exclusive lock on `<path>.lock` ([`lock`](crate::CacheOptions::lock_timeout) waits
//!   are bounded); a corrupt file is set aside byte-exact and the cache starts cold; temp files
//!   of a crashed save are removed. A save locks, re-reads and merges what other processes saved
//!   meanwhile, writes a uniquely named temp file in the same folder and renames it into place.
//!   A clean cache writes nothing.
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
//! Kernels are code that runs on the GPU. A cache file owned by another user, or writable by group
//! or others, is refused with [`CacheError::UntrustedFile`] rather than loaded (and rather than
//! silently started cold, which would then replace that file at the next save). Files this crate
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
