//! [`Engine`]: compiles kernels through its engine-implicit runtime cache.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::bounded;
use crate::cache::{CacheOptions, RuntimeCache};
use crate::compiler::{Backend, BackendSelection, CompileError};
use crate::default_path;
use crate::error::{CacheError, EngineError};
use crate::flight::{Begin, Flights};
use crate::includes;
use crate::key::{KernelKey, KernelSpec, Output};
use crate::observer::{self, Event, Trigger};

/// An engine's settings.
#[derive(Clone, Debug)]
pub struct RuntimeSettings {
    /// Where the engine-implicit runtime cache lives; `None` keeps kernels in memory only.
    /// [`Default`] is [`default_cache_path`](crate::default_cache_path): under
    /// `$XDG_CACHE_HOME`, unless the environment overrides or disables it.
    pub runtime_cache: Option<PathBuf>,
    /// Which compiler to use.
    pub backend: Backend,
    /// How the cache file is read, locked, limited and written. `autosave` is forced on for the
    /// engine-implicit cache.
    pub cache_options: CacheOptions,
}

impl Default for RuntimeSettings {
    /// The default cache path ([`crate::default_cache_path`], which reads the environment:
    /// `RUNTIME_CACHE_DISABLE`, `RUNTIME_CACHE_PATH`, `RUNTIME_CACHE_DIR`, `XDG_CACHE_HOME`,
    /// `HOME`), [`Backend::Auto`], default options.
    fn default() -> Self {
        Self {
            runtime_cache: default_path::default_cache_path().path().map(PathBuf::from),
            backend: Backend::default(),
            cache_options: CacheOptions::default(),
        }
    }
}

impl RuntimeSettings {
    /// Settings with a runtime cache at `path` and everything else default.
    pub fn with_cache(path: impl Into<PathBuf>) -> Self {
        Self { runtime_cache: Some(path.into()), backend: Backend::default(), cache_options: CacheOptions::default() }
    }

    /// Settings that keep kernels in memory only, and everything else default.
    pub fn in_memory() -> Self {
        Self { runtime_cache: None, backend: Backend::default(), cache_options: CacheOptions::default() }
    }
}

/// Where a kernel came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KernelOrigin {
    /// Found in the cache: nothing was compiled.
    CacheHit,
    /// Compiled now by this call (and cached).
    Compiled,
    /// Compiled now by a concurrent call for the same key, whose result this call waited for
    /// (single flight): nothing was compiled twice.
    Awaited,
}

/// A compiled kernel: PTX text or a CUBIN, per its spec's [`Output`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kernel {
    /// Its cache key.
    pub key: KernelKey,
    /// Whether it was a cache hit.
    pub origin: KernelOrigin,
    output: Output,
    artifact: Bytes,
}

impl Kernel {
    /// A kernel from its parts (for tests and for artifacts obtained elsewhere).
    pub fn new(key: KernelKey, origin: KernelOrigin, output: Output, artifact: Bytes) -> Self {
        Self { key, origin, output, artifact }
    }

    /// The PTX text, for a PTX kernel ([`Output::Ptx`]); `None` for a CUBIN (or bytes that are
    /// not text, which a PTX compile never returns).
    pub fn ptx(&self) -> Option<&str> {
        match self.output {
            Output::Ptx => std::str::from_utf8(&self.artifact).ok(),
            Output::Cubin => None,
        }
    }

    /// The CUBIN, for a CUBIN kernel ([`Output::Cubin`]).
    pub fn cubin(&self) -> Option<&[u8]> {
        (self.output == Output::Cubin).then_some(&self.artifact[..])
    }

    /// What the artifact is.
    pub fn output(&self) -> Output {
        self.output
    }

    /// The artifact's bytes (zero-copy: a slice of the loaded cache file on a hit).
    pub fn bytes(&self) -> &Bytes {
        &self.artifact
    }

    /// The artifact as cudarc's module image, for `CudaContext::load_module`: PTX source for a
    /// PTX kernel, the binary for a CUBIN.
    #[cfg(feature = "cudarc")]
    pub fn to_cudarc_ptx(&self) -> cudarc::nvrtc::Ptx {
        match self.ptx() {
            Some(ptx) => cudarc::nvrtc::Ptx::from_src(ptx),
            None => cudarc::nvrtc::Ptx::from_binary(self.artifact.to_vec()),
        }
    }
}

#[cfg(feature = "cudarc")]
impl From<&Kernel> for cudarc::nvrtc::Ptx {
    fn from(kernel: &Kernel) -> Self {
        kernel.to_cudarc_ptx()
    }
}

#[cfg(feature = "cudarc")]
impl From<Kernel> for cudarc::nvrtc::Ptx {
    fn from(kernel: Kernel) -> Self {
        kernel.to_cudarc_ptx()
    }
}

/// An artifact of [`Engine::get_or_compile`]: the bytes the closure produced (now or in an earlier
/// run).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedArtifact {
    /// Its key.
    pub key: KernelKey,
    /// Whether it was a cache hit.
    pub origin: KernelOrigin,
    /// The bytes.
    pub bytes: Bytes,
}

/// An engine's counters since it was built (each [`Event::KernelServed`] also reports one call).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Calls served from the cache.
    pub hits: u64,
    /// Calls that missed the cache (each compiled, or waited for a concurrent compile).
    pub misses: u64,
    /// Compiles run (successful or not).
    pub compiles: u64,
    /// Misses served by another call's compile of the same key (single flight).
    pub awaited: u64,
    /// Compiles that failed.
    pub failed: u64,
    /// Kernels compiled but not cached (see [`Event::NotCached`]).
    pub not_cached: u64,
    /// Total time spent compiling.
    pub compile_time: Duration,
}

#[derive(Debug, Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    compiles: AtomicU64,
    awaited: AtomicU64,
    failed: AtomicU64,
    not_cached: AtomicU64,
    compile_nanos: AtomicU64,
}

/// Compiles kernels, caching them in an *engine-implicit* [`RuntimeCache`]: the cache belongs to
/// the engine (a term from TensorRT, whose engines own their runtime cache the same way), so
/// there is no separate cache object to manage, and it autosaves exactly once: when the engine
/// (and so the cache) is dropped, when its settings move the cache to another path, or, if it is
/// still alive, when the process exits.
///
/// `Engine` is `Send + Sync`: share it as `Arc<Engine>`. Concurrent misses of one key compile it
/// once (the other callers wait for that compile: [`KernelOrigin::Awaited`]).
#[derive(Debug)]
pub struct Engine {
    settings: RuntimeSettings,
    selection: BackendSelection,
    cache: Option<RuntimeCache>,
    /// Why the cache the settings name could not be used (the engine then runs cold).
    unavailable: Option<CacheError>,
    /// Kernels of an engine without a (usable) runtime cache.
    memory: Mutex<HashMap<KernelKey, Bytes>>,
    flights: Flights,
    counters: Counters,
}

impl Engine {
    /// Resolves the backend and opens the runtime cache. Only the backend can fail
    /// ([`Backend::Nvrtc`] without NVRTC): a cache that cannot be used (untrusted, unreadable, a
    /// symlink, of another format version, ...) makes the engine run cold, with kernels in memory
    /// only, reporting why through [`Event::CacheUnavailable`], the log and
    /// [`cache_unavailable`](Self::cache_unavailable); that path is then neither read again nor
    /// written, and no exit hook is registered for it. Loads no compiler library.
    pub fn new(settings: RuntimeSettings) -> Result<Self, EngineError> {
        let selection = settings.backend.select()?;
        report_selection(&selection);
        let (cache, unavailable) = open_engine_cache(&settings, &selection);
        Ok(Self {
            settings,
            selection,
            cache,
            unavailable,
            memory: Mutex::default(),
            flights: Flights::default(),
            counters: Counters::default(),
        })
    }

    /// The kernel for `spec`: from the cache if present (nothing is compiled, no compiler library
    /// is loaded), else compiled and cached. The key covers the header files the source includes
    /// (see [`KernelKey::derive`]); if one changes while the kernel compiles, or the include scan
    /// hits a bound, the kernel is returned but not cached ([`Event::NotCached`]).
    pub fn kernel(&self, spec: &KernelSpec) -> Result<Kernel, EngineError> {
        if let Some(error) = &self.selection.unavailable {
            return Err(error.clone().into());
        }
        let compiler = self.selection.compiler.clone();
        let scan = includes::scan(spec);
        let key = KernelKey::derive_with(spec, compiler.identity(), &scan.digest);
        if scan.complete
            && let Some(artifact) = self.lookup(&key)
            && readable_as(spec.output, &artifact)
        {
            self.served(key, &spec.program_name, KernelOrigin::CacheHit, None);
            return Ok(Kernel::new(key, KernelOrigin::CacheHit, spec.output, artifact));
        }
        self.counters.misses.fetch_add(1, Ordering::Relaxed);
        loop {
            let landing = match self.flights.begin(key) {
                Begin::Lead(landing) => landing,
                Begin::Awaited(Ok(artifact)) => {
                    self.counters.awaited.fetch_add(1, Ordering::Relaxed);
                    self.served(key, &spec.program_name, KernelOrigin::Awaited, None);
                    return Ok(Kernel::new(key, KernelOrigin::Awaited, spec.output, artifact));
                }
                Begin::Awaited(Err(Some(error))) => return Err(error.into()),
                // The leader could not share its outcome: try again (perhaps as the leader).
                Begin::Awaited(Err(None)) => continue,
            };
            // A flight that landed just before this one began may have cached it.
            if scan.complete
                && let Some(artifact) = self.lookup(&key)
                && readable_as(spec.output, &artifact)
            {
                landing.land(Ok(artifact.clone()));
                self.counters.misses.fetch_sub(1, Ordering::Relaxed);
                self.served(key, &spec.program_name, KernelOrigin::CacheHit, None);
                return Ok(Kernel::new(key, KernelOrigin::CacheHit, spec.output, artifact));
            }
            let started = Instant::now();
            let compiled = compiler.compile(spec).and_then(|artifact| match readable_as(spec.output, &artifact) {
                true => Ok(artifact),
                false => {
                    Err(CompileError::Backend(format!("{} returned PTX that is not text", compiler.identity().name)))
                }
            });
            let took = started.elapsed();
            self.count_compile(took, compiled.is_ok());
            let artifact = match compiled {
                Ok(artifact) => artifact,
                Err(error) => {
                    landing.land(Err(Some(error.clone())));
                    return Err(self.failed(key, &spec.program_name, error));
                }
            };
            let again = includes::scan(spec);
            if !scan.complete || again.digest != scan.digest {
                let reason = if scan.complete {
                    "an included header changed while it compiled"
                } else {
                    "the include scan hit a bound (see the includes rules): its key might not cover every header"
                };
                self.not_cached(key, &spec.program_name, reason);
            } else {
                self.store(key, artifact.clone(), true);
            }
            landing.land(Ok(artifact.clone()));
            self.served(key, &spec.program_name, KernelOrigin::Compiled, Some(took));
            return Ok(Kernel::new(key, KernelOrigin::Compiled, spec.output, artifact));
        }
    }

    /// The artifact cached under `key`, or the one `compile` makes now (then cached): the cache
    /// for any compiler (nvcc in a subprocess, a JIT of your own, ...). `key` must cover
    /// everything that decides the artifact ([`KernelKey::from_parts`]). Concurrent calls with one
    /// key run `compile` once; if it fails (or panics), each waiting call runs its own.
    pub fn get_or_compile<E>(
        &self,
        key: KernelKey,
        compile: impl FnOnce() -> Result<Vec<u8>, E>,
    ) -> Result<CachedArtifact, E> {
        if let Some(bytes) = self.lookup(&key) {
            self.served(key, "", KernelOrigin::CacheHit, None);
            return Ok(CachedArtifact { key, origin: KernelOrigin::CacheHit, bytes });
        }
        self.counters.misses.fetch_add(1, Ordering::Relaxed);
        loop {
            let landing = match self.flights.begin(key) {
                Begin::Lead(landing) => landing,
                Begin::Awaited(Ok(bytes)) => {
                    self.counters.awaited.fetch_add(1, Ordering::Relaxed);
                    self.served(key, "", KernelOrigin::Awaited, None);
                    return Ok(CachedArtifact { key, origin: KernelOrigin::Awaited, bytes });
                }
                // The leader failed with an error of its own: run ours.
                Begin::Awaited(Err(_)) => continue,
            };
            if let Some(bytes) = self.lookup(&key) {
                landing.land(Ok(bytes.clone()));
                self.counters.misses.fetch_sub(1, Ordering::Relaxed);
                self.served(key, "", KernelOrigin::CacheHit, None);
                return Ok(CachedArtifact { key, origin: KernelOrigin::CacheHit, bytes });
            }
            let started = Instant::now();
            let compiled = compile();
            let took = started.elapsed();
            self.count_compile(took, compiled.is_ok());
            return match compiled {
                Ok(bytes) => {
                    let bytes = Bytes::from(bytes);
                    self.store(key, bytes.clone(), false);
                    landing.land(Ok(bytes.clone()));
                    self.served(key, "", KernelOrigin::Compiled, Some(took));
                    Ok(CachedArtifact { key, origin: KernelOrigin::Compiled, bytes })
                }
                Err(error) => {
                    landing.land(Err(None));
                    observer::emit(|| Event::CompileFailed {
                        key,
                        program: String::new(),
                        error: "the get_or_compile closure returned an error".into(),
                    });
                    Err(error)
                }
            };
        }
    }

    fn lookup(&self, key: &KernelKey) -> Option<Bytes> {
        match &self.cache {
            Some(cache) => cache.get(key),
            None => bounded::lock(&self.memory).get(key).cloned(),
        }
    }

    fn store(&self, key: KernelKey, artifact: Bytes, ours: bool) {
        match &self.cache {
            Some(cache) if ours => cache.insert_compiled(key, artifact, self.selection.compiler.identity()),
            Some(cache) => cache.insert(key, artifact),
            None => {
                bounded::lock(&self.memory).insert(key, artifact);
            }
        }
    }

    fn count_compile(&self, took: Duration, ok: bool) {
        self.counters.compiles.fetch_add(1, Ordering::Relaxed);
        self.counters.compile_nanos.fetch_add(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
        if !ok {
            self.counters.failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn served(&self, key: KernelKey, program: &str, origin: KernelOrigin, compile_time: Option<Duration>) {
        if origin == KernelOrigin::CacheHit {
            self.counters.hits.fetch_add(1, Ordering::Relaxed);
        }
        observer::emit(|| Event::KernelServed { key, program: program.to_owned(), origin, compile_time });
    }

    fn failed(&self, key: KernelKey, program: &str, error: CompileError) -> EngineError {
        observer::emit(|| Event::CompileFailed { key, program: program.to_owned(), error: error.to_string() });
        error.into()
    }

    fn not_cached(&self, key: KernelKey, program: &str, reason: &str) {
        self.counters.not_cached.fetch_add(1, Ordering::Relaxed);
        log::warn!(target: "runtime_cache", "{program} compiled but not cached: {reason}");
        observer::emit(|| Event::NotCached { key, program: program.to_owned(), reason: reason.to_owned() });
    }

    /// Hit, miss and compile counters since the engine was built.
    pub fn stats(&self) -> EngineStats {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        EngineStats {
            hits: load(&self.counters.hits),
            misses: load(&self.counters.misses),
            compiles: load(&self.counters.compiles),
            awaited: load(&self.counters.awaited),
            failed: load(&self.counters.failed),
            not_cached: load(&self.counters.not_cached),
            compile_time: Duration::from_nanos(load(&self.counters.compile_nanos)),
        }
    }

    /// Changes the settings. If the cache path or its options change, the new cache is opened
    /// first, then the old one saves exactly once, with trigger `swap`, and is closed: it does not
    /// save again at drop or exit. A new cache that cannot be used makes the engine run cold, as
    /// in [`new`](Self::new). Only a backend that cannot be found is an error (nothing changes).
    pub fn set_settings(&mut self, settings: RuntimeSettings) -> Result<(), EngineError> {
        let selection = if settings.backend != self.settings.backend { Some(settings.backend.select()?) } else { None };
        let effective = selection.as_ref().unwrap_or(&self.selection);
        if settings.runtime_cache != self.settings.runtime_cache
            || settings.cache_options != self.settings.cache_options
        {
            let (new_cache, unavailable) = open_engine_cache(&settings, effective);
            self.unavailable = unavailable;
            if let Some(old) = std::mem::replace(&mut self.cache, new_cache) {
                old.finish(Trigger::Swap);
            }
        } else if let (Some(cache), Some(selection)) = (&self.cache, &selection)
            && selection.unavailable.is_none()
        {
            cache.use_compiler(selection.compiler.identity());
        }
        if let Some(selection) = selection {
            report_selection(&selection);
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

    /// The engine-implicit runtime cache, if the settings name one (for `save`, `remove`,
    /// `clear`, `entries`).
    pub fn runtime_cache(&self) -> Option<&RuntimeCache> {
        self.cache.as_ref()
    }
}

/// Whether a cached or compiled artifact can be served as `output` (PTX must be text).
fn readable_as(output: Output, artifact: &Bytes) -> bool {
    output == Output::Cubin || std::str::from_utf8(artifact).is_ok()
}

fn report_selection(selection: &BackendSelection) {
    observer::emit(|| Event::BackendSelected { reason: selection.reason.clone() });
    log::info!(target: "runtime_cache", "backend {}", selection.reason);
    if let Some(error) = &selection.unavailable {
        observer::emit(|| Event::CompilerUnavailable { error: error.clone() });
    }
}

/// Opens the engine-implicit cache the settings name, or says why it cannot be used (reported to
/// the log and the observer here, once).
fn open_engine_cache(
    settings: &RuntimeSettings,
    selection: &BackendSelection,
) -> (Option<RuntimeCache>, Option<CacheError>) {
    let Some(path) = &settings.runtime_cache else { return (None, None) };
    let options = CacheOptions { autosave: true, ..settings.cache_options.clone() };
    match RuntimeCache::open(path, options) {
        Ok(cache) => {
            if selection.unavailable.is_none() {
                cache.use_compiler(selection.compiler.identity());
            }
            (Some(cache), None)
        }
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
