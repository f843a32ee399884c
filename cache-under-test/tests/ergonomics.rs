//! Issue #16, item 9: artifacts as `&str` PTX or CUBIN bytes, cudarc's `Ptx` and compile
//! options, and hit/miss/compile-time statistics through the observer and `Engine::stats`.

mod support;

use std::time::Duration;

use runtime_cache::{Backend, Engine, Event, KernelOrigin, KernelSpec, Output, RuntimeSettings, SyntheticCompiler};

fn spec(i: u32) -> KernelSpec {
    KernelSpec::new(format!("k{i}.cu"), format!("extern \"C\" __global__ void k{i}() {{}}"), format!("k{i}"))
}

#[test]
fn hits_misses_and_compile_times_reach_the_observer_and_the_stats() {
    let _serial = support::serial();
    support::record_events();
    let dir = tempfile::tempdir().unwrap();
    let settings = RuntimeSettings {
        backend: Backend::Synthetic(SyntheticCompiler::new(64, Duration::from_millis(20))),
        ..RuntimeSettings::with_cache(dir.path().join("k.rtc"))
    };
    let engine = Engine::new(settings).unwrap();
    // Names no other test of this binary uses (the observer sees every thread's events).
    let stats_spec = |i: u32| KernelSpec { program_name: format!("stats{i}.cu"), ..spec(i) };
    let before = support::all_events().len();
    engine.kernel(&stats_spec(1)).unwrap();
    engine.kernel(&stats_spec(1)).unwrap();
    engine.kernel(&stats_spec(2)).unwrap();
    let served: Vec<(String, KernelOrigin, Option<Duration>)> = support::all_events()[before..]
        .iter()
        .filter_map(|event| match event {
            Event::KernelServed { program, origin, compile_time, .. } if program.starts_with("stats") => {
                Some((program.clone(), *origin, *compile_time))
            }
            _ => None,
        })
        .collect();
    assert_eq!(served.len(), 3);
    assert_eq!((served[0].0.as_str(), served[0].1), ("stats1.cu", KernelOrigin::Compiled));
    assert!(served[0].2.is_some_and(|took| took >= Duration::from_millis(20)), "{:?}", served[0].2);
    assert_eq!((served[1].1, served[1].2), (KernelOrigin::CacheHit, None));
    assert_eq!(served[2].1, KernelOrigin::Compiled);
    let stats = engine.stats();
    assert_eq!((stats.hits, stats.misses, stats.compiles, stats.failed), (1, 2, 2, 0));
    assert!(stats.compile_time >= Duration::from_millis(40), "{stats:?}");
}

#[test]
fn a_ptx_kernel_is_text_and_a_cubin_kernel_is_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let settings = RuntimeSettings {
        backend: Backend::Synthetic(SyntheticCompiler::new(64, Duration::ZERO)),
        ..RuntimeSettings::with_cache(dir.path().join("k.rtc"))
    };
    let engine = Engine::new(settings).unwrap();
    let ptx = engine.kernel(&spec(1)).unwrap();
    assert_eq!(ptx.output(), Output::Ptx);
    let text: &str = ptx.ptx().expect("a PTX kernel is text");
    assert_eq!(text.len(), 64);
    assert!(ptx.cubin().is_none());
    let cubin = engine.kernel(&spec(1).with_cubin("sm_90")).unwrap();
    assert_eq!((cubin.output(), cubin.ptx()), (Output::Cubin, None));
    assert_eq!(cubin.cubin().unwrap().len(), 64);
    assert_ne!(cubin.key, ptx.key);
    // cudarc's module image, for `CudaContext::load_module`.
    assert_eq!(ptx.to_cudarc_ptx().to_src(), text);
    let from: cudarc::nvrtc::Ptx = (&ptx).into();
    assert_eq!(from.to_src(), text);
}

const SAXPY: &str = r#"
#include "defs.cuh"
extern "C" __global__ void saxpy(real a, const real *x, real *y, unsigned int n) {
    unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) { y[i] = a * x[i] + y[i] / a; }
}
"#;

/// cudarc's `CompileOptions` are accepted as they are, and give the very PTX that
/// `cudarc::nvrtc::compile_ptx_with_opts` gives; a CUBIN for `sm_80` is an ELF image.
#[test]
#[cfg_attr(
    not(nvrtc_present),
    ignore = "libnvrtc.so.12 not found: run .ci/run, or pip install nvidia-cuda-nvrtc-cu12 and add nvidia/cuda_nvrtc/lib to LD_LIBRARY_PATH"
)]
fn cudarc_options_give_cudarcs_ptx_and_cubins_are_elf() {
    const TEST: &str = "cudarc_options_give_cudarcs_ptx_and_cubins_are_elf";
    if !support::nvrtc_here_or_rerun(TEST) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let include = dir.path().join("include");
    std::fs::create_dir(&include).unwrap();
    std::fs::write(include.join("defs.cuh"), "typedef float real;\n").unwrap();
    let options = || cudarc::nvrtc::CompileOptions {
        ftz: Some(true),
        prec_div: Some(false),
        maxrregcount: Some(32),
        include_paths: vec![include.display().to_string()],
        arch: Some("compute_80"),
        options: vec!["-lineinfo".into()],
        name: Some("saxpy.cu".into()),
        ..Default::default()
    };
    let engine = Engine::new(RuntimeSettings {
        backend: Backend::Nvrtc,
        ..RuntimeSettings::with_cache(dir.path().join("k.rtc"))
    })
    .unwrap();
    let spec = KernelSpec::new("unnamed.cu", SAXPY, "saxpy").with_cudarc_options(options());
    assert_eq!(spec.program_name, "saxpy.cu");
    let kernel = engine.kernel(&spec).unwrap();
    let theirs = cudarc::nvrtc::compile_ptx_with_opts(SAXPY, options()).expect("cudarc compiles it");
    assert_eq!(kernel.ptx().unwrap(), theirs.to_src(), "the cache's PTX differs from cudarc's for the same options");
    let ptx = kernel.ptx().unwrap();
    assert!(ptx.contains(".target sm_80") && ptx.contains(".loc"), "arch or -lineinfo did not reach NVRTC:\n{ptx}");

    let cubin = engine
        .kernel(&KernelSpec::new("saxpy.cu", SAXPY, "saxpy").with_include_path(&include).with_cubin("sm_80"))
        .unwrap();
    assert_eq!(&cubin.cubin().unwrap()[..4], b"\x7fELF", "not a CUBIN");
    assert_eq!(cubin.origin, KernelOrigin::Compiled);
    drop(engine);
    let engine = Engine::new(RuntimeSettings {
        backend: Backend::Nvrtc,
        ..RuntimeSettings::with_cache(dir.path().join("k.rtc"))
    })
    .unwrap();
    let again = engine
        .kernel(&KernelSpec::new("saxpy.cu", SAXPY, "saxpy").with_include_path(&include).with_cubin("sm_80"))
        .unwrap();
    assert_eq!((again.origin, again.cubin()), (KernelOrigin::CacheHit, cubin.cubin()));
}
