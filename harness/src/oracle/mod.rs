//! Oracles: small named checks over one [`Observation`], each failing with its evidence.
//!
//! Every oracle lives in a file of its own, named after it.

use std::fmt;

use crate::observation::{FileObservation, Observation};

mod exit_status;
mod file_intact;
mod no_leaked_processes;
mod no_lost_entries;
mod quiet_stderr;
mod registry_bound;
mod save_count;

pub use exit_status::ExitStatus;
pub use file_intact::FileIntact;
pub use no_leaked_processes::NoLeakedProcesses;
pub use no_lost_entries::NoLostEntries;
pub use quiet_stderr::QuietStderr;
pub use registry_bound::RegistryBound;
pub use save_count::SaveCount;

/// What an oracle concluded about one observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OracleVerdict {
    /// The observation meets the oracle's expectation.
    Pass,
    /// It does not; `evidence` quotes what was seen (journal lines, stderr lines, counts).
    Fail {
        /// What was seen, for a person to read.
        evidence: String,
    },
}

impl OracleVerdict {
    /// A failure with this evidence.
    pub fn fail(evidence: impl Into<String>) -> Self {
        Self::Fail { evidence: evidence.into() }
    }

    /// Whether this is a pass.
    pub fn passed(&self) -> bool {
        matches!(self, Self::Pass)
    }

    /// The evidence of a failure.
    pub fn evidence(&self) -> Option<&str> {
        match self {
            Self::Pass => None,
            Self::Fail { evidence } => Some(evidence),
        }
    }
}

impl fmt::Display for OracleVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pass => f.write_str("pass"),
            Self::Fail { evidence } => write!(f, "FAIL: {evidence}"),
        }
    }
}

/// A named check over one observed run.
pub trait Oracle: Send + Sync {
    /// A short stable name (`save_count`, `quiet_stderr`, ...), used as a report column.
    fn name(&self) -> &str;

    /// Judges `obs`.
    fn judge(&self, obs: &Observation) -> OracleVerdict;

    /// For save-counting oracles: the expectation in a few words (`exactly 1`), shown in
    /// report tables. Other oracles keep the default `None`.
    fn expected_saves(&self) -> Option<String> {
        None
    }
}

/// The files an oracle applies to: the one named, or every file under test. A name that
/// matches nothing is itself a failure, so an oracle never passes by looking at nothing.
pub(crate) fn files_named<'a>(
    obs: &'a Observation,
    name: Option<&str>,
) -> Result<Vec<&'a FileObservation>, OracleVerdict> {
    match name {
        Some(name) => match obs.file(name) {
            Some(file) => Ok(vec![file]),
            None => Err(OracleVerdict::fail(format!(
                "no file under test is named {name:?} (files: {:?})",
                obs.files.iter().map(|f| &f.name).collect::<Vec<_>>()
            ))),
        },
        None if obs.files.is_empty() => Err(OracleVerdict::fail("the scenario names no file under test")),
        None => Ok(obs.files.iter().collect()),
    }
}

/// Quotes journal lines for evidence: at most `max`, then a count of the rest.
pub(crate) fn quote_lines<'a>(lines: impl IntoIterator<Item = &'a str>, max: usize) -> String {
    let lines: Vec<&str> = lines.into_iter().collect();
    if lines.is_empty() {
        return "    (none)".into();
    }
    let mut out: Vec<String> = lines.iter().take(max).map(|l| format!("    {l}")).collect();
    if lines.len() > max {
        out.push(format!("    ... and {} more", lines.len() - max));
    }
    out.join("\n")
}

/// Combines per-file verdicts: the first failures' evidence, joined.
pub(crate) fn all(verdicts: impl IntoIterator<Item = OracleVerdict>) -> OracleVerdict {
    let failures: Vec<String> = verdicts.into_iter().filter_map(|v| v.evidence().map(str::to_owned)).collect();
    if failures.is_empty() { OracleVerdict::Pass } else { OracleVerdict::fail(failures.join("\n")) }
}
