//! CUDA C++ to PTX or CUBIN through NVRTC, loaded lazily from the exact file its identity
//! fingerprints.
//!
//! [`NvrtcCompiler::new`] only finds and fingerprints `libnvrtc` (see the `locate` module): a
//! process whose kernels are all cache hits never loads the library. The first compile loads it
//! with `dlopen` of that path (not of a name, so the loader cannot pick another copy), after
//! checking that the file still has the fingerprint the keys were derived from.

use std::path::Path;
use std::sync::OnceLock;

use bytes::Bytes;

use super::locate::{self, Fingerprint, Located};
use super::{CompileError, KernelCompiler};
use crate::key::{CompilerIdentity, KernelSpec, Output};
use crate::sys::nvrtc::{NvrtcFailure, NvrtcLibrary, NvrtcOutput};

/// The library name reported when none is found.
const LIBRARY: &str = "libnvrtc.so.12";

/// Compiles CUDA C++ with NVRTC: PTX for [`Output::Ptx`], a CUBIN for [`Output::Cubin`].
#[derive(Debug)]
pub struct NvrtcCompiler {
    located: Located,
    library: OnceLock<Result<NvrtcLibrary, CompileError>>,
}

impl NvrtcCompiler {
    /// Finds libnvrtc (see [`crate::NVRTC_LIBRARY_ENV`] and the search order in the crate docs)
    /// and fingerprints its build, without loading it; or says where it looked.
    pub fn new() -> Result<Self, CompileError> {
        let located = locate::locate().map_err(|hint| CompileError::LibraryMissing { library: LIBRARY, hint })?;
        Ok(Self { located, library: OnceLock::new() })
    }

    /// The library file this compiler loads (on its first compile).
    pub fn library_path(&self) -> &Path {
        &self.located.path
    }

    /// Whether the library has been loaded (by a compile, or by [`version`](Self::version)).
    pub fn is_loaded(&self) -> bool {
        self.library.get().is_some_and(Result::is_ok)
    }

    /// NVRTC's own `(major, minor)` version, loading the library if it is not loaded yet.
    pub fn version(&self) -> Result<(i32, i32), CompileError> {
        self.loaded()?.version().ok_or_else(|| CompileError::Backend("nvrtcVersion failed".into()))
    }

    /// The library, loaded on first use from the located path, if it still is the file that was
    /// fingerprinted.
    fn loaded(&self) -> Result<&NvrtcLibrary, CompileError> {
        let loaded = self.library.get_or_init(|| {
            let path = &self.located.path;
            match Fingerprint::of(path) {
                Ok(now) if now == self.located.library => {}
                Ok(_) => {
                    return Err(CompileError::Backend(format!(
                        "{} changed since this engine fingerprinted it: keys would name another build; \
                         create a new engine",
                        path.display()
                    )));
                }
                Err(error) => {
                    return Err(CompileError::LibraryMissing {
                        library: LIBRARY,
                        hint: format!("{}: {error}", path.display()),
                    });
                }
            }
            log::debug!(target: "runtime_cache", "loading {}", path.display());
            NvrtcLibrary::open(path).map_err(|error| CompileError::LibraryMissing {
                library: LIBRARY,
                hint: format!("{}: {error}", path.display()),
            })
        });
        loaded.as_ref().map_err(Clone::clone)
    }
}

impl KernelCompiler for NvrtcCompiler {
    fn identity(&self) -> &CompilerIdentity {
        &self.located.identity
    }

    fn compile(&self, spec: &KernelSpec) -> Result<Bytes, CompileError> {
        let has_nul = |text: &str| text.contains('\0');
        if has_nul(&spec.source)
            || has_nul(&spec.program_name)
            || spec.options.iter().any(|option| has_nul(option))
            || spec.headers.iter().any(|(name, text)| has_nul(name) || has_nul(text))
            || spec.arch.as_deref().is_some_and(has_nul)
        {
            return Err(CompileError::Rejected {
                program: spec.program_name.replace('\0', "\\0"),
                log: "the source, program name, a header or an option contains a NUL byte".into(),
            });
        }
        let library = self.loaded()?;
        let output = match spec.output {
            Output::Ptx => NvrtcOutput::Ptx,
            Output::Cubin => NvrtcOutput::Cubin,
        };
        let artifact = library
            .compile(&spec.source, &spec.program_name, &spec.headers, &spec.compiler_options(), output)
            .map_err(|failure| match failure {
                NvrtcFailure::Rejected { message, log } => CompileError::Rejected {
                    program: spec.program_name.clone(),
                    log: if log.trim().is_empty() { message } else { log },
                },
                NvrtcFailure::Call { step, message } => CompileError::Backend(format!("{step}: {message}")),
            })?;
        for entry in &spec.entry_points {
            let exported = match spec.output {
                // `.visible .entry saxpy(` or, without parameters, `.visible .entry k()`.
                Output::Ptx => std::str::from_utf8(&artifact).is_ok_and(|ptx| {
                    ptx.lines().any(|line| {
                        line.split_whitespace()
                            .skip_while(|word| *word != ".entry")
                            .nth(1)
                            .is_some_and(|name| name.split('(').next() == Some(entry.as_str()))
                    })
                }),
                // The CUBIN's symbol table holds each kernel's name, NUL-terminated.
                Output::Cubin => {
                    let mut needle = entry.as_bytes().to_vec();
                    needle.push(0);
                    artifact.windows(needle.len()).any(|window| window == needle.as_slice())
                }
            };
            if !exported {
                return Err(CompileError::Rejected {
                    program: spec.program_name.clone(),
                    log: format!("entry point `{entry}` is not in the output (is it `extern \"C\"`?)"),
                });
            }
        }
        Ok(Bytes::from(artifact))
    }
}
