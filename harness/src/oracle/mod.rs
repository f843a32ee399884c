//! Oracles: small named checks over one [`Observation`], each failing with its evidence.
//!
//! Every oracle lives in a file of its own, named after it.

use std::fmt;

use crate::observation::{FileObservation, Observation};

mod exit_status;
mod file_content;
mod file_intact;
mod journal_events;
#[cfg(test)]
mod journal_fixture;
mod marker_seen;
mod no_leaked_processes;
mod no_leftover_files;
mod no_lost_entries;
mod output_text;
mod quiet_stderr;
mod registry_bound;
mod reported_entries;
mod save_count;
mod save_triggers;
mod saved_before;
mod within_deadline;

use journal_based::JournalOracle;

pub use exit_status::ExitStatus;
pub use file_content::FileContent;
pub use file_intact::FileIntact;
pub use journal_events::JournalEvents;
pub use marker_seen::MarkerSeen;
pub use no_leaked_processes::NoLeakedProcesses;
pub use no_leftover_files::NoLeftoverFiles;
pub use no_lost_entries::NoLostEntries;
pub use output_text::OutputText;
pub use quiet_stderr::QuietStderr;
pub use registry_bound::RegistryBound;
pub use reported_entries::ReportedEntries;
pub use save_count::{SaveCount, journal_about, journaled_saves, names_file};
pub use save_triggers::SaveTriggers;
pub use saved_before::SavedBefore;
pub use within_deadline::WithinDeadline;

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
    /// The run did not show what the oracle needs (a channel not watched, a file not read, a
    /// journal cut at its limit). Never a pass: a cell with such a verdict fails.
    CannotJudge {
        /// What was missing.
        reason: String,
    },
}

impl OracleVerdict {
    /// A failure with this evidence.
    pub fn fail(evidence: impl Into<String>) -> Self {
        Self::Fail { evidence: evidence.into() }
    }

    /// "Cannot judge", with what was missing.
    pub fn cannot_judge(reason: impl Into<String>) -> Self {
        Self::CannotJudge { reason: reason.into() }
    }

    /// Whether this is a pass.
    pub fn passed(&self) -> bool {
        matches!(self, Self::Pass)
    }

    /// The evidence of a failure, or what was missing to judge.
    pub fn evidence(&self) -> Option<&str> {
        match self {
            Self::Pass => None,
            Self::Fail { evidence } => Some(evidence),
            Self::CannotJudge { reason } => Some(reason),
        }
    }

    /// A one-word status for reports: `pass`, `FAIL` or `CANNOT-JUDGE`.
    pub fn status(&self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail { .. } => "FAIL",
            Self::CannotJudge { .. } => "CANNOT-JUDGE",
        }
    }
}

impl fmt::Display for OracleVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pass => f.write_str("pass"),
            Self::Fail { evidence } => write!(f, "FAIL: {evidence}"),
            Self::CannotJudge { reason } => write!(f, "CANNOT JUDGE: {reason}"),
        }
    }
}

/// An oracle from a closure: `name` is its name and id, `judge` its verdict.
///
/// ```
/// use exit_harness::oracle::{self, OracleVerdict};
/// let stdout_says_done = oracle::from_fn("says_done", |obs| match obs.stdout.contains("done") {
///     true => OracleVerdict::Pass,
///     false => OracleVerdict::fail(format!("stdout: {:?}", obs.stdout)),
/// });
/// # let _ = stdout_says_done;
/// ```
pub fn from_fn<F>(name: impl Into<String>, judge: F) -> FromFn<F>
where
    F: Fn(&Observation) -> OracleVerdict + Send + Sync,
{
    FromFn { name: name.into(), judge }
}

/// An oracle made by [`from_fn`].
pub struct FromFn<F> {
    name: String,
    judge: F,
}

impl<F> fmt::Debug for FromFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FromFn").field("name", &self.name).finish_non_exhaustive()
    }
}

impl<F: Fn(&Observation) -> OracleVerdict + Send + Sync> Oracle for FromFn<F> {
    fn name(&self) -> &str {
        &self.name
    }

    fn judge(&self, obs: &Observation) -> OracleVerdict {
        (self.judge)(obs)
    }
}

impl<T: Oracle> Oracle for &T {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn id(&self) -> String {
        (**self).id()
    }
    fn needs_journal(&self) -> bool {
        (**self).needs_journal()
    }
    fn judge(&self, obs: &Observation) -> OracleVerdict {
        (**self).judge(obs)
    }
    fn expected_saves(&self) -> Option<String> {
        (**self).expected_saves()
    }
}

/// A named check over one observed run.
pub trait Oracle: Send + Sync {
    /// A short stable name (`save_count`, `quiet_stderr`, ...), used as a report column.
    fn name(&self) -> &str;

    /// This instance's id in reports: the name, qualified by what the instance is about when a
    /// cell may hold several of the same name (`save_count[swapped.rtc]`). Reports key verdicts
    /// by id, never by name.
    fn id(&self) -> String {
        self.name().to_owned()
    }

    /// Whether the oracle judges from the journal, so that it cannot judge a child declared not
    /// to write one. Checked when a cell is run, before the child starts.
    fn needs_journal(&self) -> bool {
        false
    }

    /// Judges `obs`.
    fn judge(&self, obs: &Observation) -> OracleVerdict;

    /// For save-counting oracles: the expectation in a few words (`exactly 1`), shown in
    /// report tables. Other oracles keep the default `None`.
    fn expected_saves(&self) -> Option<String> {
        None
    }
}

mod journal_based {
    use super::{Oracle, OracleVerdict, qualified};
    use crate::observation::Observation;

    /// What an oracle that judges from the journal alone provides; every such oracle gets the
    /// same [`Oracle`] impl: an id qualified by what it is about, a journal it needs (so a child
    /// declared not to write one is refused before it starts), and the verdict or the failure
    /// found on the way. Sealed: a pub trait in a private module, for the harness's own oracles.
    pub trait JournalOracle: Send + Sync {
        /// The oracle's name (a report column).
        const NAME: &'static str;

        /// What this instance is about (a file, a marker, an event kind), qualifying its id.
        fn about(&self) -> Option<String>;

        /// The verdict, or (as `Err`) the failure found on the way.
        fn verdict(&self, obs: &Observation) -> Result<OracleVerdict, OracleVerdict>;
    }

    /// Implements [`Oracle`] for the listed [`JournalOracle`]s (a blanket impl would overlap the
    /// one for references).
    macro_rules! oracle_from_journal {
        ($($oracle:ty),* $(,)?) => {$(
            impl Oracle for $oracle {
                fn name(&self) -> &str {
                    <$oracle as JournalOracle>::NAME
                }

                fn id(&self) -> String {
                    qualified(self.name(), self.about().as_deref())
                }

                fn needs_journal(&self) -> bool {
                    true
                }

                fn judge(&self, obs: &Observation) -> OracleVerdict {
                    self.verdict(obs).unwrap_or_else(|verdict| verdict)
                }
            }
        )*};
    }

    oracle_from_journal!(
        super::JournalEvents,
        super::MarkerSeen,
        super::ReportedEntries,
        super::SaveTriggers,
        super::SavedBefore,
        super::WithinDeadline,
    );
}

/// The files an oracle applies to: the one named, or every file under test. A name that
/// matches nothing is itself a failure, so an oracle never passes by looking at nothing. For
/// oracle authors.
pub fn files_named<'a>(obs: &'a Observation, name: Option<&str>) -> Result<Vec<&'a FileObservation>, OracleVerdict> {
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

/// The most characters of one quoted line; the rest is counted, so one huge line (a program that
/// printed a megabyte without a newline) cannot flood a report.
pub const QUOTED_LINE_CHARS: usize = 240;

/// Quotes lines for evidence, indented: at most `max`, each cut at [`QUOTED_LINE_CHARS`], then a
/// count of the rest. For oracle authors.
pub fn quote_lines<'a>(lines: impl IntoIterator<Item = &'a str>, max: usize) -> String {
    let lines: Vec<&str> = lines.into_iter().collect();
    if lines.is_empty() {
        return "    (none)".into();
    }
    let quote = |line: &str| match line.char_indices().nth(QUOTED_LINE_CHARS) {
        Some((cut, _)) => format!("    {} ... ({} more bytes)", &line[..cut], line.len() - cut),
        None => format!("    {line}"),
    };
    let mut out: Vec<String> = lines.iter().take(max).map(|l| quote(l)).collect();
    if lines.len() > max {
        out.push(format!("    ... and {} more", lines.len() - max));
    }
    out.join("\n")
}

/// Combines per-file verdicts: a failure if any failed (every failure's evidence, and what could
/// not be judged), else "cannot judge" if any could not, else a pass.
pub fn all(verdicts: impl IntoIterator<Item = OracleVerdict>) -> OracleVerdict {
    let verdicts: Vec<OracleVerdict> = verdicts.into_iter().collect();
    let texts: Vec<&str> = verdicts.iter().filter_map(OracleVerdict::evidence).collect();
    if verdicts.iter().any(|v| matches!(v, OracleVerdict::Fail { .. })) {
        OracleVerdict::fail(texts.join("\n"))
    } else if texts.is_empty() {
        OracleVerdict::Pass
    } else {
        OracleVerdict::cannot_judge(texts.join("\n"))
    }
}

/// `name[qualifier]`, or `name` without a qualifier: an oracle instance's id.
pub fn qualified(name: &str, qualifier: Option<&str>) -> String {
    match qualifier {
        Some(q) => format!("{name}[{q}]"),
        None => name.to_owned(),
    }
}

#[cfg(test)]
mod quote_tests {
    use super::*;

    #[test]
    fn a_huge_line_is_cut_and_counted_and_many_lines_are_counted() {
        let huge = "é".repeat(300_000);
        let quoted = quote_lines([huge.as_str(), "short"], 10);
        assert!(quoted.len() < 1_000, "{} bytes of evidence", quoted.len());
        assert!(quoted.contains(&format!("... ({} more bytes)", 2 * (300_000 - QUOTED_LINE_CHARS))), "{quoted}");
        assert!(quoted.ends_with("\n    short"), "{quoted}");
        let many: Vec<String> = (0..15).map(|i| i.to_string()).collect();
        assert!(quote_lines(many.iter().map(String::as_str), 10).ends_with("... and 5 more"));
    }
}
