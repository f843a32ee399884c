//! Helpers shared by the integration tests: a recorded observer, folder snapshots, re-running a
//! test in a child process, and the one place that calls `fork()`.
//!
//! Each test binary uses a different part of this module.
#![allow(dead_code, unused_imports, reason = "each test binary uses a different part of this module")]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard, OnceLock};

use runtime_cache::{Event, Trigger};

/// Serialises the tests of one binary that assert on process-global state (the observer, the
/// exit registry) or that `fork()`.
pub fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

static EVENTS: Mutex<Vec<Event>> = Mutex::new(Vec::new());

/// Installs (once) an observer that records every event of this process.
pub fn record_events() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        runtime_cache::set_observer(|event| EVENTS.lock().unwrap_or_else(|p| p.into_inner()).push(event.clone()))
    });
}

/// Every recorded event so far.
pub fn all_events() -> Vec<Event> {
    EVENTS.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// The recorded events about the cache at `path`.
pub fn events_for(path: &Path) -> Vec<Event> {
    all_events().into_iter().filter(|event| event_path(event) == Some(path)).collect()
}

/// The cache path an event is about, if any.
pub fn event_path(event: &Event) -> Option<&Path> {
    match event {
        Event::Opened { path, .. }
        | Event::CacheUnavailable { path, .. }
        | Event::Quarantined { path, .. }
        | Event::TempFilesRemoved { path, .. }
        | Event::SaveStarted { path, .. }
        | Event::SaveCommitted { path, .. }
        | Event::SaveFailed { path, .. }
        | Event::SaveSkipped { path, .. }
        | Event::OverLimits { path, .. }
        | Event::Evicted { path, .. } => Some(path),
        _ => None,
    }
}

/// The triggers of the committed saves of the cache at `path`, in order.
pub fn commits_for(path: &Path) -> Vec<Trigger> {
    events_for(path)
        .into_iter()
        .filter_map(|event| match event {
            Event::SaveCommitted { trigger, .. } => Some(trigger),
            _ => None,
        })
        .collect()
}

/// Every file under `dir` (recursively) with its mode and content: equal snapshots mean nothing
/// was created, removed, changed or re-permissioned.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u32, Option<Vec<u8>>)> {
    let mut out = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in fs::read_dir(&folder).expect("list folder") {
            let path = entry.expect("folder entry").path();
            let metadata = fs::symlink_metadata(&path).expect("metadata");
            if metadata.is_dir() {
                pending.push(path.clone());
                out.insert(path, (metadata.mode(), None));
            } else {
                let content = fs::read(&path).ok();
                out.insert(path, (metadata.mode(), content));
            }
        }
    }
    out
}

/// The name of the environment variable that marks a re-run of a test as the child half.
pub const CHILD_ENV: &str = "RUNTIME_CACHE_TEST_CHILD";

/// Whether this process is the child half of `test` (see [`rerun_as_child`]).
pub fn is_child_of(test: &str) -> bool {
    std::env::var(CHILD_ENV).is_ok_and(|value| value == test)
}

/// Runs the test named `test` (its full path in this binary) again in a child process, with
/// [`CHILD_ENV`] set to `test`, after `configure` adjusts the command (environment, ...). Returns
/// the child's output after checking that exactly that one test ran and passed.
pub fn rerun_as_child(test: &str, configure: impl FnOnce(&mut Command)) -> Output {
    let exe = std::env::current_exe().expect("test binary path");
    let mut command = Command::new(exe);
    command.args(["--exact", test, "--nocapture", "--test-threads=1"]).env(CHILD_ENV, test);
    configure(&mut command);
    let output = command.output().expect("spawn the test binary");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("test result: ok. 1 passed"),
        "child run of {test} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    output
}

/// The folder build.rs found `libnvrtc.so.12` in (with the cfg `nvrtc_present`).
pub const NVRTC_LIBRARY_DIR: Option<&str> = option_env!("RUNTIME_CACHE_NVRTC_LIB_DIR");

/// True if NVRTC is found by this process. Otherwise re-runs `test` in a child process whose
/// `LD_LIBRARY_PATH` holds the folder build.rs found, checks that it passed, and returns false
/// (the caller then returns: the child did the work).
pub fn nvrtc_here_or_rerun(test: &str) -> bool {
    if runtime_cache::nvrtc_available() {
        return true;
    }
    assert!(
        !is_child_of(test),
        "libnvrtc.so.12 is not found even with LD_LIBRARY_PATH={:?}",
        std::env::var("LD_LIBRARY_PATH")
    );
    let dir = NVRTC_LIBRARY_DIR.expect("build.rs found libnvrtc.so.12 (nvrtc_present) and names its folder");
    rerun_as_child(test, |command| {
        let path = match std::env::var("LD_LIBRARY_PATH") {
            Ok(existing) if !existing.is_empty() => format!("{dir}:{existing}"),
            _ => dir.to_owned(),
        };
        command.env("LD_LIBRARY_PATH", path);
    });
    false
}

/// Writes `message` to the real stderr (not the test harness's capture, which a forked child's
/// output never reaches) and returns `code`, for a forked child's exit status.
pub fn report(code: i32, message: &str) -> i32 {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{message}");
    code
}

/// Whether this process runs as root (permission checks are bypassed).
pub fn running_as_root() -> bool {
    sys::effective_uid() == 0
}

pub use sys::{
    ChildStatus, change_owner_and_become, fork_and_wait, fork_child, kill_self, limit_file_size, wait_for,
    wait_for_at_most,
};

/// The `unsafe` the tests share (`append_log.rs` has one more module, `pause`, that replaces
/// libc's `read` and `pwrite64` in that test binary only).
mod sys {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::path::Path;

    /// How a forked child ended.
    #[derive(Debug, PartialEq, Eq)]
    pub enum ChildStatus {
        /// Exited with this status.
        Exited(i32),
        /// Killed by this signal.
        Signaled(i32),
    }

    /// Ends this process with SIGKILL at once: no destructor, no exit hook runs.
    pub fn kill_self() -> ! {
        // SAFETY: `raise` only sends a signal to this process; SIGKILL cannot be caught, so the
        // process ends here.
        unsafe { libc::raise(libc::SIGKILL) };
        unreachable!("SIGKILL returned")
    }

    /// Limits the size of any file this process writes to `bytes` (RLIMIT_FSIZE, the soft
    /// limit; `None` lifts it), with SIGXFSZ ignored, so that a write past it fails with EFBIG
    /// as on a full disk. For a forked child: the limit is process-wide.
    pub fn limit_file_size(bytes: Option<u64>) {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: `limit` is a live, writable rlimit; ignoring SIGXFSZ installs no handler code.
        unsafe {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            assert_eq!(libc::getrlimit(libc::RLIMIT_FSIZE, &mut limit), 0, "getrlimit");
            limit.rlim_cur = bytes.map_or(limit.rlim_max, |bytes| bytes as libc::rlim_t);
            assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0, "setrlimit");
        }
    }

    pub fn effective_uid() -> u32 {
        // SAFETY: `geteuid` takes no arguments and cannot fail.
        unsafe { libc::geteuid() }
    }

    /// Forks; the child runs `child` and then `_exit`s with its return value (101 if it panics),
    /// unless `child` ends the process itself (e.g. with `std::process::exit`, which runs the
    /// atexit hooks). The parent waits for the child and returns how it ended.
    ///
    /// Call with the binary's other tests serialised ([`super::serial`]): the child has only the
    /// forking thread, so a lock another thread held at the fork would stay held there.
    pub fn fork_and_wait(child: impl FnOnce() -> i32) -> ChildStatus {
        wait_for(fork_child(child))
    }

    /// Like [`fork_and_wait`], without waiting: returns the child's pid for [`wait_for`].
    pub fn fork_child(child: impl FnOnce() -> i32) -> i32 {
        // SAFETY: the child only runs `child` and then `_exit`s: it never returns into the test
        // harness. glibc's fork resets the allocator's locks in the child, and the callers
        // serialise the tests of their binary, so no lock of the code under test is held by a
        // thread that does not exist in the child.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed: {}", std::io::Error::last_os_error());
        if pid == 0 {
            let code = catch_unwind(AssertUnwindSafe(child)).unwrap_or(101);
            // SAFETY: `_exit` ends the child at once, without running the parent's atexit hooks
            // or destructors a second time; it never returns.
            unsafe { libc::_exit(code) };
        }
        pid
    }

    /// Waits for the forked child `pid` and says how it ended.
    pub fn wait_for(pid: i32) -> ChildStatus {
        let mut status = 0;
        // SAFETY: `pid` is our child; `status` is a live, writable `c_int`.
        let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(waited, pid, "waitpid failed: {}", std::io::Error::last_os_error());
        if libc::WIFEXITED(status) {
            ChildStatus::Exited(libc::WEXITSTATUS(status))
        } else {
            ChildStatus::Signaled(libc::WTERMSIG(status))
        }
    }

    /// Waits up to `limit` for the forked child `pid`; if it is still running then, kills it
    /// (SIGKILL), reaps it and returns `None`.
    pub fn wait_for_at_most(pid: i32, limit: std::time::Duration) -> Option<ChildStatus> {
        let started = std::time::Instant::now();
        loop {
            let mut status = 0;
            // SAFETY: `pid` is our child; `status` is a live, writable `c_int`.
            let waited = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if waited == pid {
                return Some(if libc::WIFEXITED(status) {
                    ChildStatus::Exited(libc::WEXITSTATUS(status))
                } else {
                    ChildStatus::Signaled(libc::WTERMSIG(status))
                });
            }
            if started.elapsed() > limit {
                // SAFETY: `pid` is our own, still unreaped child.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                wait_for(pid);
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// In a forked child run as root: gives `paths` to `uid`/`gid`, then drops this process's
    /// privileges to them for good, so permission checks apply again.
    pub fn change_owner_and_become(paths: &[&Path], uid: u32, gid: u32) -> std::io::Result<()> {
        for path in paths {
            let c_path = CString::new(path.as_os_str().as_bytes()).expect("no NUL in a temp path");
            // SAFETY: `c_path` is a valid NUL-terminated string for the duration of the call.
            if unsafe { libc::chown(c_path.as_ptr(), uid, gid) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        // SAFETY: plain syscalls on this process's credentials; no memory is passed. The group
        // goes first: after `setuid` the process may no longer change it.
        if unsafe { libc::setgroups(0, std::ptr::null()) } != 0
            || unsafe { libc::setgid(gid) } != 0
            || unsafe { libc::setuid(uid) } != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Every name under `dir` (not recursive) with its size and mode, without reading any content
/// (for folders holding huge sparse files).
pub fn snapshot_names(dir: &Path) -> BTreeMap<PathBuf, (u64, u32)> {
    fs::read_dir(dir)
        .expect("list folder")
        .map(|entry| {
            let path = entry.expect("folder entry").path();
            let metadata = fs::symlink_metadata(&path).expect("metadata");
            (path, (metadata.len(), metadata.mode()))
        })
        .collect()
}
