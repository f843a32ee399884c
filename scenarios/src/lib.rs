//! The scenario catalog for `runtime-cache`: what to run, and what to expect.
//!
//! - [`plan`]: a [`plan::ChildPlan`] says what one child process does (holder, ending, family);
//!   the catalog builds plans, the `scenario-child` program carries them out.
//! - [`catalog`]: every row of the cache's contract table for every holder, plus the families,
//!   each a harness `Cell` whose expectation is a list of oracles.
//! - [`contract`]: the cache's contract table and the one [`contract::Ending`] type, shared by
//!   the catalog and the fuzz model.
//! - [`cache_oracles`]: runtime-cache's own oracles (kernels, cold engines, forks, memory); the
//!   generic ones come from the harness.
//! - [`defects`]: runtime-cache's defect zoo, each defect a recipe of failpoint seams.
//! - [`defect_hunt`]: the catalog against the defect zoo: what caught what.
//! - [`wiring`]: runtime-cache's observer, written to the harness journal.
//! - [`crash`]: runtime-cache's save explored at every step and under every power loss.
//! - [`fuzz`]: churn fuzzing against a reference model, and the regression reproducers.
//! - [`cli`]: runtime-cache's subcommands (`defects`, `fuzz`, `repro`).
//!
//! The `runtime-cache-scenarios` binary of this package is the harness's catalog command line
//! (`list`, `check`, `crash`) over this catalog, plus [`cli`]'s subcommands. (Scenario files of
//! any program are the harness's own `exit-harness run`.)
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cache_oracles;
pub mod catalog;
pub mod cli;
pub mod contract;
pub mod crash;
pub mod defect_hunt;
pub mod defects;
pub mod fuzz;
pub mod plan;
pub mod wiring;
