//! Kernel compilers: the [`KernelCompiler`] trait, its two implementations, and backend selection.
//!
//! - [`NvrtcCompiler`]: CUDA C++ to PTX through NVRTC (`cudarc`, loaded dynamically at run time).
//! - [`SyntheticCompiler`]: the **test double** for lifecycle tests, fuzzing and machines without
//!   NVRTC. It produces deterministic bytes derived from the key, of a configured size and cost.
//!
//! [`Backend::Auto`] picks NVRTC when the library can be loaded and the synthetic compiler
//! otherwise, and [`BackendSelection`] says which was chosen and why.

mod nvrtc;
mod synthetic;

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

pub use nvrtc::{NvrtcCompiler, nvrtc_available};
pub use synthetic::SyntheticCompiler;

use crate::key::{CompilerIdentity, KernelSpec};

/// Compiles a [`KernelSpec`] into an artifact (PTX text for NVRTC).
pub trait KernelCompiler: Send + Sync + fmt::Debug {
    /// The compiler's name and version; part of every [`crate::KernelKey`] it produces.
    fn identity(&self) -> &CompilerIdentity;

    /// Compiles `spec`. A hit in the cache never calls this.
    fn compile(&self, spec: &KernelSpec) -> Result<Bytes, CompileError>;
}

/// Why a compile, or a compiler's construction, failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompileError {
    /// The compiler's shared library could not be loaded.
    #[error("{library} could not be loaded: {hint}")]
    LibraryMissing {
        /// The library looked for, e.g. `libnvrtc.so.12`.
        library: &'static str,
        /// What to do about it.
        hint: String,
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
    /// Injected by a failpoint (only with the `failpoints` feature).
    #[error("failpoint {0} fired")]
    Failpoint(&'static str),
}

/// Which compiler an engine uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Backend {
    /// NVRTC when `libnvrtc` can be loaded, else the synthetic compiler. [`BackendSelection`]
    /// says which was chosen.
    #[default]
    Auto,
    /// NVRTC, or a [`CompileError::LibraryMissing`] error.
    Nvrtc,
    /// The synthetic test double with this configuration.
    Synthetic(SyntheticCompiler),
}

/// The outcome of resolving a [`Backend`]: the compiler, and why it was chosen.
#[derive(Clone, Debug)]
pub struct BackendSelection {
    /// The compiler.
    pub compiler: Arc<dyn KernelCompiler>,
    /// One line saying which backend was chosen and why (e.g. "synthetic: libnvrtc.so.12 not found").
    pub reason: String,
}

impl Backend {
    /// Resolves the backend to a compiler. Only [`Backend::Nvrtc`] can fail (library missing).
    pub fn select(&self) -> Result<BackendSelection, CompileError> {
        fail::fail_point!("compiler-init", |_| Err(CompileError::Failpoint("compiler-init")));
        match self {
            Backend::Synthetic(synthetic) => Ok(BackendSelection {
                compiler: Arc::new(synthetic.clone()),
                reason: "synthetic: chosen explicitly".into(),
            }),
            Backend::Nvrtc => {
                let nvrtc = NvrtcCompiler::new()?;
                let reason = format!("nvrtc: chosen explicitly ({})", nvrtc.identity());
                Ok(BackendSelection { compiler: Arc::new(nvrtc), reason })
            }
            Backend::Auto => match NvrtcCompiler::new() {
                Ok(nvrtc) => {
                    let reason = format!("nvrtc: library found ({})", nvrtc.identity());
                    Ok(BackendSelection { compiler: Arc::new(nvrtc), reason })
                }
                Err(missing) => Ok(BackendSelection {
                    compiler: Arc::new(SyntheticCompiler::default()),
                    reason: format!("synthetic: {missing}"),
                }),
            },
        }
    }
}
