//! Save and load of a 64 MiB cache (1 024 entries x 64 KiB), with `Durability::None` and
//! `Durability::SyncFile`: the save after adding one kernel (an append of one frame) against the
//! full rewrite of the same cache (forced by a removal; target: the append <= 5% of it), the full
//! rewrite against a plain write + rename of the same bytes and the load against a plain read
//! (target: within 1.2x of the plain file operations); and the save of a full cache that must
//! evict to stay within its limit.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use runtime_cache::{CacheOptions, Durability, FormatLimits, KernelKey, RuntimeCache, SaveKind, SaveOutcome};

const ENTRIES: usize = 1024;
const ARTIFACT: usize = 64 << 10;

fn entries() -> Vec<(KernelKey, Bytes)> {
    (0..ENTRIES)
        .map(|i| {
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let artifact: Vec<u8> = (0..ARTIFACT).map(|j| (i * 31 + j * 7) as u8).collect();
            (KernelKey(key), Bytes::from(artifact))
        })
        .collect()
}

/// What a save does without the cache: write the bytes to a temp file in the folder, optionally
/// fsync it, rename it into place.
fn plain_write_rename(folder: &Path, target: &Path, bytes: &[u8], sync: bool) {
    let temp = folder.join(".plain.tmp");
    let mut file = fs::File::create(&temp).unwrap();
    file.write_all(bytes).unwrap();
    if sync {
        file.sync_all().unwrap();
    }
    fs::rename(&temp, target).unwrap();
}

fn save_and_load(c: &mut Criterion) {
    let entries = entries();
    let dir = tempfile::tempdir_in(std::env::var_os("BENCH_DIR").unwrap_or_else(|| "target".into())).unwrap();
    let mut group = c.benchmark_group("cache_64MiB");
    group.sample_size(10).throughput(Throughput::Bytes((ENTRIES * ARTIFACT) as u64));
    for (name, durability) in [("none", Durability::None), ("sync_file", Durability::SyncFile)] {
        let path = dir.path().join(format!("{name}.rtk"));
        let options = CacheOptions { durability, lock_timeout: Duration::from_secs(30), ..CacheOptions::default() };
        let cache = RuntimeCache::open(&path, options.clone()).unwrap();
        for (key, artifact) in &entries {
            cache.insert(*key, artifact.clone());
        }
        cache.save().unwrap();
        let file_bytes = fs::read(&path).unwrap();
        let artifact = entries[0].1.clone();
        let mut next = 1u64 << 32;
        let mut added: Vec<KernelKey> = Vec::new();
        let new_key = |next: &mut u64| {
            *next += 1;
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&next.to_le_bytes());
            KernelKey(key)
        };
        group.bench_function(format!("append_one_kernel/{name}"), |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    if added.len() == 32 {
                        // Untimed: remove what the appends added (a removal forces a rewrite),
                        // so the cache stays at 64 MiB and no timed save is a frame-count rewrite.
                        for key in added.drain(..) {
                            cache.remove(&key);
                        }
                        cache.save().unwrap();
                    }
                    let key = new_key(&mut next);
                    added.push(key);
                    cache.insert(key, artifact.clone());
                    let start = Instant::now();
                    let outcome = cache.save().unwrap();
                    timed += start.elapsed();
                    assert!(matches!(outcome, SaveOutcome::Committed { kind: SaveKind::Appended, .. }), "{outcome:?}");
                }
                timed
            })
        });
        for key in added.drain(..) {
            cache.remove(&key);
        }
        cache.save().unwrap();
        // One kernel added beforehand, so every timed save removes one.
        let first = new_key(&mut next);
        cache.insert(first, artifact.clone());
        cache.save().unwrap();
        let mut previous = Some(first);
        group.bench_function(format!("rewrite_one_kernel/{name}"), |b| {
            b.iter(|| {
                // The same new kernel, and the removal of the one added before (the cache stays at
                // 64 MiB): a removal makes the save a full rewrite, as every save was before.
                let key = new_key(&mut next);
                cache.insert(key, artifact.clone());
                if let Some(previous) = previous.replace(key) {
                    cache.remove(&previous);
                }
                let outcome = cache.save().unwrap();
                assert!(matches!(outcome, SaveOutcome::Committed { kind: SaveKind::Rewritten, .. }), "{outcome:?}");
            })
        });
        if let Some(previous) = previous.take() {
            cache.remove(&previous);
            cache.save().unwrap();
        }
        let plain = dir.path().join(format!("{name}.plain"));
        group.bench_function(format!("plain_write_rename/{name}"), |b| {
            b.iter(|| plain_write_rename(dir.path(), &plain, &file_bytes, durability != Durability::None))
        });
        drop(cache);
    }
    let path = dir.path().join("none.rtk");
    group.bench_function("load/open", |b| {
        b.iter(|| {
            let cache = RuntimeCache::open(&path, CacheOptions::default()).unwrap();
            assert_eq!(cache.len(), ENTRIES);
            cache
        })
    });
    group.bench_function("load/plain_read", |b| b.iter(|| fs::read(&path).unwrap()));

    // Issue #16, item 5: the save after eviction. The cache is full (`max_entries` = its 1 024
    // entries); each save follows the insert of a new entry, so it evicts the least recently used
    // one to stay within the limit. Compare with `save/none` (the same file, no eviction).
    let path = dir.path().join("full.rtk");
    let limits = FormatLimits { max_entries: ENTRIES as u32, ..FormatLimits::default() };
    let options = CacheOptions {
        durability: Durability::None,
        lock_timeout: Duration::from_secs(30),
        limits,
        ..CacheOptions::default()
    };
    let cache = RuntimeCache::open(&path, options).unwrap();
    for (key, artifact) in &entries {
        cache.insert(*key, artifact.clone());
    }
    cache.save().unwrap();
    let mut next = ENTRIES as u64;
    let artifact = entries[0].1.clone();
    group.bench_function("save_after_eviction/none", |b| {
        b.iter(|| {
            next += 1;
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&next.to_le_bytes());
            cache.insert(KernelKey(key), artifact.clone());
            let outcome = cache.save().unwrap();
            assert!(matches!(outcome, SaveOutcome::Committed { entries: ENTRIES, evicted: 1, .. }), "{outcome:?}");
        })
    });
    group.finish();
}

criterion_group!(benches, save_and_load);
criterion_main!(benches);
