//! Scenario cells and catalogs: what a catalog hands the [CLI](crate::cli).

use std::fmt;
use std::time::{Duration, Instant};

use crate::observation::Observation;
use crate::oracle::{Oracle, OracleVerdict};
use crate::spec::{ChildSpec, FileUnderTest};

/// One scenario cell: a program to run, the files to watch, and the oracles that judge it.
pub struct Cell {
    /// A unique name, e.g. `local/return-from-main`.
    pub name: String,
    /// The family it belongs to, e.g. the holder or the ending; reports group by it.
    pub family: String,
    /// The program.
    pub spec: ChildSpec,
    /// The files under test.
    pub files: Vec<FileUnderTest>,
    /// The oracles, in report order.
    pub oracles: Vec<Box<dyn Oracle>>,
}

impl Cell {
    /// A cell without files or oracles yet.
    pub fn new(name: impl Into<String>, family: impl Into<String>, spec: ChildSpec) -> Self {
        Self { name: name.into(), family: family.into(), spec, files: Vec::new(), oracles: Vec::new() }
    }

    /// Watches `file`.
    #[must_use]
    pub fn file(mut self, file: FileUnderTest) -> Self {
        self.files.push(file);
        self
    }

    /// Judges with `oracle`.
    #[must_use]
    pub fn oracle(mut self, oracle: impl Oracle + 'static) -> Self {
        self.oracles.push(Box::new(oracle));
        self
    }

    /// Runs the cell once and judges it.
    pub fn run(&self) -> CellResult {
        let started = Instant::now();
        let observation = self.spec.run(&self.files).map_err(|e| e.to_string());
        CellResult::judge(self, observation, started.elapsed())
    }
}

impl fmt::Debug for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cell")
            .field("name", &self.name)
            .field("family", &self.family)
            .field("spec", &self.spec)
            .field("files", &self.files)
            .field("oracles", &self.oracles.iter().map(|o| o.name()).collect::<Vec<_>>())
            .finish()
    }
}

/// A scenario catalog: the cells a harness binary offers.
pub trait Catalog: Sync {
    /// Every cell, in listing order.
    fn cells(&self) -> Vec<Cell>;
}

impl Catalog for Vec<fn() -> Cell> {
    fn cells(&self) -> Vec<Cell> {
        self.iter().map(|make| make()).collect()
    }
}

/// One oracle's verdict on one cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedVerdict {
    /// The oracle's name.
    pub oracle: String,
    /// Its verdict.
    pub verdict: OracleVerdict,
}

/// A judged cell.
#[derive(Debug, Clone)]
pub struct CellResult {
    /// The cell's name.
    pub name: String,
    /// The cell's family.
    pub family: String,
    /// What was observed, or why nothing could be.
    pub observation: Result<Observation, String>,
    /// Every oracle's verdict (empty when there was no observation).
    pub verdicts: Vec<NamedVerdict>,
    /// The save expectation of the cell's save-counting oracle, if any.
    pub expected_saves: Option<String>,
    /// Run and judgement together.
    pub wall: Duration,
}

impl CellResult {
    /// Judges `observation` with `cell`'s oracles.
    pub fn judge(cell: &Cell, observation: Result<Observation, String>, wall: Duration) -> Self {
        let verdicts = match &observation {
            Ok(obs) => cell
                .oracles
                .iter()
                .map(|o| NamedVerdict { oracle: o.name().to_owned(), verdict: o.judge(obs) })
                .collect(),
            Err(_) => Vec::new(),
        };
        Self {
            name: cell.name.clone(),
            family: cell.family.clone(),
            observation,
            verdicts,
            expected_saves: cell.oracles.iter().find_map(|o| o.expected_saves()),
            wall,
        }
    }

    /// Whether there was an observation and every oracle passed.
    pub fn passed(&self) -> bool {
        self.observation.is_ok() && self.verdicts.iter().all(|v| v.verdict.passed())
    }

    /// Saves seen, as `(journal, black box)`, summed over the files under test.
    pub fn saves_seen(&self) -> Option<(u64, u64)> {
        let obs = self.observation.as_ref().ok()?;
        let journal = obs.journal.of_kind("save").count() as u64;
        let black_box = obs.files.iter().map(|f| f.black_box.saves()).sum();
        Some((journal, black_box))
    }

    /// The verdict of the oracle named `name`, if the cell has one.
    pub fn verdict(&self, name: &str) -> Option<&OracleVerdict> {
        self.verdicts.iter().find(|v| v.oracle == name).map(|v| &v.verdict)
    }

    /// The first failure's text: the run error, or `oracle: evidence`.
    pub fn first_failure(&self) -> Option<String> {
        match &self.observation {
            Err(error) => Some(format!("run failed: {error}")),
            Ok(_) => self.verdicts.iter().find_map(|v| v.verdict.evidence().map(|e| format!("{}: {e}", v.oracle))),
        }
    }
}
