//! A shared folder under attack (issue #12): what another local user can plant next to a cache
//! (symlinks at the lock path, at the cache path or as the folder itself, FIFOs, foreign-owned
//! or group/world-writable folders, temp-like names) never makes the cache follow a link, block,
//! delete what is not its own, or use a folder it cannot trust. Also: a damaged header is set
//! aside (checksum first), set-aside files do not pile up, and an oversized file is refused
//! before it is read.
//!
//! Every test here takes `support::serial()`: some fork, and the observer is process-global.

mod support;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use runtime_cache::{CacheError, CacheOptions, Event, KernelKey, RuntimeCache, SET_ASIDE_KEPT, SaveOutcome};
use support::ChildStatus;

fn key(n: u8) -> KernelKey {
    KernelKey([n; 32])
}

fn artifact(n: u8) -> Bytes {
    Bytes::from(vec![n; 100 + usize::from(n)])
}

/// A saved cache file at `dir/name` holding keys `0..n`.
fn saved_cache(dir: &Path, name: &str, n: u8) -> PathBuf {
    let path = dir.join(name);
    let cache = RuntimeCache::open(&path, CacheOptions::default()).expect("open");
    for i in 0..n {
        cache.insert(key(i), artifact(i));
    }
    assert!(matches!(cache.save().expect("save"), SaveOutcome::Committed { .. }));
    path
}

fn exists_or_dangling(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

fn mkfifo(path: &Path) {
    rustix::fs::mknodat(rustix::fs::CWD, path, rustix::fs::FileType::Fifo, rustix::fs::Mode::from_raw_mode(0o600), 0)
        .expect("mkfifo");
}

/// Issue #12, item 1: `<path>.lock` planted as a symlink by another user must not make the cache
/// create (or open and lock) the file it points to.
#[test]
fn a_symlink_at_the_lock_path_is_never_followed() {
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("private");
    fs::create_dir(&private).unwrap();
    fs::set_permissions(&private, fs::Permissions::from_mode(0o700)).unwrap();
    let target = private.join("created-through-the-link");
    let path = dir.path().join("kernels.rtk");
    std::os::unix::fs::symlink(&target, dir.path().join("kernels.rtk.lock")).unwrap();

    let cache = RuntimeCache::open(&path, CacheOptions::default()).expect("open does not need the lock");
    cache.insert(key(1), artifact(1));
    match cache.save() {
        Err(CacheError::Symlink { path: reported }) => assert_eq!(reported, dir.path().join("kernels.rtk.lock")),
        other => panic!("expected a refused symlink, got {other:?}"),
    }
    drop(cache);
    assert!(!exists_or_dangling(&target), "the cache created a file through the planted lock symlink");
    assert!(!exists_or_dangling(&path), "a save with a refused lock wrote the cache file");
}

/// Issue #12, item 2: a FIFO (or a symlink to one) planted at the cache path makes a save fail
/// with a typed error, never block in `open()` with the lock held.
#[test]
fn a_fifo_at_the_cache_path_fails_the_save_instead_of_blocking() {
    let _serial = support::serial();
    for through_symlink in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kernels.rtk");
        let pid = support::fork_child(|| {
            let cache = match RuntimeCache::open(&path, CacheOptions::default()) {
                Ok(cache) => cache,
                Err(error) => return support::report(1, &format!("open: {error}")),
            };
            cache.insert(key(1), artifact(1));
            if through_symlink {
                let fifo = dir.path().join("a-fifo");
                mkfifo(&fifo);
                std::os::unix::fs::symlink(&fifo, &path).expect("symlink");
            } else {
                mkfifo(&path);
            }
            match cache.save() {
                Err(CacheError::NotAFile { .. }) if !through_symlink => 0,
                Err(CacheError::Symlink { .. }) if through_symlink => 0,
                other => support::report(2, &format!("expected a typed refusal, got {other:?}")),
            }
        });
        let status = support::wait_for_at_most(pid, Duration::from_secs(10));
        assert_eq!(status, Some(ChildStatus::Exited(0)), "symlink {through_symlink}: the save blocked or failed");
    }
}

/// Issue #12, item 4: a symlink planted at the cache path after open is not followed by a save:
/// what it points to is not read, and none of its bytes reach an event.
#[test]
fn a_symlink_planted_at_the_cache_path_after_open_is_not_followed() {
    let _serial = support::serial();
    support::record_events();
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    fs::write(&secret, b"SECRET!!and the rest of someone's private file").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    let path = dir.path().join("kernels.rtk");
    let cache = RuntimeCache::open(&path, CacheOptions::default()).expect("open");
    cache.insert(key(1), artifact(1));
    std::os::unix::fs::symlink(&secret, &path).unwrap();

    match cache.save() {
        Err(CacheError::Symlink { path: reported }) => assert_eq!(reported, path),
        other => panic!("expected a refused symlink, got {other:?}"),
    }
    let leaked: Vec<Event> = support::events_for(&path)
        .into_iter()
        .filter(|event| format!("{event:?}").contains("53, 45, 43") || matches!(event, Event::Quarantined { .. }))
        .collect();
    assert!(leaked.is_empty(), "the symlink's target was read: {leaked:?}");
    assert!(fs::symlink_metadata(&path).unwrap().file_type().is_symlink(), "the planted link was replaced");
    assert_eq!(fs::read(&secret).unwrap(), b"SECRET!!and the rest of someone's private file");
    assert!(cache.is_dirty(), "a refused save keeps its entries dirty");
}

/// Issue #12, item 3: a cache folder that group or others can write (and that is not sticky)
/// is refused with a typed error, before anything is written in it.
#[test]
fn a_folder_group_or_others_can_write_is_refused() {
    let _serial = support::serial();
    for (mode, trusted) in [(0o777, false), (0o770, false), (0o707, false), (0o755, true), (0o1777, true)] {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("shared");
        fs::create_dir(&folder).unwrap();
        fs::set_permissions(&folder, fs::Permissions::from_mode(mode)).unwrap();
        let path = folder.join("kernels.rtk");
        let before = support::snapshot(dir.path());
        match (RuntimeCache::open(&path, CacheOptions::default()), trusted) {
            (Ok(_), true) => {}
            (Err(CacheError::UntrustedFolder { path: reported, reason }), false) => {
                assert_eq!(reported, folder);
                assert!(reason.contains(&format!("{:04o}", mode & 0o7777)), "{reason}");
                assert_eq!(support::snapshot(dir.path()), before, "mode {mode:o}: a refused open writes nothing");
            }
            (other, _) => panic!("folder mode {mode:o}: trusted {trusted}, got {other:?}"),
        }
    }
}

/// Issue #12, item 3: a cache folder that is a symlink (to a folder of the victim's) is refused,
/// and the victim's cache in the link's target is left as it is.
#[test]
fn a_folder_that_is_a_symlink_is_refused_and_its_target_left_alone() {
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    fs::create_dir(&real).unwrap();
    saved_cache(&real, "kernels.rtk", 2);
    fs::write(real.join("kernels.rtk"), b"the victim's damaged cache").unwrap();
    fs::write(real.join(".kernels.rtk.tmp-AbCdEf1234"), b"the victim's in-flight save").unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let before = support::snapshot(dir.path());
    match RuntimeCache::open(link.join("kernels.rtk"), CacheOptions::default()) {
        Err(CacheError::Symlink { path }) => assert_eq!(path, link),
        other => panic!("expected a refused folder symlink, got {other:?}"),
    }
    assert_eq!(support::snapshot(dir.path()), before, "the link's target was touched");
}

/// Issue #12, item 3: a folder another user owns is refused, as the user who would be attacked.
#[test]
fn a_folder_another_user_owns_is_refused() {
    let _serial = support::serial();
    assert!(support::running_as_root(), "this test makes a folder another user owns: run it as root (CI does)");
    let dir = tempfile::tempdir().unwrap();
    // Root's own view: a folder that `nobody` owns.
    let foreign = dir.path().join("nobodys");
    fs::create_dir(&foreign).unwrap();
    fs::set_permissions(&foreign, fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).unwrap();
    match RuntimeCache::open(foreign.join("kernels.rtk"), CacheOptions::default()) {
        Err(CacheError::UntrustedFolder { reason, .. }) if reason.contains("owned by uid 65534") => {}
        other => panic!("expected UntrustedFolder (owner), got {other:?}"),
    }
    // An unprivileged user's view: `nobody` opening a cache in a folder that `daemon` owns and
    // lets everyone traverse.
    let daemons = dir.path().join("daemons");
    fs::create_dir(&daemons).unwrap();
    fs::set_permissions(&daemons, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(&daemons, Some(1), Some(1)).unwrap();
    let status = support::fork_and_wait(|| {
        if let Err(error) = support::change_owner_and_become(&[], 65534, 65534) {
            return support::report(3, &format!("cannot become nobody: {error}"));
        }
        match RuntimeCache::open(daemons.join("kernels.rtk"), CacheOptions::default()) {
            Err(CacheError::UntrustedFolder { reason, .. }) if reason.contains("owned by uid 1") => 0,
            other => support::report(1, &format!("expected UntrustedFolder (owner), got {other:?}")),
        }
    });
    assert_eq!(status, ChildStatus::Exited(0), "nobody opening a cache in daemon's folder");
}

/// Issue #12, item 9: opening cache `k` removes only `k`'s own leftover temp files: not those of
/// cache `k.tmp-b` (a prefix match), not a symlink, not a file another user owns.
#[test]
fn leftover_temp_removal_spares_other_caches_links_and_foreign_files() {
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let path = saved_cache(dir.path(), "k", 1);
    let ours = dir.path().join(".k.tmp-XyZ0123456");
    fs::write(&ours, b"torn").unwrap();
    let other_cache = dir.path().join(".k.tmp-b.tmp-AbCdEf1234");
    fs::write(&other_cache, b"cache k.tmp-b saving right now").unwrap();
    let link = dir.path().join(".k.tmp-LiNk012345");
    std::os::unix::fs::symlink(dir.path().join("k"), &link).unwrap();
    let foreign = dir.path().join(".k.tmp-FoReIgN123");
    fs::write(&foreign, b"not ours").unwrap();
    if support::running_as_root() {
        std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).unwrap();
    }

    let cache = RuntimeCache::open(&path, CacheOptions::default()).expect("open");
    assert_eq!(cache.len(), 1);
    assert!(!exists_or_dangling(&ours), "this cache's own leftover temp file was kept");
    assert_eq!(fs::read(&other_cache).unwrap(), b"cache k.tmp-b saving right now", "another cache's temp file");
    assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "a symlink was removed");
    if support::running_as_root() {
        assert_eq!(fs::metadata(&foreign).unwrap().uid(), 65534);
        assert_eq!(fs::read(&foreign).unwrap(), b"not ours", "a file another user owns was removed");
    }
}

/// Issue #12, item 7: one flipped bit in the version field is damage (the checksum says so), so
/// the file is set aside and the cache starts cold, instead of "unsupported" for ever.
#[test]
fn a_flipped_bit_in_the_header_is_set_aside() {
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let path = saved_cache(dir.path(), "kernels.rtk", 3);
    let mut damaged = fs::read(&path).unwrap();
    damaged[8] ^= 0x02;
    fs::write(&path, &damaged).unwrap();
    let cache = RuntimeCache::open(&path, CacheOptions::default()).expect("a damaged header starts cold");
    assert!(cache.is_empty());
    assert_eq!(fs::read(dir.path().join("kernels.rtk.corrupt-0")).unwrap(), damaged, "set aside byte-exact");
    cache.insert(key(7), artifact(7));
    cache.save().expect("the cache is usable again");
}

/// Issue #12, item 8: only the newest few set-aside files are kept.
#[test]
fn only_the_newest_few_set_aside_files_are_kept() {
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kernels.rtk");
    let runs = SET_ASIDE_KEPT + 7;
    for run in 0..runs {
        fs::write(&path, format!("damaged in run {run}")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let cache = RuntimeCache::open(&path, CacheOptions::default()).expect("open");
        assert!(cache.is_empty());
    }
    let mut kept: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_string_lossy().contains(".corrupt-"))
        .map(|path| String::from_utf8(fs::read(path).unwrap()).unwrap())
        .collect();
    kept.sort();
    let newest: Vec<String> = (runs - SET_ASIDE_KEPT..runs).map(|run| format!("damaged in run {run}")).collect();
    assert_eq!(kept, newest, "kept set-aside files");
}

/// Issue #12, item 5: a file over the (lowered) default size limit is refused from its `fstat`
/// size, before a byte is read: a sparse 1 GiB file must not be read into memory. Since issue #16
/// that is a cold start rather than an error (the next save replaces the file).
#[test]
fn a_huge_file_is_not_read() {
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kernels.rtk");
    let file = fs::File::create(&path).unwrap();
    file.set_len(1 << 30).unwrap();
    drop(file);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    let before = fs::metadata(&path).unwrap();
    let cache = RuntimeCache::open(&path, CacheOptions::default()).expect("a huge file is a cold start");
    assert!(cache.is_empty());
    drop(cache);
    let after = fs::metadata(&path).unwrap();
    assert_eq!(
        (after.len(), after.modified().unwrap()),
        (before.len(), before.modified().unwrap()),
        "a clean handle left the oversized file as it is"
    );
}
