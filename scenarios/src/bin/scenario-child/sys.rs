//! Every `unsafe` call of the child program, each wrapped in a safe function with its `// SAFETY:`.

/// The result of `fork()`.
pub enum Forked {
    /// In the parent; the child's pid.
    Parent(libc::pid_t),
    /// In the child.
    Child,
}

/// Forks the process. Callers fork either while single-threaded (the fork family), or while every
/// other thread is parked holding no lock (fuzz cases: a thread owning an engine parks right after
/// taking it; signal-hook's thread waits in `read(2)`), or with a child that only sleeps and
/// [`exit_at_once`]s (the fork-during-save family, which forks with the cache's locks held).
pub fn fork() -> std::io::Result<Forked> {
    // SAFETY: per the callers' contract above, no other thread holds a lock the child will take;
    // glibc's `fork` resets its own allocator locks in the child, and the child touches only its
    // own copies of the cache's state before it ends.
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid)),
    }
}

/// Ends the process at once with `code` (`_exit`): no atexit hook, no destructor, no flush.
pub fn exit_at_once(code: i32) -> ! {
    // SAFETY: `_exit` takes no lock and touches no memory of the process; it never returns.
    unsafe { libc::_exit(code) }
}

/// Waits for the child `pid`; returns its raw wait status.
pub fn wait_for(pid: libc::pid_t) -> std::io::Result<i32> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a live, writable c_int; `pid` is our own child.
        let reaped = unsafe { libc::waitpid(pid, &mut status, 0) };
        if reaped == pid {
            return Ok(status);
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// Limits the size of any file this process writes to `bytes` (RLIMIT_FSIZE), and ignores
/// SIGXFSZ so that a write past the limit fails with EFBIG instead of killing the process.
pub fn limit_file_size(bytes: u64) -> std::io::Result<()> {
    // SAFETY: setting SIGXFSZ's disposition to SIG_IGN installs no handler code.
    if unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) } == libc::SIG_ERR {
        return Err(std::io::Error::last_os_error());
    }
    let limit = libc::rlimit { rlim_cur: bytes as libc::rlim_t, rlim_max: bytes as libc::rlim_t };
    // SAFETY: `limit` is a valid rlimit that lives for the duration of the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Makes a FIFO (named pipe, mode 0600) at `path`.
pub fn make_fifo(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt as _;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidInput, error))?;
    // SAFETY: `path` is a NUL-terminated string that lives for the duration of the call.
    if unsafe { libc::mkfifo(path.as_ptr(), 0o600) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Turns core dumps off for this process and its children (an `abort` ending should not write
/// a core file per case).
pub fn no_core_dumps() {
    let limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `limit` is a valid rlimit that lives for the duration of the call.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &limit) };
}

/// Prepares a fork server's freshly forked child: its own process group, a SIGALRM after
/// `alarm_secs`, stdin from `/dev/null`, stdout and stderr into `stdout`/`stderr`, and the
/// environment variables `env`.
pub fn become_case_process(
    alarm_secs: u32,
    stdout: &std::fs::File,
    stderr: &std::fs::File,
    env: &[(&str, &std::path::Path)],
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let null = std::fs::File::open("/dev/null")?;
    // SAFETY: setpgid(0, 0) and alarm affect only this process; dup2 targets the standard
    // descriptors with descriptors this function holds open for the duration of the calls.
    unsafe {
        if libc::setpgid(0, 0) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        libc::alarm(alarm_secs);
        for (from, to) in [(null.as_raw_fd(), 0), (stdout.as_raw_fd(), 1), (stderr.as_raw_fd(), 2)] {
            if libc::dup2(from, to) < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    for (key, value) in env {
        // SAFETY: this runs in a freshly forked child of the single-threaded fork server, so no
        // other thread can read or write the environment concurrently.
        unsafe { std::env::set_var(key, value) };
    }
    Ok(())
}

/// Sends SIGKILL to every process left in process group `group`; true if there was one.
pub fn kill_group(group: libc::pid_t) -> bool {
    // SAFETY: kill with a negative pid signals that process group only; no memory is involved.
    unsafe { libc::kill(-group, libc::SIGKILL) == 0 }
}

/// Makes this process a child subreaper (`PR_SET_CHILD_SUBREAPER`): a descendant orphaned by
/// its parent is adopted by this process instead of by init, so that descendants which left a
/// case's process group can still be found (see [`kill_adopted`]).
pub fn become_subreaper() -> std::io::Result<()> {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes an integer argument and touches no memory.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Once a case's process is reaped: kills every child this subreaper still has (descendants of
/// the case it adopted, alive after the case ended), and reaps every child that is gone. True
/// if one was still alive.
pub fn kill_adopted() -> bool {
    let mut leaked = false;
    for _ in 0..64 {
        let mut status = 0;
        // SAFETY: `status` is a live, writable c_int; WNOHANG never blocks.
        match unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) } {
            0 => {
                // Children alive: kill each (their pids are in /proc), then reap them.
                leaked = true;
                let children = std::fs::read_to_string("/proc/thread-self/children").unwrap_or_default();
                let pids: Vec<libc::pid_t> = children.split_whitespace().filter_map(|p| p.parse().ok()).collect();
                if pids.is_empty() {
                    return leaked;
                }
                for pid in pids {
                    // SAFETY: kill touches no memory; `pid` is a child of this process.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    let _ = wait_for(pid);
                }
            }
            -1 if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {}
            -1 => return leaked,
            _reaped => {}
        }
    }
    leaked
}

/// Gives SIGINT and SIGTERM their default action, as the contract table's endings assume: a
/// shell starts background jobs with SIGINT ignored, and an ignored disposition survives `exec`
/// and `fork`, so a `sigint` ending would otherwise never end. Called first thing in `main`,
/// before any handler is installed.
pub fn default_termination_signals() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: SIG_DFL installs no handler code; nothing else runs yet.
        unsafe { libc::signal(signal, libc::SIG_DFL) };
    }
}
