//! runtime-cache (crate docs: see the README).
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod autosave;
mod bounded;
mod cache;
pub mod compiler;
mod default_path;
#[cfg_attr(not(feature = "defects"), allow(dead_code))]
mod defect;
#[cfg(feature = "cudarc")]
mod device;
mod engine;
mod error;
mod eviction;
mod flight;
pub mod format;
mod includes;
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

pub use cache::{CacheOptions, EntryInfo, RuntimeCache, SaveOutcome};
#[cfg(feature = "synthetic")]
pub use compiler::SyntheticCompiler;
pub use compiler::{Backend, BackendSelection, CompileError, KernelCompiler, nvrtc_available};
#[cfg(feature = "nvrtc")]
pub use compiler::{NVRTC_LIBRARY_ENV, NvrtcCompiler};
pub use default_path::{
    DIR_ENV, DISABLE_ENV, DefaultCachePath, PATH_ENV, PathSource, default_cache_path, default_file_name,
};
#[cfg(feature = "defects")]
pub use defect::{DEFECT_ENV, Defect};
#[cfg(feature = "cudarc")]
pub use device::{DeviceError, DeviceReport, load_on_device};
pub use engine::{CachedArtifact, Engine, EngineStats, Kernel, KernelOrigin, RuntimeSettings};
pub use error::{CacheError, EngineError};
pub use eviction::{EvictReason, EvictionPolicy};
pub use format::{FormatError, FormatLimits};
pub use key::{CompilerIdentity, KernelKey, KernelSpec, Output};
pub use observer::{Event, SkipReason, Trigger, UnavailableReason, clear_observer, set_observer};
pub use registry::{HookToken, exit_registry_len, set_exit_deadline};
pub use store::{Durability, SET_ASIDE_KEPT};
pub use termination::{TERMINATION_SIGNALS, install_termination_handler};
