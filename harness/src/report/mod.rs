//! Reports of judged cells. A run of cells emits [`RunEvent`]s; each [`Reporter`] turns them
//! into one format: the [`human`] status lines and failure blocks, the oracle matrix
//! ([`table`]), [`json`] with a stable schema, [`junit`] XML. nextest's runner/reporter split
//! is the model: the runner knows no format, a reporter knows no scheduling.

pub mod human;
pub mod json;
pub mod junit;
pub mod table;

use crate::cell::CellResult;

/// Counts over a set of results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    /// Cells run.
    pub cells: usize,
    /// Cells whose every oracle passed.
    pub passed: usize,
    /// The others.
    pub failed: usize,
}

impl Summary {
    /// Counts `results`.
    pub fn of(results: &[CellResult]) -> Self {
        let passed = results.iter().filter(|r| r.passed()).count();
        Self { cells: results.len(), passed, failed: results.len() - passed }
    }
}

/// What a run of cells tells its reporters, in order: `Started`, one `Finished` per cell as it
/// finishes (in completion order), then `Done` with every result in the cells' order.
#[derive(Debug)]
pub enum RunEvent<'a> {
    /// The run is about to start this many cells.
    Started {
        /// How many.
        cells: usize,
    },
    /// One cell finished.
    Finished {
        /// How many have finished, this one included.
        done: usize,
        /// How many there are.
        total: usize,
        /// Its result.
        result: &'a CellResult,
    },
    /// Every cell finished.
    Done {
        /// The results, in the cells' order.
        results: &'a [CellResult],
    },
}

/// Something that consumes a run's events.
pub trait Reporter {
    /// Handles one event.
    fn event(&mut self, event: &RunEvent<'_>);
}

/// Any closure over events is a reporter.
impl<F: FnMut(&RunEvent<'_>)> Reporter for F {
    fn event(&mut self, event: &RunEvent<'_>) {
        self(event);
    }
}
