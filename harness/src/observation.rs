//! What one run looked like from the outside: the [`Observation`] every oracle judges.

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::journal::Journal;
use crate::oracle::OracleVerdict;
use crate::run_folder::Scratch;

/// How the child process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitOutcome {
    /// It exited with this status code.
    Code(i32),
    /// It was terminated by this signal number.
    Signal(i32),
}

impl ExitOutcome {
    /// The shell's view: the code, or 128 + the signal.
    pub fn shell_code(self) -> i32 {
        match self {
            Self::Code(code) => code,
            Self::Signal(sig) => 128 + sig,
        }
    }
}

impl fmt::Display for ExitOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Code(code) => write!(f, "exit code {code}"),
            Self::Signal(sig) => write!(f, "signal {sig} ({})", signal_name(sig)),
        }
    }
}

/// The conventional name of a signal number (`"SIGTERM"`), or `"SIG?"`.
pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        11 => "SIGSEGV",
        12 => "SIGUSR2",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        _ => "SIG?",
    }
}

/// The largest file under test whose content is kept as text in its snapshot.
pub const TEXT_KEPT: u64 = 1 << 20;

/// The state of one file under test at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSnapshot {
    /// Whether something existed at the path (a file, or anything else: see `unreadable`).
    pub exists: bool,
    /// Its size in bytes (0 when absent).
    pub size: u64,
    /// The blake3 hash of its content, hex (`None` when absent or unreadable).
    pub hash: Option<String>,
    /// What the caller's validator said, when there is a validator and the file was read.
    pub validity: Option<Result<ValidContent, String>>,
    /// The content as text (lossy UTF-8), for files of at most [`TEXT_KEPT`] bytes.
    pub content: Option<String>,
    /// Why the content was not read, when something exists at the path but the harness did not
    /// read it: not a regular file (a FIFO, a symlink, which it never follows), over the byte
    /// limit, or an I/O error. Oracles that need the content then cannot judge it.
    pub unreadable: Option<String>,
}

impl FileSnapshot {
    /// The snapshot of a file that does not exist.
    pub fn absent() -> Self {
        Self { exists: false, size: 0, hash: None, validity: None, content: None, unreadable: None }
    }

    /// The snapshot of something at the path whose content was not read, and why.
    pub fn unreadable(size: u64, why: impl Into<String>) -> Self {
        Self { exists: true, size, hash: None, validity: None, content: None, unreadable: Some(why.into()) }
    }

    /// The keys the validator found, if the file is valid and the validator exposes keys.
    pub fn keys(&self) -> Option<&BTreeSet<String>> {
        match &self.validity {
            Some(Ok(content)) => content.keys.as_ref(),
            _ => None,
        }
    }

    /// A short human description: `absent`, or `123 B, blake3 abcd1234…, valid (4 keys)`.
    pub fn describe(&self) -> String {
        if !self.exists {
            return "absent".into();
        }
        if let Some(why) = &self.unreadable {
            return format!("not read: {why}");
        }
        let hash = self.hash.as_deref().map_or("?", |h| &h[..h.len().min(12)]);
        let validity = match &self.validity {
            None => String::new(),
            Some(Ok(content)) => match &content.keys {
                Some(keys) => format!(", valid ({} keys)", keys.len()),
                None => ", valid".into(),
            },
            Some(Err(why)) => format!(", INVALID: {why}"),
        };
        format!("{} B, blake3 {hash}{validity}", self.size)
    }
}

/// What a validator accepts a file as: valid, optionally with the set of keys it holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ValidContent {
    /// The keys (entries) the file holds, when the format has such a notion.
    pub keys: Option<BTreeSet<String>>,
}

impl ValidContent {
    /// Valid, with no notion of keys.
    pub fn opaque() -> Self {
        Self { keys: None }
    }

    /// Valid, holding these keys.
    pub fn with_keys<K: Into<String>>(keys: impl IntoIterator<Item = K>) -> Self {
        Self { keys: Some(keys.into_iter().map(Into::into).collect()) }
    }
}

/// What the black box (inotify) counted for one file under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlackBoxCounts {
    /// `IN_MOVED_TO` events naming the file: a rename onto it.
    pub renames_onto: u64,
    /// `IN_CLOSE_WRITE` events naming the file, whatever was written.
    pub close_writes: u64,
    /// `IN_CLOSE_WRITE` events preceded by at least one `IN_MODIFY` since the previous close:
    /// writes in place.
    pub in_place_writes: u64,
}

impl BlackBoxCounts {
    /// Saves as the black box sees them: renames onto the file plus writes in place.
    pub fn saves(&self) -> u64 {
        self.renames_onto + self.in_place_writes
    }
}

/// Everything observed about one file under test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileObservation {
    /// The name the scenario gave the file (relative to the scratch folder, or absolute).
    pub name: String,
    /// The absolute path the child saw.
    pub path: PathBuf,
    /// Before the child started (after seeding); `None` when the runner did not look (the
    /// fuzzer's fork server), never invented.
    pub before: Option<FileSnapshot>,
    /// After the child and its descendants were gone.
    pub after: FileSnapshot,
    /// The black box's counts; `None` when no black box watched this run (the fork server).
    pub black_box: Option<BlackBoxCounts>,
}

/// Everything observed about one folder under test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderObservation {
    /// The name the scenario gave the folder.
    pub name: String,
    /// The absolute path.
    pub path: PathBuf,
    /// The entries' names before the child started (after seeding).
    pub before: BTreeSet<String>,
    /// The entries' names after the child and its descendants were gone.
    pub after: BTreeSet<String>,
    /// What the black box saw happen in the folder, in order: `created NAME`, `removed NAME`,
    /// `renamed NAME ->`, `renamed -> NAME` (inotify events; not recursive).
    pub events: Vec<String>,
}

impl FolderObservation {
    /// Entries present after the run that were not there before.
    pub fn new_entries(&self) -> impl Iterator<Item = &str> {
        self.after.difference(&self.before).map(String::as_str)
    }
}

/// A descendant of the child still alive after the child exited: a member of its process
/// group, or a process that left the group (`setsid`) and was adopted by the harness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeakedProcess {
    /// Its process id, when the runner knows it (the fork server reports only that one leaked).
    pub pid: Option<u32>,
    /// Its command line, as `/proc/PID/cmdline` showed it.
    pub cmdline: String,
}

/// One observed run: the input of every [oracle](crate::oracle::Oracle).
#[derive(Debug, Clone)]
pub struct Observation {
    /// How the child ended.
    pub outcome: ExitOutcome,
    /// Whether the harness had to end it at its timeout.
    pub timed_out: bool,
    /// Signals the harness sent on its triggers, as `(when, signal)` (`marker "ready"`,
    /// `output /ready/`, `after 200 ms`), in order.
    pub signals_sent: Vec<(String, i32)>,
    /// Its standard output (bounded; see [`crate::runner`]).
    pub stdout: String,
    /// Its standard error (bounded).
    pub stderr: String,
    /// From spawn to reaped.
    pub wall: Duration,
    /// The child's journal.
    pub journal: Journal,
    /// The files under test, in the order the scenario named them.
    pub files: Vec<FileObservation>,
    /// The folders under test, in the order the scenario named them.
    pub folders: Vec<FolderObservation>,
    /// Whether the black box's queue overflowed (its counts are then a lower bound).
    pub black_box_overflowed: bool,
    /// Descendants of the child found alive after it exited (they were then killed).
    pub leaked: Vec<LeakedProcess>,
    /// Whether descendants that left the child's process group were watched too (the harness
    /// is a child subreaper; see [`crate::descendants`]). When not, [`Self::leaked`] covers the
    /// process group only.
    pub descendants_watched: bool,
    /// Whether the child was declared to write the journal. When it was not, [`Self::journal`]
    /// is empty by declaration and oracles that need it cannot judge.
    pub instrumented: bool,
    /// The run's scratch folder, kept until the observation is judged (see [`Scratch`]).
    pub scratch: Option<Scratch>,
}

impl Observation {
    /// The file under test with this name (as the scenario gave it).
    pub fn file(&self, name: &str) -> Option<&FileObservation> {
        self.files.iter().find(|f| f.name == name)
    }

    /// The journal, when an oracle may judge from it: `Err` with the verdict to return when the
    /// child writes no journal (cannot judge), when a line is malformed (fail, quoting it), or
    /// when the journal was cut at the harness's byte limit (cannot judge).
    pub fn judgeable_journal(&self) -> Result<&Journal, OracleVerdict> {
        if !self.instrumented {
            return Err(OracleVerdict::cannot_judge(
                "the child is declared not to write the journal; this oracle needs it",
            ));
        }
        if let Some(limit) = self.journal.cut_at {
            return Err(OracleVerdict::cannot_judge(format!(
                "the journal exceeded the harness's limit of {limit} bytes; only its head was read"
            )));
        }
        if !self.journal.malformed.is_empty() {
            let lines = self.journal.malformed.iter().map(|m| format!("line {}: {}: {}", m.line, m.reason, m.text));
            return Err(OracleVerdict::fail(format!(
                "{} malformed journal line(s), so the journal cannot be trusted:\n{}",
                self.journal.malformed.len(),
                crate::oracle::quote_lines(lines.collect::<Vec<_>>().iter().map(String::as_str), 5)
            )));
        }
        Ok(&self.journal)
    }

    /// The scratch folder, while the observation keeps it.
    pub fn scratch_path(&self) -> Option<&std::path::Path> {
        self.scratch.as_ref().map(Scratch::path)
    }

    /// The non-empty lines of stderr.
    pub fn stderr_lines(&self) -> impl Iterator<Item = &str> {
        self.stderr.lines().filter(|l| !l.trim().is_empty())
    }
}
