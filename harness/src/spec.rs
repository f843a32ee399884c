//! What to run and what to watch: [`ChildSpec`] (a program that owns its `main`),
//! [`FileUnderTest`] (a file the black box watches) and the supervision [`Limits`].

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::observation::ValidContent;

/// Placeholder replaced, in a [`ChildSpec`]'s arguments and environment values, by the run's
/// scratch folder (also exported as [`SCRATCH_ENV`]).
pub const SCRATCH_PLACEHOLDER: &str = "{scratch}";

/// The environment variable naming the run's fresh, empty scratch folder.
pub const SCRATCH_ENV: &str = "EXIT_HARNESS_SCRATCH";

/// Decides whether a file's bytes are a valid instance of the resource's format, and which keys
/// it holds.
pub type Validator = Arc<dyn Fn(&[u8]) -> Result<ValidContent, String> + Send + Sync>;

/// A file the black box watches and snapshots.
#[derive(Clone)]
pub struct FileUnderTest {
    pub(crate) name: String,
    pub(crate) seed: Option<Vec<u8>>,
    pub(crate) validator: Option<Validator>,
}

impl FileUnderTest {
    /// A file, named relative to the run's scratch folder (or absolute).
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), seed: None, validator: None }
    }

    /// Writes `bytes` to the file before the child starts (the "old" content).
    #[must_use]
    pub fn seeded(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.seed = Some(bytes.into());
        self
    }

    /// Judges the file's content with `validator` in every snapshot.
    #[must_use]
    pub fn validated_by(
        mut self,
        validator: impl Fn(&[u8]) -> Result<ValidContent, String> + Send + Sync + 'static,
    ) -> Self {
        self.validator = Some(Arc::new(validator));
        self
    }

    /// The name as given.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The absolute path of the file for a run whose scratch folder is `scratch`.
    pub fn resolve(&self, scratch: &Path) -> PathBuf {
        scratch.join(&self.name)
    }
}

impl fmt::Debug for FileUnderTest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileUnderTest")
            .field("name", &self.name)
            .field("seed_bytes", &self.seed.as_ref().map(Vec::len))
            .field("validator", &self.validator.is_some())
            .finish()
    }
}

/// A folder the black box watches (not recursively): what was created, removed and renamed in
/// it, and its listing before and after the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderUnderTest {
    pub(crate) path: String,
}

impl FolderUnderTest {
    /// A folder, named relative to the run's scratch folder (`"."` is the scratch folder itself)
    /// or absolute. It is created before the run if it does not exist.
    pub fn new(path: impl Into<String>) -> Self {
        Self { path: path.into() }
    }

    /// The name as given.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The absolute path of the folder for a run whose scratch folder is `scratch`.
    pub fn resolve(&self, scratch: &Path) -> PathBuf {
        match self.path.as_str() {
            "." | "" => scratch.to_owned(),
            path => scratch.join(path),
        }
    }
}

/// When the harness sends a [`SignalTrigger`]'s signal.
#[derive(Debug, Clone)]
pub enum When {
    /// Once the journal shows a `marker` event with this name.
    Marker(String),
    /// Once a complete line of stdout or stderr matches this regex (for programs without a
    /// journal: "ready" printed by any program).
    Output(regex::Regex),
    /// This long after the child was spawned.
    After(Duration),
}

impl fmt::Display for When {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Marker(name) => write!(f, "marker {name:?}"),
            Self::Output(re) => write!(f, "output /{re}/"),
            Self::After(after) => write!(f, "after {} ms", after.as_millis()),
        }
    }
}

/// Send `signal` to the child (or its whole process group) when `when` happens; at most once.
#[derive(Debug, Clone)]
pub struct SignalTrigger {
    /// When to send it.
    pub when: When,
    /// The signal number to send.
    pub signal: i32,
    /// Send it to the whole process group rather than the child alone.
    pub to_group: bool,
}

/// How a run is supervised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// After this long the process group gets SIGTERM.
    pub timeout: Duration,
    /// After SIGTERM, this long before SIGKILL.
    pub grace: Duration,
    /// The most bytes kept of stdout and of stderr each (the head is kept).
    pub output_cap: usize,
    /// The most bytes of the journal read; beyond it the journal is reported cut and the
    /// oracles that read it cannot judge.
    pub journal_cap: u64,
    /// The largest file under test whose content is read (hashed, validated); a larger one is
    /// reported unreadable, and the oracles that need its content cannot judge.
    pub file_cap: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            grace: Duration::from_secs(2),
            output_cap: 1 << 20,
            journal_cap: 32 << 20,
            file_cap: 256 << 20,
        }
    }
}

/// A Cargo binary that could not be found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "no Cargo binary named {name:?} (looked for {looked}); build it first (`cargo build --bins`), or run from `cargo test`"
)]
pub struct CargoBinError {
    name: String,
    looked: String,
}

/// A program that owns its `main`, to run in a fresh process group (like `assert_cmd`).
#[derive(Debug, Clone)]
pub struct ChildSpec {
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<OsString>,
    pub(crate) env: Vec<(OsString, Option<OsString>)>,
    pub(crate) cwd: Option<PathBuf>,
    pub(crate) limits: Limits,
    pub(crate) triggers: Vec<SignalTrigger>,
    pub(crate) instrumented: bool,
}

impl ChildSpec {
    /// Runs `program` (a path, or a name looked up in `PATH`).
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
            limits: Limits::default(),
            triggers: Vec::new(),
            instrumented: true,
        }
    }

    /// Declares that the program writes no journal (any program, in any language): oracles
    /// judge from what the harness sees alone, and those that need the journal cannot judge.
    #[must_use]
    pub fn without_journal(mut self) -> Self {
        self.instrumented = false;
        self
    }

    /// Whether the program is declared to write the journal (the default).
    pub fn writes_journal(&self) -> bool {
        self.instrumented
    }

    /// Adds an argument; [`SCRATCH_PLACEHOLDER`] in it becomes the scratch folder.
    #[must_use]
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Adds arguments.
    #[must_use]
    pub fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable; [`SCRATCH_PLACEHOLDER`] in the value becomes the scratch
    /// folder.
    #[must_use]
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), Some(value.into())));
        self
    }

    /// Removes an inherited environment variable.
    #[must_use]
    pub fn env_remove(mut self, key: impl Into<OsString>) -> Self {
        self.env.push((key.into(), None));
        self
    }

    /// Runs the child in `dir` (default: the scratch folder).
    #[must_use]
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Ends the child (SIGTERM to its group, then SIGKILL after the grace) after `timeout`.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.limits.timeout = timeout;
        self
    }

    /// Sets every supervision limit at once.
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sends `signal` to the child when its journal shows the marker `marker`.
    #[must_use]
    pub fn signal_on_marker(self, marker: impl Into<String>, signal: i32) -> Self {
        self.signal_when(When::Marker(marker.into()), signal)
    }

    /// Sends `signal` to the child when `when` happens.
    #[must_use]
    pub fn signal_when(mut self, when: When, signal: i32) -> Self {
        self.triggers.push(SignalTrigger { when, signal, to_group: false });
        self
    }

    /// A binary of the current Cargo package or workspace, by name, as `assert_cmd` finds it:
    /// the `CARGO_BIN_EXE_<name>` variable when Cargo set it, else `<name>` in the target folder
    /// of the running test (`target/<profile>/`, the parent of its `deps/`).
    pub fn cargo_bin(name: &str) -> Result<Self, CargoBinError> {
        if let Some(path) = std::env::var_os(format!("CARGO_BIN_EXE_{name}")) {
            return Ok(Self::new(path));
        }
        let exe =
            std::env::current_exe().map_err(|e| CargoBinError { name: name.to_owned(), looked: e.to_string() })?;
        let mut folder = exe.parent().map(Path::to_path_buf).unwrap_or_default();
        if folder.ends_with("deps") {
            folder.pop();
        }
        let path = folder.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
        if path.is_file() {
            Ok(Self::new(path))
        } else {
            Err(CargoBinError { name: name.to_owned(), looked: path.display().to_string() })
        }
    }

    /// The program and its arguments as a shell would show them (`{scratch}` unexpanded).
    pub fn command_line(&self) -> String {
        std::iter::once(self.program.as_os_str())
            .chain(self.args.iter().map(|a| a.as_os_str()))
            .map(|word| {
                let word = word.to_string_lossy();
                if !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "-_./{}=:,@%+".contains(c)) {
                    word.into_owned()
                } else {
                    format!("'{}'", word.replace('\'', r"'\''"))
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The program.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// The supervision limits.
    pub fn get_limits(&self) -> &Limits {
        &self.limits
    }
}
