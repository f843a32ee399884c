//! Engine start with 32 kernels: cold (every kernel compiled by NVRTC) against warm (every kernel
//! a hit in the cache file a previous engine saved). Needs NVRTC on `LD_LIBRARY_PATH`; without it
//! the group is skipped with a note.
//!
//! Also (issue #12, item 6), with the synthetic compiler: time to a usable engine on a 50 MB
//! cache, with `<path>.lock` free against held by another open file description for the whole
//! run (target: no wait, i.e. the same time; before issue #12 the held case failed after the
//! 2 s lock timeout).

use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use runtime_cache::{
    Backend, CacheOptions, Engine, KernelKey, KernelOrigin, KernelSpec, RuntimeCache, RuntimeSettings,
    SyntheticCompiler, nvrtc_available,
};

const KERNELS: usize = 32;

fn specs() -> Vec<KernelSpec> {
    (0..KERNELS)
        .map(|i| {
            let source = format!(
                "extern \"C\" __global__ void k{i}(float a, const float *x, float *y, unsigned int n) {{\n\
                 unsigned int j = blockIdx.x * blockDim.x + threadIdx.x;\n\
                 if (j < n) {{ y[j] = a * x[j] + y[j] + {i}.0f; }}\n}}\n"
            );
            KernelSpec::new(format!("k{i}.cu"), source, format!("k{i}")).with_arch("compute_80")
        })
        .collect()
}

/// Builds an engine on `path` and gets every kernel; returns the time that took (the engine's
/// drop, which saves, is not timed).
fn start(path: &std::path::Path, specs: &[KernelSpec], expected: KernelOrigin) -> Duration {
    let settings = RuntimeSettings { backend: Backend::Nvrtc, ..RuntimeSettings::with_cache(path) };
    let started = Instant::now();
    let engine = Engine::new(settings).unwrap();
    for spec in specs {
        assert_eq!(engine.kernel(spec).unwrap().origin, expected);
    }
    let elapsed = started.elapsed();
    drop(engine);
    elapsed
}

fn engine_start(c: &mut Criterion) {
    if !nvrtc_available() {
        println!(
            "engine_start: skipped: libnvrtc.so.12 does not load (add .nvrtc/nvidia/cuda_nvrtc/lib to LD_LIBRARY_PATH)"
        );
        return;
    }
    let specs = specs();
    let dir = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("engine_start_32_kernels");
    group.sample_size(10);
    let mut round = 0u64;
    group.bench_function("cold_nvrtc", |b| {
        b.iter_custom(|iterations| {
            (0..iterations)
                .map(|_| {
                    round += 1;
                    start(&dir.path().join(format!("cold-{round}.rtk")), &specs, KernelOrigin::Compiled)
                })
                .sum()
        })
    });
    let warm = dir.path().join("warm.rtk");
    start(&warm, &specs, KernelOrigin::Compiled);
    group.bench_function("warm_cache_hit", |b| {
        b.iter_custom(|iterations| (0..iterations).map(|_| start(&warm, &specs, KernelOrigin::CacheHit)).sum())
    });
    group.finish();
}

/// Time to a usable engine on a 50 MB cache (50 entries of 1 MiB), lock free or held.
fn open_while_locked(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.rtk");
    {
        let cache = RuntimeCache::open(&path, CacheOptions::default()).unwrap();
        for i in 0..50u8 {
            cache.insert(KernelKey([i; 32]), Bytes::from(vec![i; 1 << 20]));
        }
        cache.save().unwrap();
    }
    let settings = RuntimeSettings {
        backend: Backend::Synthetic(SyntheticCompiler::default()),
        ..RuntimeSettings::with_cache(&path)
    };
    let mut group = c.benchmark_group("engine_start_50mb_cache");
    group.sample_size(10);
    let mut run = |name: &str| {
        group.bench_function(name, |b| {
            b.iter(|| {
                let engine = Engine::new(settings.clone()).unwrap();
                assert!(engine.cache_unavailable().is_none());
                assert_eq!(engine.runtime_cache().map(RuntimeCache::len), Some(50));
            })
        });
    };
    run("lock_free");
    let holder = std::fs::File::options().read(true).write(true).open(dir.path().join("big.rtk.lock")).unwrap();
    holder.lock().unwrap();
    run("lock_held_elsewhere");
    drop(holder);
    group.finish();
}

criterion_group!(benches, engine_start, open_while_locked);
criterion_main!(benches);
