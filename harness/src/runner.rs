//! The child runner: spawns a program in its own process group, supervises it, and assembles
//! the [`Observation`].
//!
//! A run gets a fresh temporary folder holding the journal file and an empty `scratch/` folder
//! (the child's working directory unless the spec says otherwise, exported as
//! [`SCRATCH_ENV`]). The files under test are seeded and watched there (see [`crate::blackbox`]).
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
    dir: tempfile::TempDir,
    journal: PathBuf,
    scratch: PathBuf,
    black_box: BlackBox,
}

impl Run {
    /// Makes the run folder, creates the empty journal, seeds and watches the files under test.
    pub(crate) fn prepare(files: &[FileUnderTest]) -> Result<Self, RunError> {
        let dir = tempfile::Builder::new().prefix("exit-harness-").tempdir().map_err(RunError::Prepare)?;
        let journal = dir.path().join("journal.jsonl");
        let scratch = dir.path().join("scratch");
        std::fs::create_dir(&scratch).map_err(RunError::Prepare)?;
        std::fs::write(&journal, b"").map_err(RunError::Prepare)?;
        let black_box = BlackBox::arm(files, &scratch)?;
        Ok(Self { dir, journal, scratch, black_box })
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
        let stdout = Capture::start(child.stdout.take(), limits.output_cap);
        let stderr = Capture::start(child.stderr.take(), limits.output_cap);
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
            let mut fds = Vec::with_capacity(2);
            fds.push(PollFd::from_borrowed_fd(self.black_box.fd(), PollFlags::IN));
            if let Some(fd) = &pidfd {
                fds.push(PollFd::new(fd, PollFlags::IN));
            }
            let _ = rustix::event::poll(&mut fds, timeout.as_ref());
            if fds[0].revents().contains(PollFlags::IN) {
                self.black_box.drain()?;
            }
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
        let (files, black_box_overflowed) = self.black_box.finish()?;
        let journal = Journal::read(&self.journal)?;
        let output_deadline = Instant::now() + OUTPUT_GRACE;
        let observation = Observation {
            outcome,
            timed_out,
            signals_sent,
            stdout: stdout.finish(output_deadline),
            stderr: stderr.finish(output_deadline),
            wall,
            journal,
            files,
            black_box_overflowed,
            leaked,
        };
        crate::cleanup::later(self.dir);
        Ok(observation)
    }
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
