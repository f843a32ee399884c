//! NVRTC end to end: a real CUDA kernel compiled to PTX through an [`Engine`], cached, saved, and
//! reloaded by a fresh engine (and by a fresh process) without compiling again; a syntax error is
//! a typed `Rejected` error carrying NVRTC's log; `Backend::Auto` picks NVRTC when it is there;
//! and with the library hidden, a typed `LibraryMissing` error (and `Backend::Auto` has no
//! compiler, never the test double).
//!
//! Needs `libnvrtc.so.12` (build.rs sets `nvrtc_present`): run `.ci/run`, or
//! `pip install --target .nvrtc nvidia-cuda-nvrtc-cu12==12.9.86` in the workspace root. A test
//! process started without the library on `LD_LIBRARY_PATH` re-runs the test in a child process
//! with build.rs's folder added.

mod support;

use std::fs;
use std::process::Command;

use runtime_cache::{
    Backend, CompileError, Engine, EngineError, KernelCompiler, KernelOrigin, KernelSpec, NvrtcCompiler,
    RuntimeSettings, nvrtc_available,
};

const SAXPY: &str = r#"
extern "C" __global__ void saxpy(float a, const float *x, float *y, unsigned int n) {
    unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        y[i] = a * x[i] + y[i];
    }
}
"#;

fn saxpy() -> KernelSpec {
    KernelSpec::new("saxpy.cu", SAXPY, "saxpy").with_arch("compute_80")
}

fn nvrtc_settings(path: &std::path::Path) -> RuntimeSettings {
    RuntimeSettings { backend: Backend::Nvrtc, ..RuntimeSettings::with_cache(path) }
}

use support::nvrtc_here_or_rerun;

#[test]
#[cfg_attr(
    not(nvrtc_present),
    ignore = "libnvrtc.so.12 not found: run .ci/run, or pip install nvidia-cuda-nvrtc-cu12 and add nvidia/cuda_nvrtc/lib to LD_LIBRARY_PATH"
)]
fn a_real_kernel_compiles_to_ptx_is_saved_and_reloads_without_compiling() {
    const TEST: &str = "a_real_kernel_compiles_to_ptx_is_saved_and_reloads_without_compiling";
    if !nvrtc_here_or_rerun(TEST) {
        return;
    }
    if let Ok(path) = std::env::var("RUNTIME_CACHE_TEST_RELOAD") {
        // The child half of the cross-process check below: a fresh process finds the kernel.
        let engine = Engine::new(nvrtc_settings(path.as_ref())).expect("engine in a fresh process");
        let kernel = engine.kernel(&saxpy()).expect("kernel");
        assert_eq!(kernel.origin, KernelOrigin::CacheHit, "a fresh process compiled again");
        assert_eq!(kernel.bytes(), &fs::read(format!("{path}.expected-ptx")).unwrap());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kernels.rtk");

    let engine = Engine::new(nvrtc_settings(&path)).expect("engine with NVRTC");
    assert_eq!(engine.backend().compiler.identity().name, "nvrtc");
    let compiled = engine.kernel(&saxpy()).expect("saxpy compiles");
    assert_eq!(compiled.origin, KernelOrigin::Compiled);
    let ptx = compiled.ptx().expect("PTX is text");
    assert!(ptx.contains(".entry saxpy"), "no saxpy entry in:\n{ptx}");
    assert!(ptx.contains(".target sm_80"), "not compiled for compute_80:\n{ptx}");
    assert!(ptx.contains("fma.rn.f32") || ptx.contains("mul.f32"), "no arithmetic in:\n{ptx}");
    assert_eq!(engine.kernel(&saxpy()).unwrap().origin, KernelOrigin::CacheHit);
    drop(engine); // saves
    assert!(path.exists());

    let engine = Engine::new(nvrtc_settings(&path)).expect("second engine");
    let reloaded = engine.kernel(&saxpy()).expect("kernel from the cache");
    assert_eq!(reloaded.origin, KernelOrigin::CacheHit, "the second engine compiled again");
    assert_eq!(reloaded.bytes(), compiled.bytes(), "the PTX changed on its way through the file");
    assert_eq!(reloaded.key, compiled.key);
    drop(engine);

    // A fresh process: the key is stable across processes and nothing is written by a clean run.
    let saved = fs::read(&path).unwrap();
    fs::write(format!("{}.expected-ptx", path.display()), compiled.bytes()).unwrap();
    support::rerun_as_child(TEST, |command| {
        command.env("RUNTIME_CACHE_TEST_RELOAD", &path);
    });
    assert_eq!(fs::read(&path).unwrap(), saved, "a clean engine rewrote the file");
}

#[test]
#[cfg_attr(
    not(nvrtc_present),
    ignore = "libnvrtc.so.12 not found: run .ci/run, or pip install nvidia-cuda-nvrtc-cu12 and add nvidia/cuda_nvrtc/lib to LD_LIBRARY_PATH"
)]
fn a_syntax_error_is_rejected_with_nvrtcs_log_and_nothing_is_cached() {
    if !nvrtc_here_or_rerun("a_syntax_error_is_rejected_with_nvrtcs_log_and_nothing_is_cached") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kernels.rtk");
    let engine = Engine::new(nvrtc_settings(&path)).unwrap();
    let broken = KernelSpec::new("broken.cu", "extern \"C\" __global__ void broken() { int x = ; }", "broken");
    match engine.kernel(&broken) {
        Err(EngineError::Compile(CompileError::Rejected { program, log })) => {
            assert_eq!(program, "broken.cu");
            assert!(log.contains("broken.cu") && log.contains("error"), "log without the diagnostic:\n{log}");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    // An entry point missing from the PTX is rejected too (here: not `extern "C"`, so mangled).
    let mangled = KernelSpec::new("mangled.cu", "__global__ void mangled() {}", "mangled");
    assert!(matches!(engine.kernel(&mangled), Err(EngineError::Compile(CompileError::Rejected { .. }))));
    assert!(engine.runtime_cache().unwrap().is_empty());
    drop(engine);
    assert!(!path.exists(), "failed compiles cached something");
}

#[test]
#[cfg_attr(
    not(nvrtc_present),
    ignore = "libnvrtc.so.12 not found: run .ci/run, or pip install nvidia-cuda-nvrtc-cu12 and add nvidia/cuda_nvrtc/lib to LD_LIBRARY_PATH"
)]
fn auto_chooses_nvrtc_when_it_loads() {
    if !nvrtc_here_or_rerun("auto_chooses_nvrtc_when_it_loads") {
        return;
    }
    let selection = Backend::Auto.select().expect("auto never fails");
    assert_eq!(selection.compiler.identity().name, "nvrtc", "{}", selection.reason);
    assert!(selection.reason.starts_with("nvrtc"), "{}", selection.reason);
    let nvrtc = NvrtcCompiler::new().unwrap();
    let version = &nvrtc.identity().version;
    assert!(version.starts_with("12."), "NVRTC version {version}");
}

#[test]
#[cfg_attr(
    nvrtc_system_wide,
    ignore = "libnvrtc.so.12 is installed system-wide: no child process can be made to miss it"
)]
fn without_the_library_nvrtc_is_a_typed_error_not_a_panic() {
    const TEST: &str = "without_the_library_nvrtc_is_a_typed_error_not_a_panic";
    if !support::is_child_of(TEST) {
        support::rerun_as_child(TEST, |command: &mut Command| {
            command.env_remove("LD_LIBRARY_PATH");
        });
        return;
    }
    // The child half: LD_LIBRARY_PATH is unset, so NVRTC cannot load.
    assert!(!nvrtc_available());
    match NvrtcCompiler::new() {
        Err(CompileError::LibraryMissing { library, hint }) => {
            assert_eq!(library, "libnvrtc.so.12");
            assert!(hint.contains("LD_LIBRARY_PATH"), "{hint}");
        }
        other => panic!("expected LibraryMissing, got {other:?}"),
    }
    assert!(matches!(Backend::Nvrtc.select(), Err(CompileError::LibraryMissing { .. })));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kernels.rtk");
    let baseline = runtime_cache::exit_registry_len();
    match Engine::new(nvrtc_settings(&path)) {
        Err(EngineError::Compile(CompileError::LibraryMissing { .. })) => {}
        other => panic!("expected LibraryMissing, got {other:?}"),
    }
    assert_eq!(runtime_cache::exit_registry_len(), baseline, "a failed engine registered an exit hook");
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0, "a failed engine wrote something");
    // Auto never falls back to the test double: no compiler, with the typed reason.
    let selection = Backend::Auto.select().unwrap();
    assert_ne!(selection.compiler.identity().name, "synthetic");
    assert!(matches!(selection.unavailable, Some(CompileError::LibraryMissing { .. })), "{}", selection.reason);
    assert!(selection.reason.contains("libnvrtc.so.12"), "{}", selection.reason);
}

/// A kernel without parameters is `.entry k()` in the PTX: its entry point must still be found
/// (found missing by the issue #16 work, in a fresh application outside the workspace).
#[test]
#[cfg_attr(
    not(nvrtc_present),
    ignore = "libnvrtc.so.12 not found: run .ci/run, or pip install nvidia-cuda-nvrtc-cu12 and add nvidia/cuda_nvrtc/lib to LD_LIBRARY_PATH"
)]
fn entry_points_are_found_with_and_without_parameters() {
    if !nvrtc_here_or_rerun("entry_points_are_found_with_and_without_parameters") {
        return;
    }
    let nvrtc = NvrtcCompiler::new().unwrap();
    let source = "extern \"C\" __global__ void k() {}\nextern \"C\" __global__ void kk(int *x) { *x = 1; }\n";
    let spec = KernelSpec::new("k.cu", source, "k").with_entry_point("kk");
    nvrtc.compile(&spec).expect("both entry points are in the PTX");
    // A prefix of an entry point is not an entry point.
    let prefix = KernelSpec::new("k.cu", "extern \"C\" __global__ void kernel() {}", "kern");
    assert!(matches!(nvrtc.compile(&prefix), Err(CompileError::Rejected { .. })));
}
