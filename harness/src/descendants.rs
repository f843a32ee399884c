//! The child's descendants: signalling them, and finding every one that outlived the child.
//!
//! A child runs in its own process group, and the harness signals the group (timeouts, markers).
//! A descendant can leave the group (`setsid`, `setpgid`), so the group alone does not show what
//! outlived the child. The harness therefore makes its own process a *child subreaper*
//! (`PR_SET_CHILD_SUBREAPER`, Linux 3.4+, no privilege needed): a descendant whose parent dies
//! is re-parented to the harness instead of to init. Every run's environment carries a tag
//! ([`RUN_TAG_ENV`]); after the child is reaped, the survivors of a run are
//!
//! - the live members of its process group, and
//! - the processes the harness adopted whose environment carries the run's tag,
//!
//! with all their descendants. Each is reported as leaked, killed with SIGKILL, and, when the
//! harness adopted it, reaped. Where the subreaper cannot be set, escapes are not observable and
//! the observation says so ([`Observation::descendants_watched`](crate::Observation)); the
//! [`NoLeakedProcesses`](crate::oracle::NoLeakedProcesses) oracle then cannot judge.
//!
//! Blind spot: a descendant that leaves the group, replaces its environment (`execve` with a
//! new one, which drops the tag) and whose parent then dies is adopted untagged and not
//! attributed to the run. It is still re-parented to the harness, not lost in the system.

use std::collections::{BTreeSet, HashMap};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, WaitOptions};

use crate::observation::LeakedProcess;

/// The environment variable tagging every process of one run.
pub const RUN_TAG_ENV: &str = "EXIT_HARNESS_RUN";

/// `sig` as a rustix signal, or `None` for a number it does not name (real-time signals).
pub(crate) fn signal(sig: i32) -> Option<Signal> {
    Signal::from_named_raw(sig)
}

/// Sends `sig` to every process of the group `pgid`; errors (the group is gone) are ignored.
pub(crate) fn kill_group(pgid: Pid, sig: Signal) {
    let _ = rustix::process::kill_process_group(pgid, sig);
}

/// Makes this process a child subreaper, once; whether it is one.
pub(crate) fn adopt_orphans() -> bool {
    static ADOPTING: OnceLock<bool> = OnceLock::new();
    *ADOPTING.get_or_init(|| rustix::process::set_child_subreaper(Some(rustix::process::getpid())).is_ok())
}

/// One line of `/proc/PID/stat`, the fields this module needs.
struct ProcStat {
    ppid: i32,
    pgrp: i32,
    zombie: bool,
}

fn proc_stat(pid: i32) -> Option<ProcStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid pgrp ...`; comm may hold spaces and parentheses.
    let mut rest = stat.rsplit_once(')')?.1.split_whitespace();
    let zombie = rest.next()? == "Z";
    let ppid = rest.next()?.parse().ok()?;
    let pgrp = rest.next()?.parse().ok()?;
    Some(ProcStat { ppid, pgrp, zombie })
}

/// Whether `pid`'s initial environment holds `RUN_TAG_ENV=tag` (read at most 1 MiB).
fn carries_tag(pid: i32, tag: &str) -> bool {
    use std::io::Read as _;
    let Ok(file) = std::fs::File::open(format!("/proc/{pid}/environ")) else { return false };
    let mut environ = Vec::new();
    if file.take(1 << 20).read_to_end(&mut environ).is_err() {
        return false;
    }
    let wanted = format!("{RUN_TAG_ENV}={tag}");
    environ.split(|&b| b == 0).any(|var| var == wanted.as_bytes())
}

/// What is left of one run after its child was reaped.
pub(crate) struct Leftovers {
    /// Live processes, in pid order.
    pub(crate) alive: Vec<LeakedProcess>,
    /// Adopted processes (ours to reap), zombies included.
    adopted: Vec<i32>,
}

/// This process's children, from `/proc/self/task/*/children` (an orphan is re-parented to one
/// of the subreaper's threads); `None` when the kernel does not list children.
fn own_children() -> Option<Vec<i32>> {
    let mut children = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let list = std::fs::read_to_string(task.path().join("children")).ok()?;
        children.extend(list.split_whitespace().filter_map(|pid| pid.parse::<i32>().ok()));
    }
    Some(children)
}

/// Finds the live members of group `pgid`, the processes this harness adopted that carry `tag`,
/// and all their descendants.
pub(crate) fn leftovers(pgid: Pid, tag: &str) -> Leftovers {
    // The common case, nothing left, costs two system calls and a few small reads instead of a
    // scan of every process on the machine: the group is empty and no child of ours is tagged.
    let group_gone = rustix::process::test_kill_process_group(pgid).is_err();
    if group_gone && own_children().is_some_and(|children| !children.iter().any(|&pid| carries_tag(pid, tag))) {
        return Leftovers { alive: Vec::new(), adopted: Vec::new() };
    }
    let me = rustix::process::getpid().as_raw_nonzero().get();
    let pgid = pgid.as_raw_nonzero().get();
    let mut table: HashMap<i32, ProcStat> = HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok())
            && let Some(stat) = proc_stat(pid)
        {
            table.insert(pid, stat);
        }
    }
    let adopted: Vec<i32> =
        table.iter().filter(|(pid, s)| s.ppid == me && carries_tag(**pid, tag)).map(|(pid, _)| *pid).collect();
    let mut found: BTreeSet<i32> = table.iter().filter(|(_, s)| s.pgrp == pgid).map(|(pid, _)| *pid).collect();
    found.extend(&adopted);
    // Close over descendants: a process whose parent was found is found.
    loop {
        let before = found.len();
        let children: Vec<i32> = table.iter().filter(|(_, s)| found.contains(&s.ppid)).map(|(pid, _)| *pid).collect();
        found.extend(children);
        if found.len() == before {
            break;
        }
    }
    let alive = found
        .into_iter()
        .filter(|pid| table.get(pid).is_some_and(|s| !s.zombie))
        .map(|pid| LeakedProcess { pid: u32::try_from(pid).ok(), cmdline: cmdline(pid) })
        .collect();
    Leftovers { alive, adopted }
}

fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| String::from_utf8_lossy(&raw[..raw.len().min(4096)]).replace('\0', " ").trim().to_owned())
        .unwrap_or_default()
}

/// Finds what outlived the child of group `pgid` tagged `tag`, kills it, and reaps what the
/// harness adopted. When `settle` is given, the harness has just signalled the group: members
/// still dying get until then to go before they count as leaked.
pub(crate) fn collect_leftovers(pgid: Pid, tag: &str, settle: Option<Instant>) -> Vec<LeakedProcess> {
    let mut left = leftovers(pgid, tag);
    while let Some(deadline) = settle {
        if left.alive.is_empty() || Instant::now() >= deadline {
            break;
        }
        reap(&left.adopted);
        std::thread::sleep(Duration::from_millis(2));
        left = leftovers(pgid, tag);
    }
    let leaked = left.alive.clone();
    // Kill until nothing is left: a process may fork while its siblings are being killed.
    let deadline = Instant::now() + Duration::from_secs(2);
    while !left.alive.is_empty() && Instant::now() < deadline {
        kill_group(pgid, Signal::KILL);
        for process in &left.alive {
            if let Some(pid) = process.pid.and_then(|p| Pid::from_raw(p as i32)) {
                let _ = rustix::process::kill_process(pid, Signal::KILL);
            }
        }
        reap(&left.adopted);
        left = leftovers(pgid, tag);
        if !left.alive.is_empty() {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    reap(&left.adopted);
    leaked
}

/// Reaps those of `pids` that have ended (they are this process's children by adoption).
fn reap(pids: &[i32]) {
    for pid in pids.iter().filter_map(|&p| Pid::from_raw(p)) {
        let _ = rustix::process::waitpid(Some(pid), WaitOptions::NOHANG);
    }
}
