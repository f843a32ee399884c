//! The child runner: spawns a program in its own process group, supervises it, and assembles
//! the [`Observation`].
//!
//! A run gets a private run folder (see [`crate::run_folder`]): a fresh, empty scratch folder (the
//! child's working directory unless the spec says otherwise, exported as [`SCRATCH_ENV`]) and,
//! beside it, the journal the harness created (exported as [`JOURNAL_ENV`]). The files under
//! test are seeded and watched in the scratch folder (see [`crate::blackbox`]).
//!
//! Supervision is event-driven: the parent `poll(2)`s a pidfd of the child together with the
//! black box's inotify descriptor, so it wakes when the child exits or touches a watched folder.
//! Only while a [`SignalTrigger`] is pending does it also wake every few milliseconds to read
//! what was appended to the journal since it last looked. At the timeout the whole group gets
//! SIGTERM, then SIGKILL after the grace. After the child is reaped, every descendant still
//! alive, in its group or escaped from it, is recorded as leaked and killed (see
//! [`crate::descendants`]).
//!
//! stdout and stderr are captured separately, each bounded to [`Limits::output_cap`] bytes
//! (the head is kept, followed by `[truncated N bytes]`).

use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::process::{Pid, PidfdFlags, Signal};

use std::sync::atomic::{AtomicU64, Ordering};

use crate::blackbox::{BlackBox, BlackBoxError};
use crate::capture::Capture;
use crate::descendants::{self, RUN_TAG_ENV};
use crate::journal::{JOURNAL_ENV, Journal, JournalReader};
use crate::observation::{ExitOutcome, Observation};
use crate::run_folder::RunFolder;
use crate::spec::{
    ChildSpec, FileUnderTest, FolderUnderTest, Limits, SCRATCH_ENV, SCRATCH_PLACEHOLDER, SignalTrigger, When,
};

/// How often the journal is looked at while a signal waits on a marker.
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
    /// The working folder the spec names is not a folder (std would report it as the program
    /// not being found).
    #[error("the working folder {0} does not exist or is not a folder")]
    NoWorkingFolder(PathBuf),
    /// Waiting for the child failed.
    #[error("could not wait for the child: {0}")]
    Wait(#[source] std::io::Error),
    /// The journal could not be read.
    #[error("could not read the journal: {0}")]
    ReadJournal(#[source] std::io::Error),
    /// A signal number the harness cannot send.
    #[error("signal {0} is not a signal the harness can send")]
    BadSignal(i32),
}

/// The parent's side of one run, before and while the child runs.
pub(crate) struct Run {
    folder: RunFolder,
    black_box: BlackBox,
    /// The tag in the environment of every process of this run (see [`crate::descendants`]).
    tag: String,
    limits: Limits,
    instrumented: bool,
}

impl Run {
    /// Makes the run folder and the journal, seeds and watches the files under test.
    pub(crate) fn prepare(
        files: &[FileUnderTest],
        folders: &[FolderUnderTest],
        limits: &Limits,
        instrumented: bool,
    ) -> Result<Self, RunError> {
        static RUNS: AtomicU64 = AtomicU64::new(0);
        let folder = RunFolder::create().map_err(RunError::Prepare)?;
        let black_box = BlackBox::arm(files, folders, folder.scratch.path(), limits)?;
        let tag = format!("{}-{}", std::process::id(), RUNS.fetch_add(1, Ordering::Relaxed));
        Ok(Self { folder, black_box, tag, limits: limits.clone(), instrumented })
    }

    /// The scratch folder.
    pub(crate) fn scratch(&self) -> &Path {
        self.folder.scratch.path()
    }

    /// Gives `cmd` the run's environment, its own process group, piped output, and the default
    /// action of SIGINT and SIGQUIT where this process ignores them (see `sys`).
    ///
    /// `RUST_BACKTRACE` and `RUST_LIB_BACKTRACE` are removed so that a panic's stderr does not
    /// depend on the developer's shell; a spec may set them again.
    pub(crate) fn configure(&self, cmd: &mut Command) {
        descendants::adopt_orphans();
        crate::sys::restore_default_signals(cmd);
        cmd.env_remove("RUST_BACKTRACE")
            .env_remove("RUST_LIB_BACKTRACE")
            .env(JOURNAL_ENV, &self.folder.journal_path)
            .env(SCRATCH_ENV, self.scratch())
            .env(RUN_TAG_ENV, &self.tag)
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
        triggers: &[SignalTrigger],
        started: Instant,
    ) -> Result<Observation, RunError> {
        let limits = &self.limits;
        let pid = Pid::from_child(child);
        let mut stdout = Capture::new(child.stdout.take(), limits.output_cap);
        let mut stderr = Capture::new(child.stderr.take(), limits.output_cap);
        let pidfd = rustix::process::pidfd_open(pid, PidfdFlags::empty()).ok();
        let mut journal = JournalReader::new(limits.journal_cap);

        let mut pending: Vec<&SignalTrigger> = triggers.iter().collect();
        let watches_journal = triggers.iter().any(|t| matches!(t.when, When::Marker(_)));
        let mut output_seen = [0usize; 2];
        let mut signals_sent = Vec::new();
        let mut timed_out = false;
        let mut kill_at: Option<Instant> = None;
        let status = loop {
            if let Some(status) = child.try_wait().map_err(RunError::Wait)? {
                break status;
            }
            let now = Instant::now();
            if !pending.is_empty() {
                if watches_journal {
                    // Only what was appended since the last look is read and parsed.
                    journal.read_from(&self.folder.journal).map_err(RunError::ReadJournal)?;
                }
                let lines = [stdout.new_lines(&mut output_seen[0]), stderr.new_lines(&mut output_seen[1])].concat();
                let seen = Seen { journal: journal.journal(), lines: &lines, elapsed: now - started };
                fire_triggers(&seen, pid, &mut pending, &mut signals_sent);
            }
            if !timed_out && now >= started + limits.timeout {
                timed_out = true;
                descendants::kill_group(pid, Signal::TERM);
                kill_at = Some(now + limits.grace);
            }
            if kill_at.is_some_and(|at| now >= at) {
                descendants::kill_group(pid, Signal::KILL);
                kill_at = None;
            }
            let mut wake = kill_at.unwrap_or(started + limits.timeout);
            if (watches_journal && !pending.is_empty()) || pidfd.is_none() {
                wake = wake.min(now + MARKER_POLL);
            }
            for trigger in &pending {
                if let When::After(after) = trigger.when {
                    wake = wake.min(started + after);
                }
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
        let outcome = ExitOutcome::from(status);

        // The harness signalled the whole group: its members may still be dying.
        let settle = (timed_out || triggers.iter().any(|t| t.to_group))
            .then(|| Instant::now() + limits.grace.min(Duration::from_secs(1)));
        let leaked = descendants::collect_leftovers(pid, &self.tag, settle);
        // The pipes close when the last process holding them ends, and every descendant has
        // been killed; their ends are still awaited only until a deadline.
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
        let seen = self.black_box.finish()?;
        journal.read_from(&self.folder.journal).map_err(RunError::ReadJournal)?;
        Ok(Observation {
            outcome,
            timed_out,
            signals_sent,
            stdout: stdout.finish(),
            stderr: stderr.finish(),
            wall,
            journal: journal.finish(),
            files: seen.files,
            folders: seen.folders,
            black_box_overflowed: seen.overflowed,
            leaked,
            descendants_watched: descendants::adopt_orphans(),
            instrumented: self.instrumented,
            scratch: Some(self.folder.scratch),
        })
    }
}

impl From<std::process::ExitStatus> for ExitOutcome {
    fn from(status: std::process::ExitStatus) -> Self {
        match (status.code(), status.signal()) {
            (Some(code), _) => Self::Code(code),
            (None, Some(sig)) => Self::Signal(sig),
            (None, None) => Self::Code(-1),
        }
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

/// What the triggers look at, at one moment.
struct Seen<'a> {
    journal: &'a Journal,
    /// Complete output lines that appeared since the last look.
    lines: &'a [String],
    elapsed: Duration,
}

impl When {
    fn happened(&self, seen: &Seen<'_>) -> bool {
        match self {
            Self::Marker(name) => seen.journal.has_marker(name),
            Self::Output(re) => seen.lines.iter().any(|line| re.is_match(line)),
            Self::After(after) => seen.elapsed >= *after,
        }
    }
}

/// Sends the signals whose triggers have happened (signal numbers were checked before the run
/// started).
fn fire_triggers(seen: &Seen<'_>, pid: Pid, pending: &mut Vec<&SignalTrigger>, sent: &mut Vec<(String, i32)>) {
    pending.retain(|trigger| {
        if !trigger.when.happened(seen) {
            return true;
        }
        match descendants::signal(trigger.signal) {
            Some(sig) if trigger.to_group => descendants::kill_group(pid, sig),
            Some(sig) => {
                let _ = rustix::process::kill_process(pid, sig);
            }
            None => return true,
        }
        sent.push((trigger.when.to_string(), trigger.signal));
        false
    });
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
        run(self, files, &[])
    }

    /// Runs the program once, watching `files` and `folders`, and returns what was observed.
    pub fn run_watching(&self, files: &[FileUnderTest], folders: &[FolderUnderTest]) -> Result<Observation, RunError> {
        run(self, files, folders)
    }
}

/// Runs `spec` once, watching `files` and `folders`, and returns what was observed.
pub fn run(spec: &ChildSpec, files: &[FileUnderTest], folders: &[FolderUnderTest]) -> Result<Observation, RunError> {
    check_triggers(&spec.triggers)?;
    if let Some(cwd) = spec.cwd.as_ref().filter(|cwd| !cwd.is_dir()) {
        return Err(RunError::NoWorkingFolder(cwd.clone()));
    }
    let run = Run::prepare(files, folders, &spec.limits, spec.instrumented)?;
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
    let result = run.supervise(&mut child, &spec.triggers, started);
    if result.is_err() {
        // Never leave a child behind, even when observing failed.
        descendants::kill_group(Pid::from_child(&child), Signal::KILL);
        let _ = child.wait();
    }
    result
}

/// Fails before any run when a trigger names a signal the harness cannot send.
pub(crate) fn check_triggers(triggers: &[SignalTrigger]) -> Result<(), RunError> {
    match triggers.iter().find(|t| descendants::signal(t.signal).is_none()) {
        Some(bad) => Err(RunError::BadSignal(bad.signal)),
        None => Ok(()),
    }
}
