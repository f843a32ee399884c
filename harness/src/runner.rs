//! The child runner: spawns a program in its own process group, supervises it, and assembles
//! the [`Observation`].
//!
//! A run gets a fresh, empty temporary scratch folder (the child's working directory unless the
//! spec says otherwise, exported as [`SCRATCH_ENV`]) and a journal path beside it (exported as
//! [`JOURNAL_ENV`]; the child creates the file on its first event). The files under test are
//! seeded and watched in the scratch folder (see [`crate::blackbox`]).
//!
//! Supervision is event-driven: the parent `poll(2)`s a pidfd of the child together with the
//! black box's inotify descriptor, so it wakes when the child exits or touches a watched folder.
//! Only while a [`SignalOnMarker`] is pending does it also wake every few milliseconds to
//! read the journal. At the timeout the whole group gets SIGTERM, then SIGKILL after the grace.
//! After the child is reaped, any process left in its group is recorded as leaked and killed.
//!
//! stdout and stderr are captured separately, each bounded to [`Limits::output_cap`] bytes
//! (the head is kept, followed by `[truncated N bytes]`).

use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::process::{Pid, PidfdFlags, Signal};

use crate::blackbox::{BlackBox, BlackBoxError};
use crate::capture::Capture;
use crate::journal::{JOURNAL_ENV, Journal, JournalError};
use crate::observation::{ExitOutcome, Observation};
use crate::process_group;
use crate::spec::{ChildSpec, FileUnderTest, Limits, SCRATCH_ENV, SCRATCH_PLACEHOLDER, SignalOnMarker};

/// How often the journal is re-read while a signal waits on a marker.
const MARKER_POLL: Duration = Duration::from_millis(2);

/// How long, after the group ended, to wait for the ends of stdout and stderr.
const OUTPUT_GRACE: Duration = Duration::from_secs(1);

/// Why a run produced no observation.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The run's temporary folder could not be made.
    #[error("could not prepare the run folder: {0}")]
    Prepare(#[source] std::io::Error),
    /// The black box could not be set up or read.
    #[error(transparent)]
    BlackBox(#[from] BlackBoxError),
    /// The program could not be started.
    #[error("could not start {program}: {source}")]
    Spawn {
        /// The program.
        program: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Waiting for the child failed.
    #[error("could not wait for the child: {0}")]
    Wait(#[source] std::io::Error),
    /// The journal could not be read.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// A signal number the harness cannot send.
    #[error("signal {0} is not a signal the harness can send")]
    BadSignal(i32),
}

/// The parent's side of one run, before and while the child runs.
pub(crate) struct Run {
    files: RunFiles,
    journal: PathBuf,
    scratch: PathBuf,
    black_box: BlackBox,
}

/// The run's folder and journal, removed on drop. The journal is a sibling of the folder (so it
/// is not in the child's scratch folder) and is created by the child on its first event.
struct RunFiles {
    /// Held for its `Drop`, which removes the folder.
    _dir: tempfile::TempDir,
    journal: PathBuf,
}

impl Drop for RunFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.journal);
    }
}

impl Run {
    /// Makes the run folder, creates the empty journal, seeds and watches the files under test.
    pub(crate) fn prepare(files: &[FileUnderTest]) -> Result<Self, RunError> {
        let dir = tempfile::Builder::new().prefix("exit-harness-").tempdir().map_err(RunError::Prepare)?;
        let scratch = dir.path().to_owned();
        let mut journal = scratch.clone().into_os_string();
        journal.push(".journal.jsonl");
        let journal = PathBuf::from(journal);
        let black_box = BlackBox::arm(files, &scratch)?;
        Ok(Self { files: RunFiles { _dir: dir, journal: journal.clone() }, journal, scratch, black_box })
    }

    /// The scratch folder.
    pub(crate) fn scratch(&self) -> &Path {
        &self.scratch
    }

    /// Gives `cmd` the run's environment, its own process group and piped output.
    ///
    /// `RUST_BACKTRACE` and `RUST_LIB_BACKTRACE` are removed so that a panic's stderr does not
    /// depend on the developer's shell; a spec may set them again.
    pub(crate) fn configure(&self, cmd: &mut Command) {
        cmd.env_remove("RUST_BACKTRACE")
            .env_remove("RUST_LIB_BACKTRACE")
            .env(JOURNAL_ENV, &self.journal)
            .env(SCRATCH_ENV, &self.scratch)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
    }

    /// Supervises `child` (spawned with [`configure`](Self::configure)) to its end and
    /// assembles the observation.
    pub(crate) fn supervise(
        mut self,
        child: &mut Child,
        limits: &Limits,
        triggers: &[SignalOnMarker],
        started: Instant,
    ) -> Result<Observation, RunError> {
        let pid = Pid::from_child(child);
        let mut stdout = Capture::new(child.stdout.take(), limits.output_cap);
        let mut stderr = Capture::new(child.stderr.take(), limits.output_cap);
        let pidfd = rustix::process::pidfd_open(pid, PidfdFlags::empty()).ok();

        let mut pending: Vec<&SignalOnMarker> = triggers.iter().collect();
        let mut signals_sent = Vec::new();
        let mut timed_out = false;
        let mut kill_at: Option<Instant> = None;
        let status = loop {
            if let Some(status) = child.try_wait().map_err(RunError::Wait)? {
                break status;
            }
            let now = Instant::now();
            if !pending.is_empty() {
                fire_triggers(&self.journal, pid, &mut pending, &mut signals_sent)?;
            }
            if !timed_out && now >= started + limits.timeout {
                timed_out = true;
                process_group::kill_group(pid, Signal::TERM);
                kill_at = Some(now + limits.grace);
            }
            if kill_at.is_some_and(|at| now >= at) {
                process_group::kill_group(pid, Signal::KILL);
                kill_at = None;
            }
            let mut wake = kill_at.unwrap_or(started + limits.timeout);
            if !pending.is_empty() || pidfd.is_none() {
                wake = wake.min(now + MARKER_POLL);
            }
            let timeout = Timespec::try_from(wake.saturating_duration_since(now)).ok();
            let mut fds = Vec::with_capacity(4);
            fds.push(PollFd::from_borrowed_fd(self.black_box.fd(), PollFlags::IN));
            if let Some(fd) = &pidfd {
                fds.push(PollFd::new(fd, PollFlags::IN));
            }
            poll_streams(&mut fds, &stdout, &stderr, timeout);
            if fds[0].revents().contains(PollFlags::IN) {
                self.black_box.drain()?;
            }
            stdout.pump();
            stderr.pump();
        };
        let wall = started.elapsed();
        let outcome = match (status.code(), status.signal()) {
            (Some(code), _) => ExitOutcome::Code(code),
            (None, Some(sig)) => ExitOutcome::Signal(sig),
            (None, None) => ExitOutcome::Code(-1),
        };

        let leaked = if timed_out || triggers.iter().any(|t| t.to_group) {
            // The harness signalled the whole group: its members may still be dying.
            process_group::survivors_by(pid, Instant::now() + limits.grace.min(Duration::from_secs(1)))
        } else {
            process_group::survivors(pid)
        };
        if !leaked.is_empty() {
            process_group::kill_group(pid, Signal::KILL);
        }
        // The pipes close when the last process holding them ends; one that escaped the group
        // could hold them forever, so their ends are awaited only until a deadline.
        let output_deadline = Instant::now() + OUTPUT_GRACE;
        while stdout.is_open() || stderr.is_open() {
            let now = Instant::now();
            if now >= output_deadline {
                break;
            }
            let timeout = Timespec::try_from(output_deadline - now).ok();
            poll_streams(&mut Vec::new(), &stdout, &stderr, timeout);
            stdout.pump();
            stderr.pump();
        }
        let (files, black_box_overflowed) = self.black_box.finish()?;
        let journal = Journal::read(&self.journal)?;
        let observation = Observation {
            outcome,
            timed_out,
            signals_sent,
            stdout: stdout.finish(),
            stderr: stderr.finish(),
            wall,
            journal,
            files,
            black_box_overflowed,
            leaked,
        };
        crate::cleanup::later(self.files);
        Ok(observation)
    }
}

/// Polls `fds` plus the open output pipes, up to `timeout`; readiness is left to the callers'
/// non-blocking reads.
fn poll_streams<'a>(fds: &mut Vec<PollFd<'a>>, stdout: &'a Capture, stderr: &'a Capture, timeout: Option<Timespec>) {
    for fd in [stdout.fd(), stderr.fd()].into_iter().flatten() {
        fds.push(PollFd::from_borrowed_fd(fd, PollFlags::IN));
    }
    let _ = rustix::event::poll(fds, timeout.as_ref());
}

/// Sends the signals whose markers have appeared in the journal.
fn fire_triggers(
    journal: &Path,
    pid: Pid,
    pending: &mut Vec<&SignalOnMarker>,
    sent: &mut Vec<(String, i32)>,
) -> Result<(), RunError> {
    let Ok(text) = std::fs::read_to_string(journal) else {
        return Ok(());
    };
    // A line being written may be torn or malformed; markers only count once complete.
    let Ok(seen) = Journal::parse(journal, &text) else {
        return Ok(());
    };
    let mut error = None;
    pending.retain(|trigger| {
        if !seen.has_marker(&trigger.marker) {
            return true;
        }
        match process_group::signal(trigger.signal) {
            Some(sig) if trigger.to_group => process_group::kill_group(pid, sig),
            Some(sig) => {
                let _ = rustix::process::kill_process(pid, sig);
            }
            None => error = Some(RunError::BadSignal(trigger.signal)),
        }
        sent.push((trigger.marker.clone(), trigger.signal));
        false
    });
    error.map_or(Ok(()), Err)
}

/// Replaces [`SCRATCH_PLACEHOLDER`] in `value` with `scratch`.
fn substitute(value: &std::ffi::OsStr, scratch: &Path) -> std::ffi::OsString {
    match value.to_str() {
        Some(text) if text.contains(SCRATCH_PLACEHOLDER) => {
            text.replace(SCRATCH_PLACEHOLDER, &scratch.to_string_lossy()).into()
        }
        _ => value.to_owned(),
    }
}

impl ChildSpec {
    /// Runs the program once, watching `files`, and returns what was observed.
    pub fn run(&self, files: &[FileUnderTest]) -> Result<Observation, RunError> {
        run(self, files)
    }
}

/// Runs `spec` once, watching `files`, and returns what was observed.
pub fn run(spec: &ChildSpec, files: &[FileUnderTest]) -> Result<Observation, RunError> {
    for trigger in &spec.triggers {
        process_group::signal(trigger.signal).ok_or(RunError::BadSignal(trigger.signal))?;
    }
    let run = Run::prepare(files)?;
    let scratch = run.scratch().to_owned();
    let mut cmd = Command::new(&spec.program);
    cmd.args(spec.args.iter().map(|a| substitute(a, &scratch)));
    cmd.current_dir(spec.cwd.as_deref().unwrap_or(&scratch));
    run.configure(&mut cmd);
    for (key, value) in &spec.env {
        match value {
            Some(value) => cmd.env(key, substitute(value, &scratch)),
            None => cmd.env_remove(key),
        };
    }
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|source| RunError::Spawn { program: spec.program.clone(), source })?;
    let result = run.supervise(&mut child, &spec.limits, &spec.triggers, started);
    if result.is_err() {
        // Never leave a child behind, even when observing failed.
        process_group::kill_group(Pid::from_child(&child), Signal::KILL);
        let _ = child.wait();
    }
    result
}
