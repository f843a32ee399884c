//! Issue #16, item 5: limits enforced at save (least recently used first, by age, and pruning
//! other builds of a compiler in use), `remove`, `clear`, `entries()`, and a file over this
//! process's limits trimmed, never an open failure.

mod support;

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use runtime_cache::format::{self, EntryMeta};
use runtime_cache::{
    Backend, CacheOptions, Engine, Event, EvictReason, EvictionPolicy, FormatLimits, KernelKey, KernelOrigin,
    KernelSpec, RuntimeCache, RuntimeSettings, SaveOutcome, SyntheticCompiler,
};

fn spec(i: u32) -> KernelSpec {
    KernelSpec::new(format!("k{i}.cu"), format!("extern \"C\" __global__ void k{i}() {{}}"), format!("k{i}"))
}

fn options(max_entries: u32) -> CacheOptions {
    CacheOptions { limits: FormatLimits { max_entries, ..FormatLimits::default() }, ..CacheOptions::default() }
}

fn synthetic(path: &Path, options: CacheOptions, artifact_bytes: usize) -> RuntimeSettings {
    RuntimeSettings {
        backend: Backend::Synthetic(SyntheticCompiler::new(artifact_bytes, Duration::ZERO)),
        cache_options: options,
        ..RuntimeSettings::with_cache(path)
    }
}

/// The case, seen failing before the fix: with `max_entries = 2` the application wrote 3
/// entries and then could not open its own file.
#[test]
fn with_max_entries_2_three_kernels_save_two_and_the_file_opens() {
    let _serial = support::serial();
    support::record_events();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kernels.rtc");
    let engine = Engine::new(synthetic(&path, options(2), 64)).unwrap();
    for i in 0..3 {
        engine.kernel(&spec(i)).unwrap();
    }
    drop(engine);
    let reopened = RuntimeCache::open(&path, options(2)).expect("the application opens its own file");
    assert_eq!(reopened.len(), 2);
    let decoded = format::decode(
        &Bytes::from(fs::read(&path).unwrap()),
        &FormatLimits { max_entries: 2, ..FormatLimits::default() },
    );
    assert_eq!(decoded.expect("the file is within the limits it was written with").len(), 2);
    let evicted = support::events_for(&path).into_iter().any(|event| {
        matches!(event, Event::Evicted { evicted, .. } if evicted.len() == 1 && evicted[0].1 == EvictReason::Capacity)
    });
    assert!(evicted, "no Evicted event");
}

/// Writes a version-2 file holding `entries` with their metadata, as another process would.
fn write_file(path: &Path, entries: &[(KernelKey, EntryMeta, &'static [u8])]) {
    let artifacts: Vec<Bytes> = entries.iter().map(|(_, _, bytes)| Bytes::from_static(bytes)).collect();
    let mut out = Vec::new();
    format::encode_entries(&mut out, entries.iter().zip(&artifacts).map(|((key, meta, _), bytes)| (key, meta, bytes)))
        .unwrap();
    fs::write(path, out).unwrap();
    fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

#[test]
fn the_least_recently_used_entries_go_first() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kernels.rtc");
    let meta = |age: u64| EntryMeta { compiler: 0, build: 0, last_used: now() - age };
    write_file(
        &path,
        &[
            (KernelKey([1; 32]), meta(300), b"one"),
            (KernelKey([2; 32]), meta(200), b"two"),
            (KernelKey([3; 32]), meta(100), b"three"),
        ],
    );
    let cache = RuntimeCache::open(&path, options(3)).unwrap();
    assert_eq!(cache.get(&KernelKey([1; 32])).unwrap(), &b"one"[..], "a hit makes the oldest the newest");
    cache.insert(KernelKey([4; 32]), Bytes::from_static(b"four"));
    assert!(matches!(cache.save().unwrap(), SaveOutcome::Committed { entries: 3, evicted: 1, .. }));
    let kept: Vec<KernelKey> = cache.entries().iter().map(|entry| entry.key).collect();
    assert_eq!(
        kept,
        [KernelKey([1; 32]), KernelKey([3; 32]), KernelKey([4; 32])],
        "entry 2 was the least recently used"
    );
    let reread = RuntimeCache::open(&path, CacheOptions::default()).unwrap();
    assert_eq!(reread.entries().iter().map(|entry| entry.key).collect::<Vec<_>>(), kept);
}

#[test]
fn entries_unused_for_longer_than_max_age_are_dropped_at_save() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kernels.rtc");
    let meta = |age: u64| EntryMeta { compiler: 0, build: 0, last_used: now() - age };
    write_file(
        &path,
        &[(KernelKey([1; 32]), meta(40 * 86_400), b"old"), (KernelKey([2; 32]), meta(86_400), b"recent")],
    );
    let options = CacheOptions {
        eviction: EvictionPolicy { max_age: Some(Duration::from_secs(30 * 86_400)), ..EvictionPolicy::default() },
        ..CacheOptions::default()
    };
    let cache = RuntimeCache::open(&path, options.clone()).unwrap();
    assert_eq!(cache.len(), 1, "an entry past max_age was loaded");
    cache.insert(KernelKey([3; 32]), Bytes::from_static(b"new"));
    cache.save().unwrap();
    let keys: Vec<KernelKey> =
        RuntimeCache::open(&path, CacheOptions::default()).unwrap().entries().iter().map(|e| e.key).collect();
    assert_eq!(keys, [KernelKey([2; 32]), KernelKey([3; 32])]);
}

/// Entries of another build of a compiler this process uses (an NVRTC upgrade) are pruned at
/// save; those of compilers it does not use, and of unknown origin, are kept.
#[test]
fn other_builds_of_the_compiler_in_use_are_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kernels.rtc");
    let old_build = Engine::new(synthetic(&path, CacheOptions::default(), 64)).unwrap();
    old_build.kernel(&spec(1)).unwrap();
    let foreign = KernelKey::from_parts(&[b"nvcc"]);
    old_build.get_or_compile(foreign, || Ok::<_, ()>(b"from nvcc".to_vec())).unwrap();
    drop(old_build);
    assert_eq!(RuntimeCache::open(&path, CacheOptions::default()).unwrap().len(), 2);

    // Another build of the same compiler (the synthetic compiler's configuration is its build).
    let new_build = Engine::new(synthetic(&path, CacheOptions::default(), 65)).unwrap();
    assert_eq!(new_build.kernel(&spec(1)).unwrap().origin, KernelOrigin::Compiled);
    drop(new_build);
    let entries = RuntimeCache::open(&path, CacheOptions::default()).unwrap().entries();
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert!(entries.iter().any(|entry| entry.key == foreign), "an entry of unknown origin was pruned");

    // Without pruning, other builds stay.
    let keep = CacheOptions {
        eviction: EvictionPolicy { prune_other_builds: false, ..EvictionPolicy::default() },
        ..CacheOptions::default()
    };
    let third_build = Engine::new(synthetic(&path, keep, 66)).unwrap();
    third_build.kernel(&spec(1)).unwrap();
    drop(third_build);
    assert_eq!(RuntimeCache::open(&path, CacheOptions::default()).unwrap().len(), 3);
}

#[test]
fn remove_and_clear_reach_the_file_and_are_not_merged_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kernels.rtc");
    let seed = RuntimeCache::open(&path, CacheOptions::default()).unwrap();
    for n in 1..=3 {
        seed.insert(KernelKey([n; 32]), Bytes::from(vec![n; 8]));
    }
    seed.save().unwrap();
    drop(seed);

    let a = RuntimeCache::open(&path, CacheOptions::default()).unwrap();
    // Another process saves meanwhile, so `a`'s save re-reads and merges the file.
    let b = RuntimeCache::open(&path, CacheOptions::default()).unwrap();
    b.insert(KernelKey([4; 32]), Bytes::from_static(b"b"));
    b.save().unwrap();
    assert!(a.remove(&KernelKey([1; 32])));
    assert!(!a.remove(&KernelKey([9; 32])));
    assert!(a.is_dirty(), "a removal is not dirty");
    a.save().unwrap();
    let keys = |path: &Path| -> Vec<u8> {
        RuntimeCache::open(path, CacheOptions::default()).unwrap().entries().iter().map(|e| e.key.0[0]).collect()
    };
    assert_eq!(keys(&path), [2, 3, 4], "the removed entry came back from the file, or b's entry was lost");
    assert_eq!(a.entries().iter().map(|e| e.key.0[0]).collect::<Vec<_>>(), [2, 3, 4]);

    a.clear();
    assert!(a.is_empty() && a.is_dirty());
    a.insert(KernelKey([5; 32]), Bytes::from_static(b"after the clear"));
    a.save().unwrap();
    assert_eq!(keys(&path), [5]);
    assert_eq!(a.save().unwrap(), SaveOutcome::Clean, "a saved clear is still dirty");
}

#[test]
fn entries_lists_sizes_ages_origins_and_dirtiness() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kernels.rtc");
    let engine = Engine::new(synthetic(&path, CacheOptions::default(), 64)).unwrap();
    engine.kernel(&spec(1)).unwrap();
    let cache = engine.runtime_cache().unwrap();
    let entries = cache.entries();
    assert_eq!(entries.len(), 1);
    let entry = &entries[0];
    assert_eq!(entry.bytes, 64);
    assert!(entry.dirty);
    assert_eq!(entry.compiler_tag, engine.backend().compiler.identity().compiler_tag());
    assert_eq!(entry.build_tag, engine.backend().compiler.identity().build_tag());
    let age = entry.last_used.unwrap().elapsed().unwrap_or_default();
    assert!(age < Duration::from_secs(3600), "last use {age:?} ago");
    cache.save().unwrap();
    assert!(!cache.entries()[0].dirty);
}

/// A file over this process's limits (written by a process with larger ones) opens, trimmed to
/// the newest entries that fit, and the next save writes it within the limits.
#[test]
fn a_file_over_this_processs_limits_is_trimmed_not_refused() {
    let _serial = support::serial();
    support::record_events();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kernels.rtc");
    let meta = |age: u64| EntryMeta { compiler: 0, build: 0, last_used: now() - age };
    let entries: Vec<(KernelKey, EntryMeta, &'static [u8])> =
        (1..=5u8).map(|n| (KernelKey([n; 32]), meta(u64::from(10 - n)), &b"artifact"[..])).collect();
    write_file(&path, &entries);
    let before = fs::read(&path).unwrap();
    let cache = RuntimeCache::open(&path, options(3)).expect("a file over the count limit is no open failure");
    assert_eq!(cache.entries().iter().map(|e| e.key.0[0]).collect::<Vec<_>>(), [3, 4, 5], "not the newest 3");
    assert!(support::events_for(&path).iter().any(|event| matches!(event, Event::OverLimits { .. })));
    drop(cache);
    assert_eq!(fs::read(&path).unwrap(), before, "a clean handle wrote");
    let cache = RuntimeCache::open(&path, options(3)).unwrap();
    cache.insert(KernelKey([6; 32]), Bytes::from_static(b"new"));
    cache.save().unwrap();
    let decoded = format::decode(
        &Bytes::from(fs::read(&path).unwrap()),
        &FormatLimits { max_entries: 3, ..FormatLimits::default() },
    );
    assert_eq!(decoded.expect("within the limits now").len(), 3);
}

/// Two processes with different limits share a file: the one with the smaller limit trims it at
/// its save, and the other's entries that fit survive (union, then least recently used out).
#[test]
fn the_merge_happens_before_eviction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kernels.rtc");
    let small = RuntimeCache::open(&path, options(2)).unwrap();
    let large = RuntimeCache::open(&path, CacheOptions::default()).unwrap();
    large.insert(KernelKey([1; 32]), Bytes::from_static(b"large"));
    large.save().unwrap();
    small.insert(KernelKey([2; 32]), Bytes::from_static(b"small"));
    small.save().unwrap();
    let keys: HashMap<KernelKey, Bytes> =
        format::decode(&Bytes::from(fs::read(&path).unwrap()), &FormatLimits::default()).unwrap().into_iter().collect();
    assert_eq!(keys.len(), 2, "an entry of the other process was lost");
}

#[test]
fn a_later_last_use_another_handle_saved_survives_a_rewrite_at_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kernels.rtc");
    let meta = |age: u64| EntryMeta { compiler: 0, build: 0, last_used: now() - age };
    write_file(&path, &[(KernelKey([1; 32]), meta(200), b"one"), (KernelKey([2; 32]), meta(100), b"two")]);
    let ours = RuntimeCache::open(&path, options(2)).unwrap();
    // Another handle uses key 1 now (other bytes) and appends it.
    let other = RuntimeCache::open(&path, CacheOptions::default()).unwrap();
    other.insert(KernelKey([1; 32]), Bytes::from_static(b"one, again"));
    other.save().unwrap();
    // Our save reads that frame, is over the entry limit, and rewrites without re-reading.
    ours.insert(KernelKey([3; 32]), Bytes::from_static(b"three"));
    assert!(matches!(ours.save().unwrap(), SaveOutcome::Committed { entries: 2, evicted: 1, .. }));
    let reread = RuntimeCache::open(&path, CacheOptions::default()).unwrap();
    let kept: Vec<KernelKey> = reread.entries().iter().map(|entry| entry.key).collect();
    assert_eq!(kept, [KernelKey([1; 32]), KernelKey([3; 32])], "entry 1 was used last by the other handle");
    assert_eq!(reread.get(&KernelKey([1; 32])).unwrap(), &b"one"[..], "ours win on the bytes");
}
