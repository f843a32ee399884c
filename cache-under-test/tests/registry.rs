//! The exit registry stays O(live handles): its size equals the number of live autosave handles
//! at every step of a churn of 10 000 handles, freed slots (tokens) are reused, and a failed open
//! (or engine construction) leaves it unchanged and writes nothing. Also: a save racing the drop
//! of the last handle commits every dirty entry exactly once.
//!
//! `exit_registry_len()` and the observer are process-global: every test here takes
//! `support::serial()`, and this binary holds no other tests.

mod support;

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Barrier};

use bytes::Bytes;
use runtime_cache::{
    Backend, CacheError, CacheOptions, Engine, Event, HookToken, KernelKey, RuntimeCache, RuntimeSettings,
    SyntheticCompiler, exit_registry_len,
};

fn autosave() -> CacheOptions {
    CacheOptions { autosave: true, ..CacheOptions::default() }
}

fn registered_tokens(events: &[Event]) -> Vec<HookToken> {
    events
        .iter()
        .filter_map(|event| match event {
            Event::HookRegistered { token, .. } => Some(*token),
            _ => None,
        })
        .collect()
}

#[test]
fn churning_10_000_handles_keeps_the_registry_equal_to_the_live_count_and_reuses_tokens() {
    let _serial = support::serial();
    support::record_events();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kernels.rtk");
    let baseline = exit_registry_len();
    const N: usize = 10_000;

    let events_before = support::all_events().len();
    let mut live = Vec::with_capacity(N);
    for i in 0..N {
        live.push(RuntimeCache::open(&path, autosave()).expect("open"));
        assert_eq!(exit_registry_len(), baseline + i + 1, "after opening handle {i}");
    }
    assert!(live.iter().all(RuntimeCache::autosaves));
    // Drop in an interleaved order, so slots are freed from the middle too.
    let mut order: Vec<usize> = (0..N).collect();
    order.sort_by_key(|i| (i % 7, *i));
    let mut slots: Vec<Option<RuntimeCache>> = live.into_iter().map(Some).collect();
    for (dropped, i) in order.iter().enumerate() {
        drop(slots[*i].take());
        assert_eq!(exit_registry_len(), baseline + N - dropped - 1, "after dropping {dropped} handles");
    }
    assert_eq!(exit_registry_len(), baseline);
    let first_round: Vec<HookToken> = registered_tokens(&support::all_events()[events_before..]);
    assert_eq!(first_round.len(), N);
    assert!(!path.exists(), "clean handles never write");

    // A second round reuses the freed slots: every token names a slot of the first round, with a
    // newer generation (so a stale token can never unregister the new holder of its slot).
    let events_before = support::all_events().len();
    let second: Vec<RuntimeCache> = (0..N).map(|_| RuntimeCache::open(&path, autosave()).expect("open")).collect();
    assert_eq!(exit_registry_len(), baseline + N);
    let second_round = registered_tokens(&support::all_events()[events_before..]);
    let first_slots: HashSet<String> = first_round.iter().map(|token| slot_of(*token)).collect();
    for token in &second_round {
        assert!(first_slots.contains(&slot_of(*token)), "token {token} names a slot the first round never used");
        assert!(!first_round.contains(token), "token {token} was handed out twice");
    }
    drop(second);
    assert_eq!(exit_registry_len(), baseline);
}

/// A token's slot, from its `Display` form `<slot>g<generation>`.
fn slot_of(token: HookToken) -> String {
    let shown = token.to_string();
    shown.split_once('g').expect("token shown as <slot>g<generation>").0.to_owned()
}

#[test]
fn a_handle_without_autosave_is_not_registered() {
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let baseline = exit_registry_len();
    let cache = RuntimeCache::open(dir.path().join("kernels.rtk"), CacheOptions::default()).unwrap();
    assert!(!cache.autosaves());
    assert_eq!(exit_registry_len(), baseline);
}

/// Asserts that `attempt` fails, leaves the registry as it was and writes nothing under `dir`.
fn assert_fails_cleanly<T: std::fmt::Debug, E: std::fmt::Debug>(
    dir: &Path,
    what: &str,
    attempt: impl FnOnce() -> Result<T, E>,
    expected: impl FnOnce(&E) -> bool,
) {
    let baseline = exit_registry_len();
    let before = support::snapshot(dir);
    let events_before = support::all_events().len();
    match attempt() {
        Ok(value) => panic!("{what}: expected an error, got {value:?}"),
        Err(error) => assert!(expected(&error), "{what}: unexpected error {error:?}"),
    }
    assert_eq!(exit_registry_len(), baseline, "{what}: the registry changed");
    assert_eq!(support::snapshot(dir), before, "{what}: something was written");
    let registered = registered_tokens(&support::all_events()[events_before..]);
    assert!(registered.is_empty(), "{what}: registered {registered:?} on the way");
}

#[test]
fn a_failed_open_leaves_the_registry_unchanged_and_writes_nothing() {
    let _serial = support::serial();
    support::record_events();
    let dir = tempfile::tempdir().unwrap();

    let folder = dir.path().join("is-a-folder");
    fs::create_dir(&folder).unwrap();
    assert_fails_cleanly(
        dir.path(),
        "path is a folder",
        || RuntimeCache::open(&folder, autosave()),
        |error| matches!(error, CacheError::NotAFile { .. }),
    );

    let blocker = dir.path().join("plain-file");
    fs::write(&blocker, b"x").unwrap();
    assert_fails_cleanly(
        dir.path(),
        "parent not creatable",
        || RuntimeCache::open(blocker.join("sub/kernels.rtk"), autosave()),
        |error| matches!(error, CacheError::Io { op: "create folder", .. }),
    );

    let untrusted = dir.path().join("untrusted.rtk");
    {
        let cache = RuntimeCache::open(&untrusted, CacheOptions::default()).unwrap();
        cache.insert(KernelKey([1; 32]), Bytes::from_static(b"kernel"));
        cache.save().unwrap();
    }
    fs::remove_file(dir.path().join("untrusted.rtk.lock")).unwrap();
    fs::set_permissions(&untrusted, fs::Permissions::from_mode(0o666)).unwrap();
    assert_fails_cleanly(
        dir.path(),
        "untrusted file",
        || RuntimeCache::open(&untrusted, autosave()),
        |error| matches!(error, CacheError::UntrustedFile { .. }),
    );

    // Through an engine, whose cache always autosaves: a cache that cannot be used never fails
    // the engine (issue #12); it runs cold, and still registers nothing and writes nothing.
    let settings = |path: &Path| RuntimeSettings {
        backend: Backend::Synthetic(SyntheticCompiler::default()),
        ..RuntimeSettings::with_cache(path)
    };
    for (what, path) in [("engine on a folder", &folder), ("engine on an untrusted file", &untrusted)] {
        let baseline = exit_registry_len();
        let before = support::snapshot(dir.path());
        let events_before = support::all_events().len();
        let engine = Engine::new(settings(path)).unwrap_or_else(|error| panic!("{what}: {error}"));
        assert!(
            matches!(engine.cache_unavailable(), Some(CacheError::NotAFile { .. } | CacheError::UntrustedFile { .. })),
            "{what}: {:?}",
            engine.cache_unavailable()
        );
        assert_eq!(exit_registry_len(), baseline, "{what}: the registry changed");
        drop(engine);
        assert_eq!(support::snapshot(dir.path()), before, "{what}: something was written");
        let registered = registered_tokens(&support::all_events()[events_before..]);
        assert!(registered.is_empty(), "{what}: registered {registered:?} on the way");
    }
}

#[test]
fn a_save_racing_the_last_drop_commits_every_entry_exactly_once() {
    let _serial = support::serial();
    support::record_events();
    let dir = tempfile::tempdir().unwrap();
    for round in 0..50u8 {
        let path = dir.path().join(format!("race-{round}.rtk"));
        let cache = Arc::new(RuntimeCache::open(&path, autosave()).unwrap());
        let keys: Vec<KernelKey> = (0..20u8).map(|n| KernelKey([n.wrapping_add(round); 32])).collect();
        for key in &keys {
            cache.insert(*key, Bytes::from(key.to_hex()));
        }
        let start = Arc::new(Barrier::new(2));
        let saver = {
            let (cache, start) = (cache.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                cache.save().map(|_| ())
            })
        };
        start.wait();
        drop(cache); // the last reference is dropped here or on the saver thread
        saver.join().unwrap().expect("explicit save");

        let committed: Vec<KernelKey> = support::events_for(&path)
            .into_iter()
            .filter_map(|event| match event {
                Event::SaveCommitted { keys, .. } => Some(keys),
                _ => None,
            })
            .flatten()
            .collect();
        let mut sorted = committed.clone();
        sorted.sort();
        let mut expected = keys.clone();
        expected.sort();
        assert_eq!(sorted, expected, "round {round}: each dirty key committed exactly once");
        assert_eq!(RuntimeCache::open(&path, CacheOptions::default()).unwrap().len(), keys.len());
    }
}
