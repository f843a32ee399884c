//! The scenario catalog for `runtime-cache`: what to run, and what to expect.
//!
//! - [`plan`]: a [`plan::ChildPlan`] says what one child process does (holder, ending, family);
//!   the catalog builds plans, the `scenario-child` program carries them out.
//! - [`catalog`]: every row of the cache's contract table for every holder, plus the families,
//!   each a harness `Cell` whose expectation is a list of oracles.
//! - [`checks`]: the scenario-specific oracles (markers, forks, quarantine, memory).
//! - [`defects`]: the catalog against runtime-cache's defect zoo: what caught what.
//! - [`wiring`]: runtime-cache's observer, written to the harness journal.
//! - [`crash`]: runtime-cache's save explored at every step and under every power loss.
//! - [`fuzz`]: churn fuzzing against a reference model, and the regression reproducers.
//!
//! The `exit-harness` binary of this package runs the catalog (`exit-harness list | check`).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod catalog;
pub mod checks;
pub mod crash;
pub mod defects;
pub mod fuzz;
pub mod plan;
pub mod wiring;
