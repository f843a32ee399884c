//! Issue #16, items 3 and 4: the default backend never persists a test double's output, NVRTC's
//! absence is a typed, observable reason, and a warm process never loads NVRTC.

mod support;

use std::fs;
use std::path::PathBuf;

use runtime_cache::{
    Backend, CacheOptions, CompileError, Engine, EngineError, Event, KernelCompiler, KernelKey, KernelOrigin,
    KernelSpec, NVRTC_LIBRARY_ENV, NvrtcCompiler, RuntimeCache, RuntimeSettings,
};

fn spec() -> KernelSpec {
    KernelSpec::new("k.cu", "extern \"C\" __global__ void k(float* x) { x[0] = 2.5f; }", "k")
}

/// Seen failing before the fix: `Backend::Auto` without NVRTC picked the synthetic compiler and
/// persisted 4 096 fake bytes as "compiled".
#[test]
#[cfg_attr(
    nvrtc_system_wide,
    ignore = "libnvrtc.so.12 is installed system-wide: no child process can be made to miss it"
)]
fn auto_without_nvrtc_has_no_compiler_says_why_and_persists_nothing() {
    const TEST: &str = "auto_without_nvrtc_has_no_compiler_says_why_and_persists_nothing";
    if !support::is_child_of(TEST) {
        support::rerun_as_child(TEST, |command| {
            command.env_remove("LD_LIBRARY_PATH").env_remove(NVRTC_LIBRARY_ENV);
        });
        return;
    }
    support::record_events();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kernels.rtc");
    let engine = Engine::new(RuntimeSettings::with_cache(&path)).expect("Auto never fails the engine");
    let selection = engine.backend();
    assert!(matches!(selection.unavailable, Some(CompileError::LibraryMissing { .. })), "{}", selection.reason);
    assert!(selection.reason.starts_with("no compiler"), "{}", selection.reason);
    let observed = support::all_events()
        .into_iter()
        .any(|event| matches!(event, Event::CompilerUnavailable { error: CompileError::LibraryMissing { .. } }));
    assert!(observed, "no CompilerUnavailable event");
    match engine.kernel(&spec()) {
        Err(EngineError::Compile(CompileError::LibraryMissing { library, hint })) => {
            assert_eq!(library, "libnvrtc.so.12");
            assert!(hint.contains("LD_LIBRARY_PATH") && hint.contains(NVRTC_LIBRARY_ENV), "{hint}");
        }
        other => panic!("expected LibraryMissing, got {other:?}"),
    }
    // The cache itself still works for a compiler of the application's own.
    let custom =
        engine.get_or_compile(KernelKey::from_parts(&[b"nvcc 12.9", b"k.cu"]), || Ok::<_, ()>(b"cubin".to_vec()));
    assert_eq!(custom.unwrap().origin, KernelOrigin::Compiled);
    drop(engine);
    let saved = RuntimeCache::open(&path, CacheOptions::default()).unwrap();
    assert_eq!(saved.len(), 1, "only the application's own artifact is persisted");
    assert_eq!(saved.get(&KernelKey::from_parts(&[b"nvcc 12.9", b"k.cu"])).unwrap(), &b"cubin"[..]);
}

/// A library named by the override variable is used as it is, and is loaded only on the first
/// compile: a file that is no library is a typed error then, never a panic.
#[test]
fn the_override_variable_names_the_library_and_loading_is_lazy_and_typed() {
    const TEST: &str = "the_override_variable_names_the_library_and_loading_is_lazy_and_typed";
    let dir = tempfile::tempdir().unwrap();
    if !support::is_child_of(TEST) {
        let fake = dir.path().join("libnvrtc.so.12");
        fs::write(&fake, b"not a shared library").unwrap();
        support::rerun_as_child(TEST, |command| {
            command.env(NVRTC_LIBRARY_ENV, &fake).env("TEST_FAKE", &fake);
        });
        let missing = dir.path().join("absent.so");
        support::rerun_as_child(TEST, |command| {
            command.env(NVRTC_LIBRARY_ENV, &missing).env("TEST_MISSING", &missing);
        });
        return;
    }
    if let Ok(missing) = std::env::var("TEST_MISSING") {
        match NvrtcCompiler::new() {
            Err(CompileError::LibraryMissing { hint, .. }) => assert!(hint.contains(&missing), "{hint}"),
            other => panic!("expected LibraryMissing, got {other:?}"),
        }
        assert!(matches!(Backend::Nvrtc.select(), Err(CompileError::LibraryMissing { .. })));
        return;
    }
    let fake = PathBuf::from(std::env::var("TEST_FAKE").unwrap());
    let nvrtc = NvrtcCompiler::new().expect("a file named by the variable is found");
    assert_eq!(nvrtc.library_path(), fake);
    assert!(!nvrtc.is_loaded(), "construction loaded the library");
    // No build id in a non-ELF file: the fingerprint falls back to size, time, inode and path.
    assert!(nvrtc.identity().version.contains(&fake.display().to_string()), "{}", nvrtc.identity().version);
    match nvrtc.compile(&spec()) {
        Err(CompileError::LibraryMissing { hint, .. }) => assert!(hint.contains(&fake.display().to_string()), "{hint}"),
        other => panic!("expected LibraryMissing, got {other:?}"),
    }
    // A library replaced after the engine fingerprinted it is refused, not used under old keys.
    let replaced = NvrtcCompiler::new().unwrap();
    fs::write(&fake, b"another build, longer").unwrap();
    match replaced.compile(&spec()) {
        Err(CompileError::Backend(message)) => assert!(message.contains("changed"), "{message}"),
        other => panic!("expected a changed-library error, got {other:?}"),
    }
}

/// Seen failing before the fix: a process whose kernels were all hits still loaded the 106 MB
/// libnvrtc (18 to 26 ms) to ask its version for the key.
#[test]
#[cfg_attr(
    not(nvrtc_present),
    ignore = "libnvrtc.so.12 not found: run .ci/run, or pip install nvidia-cuda-nvrtc-cu12 and add nvidia/cuda_nvrtc/lib to LD_LIBRARY_PATH"
)]
fn a_warm_process_never_loads_nvrtc_and_a_miss_loads_it_once() {
    const TEST: &str = "a_warm_process_never_loads_nvrtc_and_a_miss_loads_it_once";
    if !support::nvrtc_here_or_rerun(TEST) {
        return;
    }
    let mapped = || fs::read_to_string("/proc/self/maps").unwrap().contains("libnvrtc");
    let specs: Vec<KernelSpec> = (0..3)
        .map(|i| {
            KernelSpec::new(
                format!("k{i}.cu"),
                format!("extern \"C\" __global__ void k{i}(float* x) {{ x[0] = {i}.5f; }}"),
                format!("k{i}"),
            )
        })
        .collect();
    if let Ok(path) = std::env::var("TEST_WARM_CACHE") {
        // The child: a fresh process on a warm cache.
        let engine =
            Engine::new(RuntimeSettings { backend: Backend::Nvrtc, ..RuntimeSettings::with_cache(&path) }).unwrap();
        for spec in &specs {
            assert_eq!(engine.kernel(spec).unwrap().origin, KernelOrigin::CacheHit);
        }
        assert!(!mapped(), "a warm process mapped libnvrtc");
        // The first miss loads it.
        let miss = KernelSpec::new("new.cu", "extern \"C\" __global__ void n(float* x) { x[0] = 8.5f; }", "n");
        assert_eq!(engine.kernel(&miss).unwrap().origin, KernelOrigin::Compiled);
        assert!(mapped(), "a miss compiled without loading libnvrtc?");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kernels.rtc");
    let engine =
        Engine::new(RuntimeSettings { backend: Backend::Nvrtc, ..RuntimeSettings::with_cache(&path) }).unwrap();
    for spec in &specs {
        assert_eq!(engine.kernel(spec).unwrap().origin, KernelOrigin::Compiled);
    }
    drop(engine);
    support::rerun_as_child(TEST, |command| {
        command.env("TEST_WARM_CACHE", &path);
    });
}

/// NVRTC's own version agrees with the fingerprint's, which was read from file names only.
#[test]
#[cfg_attr(
    not(nvrtc_present),
    ignore = "libnvrtc.so.12 not found: run .ci/run, or pip install nvidia-cuda-nvrtc-cu12 and add nvidia/cuda_nvrtc/lib to LD_LIBRARY_PATH"
)]
fn the_fingerprint_names_the_loaded_build() {
    const TEST: &str = "the_fingerprint_names_the_loaded_build";
    if !support::nvrtc_here_or_rerun(TEST) {
        return;
    }
    let nvrtc = NvrtcCompiler::new().unwrap();
    let identity = nvrtc.identity().version.clone();
    let (major, minor) = nvrtc.version().expect("nvrtcVersion");
    assert!(identity.starts_with(&format!("{major}.{minor};")), "{identity} vs NVRTC {major}.{minor}");
    assert!(identity.contains("libnvrtc build "), "no GNU build id in {identity}");
}

/// Another build of NVRTC (the PyPI wheel's `.alt` variant, chosen with the override variable)
/// has another identity, so the two never share keys.
#[test]
#[cfg_attr(
    not(nvrtc_alt_present),
    ignore = "needs libnvrtc.alt.so.12 beside libnvrtc.so.12 (the PyPI wheel nvidia-cuda-nvrtc-cu12 has it): run .ci/run"
)]
fn another_nvrtc_build_never_shares_keys() {
    const TEST: &str = "another_nvrtc_build_never_shares_keys";
    if let Ok(first) = std::env::var("TEST_FIRST_KEY") {
        let nvrtc = NvrtcCompiler::new().unwrap();
        assert!(nvrtc.library_path().ends_with("libnvrtc.so.12"), "{}", nvrtc.library_path().display());
        assert_ne!(KernelKey::derive(&spec(), nvrtc.identity()).to_hex(), first, "two NVRTC builds share keys");
        return;
    }
    if !support::nvrtc_here_or_rerun(TEST) {
        return;
    }
    let nvrtc = NvrtcCompiler::new().unwrap();
    let first = KernelKey::derive(&spec(), nvrtc.identity());
    let alt = nvrtc.library_path().with_file_name("libnvrtc.alt.so.12");
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("libnvrtc.so.12");
    std::os::unix::fs::symlink(&alt, &link).unwrap();
    support::rerun_as_child(TEST, |command| {
        command.env(NVRTC_LIBRARY_ENV, &link).env("TEST_FIRST_KEY", first.to_hex());
    });
}
