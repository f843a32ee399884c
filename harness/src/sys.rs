//! The harness's only `unsafe`: what a spawned child must not inherit from the harness's own
//! process.
//!
//! A shell starts a background job (`cargo test &`, `nohup ...`) with SIGINT and SIGQUIT ignored,
//! and an ignored disposition survives `fork` and `exec`: a child the harness spawns from such a
//! process would never end on the SIGINT a scenario sends it (it ran on, and the run said
//! "expected SIGINT, got exit code 0"). The child gets those signals' default action back, as a
//! program started from a terminal has it. Only when they are ignored here: otherwise `Command`
//! keeps its faster spawn, which a `pre_exec` hook would turn off.

use std::os::unix::process::CommandExt;
use std::process::Command;

/// The signals a shell ignores in its background jobs.
const RESTORED: [libc::c_int; 2] = [libc::SIGINT, libc::SIGQUIT];

/// Which of [`RESTORED`] this process ignores now (a program may change that between runs).
fn ignored_here() -> Vec<libc::c_int> {
    RESTORED
        .into_iter()
        .filter(|&signal| {
            // SAFETY: a null new action only reads the disposition into `old`, a zeroed,
            // writable `sigaction` that lives for the call.
            let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
            // SAFETY: as above: reads only.
            let read = unsafe { libc::sigaction(signal, std::ptr::null(), &mut old) } == 0;
            read && old.sa_sigaction == libc::SIG_IGN
        })
        .collect()
}

/// Gives the child spawned by `cmd` the default action of every signal in [`RESTORED`] that
/// this process ignores.
pub(crate) fn restore_default_signals(cmd: &mut Command) {
    let ignored = ignored_here();
    if ignored.is_empty() {
        return;
    }
    // SAFETY: the hook runs in the forked child before `exec`; it reads its own copy of
    // `ignored`, calls only `signal(2)`, which is async-signal-safe, and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            for &signal in &ignored {
                libc::signal(signal, libc::SIG_DFL);
            }
            Ok(())
        });
    }
}
