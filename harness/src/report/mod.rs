//! Reports of judged cells: a human [`table`], [`json`] with a stable schema, [`junit`] XML.

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

/// Oracle names in order of first appearance across `results`: the table's and JUnit's columns.
pub(crate) fn oracle_columns(results: &[CellResult]) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for verdict in results.iter().flat_map(|r| &r.verdicts) {
        if !names.contains(&verdict.oracle.as_str()) {
            names.push(&verdict.oracle);
        }
    }
    names
}
