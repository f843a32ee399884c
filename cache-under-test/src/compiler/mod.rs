//! Kernel compilers: the [`KernelCompiler`] trait, its implementations, and backend selection.
//!
//! - `NvrtcCompiler` (feature `nvrtc`, on by default): CUDA C++ to PTX or CUBIN through NVRTC.
//!   It finds `libnvrtc` and fingerprints it (path, GNU build id, size) when the engine starts,
//!   but loads it only on the first cache miss: a warm start never maps the 100 MB library.
//! - `SyntheticCompiler` (feature `synthetic`, for tests): the **test double**. It produces
//!   deterministic text derived from the key, of a configured size and cost, and compiles
//!   nothing.
//! - [`Backend::Custom`]: any [`KernelCompiler`] of the application's.
//!
//! [`Backend::Auto`] picks NVRTC where it is installed, and otherwise no compiler at all: never
//! the test double, so nothing fake is ever persisted as "compiled". [`BackendSelection`] says
//! which was chosen and why, and [`BackendSelection::unavailable`] holds the typed reason when
//! there is none.

#[cfg(feature = "nvrtc")]
mod locate;
#[cfg(feature = "nvrtc")]
mod nvrtc;
#[cfg(feature = "synthetic")]
mod synthetic;

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

#[cfg(feature = "nvrtc")]
pub use locate::NVRTC_LIBRARY_ENV;
#[cfg(feature = "nvrtc")]
pub use nvrtc::NvrtcCompiler;
#[cfg(feature = "synthetic")]
pub use synthetic::SyntheticCompiler;

use crate::key::{CompilerIdentity, KernelSpec};

/// Compiles a [`KernelSpec`] into an artifact (PTX text or CUBIN bytes, per [`KernelSpec::output`]).
pub trait KernelCompiler: Send + Sync + fmt::Debug {
    /// The compiler's name and exact build; part of every [`crate::KernelKey`] it produces. It
    /// must be known without compiling anything (an engine keys its cache hits on it).
    fn identity(&self) -> &CompilerIdentity;

    /// Compiles `spec`. A hit in the cache never calls this.
    fn compile(&self, spec: &KernelSpec) -> Result<Bytes, CompileError>;
}

/// Why a compile, or a compiler's construction, failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CompileError {
    /// The compiler's shared library could not be found or loaded.
    #[error("{library} could not be loaded: {hint}")]
    LibraryMissing {
        /// The library looked for, e.g. `libnvrtc.so.12`.
        library: &'static str,
        /// Where it was looked for, and what to do about it.
        hint: String,
    },
    /// This build of runtime-cache has no such backend (its cargo feature is off).
    #[error("the {backend} backend is not built in (enable runtime-cache's `{feature}` feature)")]
    NotBuilt {
        /// The backend, e.g. `nvrtc`.
        backend: &'static str,
        /// The cargo feature that builds it.
        feature: &'static str,
    },
    /// The compiler rejected the source; `log` is the compiler's own log.
    #[error("{program} did not compile:\n{log}")]
    Rejected {
        /// Program name of the spec.
        program: String,
        /// The compiler's log.
        log: String,
    },
    /// The compiler reported an error that is not about the source.
    #[error("compiler error: {0}")]
    Backend(String),
}

/// Which compiler an engine uses.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub enum Backend {
    /// NVRTC when `libnvrtc` is installed, else no compiler ([`BackendSelection::unavailable`]
    /// says why; [`crate::Engine::kernel`] then fails with that error). Never the test double.
    #[default]
    Auto,
    /// NVRTC, or a [`CompileError::LibraryMissing`] error when the engine is built.
    Nvrtc,
    /// The synthetic test double with this configuration (feature `synthetic`).
    #[cfg(feature = "synthetic")]
    Synthetic(SyntheticCompiler),
    /// The application's own compiler.
    Custom(Arc<dyn KernelCompiler>),
}

impl PartialEq for Backend {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Backend::Auto, Backend::Auto) | (Backend::Nvrtc, Backend::Nvrtc) => true,
            #[cfg(feature = "synthetic")]
            (Backend::Synthetic(a), Backend::Synthetic(b)) => a == b,
            (Backend::Custom(a), Backend::Custom(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for Backend {}

/// The outcome of resolving a [`Backend`]: the compiler, and why it was chosen.
#[derive(Clone, Debug)]
pub struct BackendSelection {
    /// The compiler. When [`unavailable`](Self::unavailable) is set, a stand-in whose every
    /// compile fails with that error.
    pub compiler: Arc<dyn KernelCompiler>,
    /// One line saying which backend was chosen and why (e.g. "nvrtc: found
    /// /usr/lib/libnvrtc.so.12 (12.9 build 31f50d4d...)").
    pub reason: String,
    /// Why there is no compiler ([`Backend::Auto`] without NVRTC), as a type.
    pub unavailable: Option<CompileError>,
}

impl BackendSelection {
    fn chosen(compiler: Arc<dyn KernelCompiler>, reason: String) -> Self {
        Self { compiler, reason, unavailable: None }
    }

    fn none(error: CompileError) -> Self {
        let compiler = Arc::new(Unavailable {
            identity: CompilerIdentity { name: "unavailable".into(), version: String::new() },
            error: error.clone(),
        });
        Self { compiler, reason: format!("no compiler: {error}"), unavailable: Some(error) }
    }
}

impl Backend {
    /// Resolves the backend to a compiler. [`Backend::Nvrtc`] fails when NVRTC is not installed;
    /// [`Backend::Auto`] never fails (it may resolve to no compiler). Loads no library: NVRTC is
    /// only located and fingerprinted here.
    pub fn select(&self) -> Result<BackendSelection, CompileError> {
        // An injected failure is one of the compiler's own.
        fail::fail_point!("compiler-init", |_| Err(CompileError::Backend("injected failure at compiler-init".into())));
        match self {
            #[cfg(feature = "synthetic")]
            Backend::Synthetic(synthetic) => {
                Ok(BackendSelection::chosen(Arc::new(synthetic.clone()), "synthetic: chosen explicitly".into()))
            }
            Backend::Custom(compiler) => {
                let reason = format!("custom: chosen explicitly ({})", compiler.identity());
                Ok(BackendSelection::chosen(compiler.clone(), reason))
            }
            Backend::Nvrtc => {
                let nvrtc = nvrtc_compiler()?;
                let reason = format!("nvrtc: chosen explicitly, {}", nvrtc.1);
                Ok(BackendSelection::chosen(nvrtc.0, reason))
            }
            Backend::Auto => match nvrtc_compiler() {
                Ok((compiler, found)) => Ok(BackendSelection::chosen(compiler, format!("nvrtc: {found}"))),
                Err(missing) => Ok(BackendSelection::none(missing)),
            },
        }
    }
}

/// NVRTC located and fingerprinted, with one line saying where.
#[cfg(feature = "nvrtc")]
fn nvrtc_compiler() -> Result<(Arc<dyn KernelCompiler>, String), CompileError> {
    let nvrtc = NvrtcCompiler::new()?;
    let found = format!("found {} ({})", nvrtc.library_path().display(), nvrtc.identity().version);
    Ok((Arc::new(nvrtc), found))
}

#[cfg(not(feature = "nvrtc"))]
fn nvrtc_compiler() -> Result<(Arc<dyn KernelCompiler>, String), CompileError> {
    Err(CompileError::NotBuilt { backend: "nvrtc", feature: "nvrtc" })
}

/// Whether NVRTC is installed where this crate looks for it (see `NvrtcCompiler::new`). Looks
/// only at files: the library is not loaded.
pub fn nvrtc_available() -> bool {
    #[cfg(feature = "nvrtc")]
    return NvrtcCompiler::new().is_ok();
    #[cfg(not(feature = "nvrtc"))]
    false
}

/// The stand-in compiler of an engine without one.
#[derive(Debug)]
struct Unavailable {
    identity: CompilerIdentity,
    error: CompileError,
}

impl KernelCompiler for Unavailable {
    fn identity(&self) -> &CompilerIdentity {
        &self.identity
    }

    fn compile(&self, _spec: &KernelSpec) -> Result<Bytes, CompileError> {
        Err(self.error.clone())
    }
}
