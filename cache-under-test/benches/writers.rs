//! 64 writer processes saving at once to one 50 MB cache (issue #12, item 6: 16 processes on a
//! 50 MB cache used to lose 14 of 16 kernels to lock timeouts, each save rewriting the whole
//! file under the lock). Each round copies the 50 MB file into place (untimed), starts 64 writer
//! processes (this bench binary, re-run with `RUNTIME_CACHE_BENCH_WRITER` set), each opens the
//! cache and reports ready; then all are released together, each inserts one new 64 KiB kernel
//! and saves (default options: `SyncFile`, 2 s lock timeout), writing how long its save took. The
//! criterion row is the wall time of a round, from the release to the last writer's exit. Each
//! round also checks the file: every entry committed is in it. After the rows, one line sums up
//! the rounds: entries lost, median wall time, the slowest save (lock wait plus append) of any
//! writer, and how many saves failed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::Criterion;
use runtime_cache::format::{self, FormatLimits};
use runtime_cache::{CacheOptions, KernelKey, RuntimeCache};

const WRITERS: u64 = 64;
const BASE_ENTRIES: u64 = 800;
const BASE_ARTIFACT: usize = 64 << 10; // 800 x 64 KiB: a 50 MB cache
const NEW_ARTIFACT: usize = 64 << 10;
const WRITER_ENV: &str = "RUNTIME_CACHE_BENCH_WRITER";

fn key(writer: u64, n: u64) -> KernelKey {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&writer.to_le_bytes());
    key[8..16].copy_from_slice(&n.to_le_bytes());
    KernelKey(key)
}

fn artifact(writer: u64, len: usize) -> Bytes {
    Bytes::from((0..len).map(|j| (writer as usize * 13 + j * 7) as u8).collect::<Vec<u8>>())
}

/// A writer process: opens the cache, says it is ready, waits for the go, saves one new kernel,
/// writes its save's duration in nanoseconds (or the error) to `<folder>/result-<index>`.
fn writer(spec: &str) {
    let (index, folder) = spec.split_once(':').expect("index:folder");
    let index: u64 = index.parse().expect("index");
    let folder = PathBuf::from(folder);
    let cache = RuntimeCache::open(folder.join("kernels.rtc"), CacheOptions::default());
    fs::write(folder.join(format!("ready-{index}")), b"").unwrap();
    while !folder.join("go").exists() {
        std::thread::sleep(Duration::from_micros(200));
    }
    let result = match cache {
        Ok(cache) => {
            cache.insert(key(index, 0), artifact(index, NEW_ARTIFACT));
            let start = Instant::now();
            match cache.save() {
                Ok(_) => format!("ok {}", start.elapsed().as_nanos()),
                Err(error) => format!("save failed after {} ns: {error}", start.elapsed().as_nanos()),
            }
        }
        Err(error) => format!("open failed: {error}"),
    };
    fs::write(folder.join(format!("result-{index}")), result).unwrap();
}

/// What one round saw.
struct Round {
    wall: Duration,
    lost: usize,
    slowest_save: Duration,
    failures: Vec<String>,
}

fn round(folder: &Path, base: &Path) -> Round {
    for entry in fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        if path != base {
            fs::remove_file(path).unwrap();
        }
    }
    let cache = folder.join("kernels.rtc");
    fs::copy(base, &cache).unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut children: Vec<Child> = (0..WRITERS)
        .map(|index| {
            Command::new(&exe).env(WRITER_ENV, format!("{index}:{}", folder.display())).spawn().expect("spawn a writer")
        })
        .collect();
    while (0..WRITERS).any(|index| !folder.join(format!("ready-{index}")).exists()) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let start = Instant::now();
    fs::write(folder.join("go"), b"").unwrap();
    for child in &mut children {
        assert!(child.wait().unwrap().success(), "a writer process failed");
    }
    let wall = start.elapsed();
    let mut slowest_save = Duration::ZERO;
    let mut failures = Vec::new();
    let mut committed = Vec::new();
    for index in 0..WRITERS {
        let result = fs::read_to_string(folder.join(format!("result-{index}"))).unwrap();
        match result.strip_prefix("ok ") {
            Some(nanos) => {
                slowest_save = slowest_save.max(Duration::from_nanos(nanos.parse().unwrap()));
                committed.push(key(index, 0));
            }
            None => failures.push(result),
        }
    }
    let file = Bytes::from(fs::read(&cache).unwrap());
    let held: std::collections::HashSet<KernelKey> = format::decode(&file, &FormatLimits::default())
        .expect("the cache decodes")
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    let base_kept = (0..BASE_ENTRIES).all(|n| held.contains(&key(u64::MAX, n)));
    assert!(base_kept, "entries of the 50 MB base were lost");
    let lost = committed.iter().filter(|key| !held.contains(key)).count();
    Round { wall, lost, slowest_save, failures }
}

fn main() {
    if let Ok(spec) = std::env::var(WRITER_ENV) {
        return writer(&spec);
    }
    let dir = tempfile::tempdir_in(std::env::var_os("BENCH_DIR").unwrap_or_else(|| "target".into())).unwrap();
    let base = dir.path().join("base.rtc");
    {
        let cache = RuntimeCache::open(&base, CacheOptions::default()).unwrap();
        for n in 0..BASE_ENTRIES {
            cache.insert(key(u64::MAX, n), artifact(n, BASE_ARTIFACT));
        }
        cache.save().unwrap();
    }
    let mut rounds: Vec<Round> = Vec::new();
    let mut criterion = Criterion::default().sample_size(10).configure_from_args();
    criterion.bench_function("writers/64_on_50MB", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let round = round(dir.path(), &base);
                total += round.wall;
                rounds.push(round);
            }
            total
        })
    });
    criterion.final_summary();
    if rounds.is_empty() {
        return;
    }
    let mut walls: Vec<Duration> = rounds.iter().map(|round| round.wall).collect();
    walls.sort();
    let lost: usize = rounds.iter().map(|round| round.lost).sum();
    let failed: usize = rounds.iter().map(|round| round.failures.len()).sum();
    let slowest = rounds.iter().map(|round| round.slowest_save).max().unwrap_or_default();
    let mut slowest_per_round: Vec<Duration> = rounds.iter().map(|round| round.slowest_save).collect();
    slowest_per_round.sort();
    println!(
        "writers/64_on_50MB: {} rounds, {} of {} committed entries lost, {failed} saves failed; wall median {:.1} ms; \
         slowest save per round median {:.1} ms, worst {:.1} ms; base file {} bytes",
        rounds.len(),
        lost,
        rounds.len() as u64 * WRITERS,
        walls[walls.len() / 2].as_secs_f64() * 1e3,
        slowest_per_round[slowest_per_round.len() / 2].as_secs_f64() * 1e3,
        slowest.as_secs_f64() * 1e3,
        fs::metadata(&base).unwrap().len(),
    );
    for failure in rounds.iter().flat_map(|round| &round.failures).take(5) {
        println!("  {failure}");
    }
}
