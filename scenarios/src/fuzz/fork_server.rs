//! The fork server's parent side: one long-lived `scenario-child serve` process, initialised
//! once and single-threaded, forks one child per case (as AFL's fork server does), so a case
//! costs a `fork()` instead of an `exec()` of a fresh program.
//!
//! Protocol, one line each way per case: the parent writes a [`ServeRequest`] as JSON; the
//! server forks, the child moves into its own process group, arms a 20 s `alarm`, points
//! stdin/stdout/stderr at `/dev/null` and two files, enters the case's scratch folder, sets the
//! journal variables and runs the case to its real ending (returning from `main`, exiting,
//! panicking or dying by a signal). The server reaps it, kills whatever is left of its process
//! group and every descendant it adopted (it is a child subreaper), and answers `STATUS LEAKED` (the raw wait status, and 1 if anything was left).
//!
//! The parent then reads the journal, the captured output and the cache files (decoded with
//! [`runtime_cache::format::decode`]) into an [`Observation`], so that the same
//! [oracles](super::oracles) judge fork-server and spawned runs. A fork-server run has no
//! inotify black box; the decoded files are its second channel.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use exit_harness::journal::Journal;
use exit_harness::observation::{FileObservation, FileSnapshot, LeakedProcess};
use exit_harness::{ExitOutcome, Observation, ValidContent};
use runtime_cache::format::{self, FormatLimits};
use serde::{Deserialize, Serialize};

use super::ops::Case;
use crate::defects::{Defect, FAILPOINTS_ENV};

/// The child program's first argument for fork-server mode.
pub const SERVE_ARG: &str = "serve";

/// One case for the server: where to run it and what it is.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServeRequest {
    /// The case's fresh, empty scratch folder (its working directory).
    pub dir: PathBuf,
    /// The journal file (outside the scratch folder).
    pub journal: PathBuf,
    /// Where the case's stdout goes.
    pub stdout: PathBuf,
    /// Where the case's stderr goes.
    pub stderr: PathBuf,
    /// The case.
    pub case: Case,
}

/// A running fork server.
#[derive(Debug)]
pub struct ForkServer {
    process: Child,
    requests: ChildStdin,
    replies: BufReader<ChildStdout>,
    /// The job's private folder (removed when the server is dropped).
    _base: tempfile::TempDir,
    /// The job's one scratch folder, journal and output files, emptied after every case.
    layout: CaseLayout,
}

/// Where every case of one fork server runs: the same folder and files each time, emptied by the
/// parent after the case is observed (creating and removing a folder per case cost more than
/// emptying one).
#[derive(Clone, Debug)]
struct CaseLayout {
    dir: PathBuf,
    journal: PathBuf,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl ForkServer {
    /// Starts `child` (the `scenario-child` program) in fork-server mode, against `defect` of the
    /// defect zoo if given.
    pub fn start(child: &Path, defect: Option<Defect>) -> std::io::Result<Self> {
        let mut folder = tempfile::Builder::new();
        folder.prefix("exit-harness-fuzz-");
        let base = folder.tempdir_in(CASE_FOLDER_BASE).or_else(|_| folder.tempdir())?;
        let mut command = Command::new(child);
        command.arg(SERVE_ARG).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        command.env_remove("RUST_BACKTRACE").env_remove("RUST_LIB_BACKTRACE");
        match defect {
            Some(defect) => command.env(FAILPOINTS_ENV, defect.failpoints()),
            None => command.env_remove(FAILPOINTS_ENV),
        };
        let mut process = command.spawn()?;
        let requests = process.stdin.take().ok_or_else(|| std::io::Error::other("no stdin pipe"))?;
        let replies = BufReader::new(process.stdout.take().ok_or_else(|| std::io::Error::other("no stdout pipe"))?);
        let layout = CaseLayout {
            dir: base.path().join("case"),
            journal: base.path().join("case.journal"),
            stdout: base.path().join("case.stdout"),
            stderr: base.path().join("case.stderr"),
        };
        std::fs::create_dir(&layout.dir)?;
        Ok(Self { process, requests, replies, _base: base, layout })
    }

    /// Runs `case` in a forked child and observes it.
    pub fn run(&mut self, case: &Case) -> Result<Observation, String> {
        let layout = self.layout.clone();
        let request = ServeRequest {
            dir: layout.dir,
            journal: layout.journal,
            stdout: layout.stdout,
            stderr: layout.stderr,
            case: case.clone(),
        };
        let started = Instant::now();
        let mut line = serde_json::to_string(&request).map_err(|error| error.to_string())?;
        // One write for the line and its newline: the server wakes once per request, not twice.
        line.push('\n');
        self.requests.write_all(line.as_bytes()).and_then(|()| self.requests.flush()).map_err(|e| self.broken(e))?;
        let mut reply = String::new();
        match self.replies.read_line(&mut reply) {
            Ok(0) => return Err(self.broken("the fork server closed its output")),
            Ok(_) => {}
            Err(error) => return Err(self.broken(error)),
        }
        let wall = started.elapsed();
        let mut words = reply.split_whitespace().map(str::parse::<i32>);
        let (Some(Ok(status)), Some(Ok(leaked))) = (words.next(), words.next()) else {
            return Err(format!("the fork server answered `{}`", reply.trim()));
        };
        let observation = observe(&request, case, status, leaked != 0, wall);
        // Every process of the case is gone (the server reaped or killed them all): empty the
        // folder and remove the files for the next case, which must start from nothing.
        for path in [&request.journal, &request.stdout, &request.stderr] {
            remove_if_present(path)?;
        }
        empty_folder(&request.dir)?;
        observation
    }

    fn broken(&mut self, error: impl std::fmt::Display) -> String {
        let status = self.process.try_wait().ok().flatten();
        format!("the fork server broke ({error}); its status: {status:?}")
    }
}

impl Drop for ForkServer {
    fn drop(&mut self) {
        // Closing its input ends the server's loop.
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

fn remove_if_present(path: &Path) -> Result<(), String> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(format!("remove {}: {error}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Removes everything in `dir`, keeping `dir`; an error names what could not be removed (a
/// case must never see what the previous one left).
fn empty_folder(dir: &Path) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|error| format!("list {}: {error}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|error| format!("list {}: {error}", dir.display()))?;
        let path = entry.path();
        let removed = match entry.file_type() {
            Ok(kind) if kind.is_dir() => std::fs::remove_dir_all(&path),
            _ => std::fs::remove_file(&path),
        };
        removed.map_err(|error| format!("remove {}: {error}", path.display()))?;
    }
    Ok(())
}

/// Assembles the observation of one forked case.
fn observe(
    request: &ServeRequest,
    case: &Case,
    status: i32,
    leaked: bool,
    wall: std::time::Duration,
) -> Result<Observation, String> {
    let status = std::process::ExitStatus::from_raw(status);
    let outcome = match (status.code(), status.signal()) {
        (Some(code), _) => ExitOutcome::Code(code),
        (None, Some(signal)) => ExitOutcome::Signal(signal),
        (None, None) => ExitOutcome::Code(-1),
    };
    let journal = Journal::read(&request.journal, exit_harness::Limits::default().journal_cap)
        .map_err(|error| error.to_string())?;
    let read = |path: &Path| String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned();
    let files = case
        .files()
        .into_iter()
        .map(|name| {
            let path = request.dir.join(&name);
            FileObservation {
                after: snapshot(&path),
                // The fork server neither snapshots before nor watches with inotify: not observed.
                before: None,
                black_box: None,
                name,
                path,
            }
        })
        .collect();
    let leaked = match leaked {
        true => vec![LeakedProcess {
            pid: None,
            cmdline: "(the fork server saw a descendant of the case outlive it, in its process group or adopted)"
                .into(),
        }],
        false => Vec::new(),
    };
    Ok(Observation {
        outcome,
        timed_out: false,
        signals_sent: Vec::new(),
        stdout: read(&request.stdout),
        stderr: read(&request.stderr),
        wall,
        journal,
        files,
        folders: Vec::new(),
        black_box_overflowed: false,
        leaked,
        // The server kills the case's process group and, a child subreaper, every descendant
        // that left the group and was adopted by it.
        descendants_watched: true,
        instrumented: true,
        scratch: None,
    })
}

/// Where the cases' folders go: `/dev/shm` (tmpfs) where it can be written, else the temp
/// folder. A case creates and removes some ten files (its folder, journal, output, cache, lock
/// and temp files); on tmpfs that costs a fraction of what it costs on a disk file system, and
/// nothing a case is judged on depends on the file system.
const CASE_FOLDER_BASE: &str = "/dev/shm";

/// A file as it is now: absent, or its size, hash and decoded keys.
fn snapshot(path: &Path) -> FileSnapshot {
    let Ok(bytes) = std::fs::read(path) else { return FileSnapshot::absent() };
    let bytes = bytes::Bytes::from(bytes);
    let validity = format::decode(&bytes, &FormatLimits::default())
        .map(|entries| ValidContent::with_keys(entries.iter().map(|(key, _)| key.to_hex())))
        .map_err(|error| error.to_string());
    FileSnapshot {
        exists: true,
        size: bytes.len() as u64,
        hash: Some(blake3::hash(&bytes).to_hex().to_string()),
        validity: Some(validity),
        content: None,
        unreadable: None,
    }
}
