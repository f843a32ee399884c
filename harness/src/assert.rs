//! Assertions in `assert_cmd`'s style: judge an [`Observation`] and panic with the evidence.
//!
//! ```
//! use exit_harness::ChildSpec;
//! use exit_harness::oracle::{ExitStatus, QuietStderr, SaveCount};
//!
//! let obs = ChildSpec::new("sh").args(["-c", "echo saved > out.txt"]).without_journal().run(&[]).unwrap();
//! obs.assert().oracle(ExitStatus::success()).oracle(QuietStderr::empty());
//! // Or every oracle at once, failing with all their evidence together:
//! obs.assert().all(&[&ExitStatus::success(), &QuietStderr::empty()]);
//! ```
//!
//! Each `oracle(..)` judges at once and panics (`#[track_caller]`: the panic points at the test)
//! with the oracle's evidence, the child's outcome and the tail of its stderr; `try_oracle` and
//! `try_all` return the same as an [`AssertError`].

use std::fmt;

use crate::cell::judge_all;
use crate::observation::Observation;
use crate::oracle::{Oracle, OracleVerdict};

/// How many stderr lines a failure quotes.
const STDERR_TAIL: usize = 10;

/// Why an assertion failed: every failing oracle instance with its evidence, and what the child
/// did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertError {
    what: String,
    failures: Vec<String>,
    outcome: Option<String>,
    stderr_tail: Vec<String>,
    command: String,
}

impl AssertError {
    pub(crate) fn new(what: &str, failures: Vec<String>, obs: Option<&Observation>, command: &str) -> Self {
        let stderr_tail = obs
            .map(|obs| {
                let lines: Vec<&str> = obs.stderr.lines().collect();
                lines[lines.len().saturating_sub(STDERR_TAIL)..].iter().map(|l| (*l).to_owned()).collect()
            })
            .unwrap_or_default();
        Self {
            what: what.to_owned(),
            failures,
            outcome: obs.map(|o| o.outcome.to_string() + if o.timed_out { " (timed out)" } else { "" }),
            stderr_tail,
            command: command.to_owned(),
        }
    }

    /// Each failing oracle instance as `id: evidence`.
    pub fn failures(&self) -> &[String] {
        &self.failures
    }
}

impl fmt::Display for AssertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} failed ({} oracle(s)):", self.what, self.failures.len())?;
        for failure in &self.failures {
            writeln!(f, "  {}", failure.replace('\n', "\n  "))?;
        }
        if !self.command.is_empty() {
            writeln!(f, "command: {}", self.command)?;
        }
        if let Some(outcome) = &self.outcome {
            writeln!(f, "child: {outcome}")?;
        }
        match self.stderr_tail.as_slice() {
            [] => write!(f, "stderr: (empty)"),
            lines => write!(f, "stderr (last {} lines):\n    {}", lines.len(), lines.join("\n    ")),
        }
    }
}

impl std::error::Error for AssertError {}

/// Assertions over one observation; see the [module](self) docs.
#[derive(Debug, Clone, Copy)]
pub struct Assert<'a> {
    obs: &'a Observation,
}

impl Observation {
    /// Starts assertions over this observation.
    pub fn assert(&self) -> Assert<'_> {
        Assert { obs: self }
    }
}

impl<'a> Assert<'a> {
    /// Panics with the evidence unless `oracle` passes.
    #[track_caller]
    pub fn oracle(self, oracle: impl Oracle) -> Self {
        match self.try_oracle(oracle) {
            Ok(this) => this,
            Err(error) => panic!("{error}"),
        }
    }

    /// Like [`oracle`](Self::oracle), returning the failure instead of panicking.
    pub fn try_oracle(self, oracle: impl Oracle) -> Result<Self, AssertError> {
        self.try_all(&[&oracle])
    }

    /// Judges every one of `oracles`; panics with the evidence of all that failed.
    #[track_caller]
    pub fn all(self, oracles: &[&dyn Oracle]) -> Self {
        match self.try_all(oracles) {
            Ok(this) => this,
            Err(error) => panic!("{error}"),
        }
    }

    /// Panics unless `oracle` fails (a failure, not "cannot judge") with evidence quoting every
    /// one of `evidence`: for showing that a check catches a bug before it is trusted.
    #[track_caller]
    pub fn fails(self, oracle: impl Oracle, evidence: &[&str]) -> Self {
        let verdict = oracle.judge(self.obs);
        let OracleVerdict::Fail { evidence: seen } = &verdict else {
            panic!("{} should fail but gave {verdict}", oracle.id());
        };
        for needle in evidence {
            assert!(seen.contains(needle), "{}'s evidence lacks {needle:?}:\n{seen}", oracle.id());
        }
        self
    }

    /// Like [`all`](Self::all), returning the failures instead of panicking.
    pub fn try_all(self, oracles: &[&dyn Oracle]) -> Result<Self, AssertError> {
        let failures: Vec<String> = judge_all(oracles.iter().copied(), self.obs)
            .into_iter()
            .filter_map(|v| v.verdict.evidence().map(|e| format!("{} {}: {e}", v.id, v.verdict.status())))
            .collect();
        if failures.is_empty() {
            return Ok(self);
        }
        Err(AssertError::new("assertion", failures, Some(self.obs), ""))
    }
}
