//! [`Engine`]: compiles kernels through its engine-implicit runtime cache.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use bytes::Bytes;

use crate::bounded;
use crate::cache::{CacheOptions, RuntimeCache};
use crate::compiler::{Backend, BackendSelection};
use crate::error::{CacheError, EngineError};
use crate::key::{KernelKey, KernelSpec};
use crate::observer::{self, Event, Trigger};

/// An engine's settings.
#[derive(Clone, Debug, Default)]
pub struct RuntimeSettings {
    /// Where the engine-implicit runtime cache lives; `None` keeps kernels in memory only.
    pub runtime_cache: Option<PathBuf>,
    /// Which compiler to use.
    pub backend: Backend,
    /// How the cache file is read, locked and written. `autosave` is forced on for the
    /// engine-implicit cache.
    pub cache_options: CacheOptions,
}

impl RuntimeSettings {
    /// Settings with a runtime cache at `path` and everything else default.
    pub fn with_cache(path: impl Into<PathBuf>) -> Self {
        Self { runtime_cache: Some(path.into()), ..Self::default() }
    }
}

/// Where a kernel came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelOrigin {
    /// Found in the cache: nothing was compiled.
    CacheHit,
    /// Compiled now (and cached).
    Compiled,
}

/// A compiled kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kernel {
    /// Its cache key.
    pub key: KernelKey,
    /// The artifact: PTX text for NVRTC, synthetic bytes for the test double.
    pub artifact: Bytes,
    /// Whether it was a cache hit.
    pub origin: KernelOrigin,
}

/// Compiles kernels, caching them in an engine-implicit [`RuntimeCache`] that autosaves exactly
/// once: when the engine (and so the cache) is dropped, when its settings move the cache to
/// another path, or, if it is still alive, when the process exits.
#[derive(Debug)]
pub struct Engine {
    settings: RuntimeSettings,
    selection: BackendSelection,
    cache: Option<RuntimeCache>,
    /// Why the cache the settings name could not be used (the engine then runs cold).
    unavailable: Option<CacheError>,
    /// Kernels of an engine without a (usable) runtime cache.
    memory: Mutex<HashMap<KernelKey, Bytes>>,
}

impl Engine {
    /// Resolves the backend and opens the runtime cache. Only the backend can fail: a cache that
    /// cannot be used (untrusted, unreadable, a symlink, of another format version, ...) makes
    /// the engine run cold, with kernels in memory only, reporting why through
    /// [`Event::CacheUnavailable`], the log and [`cache_unavailable`](Self::cache_unavailable);
    /// that path is then neither read again nor written, and no exit hook is registered for it.
    pub fn new(settings: RuntimeSettings) -> Result<Self, EngineError> {
        let selection = settings.backend.select()?;
        observer::emit(|| Event::BackendSelected { reason: selection.reason.clone() });
        log::info!(target: "runtime_cache", "backend {}", selection.reason);
        let (cache, unavailable) = open_engine_cache(&settings);
        Ok(Self { settings, selection, cache, unavailable, memory: Mutex::default() })
    }

    /// The kernel for `spec`: from the cache if present (nothing is compiled), else compiled and
    /// cached.
    pub fn kernel(&self, spec: &KernelSpec) -> Result<Kernel, EngineError> {
        let key = KernelKey::derive(spec, self.selection.compiler.identity());
        let cached = match &self.cache {
            Some(cache) => cache.get(&key),
            None => bounded::lock(&self.memory).get(&key).cloned(),
        };
        if let Some(artifact) = cached {
            return Ok(Kernel { key, artifact, origin: KernelOrigin::CacheHit });
        }
        let artifact = self.selection.compiler.compile(spec)?;
        match &self.cache {
            Some(cache) => cache.insert(key, artifact.clone()),
            None => {
                bounded::lock(&self.memory).insert(key, artifact.clone());
            }
        }
        Ok(Kernel { key, artifact, origin: KernelOrigin::Compiled })
    }

    /// Changes the settings. If the cache path or its options change, the new cache is opened
    /// first, then the old one saves exactly once, with trigger `swap`, and is closed: it does not
    /// save again at drop or exit. A new cache that cannot be used makes the engine run cold, as
    /// in [`new`](Self::new). Only a backend that cannot be loaded is an error (nothing changes).
    pub fn set_settings(&mut self, settings: RuntimeSettings) -> Result<(), EngineError> {
        let selection = if settings.backend != self.settings.backend { Some(settings.backend.select()?) } else { None };
        if settings.runtime_cache != self.settings.runtime_cache
            || settings.cache_options != self.settings.cache_options
        {
            let (new_cache, unavailable) = open_engine_cache(&settings);
            self.unavailable = unavailable;
            if let Some(old) = std::mem::replace(&mut self.cache, new_cache) {
                old.finish(Trigger::Swap);
            }
        }
        if let Some(selection) = selection {
            observer::emit(|| Event::BackendSelected { reason: selection.reason.clone() });
            self.selection = selection;
        }
        self.settings = settings;
        Ok(())
    }

    /// The current settings.
    pub fn settings(&self) -> &RuntimeSettings {
        &self.settings
    }

    /// Which backend compiles, and why it was chosen.
    pub fn backend(&self) -> &BackendSelection {
        &self.selection
    }

    /// Why the runtime cache the settings name could not be used, if it could not: the engine
    /// then runs cold with kernels in memory only (see [`Event::CacheUnavailable`]).
    pub fn cache_unavailable(&self) -> Option<&CacheError> {
        self.unavailable.as_ref()
    }

    /// The engine-implicit runtime cache, if the settings name one.
    pub fn runtime_cache(&self) -> Option<&RuntimeCache> {
        self.cache.as_ref()
    }
}

/// Opens the engine-implicit cache the settings name, or says why it cannot be used (reported to
/// the log and the observer here, once).
fn open_engine_cache(settings: &RuntimeSettings) -> (Option<RuntimeCache>, Option<CacheError>) {
    let Some(path) = &settings.runtime_cache else { return (None, None) };
    let options = CacheOptions { autosave: true, ..settings.cache_options.clone() };
    match RuntimeCache::open(path, options) {
        Ok(cache) => (Some(cache), None),
        Err(error) => {
            log::warn!(target: "runtime_cache", "running without the cache {}: {error}", path.display());
            observer::emit(|| Event::CacheUnavailable {
                path: std::path::absolute(path).unwrap_or_else(|_| path.clone()),
                reason: error.unavailable_reason(),
                error: error.to_string(),
            });
            (None, Some(error))
        }
    }
}
