//! Every `unsafe` call of the child program, each wrapped in a safe function with its `// SAFETY:`.

/// The result of `fork()`.
pub enum Forked {
    /// In the parent; the child's pid.
    Parent(libc::pid_t),
    /// In the child.
    Child,
}

/// Forks the process. The child program calls this from its main thread with no other threads
/// running, so the child is a consistent copy.
pub fn fork() -> std::io::Result<Forked> {
    // SAFETY: called while this process is single-threaded (the fork family spawns no thread
    // before forking), so the child inherits no lock held by a vanished thread.
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid)),
    }
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
