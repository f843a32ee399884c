//! CUDA C++ to PTX through NVRTC, loaded dynamically by `cudarc`.
//!
//! `cudarc` panics when a library it needs is missing, so every path here first probes for the
//! library ([`nvrtc_available`]) and reports a typed [`CompileError::LibraryMissing`] instead.

use bytes::Bytes;

use super::{CompileError, KernelCompiler};
use crate::key::{CompilerIdentity, KernelSpec};
use crate::sys;

/// The library name we ask users to provide.
const LIBRARY: &str = "libnvrtc.so.12";

/// Whether NVRTC can be loaded in this process (searched by `dlopen`, so `LD_LIBRARY_PATH` counts).
pub fn nvrtc_available() -> bool {
    sys::nvrtc_library_present()
}

/// Compiles CUDA C++ to PTX with NVRTC.
#[derive(Debug)]
pub struct NvrtcCompiler {
    identity: CompilerIdentity,
}

impl NvrtcCompiler {
    /// Loads NVRTC, or says why it cannot.
    pub fn new() -> Result<Self, CompileError> {
        if !nvrtc_available() {
            return Err(CompileError::LibraryMissing {
                library: LIBRARY,
                hint: "install the PyPI package nvidia-cuda-nvrtc-cu12 and add its \
                       nvidia/cuda_nvrtc/lib folder to LD_LIBRARY_PATH"
                    .into(),
            });
        }
        let (major, minor) = sys::nvrtc_version().ok_or_else(|| CompileError::Backend("nvrtcVersion failed".into()))?;
        let identity = CompilerIdentity { name: "nvrtc".into(), version: format!("{major}.{minor}") };
        Ok(Self { identity })
    }
}

impl KernelCompiler for NvrtcCompiler {
    fn identity(&self) -> &CompilerIdentity {
        &self.identity
    }

    fn compile(&self, spec: &KernelSpec) -> Result<Bytes, CompileError> {
        // cudarc panics on interior NULs; refuse them with a typed error first.
        if spec.source.contains('\0') || spec.program_name.contains('\0') {
            return Err(CompileError::Rejected {
                program: spec.program_name.replace('\0', "\\0"),
                log: "source or program name contains a NUL byte".into(),
            });
        }
        let mut options = spec.options.clone();
        if let Some(arch) = &spec.arch {
            options.push(format!("--gpu-architecture={arch}"));
        }
        let opts =
            cudarc::nvrtc::CompileOptions { options, name: Some(spec.program_name.clone()), ..Default::default() };
        let ptx = cudarc::nvrtc::compile_ptx_with_opts(&spec.source, opts).map_err(|error| match error {
            cudarc::nvrtc::CompileError::CompileError { log, .. } => {
                CompileError::Rejected { program: spec.program_name.clone(), log: log.to_string_lossy().into_owned() }
            }
            other => CompileError::Backend(other.to_string()),
        })?;
        let text = ptx.to_src();
        for entry in &spec.entry_points {
            if !text.contains(&format!(".entry {entry}")) {
                return Err(CompileError::Rejected {
                    program: spec.program_name.clone(),
                    log: format!("entry point `{entry}` is not in the PTX (is it `extern \"C\"`?)"),
                });
            }
        }
        Ok(Bytes::from(text))
    }
}
