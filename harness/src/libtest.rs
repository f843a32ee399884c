//! Every cell a test in the ecosystem's runner: catalog cells and scenario files as
//! [`libtest_mimic`] trials, so `cargo test NAME`, `cargo nextest run -E 'test(/swap/)'`,
//! nextest's retries, leak detection, JUnit and `--partition` apply per cell.
//!
//! A test target with `harness = false` and this `main` is all it takes:
//!
//! ```no_run
//! # use exit_harness::{Cell, ChildSpec};
//! # fn my_catalog() -> Vec<Cell> { vec![Cell::new("a", "f", ChildSpec::new("true"))] }
//! fn main() -> std::process::ExitCode {
//!     exit_harness::libtest::main(my_catalog())
//! }
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use libtest_mimic::{Arguments, Failed, Trial};

use crate::cell::Cell;

/// One trial per cell: named after the cell, its kind the cell's family; it fails with
/// [`CellResult::assert_passed`](crate::CellResult::assert_passed)'s message.
pub fn trials(cells: Vec<Cell>) -> Vec<Trial> {
    cells
        .into_iter()
        .map(|cell| {
            let (name, family) = (cell.scenario.name.clone(), cell.scenario.family.clone());
            Trial::test(name, move || cell.run().try_assert_passed().map_err(|e| Failed::from(e.to_string())))
                .with_kind(family)
        })
        .collect()
}

/// One trial per scenario file, named after the file; a malformed file is a failing trial
/// that names its line.
pub fn scenario_file_trials(paths: impl IntoIterator<Item = PathBuf>) -> Vec<Trial> {
    paths
        .into_iter()
        .map(|path| {
            let name = path.display().to_string();
            Trial::test(name, move || {
                let cell = crate::scenario_file::load(&path).map_err(|e| Failed::from(e.to_string()))?;
                cell.run().try_assert_passed().map_err(|e| Failed::from(e.to_string()))
            })
            .with_kind("scenario-file")
        })
        .collect()
}

/// Parses libtest's command line and runs `cells` as trials.
pub fn main(cells: Vec<Cell>) -> ExitCode {
    let args = Arguments::from_args();
    let conclusion = libtest_mimic::run(&args, trials(cells));
    if conclusion.has_failed() { ExitCode::from(101) } else { ExitCode::SUCCESS }
}
