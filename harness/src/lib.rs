//! `exit-harness`: runs a resource's scenario in a real child process, lets the process end the
//! way real programs end, and judges what happened with named oracles.
//!
//! # Architecture
//!
//! ```text
//!  Scenario (name, files, folders, oracles)       how it is launched:
//!      │                                          Cell = Scenario + ChildSpec (any program),
//!      │                                          exit_test!/Inline (a #[test] body, rusty-fork),
//!      │                                          a scenario file (TOML), the fuzz fork server
//!      ▼
//!  runner ──spawn (own process group, run tag)──► child program ──► its descendants
//!    │  ▲                                            │ journal::record(Event) (optional)
//!    │  └── pidfd + inotify poll ◄── black box (inotify on the files' and folders' folders)
//!    ▼                                               ▼
//!  Observation ◄── journal (created by the harness in a private run folder, read as a stream)
//!    │         ◄── descendants still alive (process group + adopted as a child subreaper)
//!    ▼
//!  oracles ──► verdicts (pass / FAIL / cannot judge, one id per instance) ──► CellResult
//!    │
//!  run events ──► reporters (human status lines and failure blocks, matrix, JSON, JUnit)
//!             ──► assertions (assert_passed, Observation::assert) ──► libtest-mimic trials
//! ```
//!
//! The harness sees a run several independent ways, and never passes what it did not see:
//!
//! - the **black box** ([`blackbox`]): the kernel's account, inotify events on the files and
//!   folders under test plus before/after snapshots, validated by a caller-supplied validator;
//! - the **journal** ([`journal`]), when the child writes one: its own account, one JSON line per
//!   event, written with one `write(2)` each so it survives exit hooks, panics, forks and kills;
//!   the oracles insist the two agree;
//! - the **exit** and the **descendants** ([`descendants`]): how the child ended, and every
//!   process that outlived it, in its group or escaped from it.
//!
//! An oracle that lacks what it needs answers "cannot judge", which fails the cell. Every read of
//! what a child left is bounded ([`Limits`]) and never follows a link or blocks on a FIFO.
//!
//! # Example
//!
//! Any program: here a shell that saves a file by renaming a temp file onto it.
//!
//! ```
//! use exit_harness::oracle::{ExitStatus, NoLeftoverFiles, QuietStderr, SaveCount};
//! use exit_harness::{Cell, ChildSpec, FileUnderTest, FolderUnderTest, Scenario};
//!
//! let scenario = Scenario::new("shell saves once")
//!     .file(FileUnderTest::new("out.txt"))
//!     .folder(FolderUnderTest::new("."))
//!     .oracle(SaveCount::exactly(1))
//!     .oracle(QuietStderr::empty())
//!     .oracle(ExitStatus::success())
//!     .oracle(NoLeftoverFiles::new());
//! let spec = ChildSpec::new("sh").args(["-c", "echo data > out.tmp && mv out.tmp out.txt"]).without_journal();
//! Cell { scenario, spec }.run().assert_passed();
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod assert;
pub mod blackbox;
mod capture;
pub mod cell;
mod cleanup;
pub use cleanup::finish as finish_cleanup;
pub mod cli;
pub mod crash;
pub mod descendants;
pub mod glob;
pub mod inline;
pub mod journal;
pub mod libtest;
pub mod observation;
pub mod oracle;
pub mod report;
pub mod run_folder;
pub mod runner;
pub mod scenario_file;
pub mod snapshot;
pub mod spec;
#[allow(unsafe_code)]
mod sys;

pub use cell::{Catalog, Cell, CellResult, Scenario};
pub use journal::{Event, Journal, JournalWriter};
pub use observation::{ExitOutcome, Observation, ValidContent};
pub use oracle::{Oracle, OracleVerdict};
pub use run_folder::Scratch;
pub use runner::RunError;
pub use spec::{CargoBinError, ChildSpec, FileUnderTest, FolderUnderTest, Limits};
