//! The child's process group: signalling it and finding what is left of it.

use rustix::process::{Pid, Signal};

use crate::observation::LeakedProcess;

/// `sig` as a rustix signal, or `None` for a number it does not name (real-time signals).
pub(crate) fn signal(sig: i32) -> Option<Signal> {
    Signal::from_named_raw(sig)
}

/// Sends `sig` to every process of the group `pgid`; errors (the group is gone) are ignored.
pub(crate) fn kill_group(pgid: Pid, sig: Signal) {
    let _ = rustix::process::kill_process_group(pgid, sig);
}

/// Like [`survivors`], but first gives the group until `deadline` to empty: used after the
/// harness itself signalled the group, when its members may still be dying.
pub(crate) fn survivors_by(pgid: Pid, deadline: std::time::Instant) -> Vec<LeakedProcess> {
    loop {
        let left = survivors(pgid);
        if left.is_empty() || std::time::Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// Processes of group `pgid` still alive (zombies excluded: they have ended and only await
/// their new parent's `wait`).
pub(crate) fn survivors(pgid: Pid) -> Vec<LeakedProcess> {
    if rustix::process::test_kill_process_group(pgid).is_err() {
        return Vec::new();
    }
    let Ok(proc_dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found: Vec<LeakedProcess> = proc_dir
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // `pid (comm) state ppid pgrp ...`; comm may hold spaces and parentheses.
            let mut rest = stat.rsplit_once(')').map_or("", |(_, r)| r).split_whitespace();
            let state = rest.next();
            let pgrp = rest.nth(1).and_then(|p| p.parse::<i32>().ok());
            pgrp == Some(pgid.as_raw_nonzero().get()) && state != Some("Z")
        })
        .map(|pid| LeakedProcess {
            pid,
            cmdline: std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " ").trim().to_owned())
                .unwrap_or_default(),
        })
        .collect();
    found.sort_by_key(|p| p.pid);
    found
}
