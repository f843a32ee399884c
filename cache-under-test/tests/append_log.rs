//! The append-only log (format version 3, issue #12 item 6), on real files: a save after a few new
//! kernels appends one frame of exactly them; a torn append (a crash in the middle of the write,
//! or a power loss that left zeros) is ignored by readers and dropped by the next save's rewrite;
//! a damaged frame with a valid one after it is corruption, set aside; the rewrite that bounds the
//! frame count keeps every entry; 64 writer processes appending at once to one large cache
//! lose no committed entry; a reader whose reads straddle two appends sees the old file or a
//! newer one, never damage; and an append whose fsync fails leaves the file byte-identical (this
//! binary replaces libc's `read`, `pwrite64` and `fsync` to order and fail them: see `mod pause`).

/// Every test here takes `support::serial()`: one of them forks.
mod support;

use std::fs;
use std::path::Path;

use bytes::Bytes;
use runtime_cache::format::{self, FormatLimits};
use runtime_cache::{CacheOptions, Event, KernelKey, MAX_APPENDED_FRAMES, RuntimeCache, SaveKind, SaveOutcome};
use support::ChildStatus;

fn key(writer: u16, n: u16) -> KernelKey {
    let mut key = [0u8; 32];
    key[..2].copy_from_slice(&writer.to_le_bytes());
    key[2..4].copy_from_slice(&n.to_le_bytes());
    key[4] = 0xa5;
    KernelKey(key)
}

fn artifact(writer: u16, n: u16, len: usize) -> Bytes {
    let mut bytes = format!("artifact {writer}/{n} ").into_bytes();
    bytes.resize(len, (writer as u8) ^ (n as u8));
    Bytes::from(bytes)
}

fn log_of(path: &Path) -> format::Log {
    format::decode_log(&Bytes::from(fs::read(path).expect("read the cache file")), &FormatLimits::default())
        .expect("the cache file decodes")
}

/// Saves `count` entries of `writer` through a fresh handle; returns how the save wrote.
fn save_entries(path: &Path, writer: u16, count: u16, len: usize) -> SaveKind {
    let cache = RuntimeCache::open(path, CacheOptions::default()).expect("open");
    for n in 0..count {
        cache.insert(key(writer, n), artifact(writer, n, len));
    }
    match cache.save().expect("save") {
        SaveOutcome::Committed { kind, .. } => kind,
        SaveOutcome::Clean => panic!("the handle was dirty"),
    }
}

#[test]
fn a_save_after_one_kernel_appends_one_frame_of_just_that_kernel() {
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kernels.rtc");
    assert_eq!(save_entries(&path, 0, 50, 4096), SaveKind::Rewritten, "the first save creates the file");
    let before = fs::read(&path).unwrap();
    assert_eq!(save_entries(&path, 1, 1, 700), SaveKind::Appended);
    let after = fs::read(&path).unwrap();
    // The file grew by exactly one frame holding one entry; not a byte before it changed.
    assert_eq!(after.len() as u64 - before.len() as u64, format::FRAME_OVERHEAD + format::ENTRY_OVERHEAD + 700);
    assert_eq!(&after[..before.len()], &before[..], "an append rewrote bytes already in the file");
    let log = log_of(&path);
    assert_eq!((log.entries.len(), log.appended_frames, log.torn_tail), (51, 1, 0));
}

#[test]
fn a_torn_append_is_ignored_then_dropped_by_the_next_save() {
    let _serial = support::serial();
    for tear in ["cut in the middle", "zeros after a power loss"] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kernels.rtc");
        save_entries(&path, 0, 3, 300);
        let old_len = fs::metadata(&path).unwrap().len() as usize;
        assert_eq!(save_entries(&path, 1, 2, 300), SaveKind::Appended);
        let whole = fs::read(&path).unwrap();
        let torn = match tear {
            "cut in the middle" => whole[..old_len + (whole.len() - old_len) / 2].to_vec(),
            _ => [&whole[..old_len], &vec![0u8; whole.len() - old_len][..]].concat(),
        };
        fs::write(&path, &torn).unwrap();

        // Readers see the file as it was before the torn save (old), not damage.
        support::record_events();
        let reader = RuntimeCache::open(&path, CacheOptions::default()).expect("open a torn file");
        assert_eq!(reader.len(), 3, "{tear}: the torn frame's entries were read, or the old ones lost");
        assert!(reader.get(&key(0, 2)).is_some());
        let quarantined = support::events_for(&path).iter().any(|event| matches!(event, Event::Quarantined { .. }));
        assert!(!quarantined, "{tear}: a torn tail was set aside as damage");
        assert_eq!(log_of(&path).torn_tail, (torn.len() - old_len) as u64);

        // The next save does not append after the torn frame: it rewrites the file without it.
        reader.insert(key(2, 0), artifact(2, 0, 300));
        match reader.save().expect("save after a torn append") {
            SaveOutcome::Committed { kind, entries, .. } => {
                assert_eq!((kind, entries), (SaveKind::Rewritten, 4), "{tear}")
            }
            SaveOutcome::Clean => panic!("dirty"),
        }
        let log = log_of(&path);
        assert_eq!((log.torn_tail, log.appended_frames, log.entries.len()), (0, 0, 4), "{tear}");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(names.iter().all(|name| !name.to_string_lossy().contains("corrupt")), "{tear}: {names:?}");
    }
}

#[test]
fn a_damaged_frame_followed_by_a_valid_one_is_set_aside_as_corruption() {
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kernels.rtc");
    save_entries(&path, 0, 3, 300);
    let first_frame_end = fs::metadata(&path).unwrap().len() as usize;
    assert_eq!(save_entries(&path, 1, 2, 300), SaveKind::Appended);
    let second_frame_end = fs::metadata(&path).unwrap().len() as usize;
    assert_eq!(save_entries(&path, 2, 2, 300), SaveKind::Appended);
    let mut damaged = fs::read(&path).unwrap();
    damaged[(first_frame_end + second_frame_end) / 2] ^= 0x01;
    fs::write(&path, &damaged).unwrap();

    support::record_events();
    let cache = RuntimeCache::open(&path, CacheOptions::default()).expect("open a damaged file");
    assert!(cache.is_empty(), "a damaged file starts cold");
    let quarantined = support::events_for(&path).iter().any(|event| matches!(event, Event::Quarantined { .. }));
    assert!(quarantined, "the damaged middle frame was not set aside");
    assert_eq!(fs::read(dir.path().join("kernels.rtc.corrupt-0")).unwrap(), damaged, "set aside byte-exact");
}

#[test]
fn the_rewrite_that_bounds_the_frame_count_keeps_every_entry() {
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kernels.rtc");
    assert_eq!(save_entries(&path, 0, 2, 100), SaveKind::Rewritten);
    // Opened now, it holds none of what the next saves append: its rewrite must merge them.
    let early = RuntimeCache::open(&path, CacheOptions::default()).expect("open");
    let saves = u16::try_from(MAX_APPENDED_FRAMES).unwrap();
    for writer in 1..=saves {
        assert_eq!(save_entries(&path, writer, 2, 100), SaveKind::Appended, "save {writer}");
    }
    assert_eq!(log_of(&path).appended_frames, MAX_APPENDED_FRAMES);
    // One more save finds MAX_APPENDED_FRAMES frames: it rewrites the file as one frame.
    let last = saves + 1;
    for n in 0..2 {
        early.insert(key(last, n), artifact(last, n, 100));
    }
    assert!(matches!(early.save().expect("save"), SaveOutcome::Committed { kind: SaveKind::Rewritten, .. }));
    let log = log_of(&path);
    assert_eq!(log.appended_frames, 0);
    let held: std::collections::HashMap<KernelKey, Bytes> =
        log.entries.into_iter().map(|entry| (entry.key, entry.artifact)).collect();
    assert_eq!(held.len(), 2 * (usize::from(saves) + 2));
    for writer in 0..=last {
        for n in 0..2 {
            assert_eq!(held.get(&key(writer, n)), Some(&artifact(writer, n, 100)), "writer {writer} key {n}");
        }
    }
}

#[test]
fn sixty_four_writer_processes_on_a_large_cache_lose_no_committed_entry() {
    let _serial = support::serial();
    const WRITERS: u16 = 64;
    // 4 MiB here (CI has 2 cores); `benches/save_load.rs` measures the same with 50 MB.
    const BASE_ENTRIES: u16 = 256;
    const BASE_ARTIFACT: usize = 16 << 10;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kernels.rtc");
    save_entries(&path, u16::MAX, BASE_ENTRIES, BASE_ARTIFACT);
    let children: Vec<i32> = (0..WRITERS)
        .map(|writer| {
            let path = path.clone();
            support::fork_child(move || {
                let cache = match RuntimeCache::open(&path, CacheOptions::default()) {
                    Ok(cache) => cache,
                    Err(error) => return support::report(1, &format!("writer {writer}: open: {error}")),
                };
                for n in 0..2 {
                    cache.insert(key(writer, n), artifact(writer, n, 4096));
                }
                match cache.save() {
                    Ok(_) => 0,
                    Err(error) => support::report(2, &format!("writer {writer}: save: {error}")),
                }
            })
        })
        .collect();
    for pid in children {
        assert_eq!(support::wait_for(pid), ChildStatus::Exited(0), "a writer failed to open or to save");
    }
    let log = log_of(&path);
    assert_eq!(log.torn_tail, 0);
    let held: std::collections::HashMap<KernelKey, Bytes> =
        log.entries.into_iter().map(|entry| (entry.key, entry.artifact)).collect();
    assert_eq!(held.len(), usize::from(BASE_ENTRIES) + 2 * usize::from(WRITERS), "entries were lost");
    for writer in 0..WRITERS {
        for n in 0..2 {
            assert_eq!(held.get(&key(writer, n)), Some(&artifact(writer, n, 4096)), "writer {writer} key {n}");
        }
    }
    for n in 0..BASE_ENTRIES {
        assert_eq!(held.get(&key(u16::MAX, n)), Some(&artifact(u16::MAX, n, BASE_ARTIFACT)), "base key {n}");
    }
}

/// A cache file whose mode does not let its owner write it in place (0400) is still saved: the
/// save cannot append, so it rewrites the file (a rename replaces it), as every save did before.
/// Run as `nobody` in a forked child (root writes whatever the mode says).
#[test]
fn a_file_not_writable_in_place_is_saved_by_a_rewrite() {
    use std::os::unix::fs::PermissionsExt;
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("nobody");
    fs::create_dir(&folder).unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let path = folder.join("kernels.rtc");
    save_entries(&path, 0, 2, 100);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
    let lock = folder.join("kernels.rtc.lock");
    let status = support::fork_and_wait(|| {
        if let Err(error) = support::change_owner_and_become(&[&folder, &path, &lock], 65534, 65534) {
            return support::report(3, &format!("cannot become nobody: {error}"));
        }
        let cache = match RuntimeCache::open(&path, CacheOptions::default()) {
            Ok(cache) => cache,
            Err(error) => return support::report(1, &format!("open: {error}")),
        };
        cache.insert(key(1, 0), artifact(1, 0, 100));
        match cache.save() {
            Ok(SaveOutcome::Committed { kind: SaveKind::Rewritten, entries: 3, .. }) => 0,
            other => support::report(2, &format!("expected a rewrite of 3 entries, got {other:?}")),
        }
    });
    assert_eq!(status, ChildStatus::Exited(0), "nobody saving a 0400 cache file");
    assert_eq!(log_of(&path).entries.len(), 3);
}

/// A reader (`open`, which takes no lock) reads the file with more than one `read(2)`, and saves
/// go on between two of them: here its first read takes the whole file while a save has reserved
/// its frame's space (`fallocate`: zeros) and not yet written it, and its next read finds that
/// frame written and one more save's frame after it. Each step is one a scheduler can pause a
/// process at (the `pause` hooks below only make the order certain). Every save committed in
/// order, and a reader must see the old file or a newer one; what the reader saw instead (an
/// invalid frame followed by a valid one) reads as damage, and since the lock is free by then,
/// `open` sets the live cache file aside: every entry of every process is gone from the cache.
#[test]
fn a_reader_whose_reads_straddle_two_appends_sees_old_or_new_and_sets_nothing_aside() {
    use pause::Gate;
    use std::os::unix::fs::MetadataExt;
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kernels.rtc");
    save_entries(&path, 0, 3, 100);
    let b = RuntimeCache::open(&path, CacheOptions::default()).expect("open b");
    b.insert(key(1, 0), artifact(1, 0, 100));
    let c = RuntimeCache::open(&path, CacheOptions::default()).expect("open c");
    c.insert(key(2, 0), artifact(2, 0, 100));
    pause::watch(fs::metadata(&path).unwrap().ino());
    let reader = std::thread::scope(|scope| {
        // B's save reserves its frame's space, then is paused before its write.
        pause::arm(Gate::Write);
        let saver = scope.spawn(|| b.save());
        pause::wait_paused(Gate::Write);
        // A reader opens: its first read takes the whole file (B's reserved zeros too), then it
        // is paused before its next read.
        pause::arm(Gate::Read);
        let reader = scope.spawn(|| RuntimeCache::open(&path, CacheOptions::default()));
        pause::wait_paused(Gate::Read);
        // B writes its frame and commits; C then appends one more frame.
        pause::release(Gate::Write);
        let saved_b = saver.join().unwrap().expect("b's save");
        assert!(matches!(saved_b, SaveOutcome::Committed { kind: SaveKind::Appended, .. }), "{saved_b:?}");
        let saved_c = c.save().expect("c's save");
        assert!(matches!(saved_c, SaveOutcome::Committed { kind: SaveKind::Appended, .. }), "{saved_c:?}");
        // The reader goes on reading.
        pause::release(Gate::Read);
        reader.join().unwrap()
    });
    pause::watch(0);
    let reader = reader.expect("the reader's open");
    let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    let set_aside = fs::read(dir.path().join("kernels.rtc.corrupt-0"))
        .ok()
        .map(|bytes| format::decode_log(&Bytes::from(bytes), &FormatLimits::default()).map(|log| log.entries.len()));
    assert!(
        path.exists() && names.iter().all(|name| !name.to_string_lossy().contains("corrupt")),
        "a reader set the live cache file aside as damaged while two saves committed in order: {names:?}; \
         the file set aside decodes as {set_aside:?} (entries)"
    );
    assert_eq!(log_of(&path).entries.len(), 5, "the file lost committed entries");
    assert!(reader.len() >= 3, "the reader saw neither the old file nor a newer one: {} entries", reader.len());
}

/// Pauses a thread at the two points the test above needs, on the one file it watches: in
/// `pwrite` (a save's append, after its `fallocate`) before the write, and in `read` after a read
/// that returned bytes. These definitions take the place of libc's for this test binary; on any
/// other file, or when not armed, they are the plain system calls.
/// A save whose fsync fails after its frame was written (a disk error, an NFS quota) leaves the
/// file byte-identical, as every failed save does: no other process loads what the save reports
/// as not saved, and the next save writes the entries once, not twice. Found by a review: the
/// failed sync left the frame in the file, and the retry appended the same entries again.
#[test]
fn an_append_whose_fsync_fails_leaves_the_file_byte_identical() {
    use std::os::unix::fs::MetadataExt;
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kernels.rtc");
    save_entries(&path, 0, 3, 300);
    let before = fs::read(&path).unwrap();
    let cache = RuntimeCache::open(&path, CacheOptions::default()).unwrap();
    cache.insert(key(1, 0), artifact(1, 0, 300));

    pause::watch(fs::metadata(&path).unwrap().ino());
    pause::fail_next_sync();
    let failed = cache.save();
    pause::watch(0);

    assert!(failed.is_err(), "the save whose fsync failed reported {failed:?}");
    let after = fs::read(&path).unwrap();
    assert!(after == before, "the failed save changed the file: {} bytes, {} before", after.len(), before.len());
    assert!(cache.is_dirty(), "the entry the failed save did not keep is no longer dirty");
    assert!(matches!(cache.save().unwrap(), SaveOutcome::Committed { kind: SaveKind::Appended, .. }));
    let log = log_of(&path);
    assert_eq!((log.entries.len(), log.appended_frames), (4, 1), "the retry appended the entry once");
}

mod pause {
    use std::ffi::{c_int, c_void};
    use std::mem::MaybeUninit;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Condvar, Mutex, MutexGuard};
    use std::time::{Duration, Instant};

    #[derive(Clone, Copy, Debug)]
    pub enum Gate {
        Write = 0,
        Read = 1,
    }

    struct State {
        armed: [bool; 2],
        paused: [bool; 2],
        released: [bool; 2],
    }

    static WATCHED: AtomicU64 = AtomicU64::new(0);
    static STATE: Mutex<State> = Mutex::new(State { armed: [false; 2], paused: [false; 2], released: [false; 2] });
    static CHANGED: Condvar = Condvar::new();
    const LIMIT: Duration = Duration::from_secs(10);

    fn state() -> MutexGuard<'static, State> {
        STATE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Watches the file with this inode number (0: none).
    pub fn watch(inode: u64) {
        WATCHED.store(inode, Ordering::SeqCst);
    }

    /// The next call through `gate` on the watched file pauses.
    pub fn arm(gate: Gate) {
        let mut state = state();
        let i = gate as usize;
        (state.armed[i], state.paused[i], state.released[i]) = (true, false, false);
    }

    /// Waits until a thread paused at `gate`.
    pub fn wait_paused(gate: Gate) {
        let deadline = Instant::now() + LIMIT;
        let mut state = state();
        while !state.paused[gate as usize] {
            assert!(Instant::now() < deadline, "no thread reached {gate:?} on the watched file");
            state = CHANGED.wait_timeout(state, Duration::from_millis(50)).unwrap().0;
        }
    }

    /// Lets the thread paused at `gate` go on.
    pub fn release(gate: Gate) {
        state().released[gate as usize] = true;
        CHANGED.notify_all();
    }

    fn pause_here(gate: Gate) {
        let i = gate as usize;
        let mut state = state();
        if !state.armed[i] {
            return;
        }
        (state.armed[i], state.paused[i]) = (false, true);
        CHANGED.notify_all();
        let deadline = Instant::now() + LIMIT;
        while !state.released[i] && Instant::now() < deadline {
            state = CHANGED.wait_timeout(state, Duration::from_millis(50)).unwrap().0;
        }
    }

    fn watched(fd: c_int) -> bool {
        let inode = WATCHED.load(Ordering::SeqCst);
        let mut stat = MaybeUninit::<libc::stat>::uninit();
        // SAFETY: `stat` is a writable `struct stat`; `fstat` only fills it.
        inode != 0 && unsafe { libc::fstat(fd, stat.as_mut_ptr()) } == 0 && {
            // SAFETY: `fstat` succeeded, so it filled `stat`.
            unsafe { stat.assume_init() }.st_ino == inode
        }
    }

    /// `read(2)`, pausing after a read of the watched file when armed.
    ///
    /// # Safety
    /// As `read(2)`.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn read(fd: c_int, buf: *mut c_void, count: libc::size_t) -> libc::ssize_t {
        // SAFETY: the caller's arguments, passed on as they are.
        let n = unsafe { libc::syscall(libc::SYS_read, fd, buf, count) } as libc::ssize_t;
        if n > 0 && watched(fd) {
            pause_here(Gate::Read);
        }
        n
    }

    static FAIL_NEXT_SYNC: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

    /// The next `fsync` of the watched file fails with EIO (as a disk error or an NFS quota
    /// reports a write it could not keep).
    pub fn fail_next_sync() {
        FAIL_NEXT_SYNC.store(true, Ordering::SeqCst);
    }

    /// `fsync(2)`, failing with EIO once when [`fail_next_sync`] armed it for the watched file.
    ///
    /// # Safety
    /// As `fsync(2)`.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn fsync(fd: c_int) -> c_int {
        if watched(fd) && FAIL_NEXT_SYNC.swap(false, Ordering::SeqCst) {
            // SAFETY: `__errno_location` returns this thread's errno, valid for writing.
            unsafe { *libc::__errno_location() = libc::EIO };
            return -1;
        }
        // SAFETY: the caller's argument, passed on as it is.
        unsafe { libc::syscall(libc::SYS_fsync, fd) as c_int }
    }

    /// `pwrite64(2)`, pausing before a write to the watched file when armed.
    ///
    /// # Safety
    /// As `pwrite64(2)`.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn pwrite64(
        fd: c_int,
        buf: *const c_void,
        count: libc::size_t,
        offset: libc::off64_t,
    ) -> libc::ssize_t {
        if watched(fd) {
            pause_here(Gate::Write);
        }
        // SAFETY: the caller's arguments, passed on as they are.
        unsafe { libc::syscall(libc::SYS_pwrite64, fd, buf, count, offset) as libc::ssize_t }
    }
}
