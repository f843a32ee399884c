//! Scenario cells and catalogs: what a catalog hands the [CLI](crate::cli).

use std::fmt;
use std::time::{Duration, Instant};

use crate::observation::Observation;
use crate::oracle::{Oracle, OracleVerdict};
use crate::spec::{ChildSpec, FileUnderTest, FolderUnderTest};

/// What is expected of a run, whatever launches it (a spawned program, an inline test, the fuzz
/// fork server): a name, the files and folders to watch, and the oracles that judge it.
pub struct Scenario {
    /// A unique name, e.g. `local/return-from-main`.
    pub name: String,
    /// The family it belongs to, e.g. the holder or the ending; reports group by it.
    pub family: String,
    /// The files under test.
    pub files: Vec<FileUnderTest>,
    /// The folders under test.
    pub folders: Vec<FolderUnderTest>,
    /// The oracles, in report order.
    pub oracles: Vec<Box<dyn Oracle>>,
}

impl Scenario {
    /// A scenario without files or oracles yet, in the family `"default"`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            family: "default".into(),
            files: Vec::new(),
            folders: Vec::new(),
            oracles: Vec::new(),
        }
    }

    /// Puts the scenario in `family` (reports group by it).
    #[must_use]
    pub fn family(mut self, family: impl Into<String>) -> Self {
        self.family = family.into();
        self
    }

    /// Watches `file`.
    #[must_use]
    pub fn file(mut self, file: FileUnderTest) -> Self {
        self.files.push(file);
        self
    }

    /// Watches `folder` (not recursively).
    #[must_use]
    pub fn folder(mut self, folder: FolderUnderTest) -> Self {
        self.folders.push(folder);
        self
    }

    /// Judges with `oracle`.
    #[must_use]
    pub fn oracle(mut self, oracle: impl Oracle + 'static) -> Self {
        self.oracles.push(Box::new(oracle));
        self
    }

    /// Judges `observation` (or why there is none) with every oracle, then releases the run's
    /// scratch folder. `command` is how the child was started, for the report.
    pub fn judge(&self, observation: Result<Observation, String>, wall: Duration, command: String) -> CellResult {
        let mut result = CellResult::judge(self, observation, wall);
        result.command = command;
        if let Ok(observation) = &mut result.observation {
            observation.scratch = None;
        }
        result
    }

    /// Why this scenario cannot be judged for a child that does not write the journal: the
    /// oracles that need it.
    pub fn journal_problem(&self, writes_journal: bool) -> Option<String> {
        if writes_journal {
            return None;
        }
        let needing: Vec<String> = self.oracles.iter().filter(|o| o.needs_journal()).map(|o| o.id()).collect();
        (!needing.is_empty()).then(|| {
            format!(
                "the child is declared not to write the journal, but {} need(s) it; \
                 instrument the child (see the journal clients) or drop the oracle",
                needing.join(", ")
            )
        })
    }
}

impl fmt::Debug for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scenario")
            .field("name", &self.name)
            .field("family", &self.family)
            .field("files", &self.files)
            .field("folders", &self.folders)
            .field("oracles", &self.oracles.iter().map(|o| o.id()).collect::<Vec<_>>())
            .finish()
    }
}

/// One catalog cell: a [`Scenario`] and the program that runs it.
#[derive(Debug)]
pub struct Cell {
    /// What is expected.
    pub scenario: Scenario,
    /// The program.
    pub spec: ChildSpec,
}

impl Cell {
    /// A cell without files or oracles yet.
    pub fn new(name: impl Into<String>, family: impl Into<String>, spec: ChildSpec) -> Self {
        Self { scenario: Scenario::new(name).family(family), spec }
    }

    /// The scenario's name.
    pub fn name(&self) -> &str {
        &self.scenario.name
    }

    /// Watches `file`.
    #[must_use]
    pub fn file(mut self, file: FileUnderTest) -> Self {
        self.scenario.files.push(file);
        self
    }

    /// Watches `folder` (not recursively).
    #[must_use]
    pub fn folder(mut self, folder: FolderUnderTest) -> Self {
        self.scenario.folders.push(folder);
        self
    }

    /// Judges with `oracle`.
    #[must_use]
    pub fn oracle(mut self, oracle: impl Oracle + 'static) -> Self {
        self.scenario.oracles.push(Box::new(oracle));
        self
    }

    /// Runs the cell once and judges it. The run's scratch folder is removed once every oracle
    /// has judged.
    pub fn run(&self) -> CellResult {
        let started = Instant::now();
        let observation = match self.journal_problem() {
            Some(problem) => Err(problem),
            None => self.spec.run_watching(&self.scenario.files, &self.scenario.folders).map_err(|e| e.to_string()),
        };
        self.scenario.judge(observation, started.elapsed(), self.spec.command_line())
    }

    /// Why this cell cannot be judged as declared: an oracle that needs the journal, for a
    /// child declared not to write one.
    pub fn journal_problem(&self) -> Option<String> {
        self.scenario.journal_problem(self.spec.writes_journal())
    }
}

/// Judges `obs` with every one of `oracles`, giving each instance a unique id.
pub fn judge_all<'o>(oracles: impl IntoIterator<Item = &'o dyn Oracle>, obs: &Observation) -> Vec<NamedVerdict> {
    let mut verdicts: Vec<NamedVerdict> = Vec::new();
    for oracle in oracles {
        let base = oracle.id();
        let repeats = verdicts.iter().filter(|v| v.id == base || v.id.starts_with(&format!("{base}#"))).count();
        let id = if repeats == 0 { base } else { format!("{base}#{}", repeats + 1) };
        verdicts.push(NamedVerdict { oracle: oracle.name().to_owned(), id, verdict: oracle.judge(obs) });
    }
    verdicts
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

/// One oracle instance's verdict on one cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedVerdict {
    /// The oracle's name (`save_count`): a report column.
    pub oracle: String,
    /// The instance's id, unique within the cell (`save_count[swapped.rtc]`; a repeated id
    /// gains `#2`, `#3`, ...).
    pub id: String,
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
    /// How the child was started (program and arguments), for the report; empty when unknown.
    pub command: String,
}

impl CellResult {
    /// Judges `observation` with `scenario`'s oracles (the scratch folder is kept; see
    /// [`Scenario::judge`], which releases it).
    pub fn judge(scenario: &Scenario, observation: Result<Observation, String>, wall: Duration) -> Self {
        let verdicts = match &observation {
            Ok(obs) => judge_all(scenario.oracles.iter().map(AsRef::as_ref), obs),
            Err(_) => Vec::new(),
        };
        Self {
            name: scenario.name.clone(),
            family: scenario.family.clone(),
            observation,
            verdicts,
            expected_saves: scenario.oracles.iter().find_map(|o| o.expected_saves()),
            wall,
            command: String::new(),
        }
    }

    /// Panics, with every failing oracle's evidence, the child's command line and the tail of
    /// its stderr, unless the cell passed.
    #[track_caller]
    pub fn assert_passed(&self) {
        if let Err(error) = self.try_assert_passed() {
            panic!("{error}");
        }
    }

    /// [`assert_passed`](Self::assert_passed) without the panic.
    pub fn try_assert_passed(&self) -> Result<(), crate::assert::AssertError> {
        if self.passed() {
            return Ok(());
        }
        Err(crate::assert::AssertError::new(&self.name, self.failures(), self.observation.as_ref().ok(), &self.command))
    }

    /// Whether there was an observation and every oracle passed.
    pub fn passed(&self) -> bool {
        self.observation.is_ok() && self.verdicts.iter().all(|v| v.verdict.passed())
    }

    /// Saves seen, as `(journal, black box)`, summed over the files under test.
    pub fn saves_seen(&self) -> Option<(u64, u64)> {
        let obs = self.observation.as_ref().ok()?;
        let journal = obs.journal.of_kind("save").count() as u64;
        let black_box = obs.files.iter().map(|f| f.black_box.map(|b| b.saves())).sum::<Option<u64>>()?;
        Some((journal, black_box))
    }

    /// The verdict of the oracle instance with this id (see [`NamedVerdict::id`]).
    pub fn verdict(&self, id: &str) -> Option<&OracleVerdict> {
        self.verdicts.iter().find(|v| v.id == id).map(|v| &v.verdict)
    }

    /// The status of every instance of the oracle named `name` together: `None` when the cell
    /// has none, else the worst of their verdicts (a failure, then "cannot judge", then a pass).
    /// A report column shows this, so a row can never show a pass for a failed instance.
    pub fn status_of(&self, name: &str) -> Option<&'static str> {
        let mut worst: Option<&OracleVerdict> = None;
        for verdict in self.verdicts.iter().filter(|v| v.oracle == name).map(|v| &v.verdict) {
            let rank = |v: &OracleVerdict| match v {
                OracleVerdict::Fail { .. } => 2,
                OracleVerdict::CannotJudge { .. } => 1,
                OracleVerdict::Pass => 0,
            };
            if worst.is_none_or(|w| rank(verdict) > rank(w)) {
                worst = Some(verdict);
            }
        }
        worst.map(OracleVerdict::status)
    }

    /// Every failure's text: the run error, or one `id: evidence` per failing oracle instance.
    pub fn failures(&self) -> Vec<String> {
        match &self.observation {
            Err(error) => vec![format!("run failed: {error}")],
            Ok(_) => self
                .verdicts
                .iter()
                .filter_map(|v| match &v.verdict {
                    OracleVerdict::Pass => None,
                    OracleVerdict::Fail { evidence } => Some(format!("{}: {evidence}", v.id)),
                    OracleVerdict::CannotJudge { reason } => Some(format!("{} (cannot judge): {reason}", v.id)),
                })
                .collect(),
        }
    }
}
