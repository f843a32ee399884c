//! `exit-harness`: runs a resource's scenario in a real child process, lets the process end the
//! way real programs end, and judges what happened with named oracles.
//!
//! # Architecture
//!
//! ```text
//!  scenario cell ──► runner ──spawn (own process group)──► child program
//!  (ChildSpec,        │  ▲                                    │ journal::record(Event)
//!   files, oracles)   │  └── pidfd + inotify poll ◄── black box (inotify on the files' folders)
//!                     ▼                                       ▼
//!                 Observation ◄── journal file (one JSON line per event, one write(2) each)
//!                     │
//!                 oracles ──► verdicts ──► report (table, JSON, JUnit) ──► cli
//! ```
//!
//! The harness sees a run two independent ways, and the oracles insist they agree:
//!
//! - the **journal** ([`journal`]): the child's own account, one JSON line per event, written
//!   with one `write(2)` each so it survives exit hooks, panics, forks and kills;
//! - the **black box** ([`blackbox`]): the kernel's account, inotify events on the files under
//!   test plus before/after snapshots, validated by a caller-supplied validator.
//!
//! The [`runner`] spawns a program that owns its `main` ([`ChildSpec`]) in its own process
//! group, with a fresh journal and scratch folder, a timeout (SIGTERM, then SIGKILL to the
//! group), signals sent on journal markers, bounded stdout/stderr capture and a check for
//! processes that outlive the child. The [`inline`] runner does the same for a closure inside a
//! `#[test]`, through `rusty-fork`. Both produce an [`Observation`]; every [`oracle`] judges one.
//! A scenario catalog is a [`Catalog`] of [`Cell`]s; [`cli::main_with_catalog`] runs it in
//! parallel and [`report`] renders the results.
//!
//! The harness knows nothing about any particular resource: a child only needs the journal
//! writer, and the files it is judged on are named by the scenario.
//!
//! # Example
//!
//! ```no_run
//! use exit_harness::{ChildSpec, FileUnderTest, Oracle};
//! use exit_harness::oracle::{ExitStatus, QuietStderr, SaveCount};
//!
//! let file = FileUnderTest::new("out.txt");
//! let obs = ChildSpec::new("./my-program").arg("{scratch}/out.txt").run(&[file])?;
//! for oracle in [&SaveCount::exactly(1) as &dyn Oracle, &ExitStatus::success(), &QuietStderr::empty()] {
//!     assert!(oracle.judge(&obs).passed(), "{}: {}", oracle.name(), oracle.judge(&obs));
//! }
//! # Ok::<(), exit_harness::RunError>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

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
pub mod observation;
pub mod oracle;
pub mod report;
pub mod run_folder;
pub mod runner;
pub mod scenario_file;
pub mod spec;

pub use cell::{Catalog, Cell, CellResult};
pub use journal::{Event, Journal, JournalWriter};
pub use observation::{ExitOutcome, Observation, ValidContent};
pub use oracle::{Oracle, OracleVerdict};
pub use run_folder::Scratch;
pub use runner::RunError;
pub use spec::{ChildSpec, FileUnderTest, FolderUnderTest, Limits};
