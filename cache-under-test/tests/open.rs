//! Opening a cache: cold start, load, a corrupt file set aside byte-exact, typed errors for an
//! unreadable, untrusted or non-file path, an oversized file trimmed, clean-up of a crashed save's temp files,
//! and the permissions of what the cache creates.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use runtime_cache::{CacheError, CacheOptions, FormatLimits, KernelKey, RuntimeCache, SaveOutcome};
use support::ChildStatus;

fn key(n: u8) -> KernelKey {
    KernelKey([n; 32])
}

fn artifact(n: u8) -> Bytes {
    Bytes::from(vec![n; 100 + usize::from(n)])
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("metadata").permissions().mode() & 0o777
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

#[test]
fn cold_start_creates_the_folder_0700_and_writes_no_cache_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new/folder/kernels.rtk");
    let cache = RuntimeCache::open(&path, CacheOptions::default()).expect("cold open");
    assert!(cache.is_empty());
    assert!(!cache.is_dirty());
    assert_eq!(cache.path(), path);
    assert_eq!(mode(&dir.path().join("new")), 0o700);
    assert_eq!(mode(&dir.path().join("new/folder")), 0o700);
    assert_eq!(cache.save().expect("clean save"), SaveOutcome::Clean);
    drop(cache);
    assert!(!path.exists(), "a clean cache never writes its file");
}

#[test]
fn a_saved_file_loads_back_and_is_0600() {
    let dir = tempfile::tempdir().unwrap();
    let path = saved_cache(dir.path(), "kernels.rtk", 5);
    assert_eq!(mode(&path), 0o600, "the cache file is created 0600");
    assert_eq!(mode(&dir.path().join("kernels.rtk.lock")), 0o600, "the lock file is created 0600");
    let cache = RuntimeCache::open(&path, CacheOptions::default()).expect("load");
    assert_eq!(cache.len(), 5);
    assert!(!cache.is_dirty());
    for i in 0..5 {
        assert_eq!(cache.get(&key(i)), Some(artifact(i)));
    }
    assert_eq!(cache.get(&key(5)), None);
}

#[test]
fn a_corrupt_file_is_set_aside_byte_exact_and_the_cache_starts_cold() {
    let dir = tempfile::tempdir().unwrap();
    let path = saved_cache(dir.path(), "kernels.rtk", 3);
    let mut damaged = fs::read(&path).unwrap();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0xff;
    fs::write(&path, &damaged).unwrap();

    let cache = RuntimeCache::open(&path, CacheOptions::default()).expect("a corrupt file is not an error");
    assert!(cache.is_empty(), "the cache starts cold");
    assert!(!path.exists(), "the corrupt file was moved away");
    let first = dir.path().join("kernels.rtk.corrupt-0");
    assert_eq!(fs::read(&first).unwrap(), damaged, "kept byte-exact");
    drop(cache);

    // A second corrupt file does not overwrite the first one set aside.
    fs::write(&path, b"not a cache file at all").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    let cache = RuntimeCache::open(&path, CacheOptions::default()).expect("open");
    assert!(cache.is_empty());
    assert_eq!(fs::read(dir.path().join("kernels.rtk.corrupt-1")).unwrap(), b"not a cache file at all");
    assert_eq!(fs::read(&first).unwrap(), damaged);

    // The cold cache saves normally afterwards.
    cache.insert(key(9), artifact(9));
    cache.save().expect("save after quarantine");
    let reopened = RuntimeCache::open(&path, CacheOptions::default()).expect("reopen");
    assert_eq!(reopened.get(&key(9)), Some(artifact(9)));
}

#[test]
fn an_unreadable_file_is_a_typed_io_error() {
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let path = saved_cache(dir.path(), "kernels.rtk", 2);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o000)).unwrap();
    let check = |path: &Path| match RuntimeCache::open(path, CacheOptions::default()) {
        Err(CacheError::Io { op: "read", source, .. }) if source.kind() == std::io::ErrorKind::PermissionDenied => 0,
        Err(other) => support::report(1, &format!("unexpected error: {other}")),
        Ok(_) => support::report(2, "an unreadable file was opened"),
    };
    if support::running_as_root() {
        // Root bypasses permission checks: give the folder and file to `nobody` in a forked
        // child, drop to that user there, and open as that user.
        let status = support::fork_and_wait(|| {
            let lock = dir.path().join("kernels.rtk.lock");
            if let Err(error) = support::change_owner_and_become(&[dir.path(), &path, &lock], 65534, 65534) {
                return support::report(3, &format!("cannot become nobody: {error}"));
            }
            check(&path)
        });
        assert_eq!(status, ChildStatus::Exited(0), "opening a mode-000 file as a non-root user");
    } else {
        assert_eq!(check(&path), 0);
    }
}

#[test]
fn a_path_that_is_a_folder_is_not_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kernels.rtk");
    fs::create_dir(&path).unwrap();
    assert!(matches!(
        RuntimeCache::open(&path, CacheOptions::default()),
        Err(CacheError::NotAFile { path: reported }) if reported == path
    ));
}

#[test]
fn a_folder_that_cannot_be_created_is_a_typed_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("a-file");
    fs::write(&blocker, b"x").unwrap();
    let result = RuntimeCache::open(blocker.join("sub/kernels.rtk"), CacheOptions::default());
    assert!(matches!(result, Err(CacheError::Io { op: "create folder", .. })), "{result:?}");
}

#[test]
fn a_file_group_or_others_can_write_is_refused_and_left_alone() {
    for refused in [0o666, 0o620, 0o602] {
        let dir = tempfile::tempdir().unwrap();
        let path = saved_cache(dir.path(), "kernels.rtk", 2);
        fs::remove_file(dir.path().join("kernels.rtk.lock")).unwrap();
        let leftover = dir.path().join(".kernels.rtk.tmp-abc");
        fs::write(&leftover, b"left by someone").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(refused)).unwrap();
        let before = support::snapshot(dir.path());
        let result = RuntimeCache::open(&path, CacheOptions::default());
        match result {
            Err(CacheError::UntrustedFile { path: reported, reason }) => {
                assert_eq!(reported, path);
                assert!(reason.contains(&format!("{refused:04o}")), "{reason}");
            }
            other => panic!("mode {refused:o}: expected UntrustedFile, got {other:?}"),
        }
        assert_eq!(support::snapshot(dir.path()), before, "mode {refused:o}: a refused open writes nothing");
    }
    // Readable by others is fine: only writing matters.
    let dir = tempfile::tempdir().unwrap();
    let path = saved_cache(dir.path(), "kernels.rtk", 2);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(RuntimeCache::open(&path, CacheOptions::default()).expect("0644 is trusted").len(), 2);
}

#[test]
fn a_file_another_user_owns_is_refused() {
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let path = saved_cache(dir.path(), "kernels.rtk", 1);
    let check = |path: &Path| match RuntimeCache::open(path, CacheOptions::default()) {
        Err(CacheError::UntrustedFile { reason, .. }) if reason.contains("owned by uid") => 0,
        other => support::report(1, &format!("expected UntrustedFile (owner), got {other:?}")),
    };
    if support::running_as_root() {
        // Root can give the file away: it then belongs to `nobody`, not to us.
        std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
        assert_eq!(check(&path), 0);
    } else {
        // A non-root user cannot give a file away; a file root owns is someone else's file.
        assert_eq!(check(Path::new("/etc/passwd")), 0);
    }
}

/// Issue #16, item 5: a file over this process's size limit is no open failure. It is not read
/// (cold start), a clean handle leaves it as it is, and the next save replaces it with a file
/// within the limit.
#[test]
fn a_file_over_the_size_limit_starts_cold_and_the_next_save_trims_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = saved_cache(dir.path(), "kernels.rtk", 4);
    let size = fs::metadata(&path).unwrap().len();
    let options = CacheOptions {
        limits: FormatLimits { max_file_bytes: size - 1, ..FormatLimits::default() },
        ..CacheOptions::default()
    };
    let before = support::snapshot(dir.path());
    let cache = RuntimeCache::open(&path, options.clone()).expect("an oversized file is not an open failure");
    assert!(cache.is_empty(), "an oversized file is not read");
    drop(cache);
    assert_eq!(support::snapshot(dir.path()), before, "a clean handle left the oversized file alone");

    let cache = RuntimeCache::open(&path, options.clone()).unwrap();
    cache.insert(key(9), artifact(9));
    assert!(matches!(cache.save().unwrap(), SaveOutcome::Committed { entries: 1, .. }));
    assert!(fs::metadata(&path).unwrap().len() < size, "the save did not trim the file");
    let reopened = RuntimeCache::open(&path, options).expect("its own file opens");
    assert_eq!(reopened.get(&key(9)), Some(artifact(9)));
}

#[test]
fn leftover_temp_files_of_this_cache_are_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = saved_cache(dir.path(), "kernels.rtk", 2);
    let ours = [".kernels.rtk.tmp-AbCdEf1234", ".kernels.rtk.tmp-zzzzzzzzzz"];
    let not_ours = [".other.rtk.tmp-AbCdEf1234", "kernels.rtk.tmp-AbCdEf1234", ".kernels.rtk.corrupt-0"];
    for name in ours.iter().chain(&not_ours) {
        fs::write(dir.path().join(name), b"torn").unwrap();
    }
    let cache = RuntimeCache::open(&path, CacheOptions::default()).expect("open");
    assert_eq!(cache.len(), 2, "the cache file itself is untouched");
    for name in ours {
        assert!(!dir.path().join(name).exists(), "{name} was left behind");
    }
    for name in not_ours {
        assert_eq!(fs::read(dir.path().join(name)).unwrap(), b"torn", "{name} is not this cache's temp file");
    }
}
