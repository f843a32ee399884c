//! The inline runner: a closure inside a `#[test]`, run in a child process through
//! [`rusty_fork`], observed and judged exactly like a spawned program.
//!
//! `rusty-fork` re-executes the test binary filtered to the one test; in that child, the same
//! test function reaches the same [`Inline::run`] call, which runs the body instead. Nothing of
//! the parent's preparation (run folder, journal, inotify watches) happens in the child: it is
//! all done in the process modifier, which only the parent calls, just before the spawn. The
//! modifier also pipes stdout and stderr separately (`rusty-fork` alone merges them) and puts
//! the child in its own process group.
//!
//! The child journals [`BODY_STARTED`] just before the body; a run without it (the test path
//! names no test, so the child ran nothing and exited 0) is the error
//! [`InlineError::BodyNeverRan`], never an observation that "nothing happened" oracles would
//! pass.
//!
//! How the child ends: when the body returns, `rusty-fork` calls `std::process::exit(0)` (exit
//! hooks run, `main`'s locals are not dropped); when it panics, `std::process::exit(70)` after
//! the panic message. A body that wants another ending (`abort`, a signal, its own
//! `process::exit(n)`) does it itself.
//!
//! ```no_run
//! use exit_harness::inline::Inline;
//! use exit_harness::oracle::SaveCount;
//! use exit_harness::{FileUnderTest, Oracle};
//!
//! #[test]
//! fn flushes_once() {
//!     let obs = Inline::new(exit_harness::test_path!(flushes_once))
//!         .file(FileUnderTest::new("out.txt"))
//!         .run(exit_harness::fork_id!(), |ctx| {
//!             std::fs::write(ctx.scratch.join("out.txt"), b"data").unwrap();
//!             let _ = exit_harness::journal::record(&exit_harness::Event::save(ctx.scratch.join("out.txt")));
//!         })
//!         .unwrap();
//!     assert!(SaveCount::exactly(1).judge(&obs).passed());
//! }
//! ```

use std::cell::RefCell;
use std::hash::Hash;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use rusty_fork;

use crate::cell::{CellResult, Scenario};
use crate::observation::Observation;
use crate::runner::{Run, RunError};
use crate::spec::{FileUnderTest, FolderUnderTest, Limits, SCRATCH_ENV, SignalTrigger, When};

/// The full libtest path of test function `$name` in the current module, as [`Inline::new`]
/// needs it.
#[macro_export]
macro_rules! test_path {
    ($name:ident) => {
        $crate::inline::rusty_fork::fork_test::fix_module_path(concat!(module_path!(), "::", stringify!($name)))
    };
}

/// A test whose body runs in a child process that really ends, judged by a [`Scenario`]: the
/// test path and fork id are derived from the function, so a wrong name cannot compile, and a
/// body that never ran fails the test.
///
/// ```no_run
/// use exit_harness::oracle::{ExitStatus, QuietStderr, SaveCount};
/// use exit_harness::{FileUnderTest, Scenario, exit_test};
///
/// fn flushes_once() -> Scenario {
///     Scenario::new("flushes once")
///         .file(FileUnderTest::new("out.txt"))
///         .oracle(SaveCount::exactly(1))
///         .oracle(QuietStderr::empty())
///         .oracle(ExitStatus::code(3))
/// }
///
/// exit_test! {
///     #[test]
///     fn writer_flushes_once_at_process_exit(scenario = flushes_once(), ctx) {
///         let path = ctx.scratch.join("out.txt");
///         std::fs::write(&path, b"data").unwrap();
///         let _ = exit_harness::journal::record(&exit_harness::Event::save(&path));
///         std::process::exit(3); // the body chooses how the child ends
///     }
/// }
/// ```
///
/// The body returning ends the child with `exit(0)`, a panic with exit code 70 (rusty-fork's
/// choice); a body may instead call `process::exit`, `abort`, or raise a signal. Settings of the
/// inline runner (a timeout, signals on markers) go in an optional `inline = Inline::...` before
/// the scenario: `fn name(inline = Inline::default().timeout(..), scenario = .., ctx)`.
#[macro_export]
macro_rules! exit_test {
    ($(#[$meta:meta])* fn $name:ident(scenario = $scenario:expr, $ctx:ident) $body:block $($rest:tt)*) => {
        $crate::exit_test! {
            $(#[$meta])* fn $name(inline = $crate::inline::Inline::default(), scenario = $scenario, $ctx) $body $($rest)*
        }
    };
    ($(#[$meta:meta])* fn $name:ident(inline = $inline:expr, scenario = $scenario:expr, $ctx:ident) $body:block $($rest:tt)*) => {
        $(#[$meta])*
        fn $name() {
            let scenario: $crate::Scenario = $scenario;
            let inline: $crate::inline::Inline = $inline;
            let result = inline
                .for_test($crate::test_path!($name))
                .run_scenario(&scenario, $crate::fork_id!(), |$ctx: &$crate::inline::InlineContext| $body);
            result.assert_passed();
        }
        $crate::exit_test! { $($rest)* }
    };
    () => {};
}

/// A fork identifier unique to this call site, as [`Inline::run`] needs it.
#[macro_export]
macro_rules! fork_id {
    () => {
        $crate::inline::rusty_fork::rusty_fork_id!()
    };
}

/// Why an inline run produced no observation.
#[derive(Debug, thiserror::Error)]
pub enum InlineError {
    /// `rusty-fork` could not start the child.
    #[error("rusty-fork: {0}")]
    Fork(#[from] rusty_fork::Error),
    /// Preparing, supervising or reading the run failed.
    #[error(transparent)]
    Run(#[from] RunError),
    /// The child never ran the body: the test path names no test (a typo, a renamed or moved
    /// test), so the re-executed test binary ran nothing and nothing could be observed.
    #[error(
        "the body never ran in the child: no test matched {test_path:?} (check the path given to \
         Inline::new, or use test_path!(the_test_fn) in the test's own module); child {outcome}, stdout: {stdout}"
    )]
    BodyNeverRan {
        /// The test path the child was asked to run.
        test_path: String,
        /// How the child ended.
        outcome: crate::ExitOutcome,
        /// The head of the child's stdout (the test runner's own account).
        stdout: String,
    },
}

/// The journal kind the inline child writes just before it runs the body: the harness's proof
/// that the body started.
pub const BODY_STARTED: &str = "exit_harness.body_started";

/// What the body sees in the child.
#[derive(Debug, Clone)]
pub struct InlineContext {
    /// The run's scratch folder, where the files under test live.
    pub scratch: PathBuf,
}

/// An inline run: a test's closure in a child process.
#[derive(Debug, Clone)]
pub struct Inline {
    test_path: String,
    files: Vec<FileUnderTest>,
    limits: Limits,
    triggers: Vec<SignalTrigger>,
}

impl Default for Inline {
    /// An inline run whose test path [`exit_test!`](crate::exit_test) fills in.
    fn default() -> Self {
        Self::new("")
    }
}

impl Inline {
    /// For the test whose libtest path is `test_path` (use [`test_path!`](crate::test_path)).
    pub fn new(test_path: &str) -> Self {
        Self { test_path: test_path.to_owned(), files: Vec::new(), limits: Limits::default(), triggers: Vec::new() }
    }

    /// The same settings, for the test whose libtest path is `test_path`.
    #[must_use]
    pub fn for_test(mut self, test_path: &str) -> Self {
        self.test_path = test_path.to_owned();
        self
    }

    /// Watches `file` (relative to the scratch folder).
    #[must_use]
    pub fn file(mut self, file: FileUnderTest) -> Self {
        self.files.push(file);
        self
    }

    /// Watches every one of `files` (e.g. a [`Cell`](crate::Cell)'s).
    #[must_use]
    pub fn files(mut self, files: impl IntoIterator<Item = FileUnderTest>) -> Self {
        self.files.extend(files);
        self
    }

    /// Ends the child after `timeout` (SIGTERM to its group, SIGKILL after the grace).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.limits.timeout = timeout;
        self
    }

    /// Sends `signal` to the child when its journal shows the marker `marker`.
    #[must_use]
    pub fn signal_on_marker(mut self, marker: impl Into<String>, signal: i32) -> Self {
        self.triggers.push(SignalTrigger { when: When::Marker(marker.into()), signal, to_group: false });
        self
    }

    /// In the parent: runs `body` in a child, watching the scenario's files and folders, and
    /// judges it with the scenario's oracles. In the child: runs `body` and exits, never
    /// returning. A run that produced no observation (the body never ran, the fork failed) is a
    /// result without one, which never passes.
    pub fn run_scenario<Id: Hash>(
        &self,
        scenario: &Scenario,
        fork_id: Id,
        body: impl FnOnce(&InlineContext),
    ) -> CellResult {
        let started = Instant::now();
        let observation =
            self.run_watching(&scenario.files, &scenario.folders, fork_id, body).map_err(|error| error.to_string());
        scenario.judge(observation, started.elapsed(), format!("(inline) {}", self.test_path))
    }

    /// In the parent: runs `body` in a child and returns the observation. In the child: runs
    /// `body` and exits, never returning.
    pub fn run<Id: Hash>(&self, fork_id: Id, body: impl FnOnce(&InlineContext)) -> Result<Observation, InlineError> {
        self.run_watching(&[], &[], fork_id, body)
    }

    fn run_watching<Id: Hash>(
        &self,
        files: &[FileUnderTest],
        folders: &[FolderUnderTest],
        fork_id: Id,
        body: impl FnOnce(&InlineContext),
    ) -> Result<Observation, InlineError> {
        let files: Vec<FileUnderTest> = self.files.iter().chain(files).cloned().collect();
        crate::runner::check_triggers(&self.triggers)?;
        let prepared: RefCell<Option<(Result<Run, RunError>, Instant)>> = RefCell::new(None);
        let observed = rusty_fork::fork(
            &self.test_path,
            fork_id,
            |cmd| {
                let run = Run::prepare(&files, folders, &self.limits, true);
                if let Ok(run) = &run {
                    run.configure(cmd);
                }
                *prepared.borrow_mut() = Some((run, Instant::now()));
            },
            |child, _merged_output| {
                let (run, started) = prepared.borrow_mut().take().ok_or_else(|| {
                    RunError::Prepare(std::io::Error::other("rusty-fork did not call the process modifier"))
                })?;
                run?.supervise(child.inner_mut(), &self.triggers, started)
            },
            || {
                let scratch = std::env::var_os(SCRATCH_ENV).map(PathBuf::from).unwrap_or_default();
                let _ = crate::journal::record(&crate::Event::new(BODY_STARTED).with("test", self.test_path.as_str()));
                body(&InlineContext { scratch });
            },
        )?;
        let observation = observed?;
        if observation.journal.of_kind(BODY_STARTED).next().is_none() {
            return Err(InlineError::BodyNeverRan {
                test_path: self.test_path.clone(),
                outcome: observation.outcome,
                stdout: observation.stdout.chars().take(500).collect(),
            });
        }
        Ok(observation)
    }
}
