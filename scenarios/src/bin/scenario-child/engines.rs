//! Building engines and compiling kernels, for the catalog's families and the fuzz cases alike:
//! a failure here is a broken scenario, so each gives up rather than returning it.

use std::path::PathBuf;
use std::time::Duration;

use runtime_cache::{
    Backend, CacheOptions, Durability, Engine, Kernel, KernelOrigin, KernelSpec, RuntimeSettings, SyntheticCompiler,
};

use crate::ending::give_up;

/// Settings for an engine on `cache` with the synthetic `compiler`.
pub fn settings(
    cache: impl Into<PathBuf>,
    compiler: SyntheticCompiler,
    durability: Durability,
    lock_timeout: Duration,
) -> RuntimeSettings {
    RuntimeSettings {
        runtime_cache: Some(cache.into()),
        backend: Backend::Synthetic(compiler),
        cache_options: CacheOptions { durability, lock_timeout, ..CacheOptions::default() },
    }
}

/// `Engine::new`, or gives up.
pub fn new_engine(settings: RuntimeSettings) -> Engine {
    let path = settings.runtime_cache.clone().unwrap_or_default();
    Engine::new(settings).unwrap_or_else(|error| give_up(&format!("Engine::new({}): {error}", path.display())))
}

/// Compiles `spec` on `engine` (a hit or a miss), or gives up.
pub fn compile(engine: &Engine, spec: &KernelSpec) -> KernelOrigin {
    kernel(engine, spec).origin
}

/// `Engine::kernel` (a hit or a miss), or gives up.
pub fn kernel(engine: &Engine, spec: &KernelSpec) -> Kernel {
    engine.kernel(spec).unwrap_or_else(|error| give_up(&format!("compile {}: {error}", spec.program_name)))
}
