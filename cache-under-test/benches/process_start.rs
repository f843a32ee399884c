//! Issue #16, item 4 and "Measure": whole processes, as a GPU application starts, each a fresh
//! process (this bench binary re-run with `RUNTIME_CACHE_BENCH_ROLE` set), compiling three CUDA
//! kernels (saxpy, vector add, a shared-memory reduction) with NVRTC 12.9:
//!
//! - `bare`: a process that does nothing (the floor every other row pays);
//! - `warm`: an engine on a warm cache file, all three kernels hits (target: at most 1 ms more
//!   than `bare`; no NVRTC load);
//! - `cold`: the same on an empty cache (three compiles, then the save at exit);
//! - `cudarc_every_start`: plain `cudarc::nvrtc::compile_ptx_with_opts` of the three kernels, as
//!   an application without a cache does at every start;
//! - `cold_8_threads` / `cold_1_thread`: 8 threads each getting the three kernels on an empty
//!   cache, against one thread (single flight: 3 compiles either way).
//!
//! Every child checks what it got (hits, compiles) and exits with an error otherwise, so a row
//! cannot pass by measuring the wrong thing. After criterion's rows, an interleaved summary (one
//! process per row, round after round, `RUNTIME_CACHE_BENCH_ROUNDS`, default 21;
//! `RUNTIME_CACHE_BENCH_ONLY=bare,warm` for some rows only) prints each row's
//! median and compile count: on a shared machine, rows measured one after another are not
//! comparable, interleaved ones are. Needs NVRTC on `LD_LIBRARY_PATH`; without it, the
//! group is skipped with a note.
//!
//! `LD_LIBRARY_PATH=$PWD/.nvrtc/nvidia/cuda_nvrtc/lib cargo bench -p runtime-cache --bench process_start`

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use runtime_cache::{Backend, Engine, KernelOrigin, KernelSpec, RuntimeSettings, nvrtc_available};

const ROLE: &str = "RUNTIME_CACHE_BENCH_ROLE";
const CACHE: &str = "RUNTIME_CACHE_BENCH_CACHE";

const SAXPY: &str = r#"
extern "C" __global__ void saxpy(float a, const float *x, float *y, unsigned int n) {
    unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) { y[i] = a * x[i] + y[i]; }
}
"#;

const VECTOR_ADD: &str = r#"
extern "C" __global__ void vector_add(const float *a, const float *b, float *c, unsigned int n) {
    unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) { c[i] = a[i] + b[i]; }
}
"#;

const REDUCE: &str = r#"
extern "C" __global__ void reduce_sum(const float *in, float *out, unsigned int n) {
    extern __shared__ float partial[];
    unsigned int t = threadIdx.x;
    unsigned int i = blockIdx.x * blockDim.x * 2 + t;
    float sum = 0.0f;
    if (i < n) { sum = in[i]; }
    if (i + blockDim.x < n) { sum += in[i + blockDim.x]; }
    partial[t] = sum;
    __syncthreads();
    for (unsigned int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (t < s) { partial[t] += partial[t + s]; }
        __syncthreads();
    }
    if (t == 0) { atomicAdd(out, partial[0]); }
}
"#;

/// The three kernels, as an application would spell them.
fn specs() -> Vec<KernelSpec> {
    [("saxpy.cu", SAXPY, "saxpy"), ("vector_add.cu", VECTOR_ADD, "vector_add"), ("reduce.cu", REDUCE, "reduce_sum")]
        .into_iter()
        .map(|(name, source, entry)| KernelSpec::new(name, source, entry).with_arch("compute_80"))
        .collect()
}

/// A child process's work, per role. Exits non-zero if the outcome is not the expected one.
fn child(role: &str) {
    let cache = || PathBuf::from(std::env::var_os(CACHE).expect("the cache path"));
    let engine = || Engine::new(RuntimeSettings { backend: Backend::Nvrtc, ..RuntimeSettings::with_cache(cache()) });
    match role {
        "bare" => {}
        "warm" | "cold" => {
            let engine = engine().expect("engine");
            let expected = if role == "warm" { KernelOrigin::CacheHit } else { KernelOrigin::Compiled };
            for spec in specs() {
                assert_eq!(engine.kernel(&spec).expect("kernel").origin, expected);
            }
            println!("compiles={}", engine.stats().compiles);
        }
        "cold_8_threads" | "cold_1_thread" => {
            let threads = if role == "cold_8_threads" { 8 } else { 1 };
            let engine = Arc::new(engine().expect("engine"));
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    let engine = engine.clone();
                    std::thread::spawn(move || {
                        specs().iter().for_each(|spec| drop(engine.kernel(spec).expect("kernel")))
                    })
                })
                .collect();
            workers.into_iter().for_each(|worker| worker.join().expect("worker"));
            assert_eq!(engine.stats().compiles, 3, "{:?}", engine.stats());
            println!("compiles={}", engine.stats().compiles);
        }
        "cudarc_every_start" => {
            for spec in specs() {
                let options = cudarc::nvrtc::CompileOptions {
                    arch: Some("compute_80"),
                    name: Some(spec.program_name.clone()),
                    ..Default::default()
                };
                cudarc::nvrtc::compile_ptx_with_opts(&spec.source, options).expect("cudarc compiles");
            }
            println!("compiles=3");
        }
        other => panic!("unknown role {other}"),
    }
}

/// Runs this binary as a child with `role`, on `cache`; returns the wall time of the whole process.
fn run(role: &str, cache: &Path) -> Duration {
    run_counting(role, cache).0
}

/// Like [`run`], also returning the compiles the child reported.
fn run_counting(role: &str, cache: &Path) -> (Duration, u64) {
    let exe = std::env::current_exe().expect("bench binary");
    let started = Instant::now();
    let output = Command::new(exe).env(ROLE, role).env(CACHE, cache).output().expect("spawn");
    let elapsed = started.elapsed();
    assert!(output.status.success(), "the {role} child failed: {}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let compiles = stdout.lines().find_map(|line| line.strip_prefix("compiles=")?.parse().ok()).unwrap_or(0);
    (elapsed, compiles)
}

/// The machine this runs on is shared: rows measured one after another see different loads. So
/// the summary runs the rows interleaved (one process of each, round after round) and reports
/// each row's median and the compiles its processes reported.
fn interleaved_summary(rounds: usize) {
    let dir = tempfile::tempdir().unwrap();
    let warm = dir.path().join("warm.rtc");
    run("cold", &warm);
    let all = ["bare", "warm", "cold", "cudarc_every_start", "cold_1_thread", "cold_8_threads"];
    // `RUNTIME_CACHE_BENCH_ONLY=bare,warm` runs those rows only (many rounds of the cheap ones).
    let only = std::env::var("RUNTIME_CACHE_BENCH_ONLY").unwrap_or_default();
    let roles: Vec<&str> =
        all.into_iter().filter(|role| only.is_empty() || only.split(',').any(|o| o == *role)).collect();
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); roles.len()];
    let mut compiles = vec![0u64; roles.len()];
    for _ in 0..rounds {
        for (index, role) in roles.iter().enumerate() {
            let path = if matches!(*role, "bare" | "warm" | "cudarc_every_start") {
                warm.clone()
            } else {
                let path = dir.path().join(format!("{role}.rtc"));
                let _ = std::fs::remove_file(&path);
                path
            };
            let (took, count) = run_counting(role, &path);
            times[index].push(took);
            compiles[index] = count;
        }
    }
    println!("interleaved, {rounds} rounds: median wall time of a whole process (compiles per process)");
    for (index, role) in roles.iter().enumerate() {
        times[index].sort();
        let median = times[index][times[index].len() / 2];
        println!("  {role:<20} {:>9.3} ms  ({} compiles)", median.as_secs_f64() * 1e3, compiles[index]);
    }
}

fn process_start(c: &mut Criterion) {
    if !nvrtc_available() {
        println!(
            "process_start: skipped: libnvrtc.so.12 not found (add .nvrtc/nvidia/cuda_nvrtc/lib to LD_LIBRARY_PATH)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let warm = dir.path().join("warm.rtc");
    run("cold", &warm);
    let mut group = c.benchmark_group("process_start_3_kernels");
    group.sample_size(20);
    group.bench_function("bare", |b| b.iter_custom(|n| (0..n).map(|_| run("bare", &warm)).sum()));
    group.bench_function("warm", |b| b.iter_custom(|n| (0..n).map(|_| run("warm", &warm)).sum()));
    let cold = |role: &'static str| {
        let path = dir.path().join(format!("{role}.rtc"));
        move |n: u64| -> Duration {
            (0..n)
                .map(|_| {
                    let _ = std::fs::remove_file(&path);
                    run(role, &path)
                })
                .sum()
        }
    };
    group.sample_size(10);
    group.bench_function("cold", |b| b.iter_custom(cold("cold")));
    group.bench_function("cudarc_every_start", |b| {
        b.iter_custom(|n| (0..n).map(|_| run("cudarc_every_start", &warm)).sum())
    });
    group.bench_function("cold_1_thread", |b| b.iter_custom(cold("cold_1_thread")));
    group.bench_function("cold_8_threads", |b| b.iter_custom(cold("cold_8_threads")));
    group.finish();
}

criterion_group!(benches, process_start);

fn main() {
    if let Ok(role) = std::env::var(ROLE) {
        return child(&role);
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
    if nvrtc_available() {
        let rounds = std::env::var("RUNTIME_CACHE_BENCH_ROUNDS").ok().and_then(|n| n.parse().ok()).unwrap_or(21);
        interleaved_summary(rounds);
    }
}
