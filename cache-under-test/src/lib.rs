//! `runtime-cache`: a persistent cache of compiled GPU kernels (CUDA C++ to PTX or CUBIN through
//! NVRTC, or any compiler of yours) that survives processes, crashes and concurrent writers.
//!
//! ```no_run
//! use cudarc::driver::CudaContext;
//! use runtime_cache::{Engine, KernelSpec, RuntimeSettings};
//!
//! const SAXPY: &str = r#"
//! extern "C" __global__ void saxpy(float a, const float *x, float *y, unsigned int n) {
//!     unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
//!     if (i < n) { y[i] = a * x[i] + y[i]; }
//! }"#;
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // Kernels persist in $XDG_CACHE_HOME/runtime-cache/kernels-v3.rtc; NVRTC is loaded only on a miss.
//!     let engine = Engine::new(RuntimeSettings::default())?;
//!     let spec = KernelSpec::new("saxpy.cu", SAXPY, "saxpy").with_arch("compute_80");
//!     let kernel = engine.kernel(&spec)?; // a hit in every run after the first
//!     println!("{:?}, {} bytes of PTX", kernel.origin, kernel.ptx().map_or(0, str::len));
//!     let context = CudaContext::new(0)?;
//!     let module = context.load_module(kernel.to_cudarc_ptx())?;
//! #   let _ = module;
//! #   Ok(())
//! # }
//! ```
//!
//! (`to_cudarc_ptx` and `load_on_device` need the `cudarc` feature; the rest does not use cudarc.)
//!
//! # Words
//!
//! - **Engine** ([`Engine`]): what compiles your kernels. It owns its cache; you share it across
//!   threads as `Arc<Engine>`. The word, and "runtime cache", come from TensorRT, whose engines
//!   keep compiled kernels in a runtime cache the same way.
//! - **Engine-implicit cache**: the [`RuntimeCache`] an engine opens from its
//!   [`RuntimeSettings`] and saves by itself, so there is no cache object to manage. (A
//!   [`RuntimeCache`] can also be used on its own, for any bytes.)
//! - **Autosave**: a dirty cache (entries not on disk yet) saves exactly once: when the engine is
//!   dropped, or, if it is still alive, when the process exits (`return` from `main`,
//!   `std::process::exit`, a panic, or SIGTERM/SIGINT/SIGHUP with
//!   [`install_termination_handler`]). With [`CacheOptions::write_through`] every insert is
//!   saved at once instead, so nothing is lost even to SIGKILL.
//! - **Key** ([`KernelKey`]): the 32-byte name of one artifact; see "Keys" below.
//!
//! # Cargo features
//!
//! | feature | default | what |
//! | --- | --- | --- |
//! | `nvrtc` | yes | the NVRTC backend. runtime-cache finds and loads `libnvrtc` itself (no cudarc), so it forces no loading mode or CUDA version on you |
//! | `cudarc` | no | `Kernel::to_cudarc_ptx` (and `From<&Kernel> for cudarc::nvrtc::Ptx`), `KernelSpec::with_cudarc_options`, `load_on_device`; turns on only cudarc's `std`, `nvrtc` and `driver` and its *fallback* features, which yield to your own cudarc dependency's `dynamic-linking`/`static-linking` and `cuda-XXXXX` choice |
//! | `synthetic` | no | `SyntheticCompiler`, the test double (fake artifacts), for tests |
//! | `failpoints` | no | failpoints and seams (`FAILPOINTS`), for the scenario catalog only: injected failures, and the seams its defect zoo switches on |
//!
//! # Keys
//!
//! [`KernelKey::derive`] hashes (BLAKE3, every field length-prefixed): the compiler's name and
//! exact build (for NVRTC: its version and the GNU build ids of `libnvrtc` and its builtins
//! library), the program name, the source, every in-memory header (name and contents), **the
//! bytes of every header file the source includes**, the entry points, the options exactly as
//! given (order matters), the architecture and the output kind (PTX or CUBIN).
//!
//! Includes are resolved as NVRTC 12.9 resolves them (checked against the library in the tests):
//! an in-memory header of that exact name first; then, for `#include "..."`, the including
//! file's folder (the program name's folder for the source); then each `--include-path` / `-I`
//! folder in order; also `--pre-include` files; recursively, once per file. A `<...>` header found
//! nowhere on those paths is NVRTC's own (`<cuda_fp16.h>`, ...), covered by the NVRTC build. Not
//! covered: computed includes (`#include MACRO`) and `__has_include` probes; directives are found
//! textually, so one in `#if 0` still counts (more sensitive, never stale). If a header changes
//! while a kernel compiles, or the scan passes its bounds, the kernel is returned but not cached
//! ([`Event::NotCached`]).
//!
//! # NVRTC, and a warm start that never loads it
//!
//! [`Backend::Auto`] (the default) uses NVRTC where it is installed, and otherwise has no compiler
//! at all, with the typed reason in [`BackendSelection::unavailable`] and
//! [`Event::CompilerUnavailable`]: it never falls back to a test double, so nothing fake is ever
//! persisted. `libnvrtc` is found by looking at files only (`RUNTIME_CACHE_NVRTC_LIBRARY`, then
//! `LD_LIBRARY_PATH`, `/etc/ld.so.cache`, the loader's default folders, `$CUDA_HOME/lib64`,
//! `/usr/local/cuda/lib64`) and fingerprinted from its ELF notes; it is loaded (from that exact
//! file) on the first cache miss. A process whose kernels are all hits never maps the 100 MB
//! library.
//!
//! # Where the cache lives
//!
//! [`RuntimeSettings::default`] puts it at [`default_cache_path`]:
//! `$XDG_CACHE_HOME/runtime-cache/kernels-v3.rtc`, else `~/.cache/runtime-cache/kernels-v3.rtc`
//! (the format version is in the name). `RUNTIME_CACHE_PATH` (the file) or `RUNTIME_CACHE_DIR`
//! (its folder) move it, and `RUNTIME_CACHE_DISABLE=1` keeps kernels in memory only, like
//! `CUDA_CACHE_PATH` / `CUDA_CACHE_DISABLE`. A path set in the settings is used as it is.
//!
//! # Limits and eviction
//!
//! Every save enforces [`FormatLimits`] (file size, entry count, artifact size) by dropping the
//! least recently used entries, drops entries unused for longer than
//! [`EvictionPolicy::max_age`] (off by default), and prunes entries made by another build of a
//! compiler this process uses (an NVRTC upgrade). A file over this process's limits opens
//! trimmed; it is never an open failure. [`RuntimeCache::remove`], [`RuntimeCache::clear`] and
//! [`RuntimeCache::entries`] manage it by hand; [`Event::Evicted`] reports what went.
//!
//! # Concurrency
//!
//! Concurrent misses of one key in a process compile it once ([`KernelOrigin::Awaited`] for the
//! callers that waited). Processes sharing one file never lose each other's entries: a save
//! locks `<path>.lock`, re-reads and merges what others saved, and renames a new file into place.
//!
//! # Statistics
//!
//! [`Engine::stats`] counts hits, misses, compiles, awaited compiles, failures and compile time;
//! the [`set_observer`] hook receives an [`Event::KernelServed`] per call (origin and compile
//! time) besides every file event.
//!
//! # Design
//!
//! - The file ([`format`](mod@format)) is an append-only log: a checksummed header, then sealed
//!   frames of entries, with bounded lengths (checksum before version: damage is set aside, a
//!   sealed file of another version is left alone). Opening reads it without waiting for the lock
//!   (an append in flight is an invalid last frame, which readers ignore; a rewrite renames a
//!   whole file into place); a damaged file is set aside byte-exact (only the newest
//!   [`SET_ASIDE_KEPT`] are kept) and the cache starts cold; temp files of a crashed rewrite are
//!   removed when the lock is free. A save locks `<path>.lock`
//!   ([`lock_timeout`](crate::CacheOptions::lock_timeout) bounds the wait), reads only what other
//!   processes appended since it last looked, and appends one frame of its new entries: its cost
//!   grows with what changed, not with the cache. A full rewrite (re-read, merge, evict, an
//!   `O_EXCL` temp file in the same folder renamed into place) replaces a missing, older-version,
//!   torn or damaged file, carries removals and `clear()`, evicts, and compacts the log every
//!   [`MAX_APPENDED_FRAMES`] frames. A clean cache writes nothing.
//! - [`Engine`] never fails because of its cache: a cache that cannot be used makes it run cold
//!   with kernels in memory, reporting [`Event::CacheUnavailable`] with an
//!   [`UnavailableReason`] ([`Engine::cache_unavailable`] keeps the [`CacheError`]).
//! - Autosave: each autosaving handle has an atomic state (armed, saving, done) and a slot in one
//!   process-global exit registry of `Weak` refs, served by a single `atexit` callback. Whichever
//!   of drop, exit, swap or termination signal comes first saves; the others do nothing. The
//!   registry's size equals the number of live autosave handles ([`exit_registry_len`]). A
//!   `fork()`ed child never saves its parent's handles. The exit path never panics, never prints,
//!   never touches a thread-local and finishes within [`set_exit_deadline`].
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
//! creates are 0600 in folders it creates 0700. Header files are opened `O_NONBLOCK` and must be
//! regular files.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod autosave;
mod bounded;
mod budget;
mod cache;
pub mod compiler;
mod default_path;
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
mod seam;
mod store;
#[allow(unsafe_code)]
mod sys;
mod termination;
#[doc(hidden)]
pub mod testing;

pub use budget::set_exit_deadline;
pub use cache::{CacheOptions, EntryInfo, RuntimeCache, SaveOutcome};
#[cfg(feature = "synthetic")]
pub use compiler::SyntheticCompiler;
pub use compiler::{Backend, BackendSelection, CompileError, KernelCompiler, nvrtc_available};
#[cfg(feature = "nvrtc")]
pub use compiler::{NVRTC_LIBRARY_ENV, NvrtcCompiler};
pub use default_path::{
    DIR_ENV, DISABLE_ENV, DefaultCachePath, PATH_ENV, PathSource, default_cache_path, default_file_name,
};
#[cfg(feature = "cudarc")]
pub use device::{DeviceError, DeviceReport, load_on_device};
pub use engine::{CachedArtifact, Engine, EngineStats, Kernel, KernelOrigin, RuntimeSettings};
pub use error::{CacheError, EngineError};
pub use eviction::{EvictReason, EvictionPolicy};
pub use format::{FormatError, FormatLimits};
pub use key::{CompilerIdentity, KernelKey, KernelSpec, Output};
pub use observer::{Event, SkipReason, Trigger, UnavailableReason, clear_observer, set_observer};
pub use registry::{HookToken, exit_registry_len};
pub use store::{DEAD_BYTES_FLOOR, Durability, MAX_APPENDED_FRAMES, SET_ASIDE_KEPT, SaveKind};
pub use termination::{TERMINATION_SIGNALS, install_termination_handler};
