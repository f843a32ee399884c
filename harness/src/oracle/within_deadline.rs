//! `within_deadline`: one event followed another, in the same process, within a time limit.

use std::time::Duration;

use super::{JournalOracle, OracleVerdict};
use crate::journal::Entry;
use crate::observation::Observation;

/// Where the clock starts: the first `marker` with a name, or the first event of a kind.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Start {
    Marker(String),
    Kind(String),
}

impl Start {
    fn matches(&self, entry: &Entry) -> bool {
        match self {
            Self::Marker(name) => entry.kind == "marker" && entry.str_field("name") == Some(name),
            Self::Kind(kind) => entry.kind == *kind,
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Marker(name) => format!("marker `{name}`"),
            Self::Kind(kind) => format!("`{kind}`"),
        }
    }
}

/// Fails unless the first event of kind `to` written by the process that wrote the start event
/// comes at most `limit` after it (by the journal's `t_us`, `CLOCK_MONOTONIC`): for "the exit
/// gives up within its deadline". A missing start or end event fails.
#[derive(Debug, Clone)]
pub struct WithinDeadline {
    from: Start,
    to: String,
    limit: Duration,
}

impl WithinDeadline {
    /// From the first marker named `marker` to the first `to` event of the same process.
    pub fn from_marker(marker: impl Into<String>, to: impl Into<String>, limit: Duration) -> Self {
        Self { from: Start::Marker(marker.into()), to: to.into(), limit }
    }

    /// From the first event of kind `kind` to the first `to` event of the same process.
    pub fn from_kind(kind: impl Into<String>, to: impl Into<String>, limit: Duration) -> Self {
        Self { from: Start::Kind(kind.into()), to: to.into(), limit }
    }
}

impl JournalOracle for WithinDeadline {
    const NAME: &'static str = "within_deadline";

    fn about(&self) -> Option<String> {
        Some(self.to.clone())
    }

    fn verdict(&self, obs: &Observation) -> Result<OracleVerdict, OracleVerdict> {
        let journal = obs.judgeable_journal()?;
        let from = self.from.describe();
        let Some(start) = journal.entries.iter().find(|e| self.from.matches(e)) else {
            return Ok(OracleVerdict::fail(format!("no {from} event in the journal")));
        };
        let Some(end) = journal.entries.iter().find(|e| e.kind == self.to && e.pid == start.pid && e.line > start.line)
        else {
            return Ok(OracleVerdict::fail(format!(
                "no `{}` event from process {} after {from}:\n    {}",
                self.to, start.pid, start.raw
            )));
        };
        let took = Duration::from_micros(end.t_us.saturating_sub(start.t_us));
        if took <= self.limit {
            return Ok(OracleVerdict::Pass);
        }
        Ok(OracleVerdict::fail(format!(
            "`{}` came {took:?} after {from}, limit {:?}:\n    {}\n    {}",
            self.to, self.limit, start.raw, end.raw
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oracle::Oracle;
    use crate::oracle::journal_fixture::{line, marker, observation};

    #[test]
    fn passes_in_time_and_fails_late_or_missing() {
        let limit = Duration::from_millis(300);
        let lines =
            [marker(7, 1_000, "ending"), line(8, 1_100, "save_failed", ""), line(7, 1_200_000, "save_failed", "")];
        let obs = observation(&lines, &[]);
        obs.assert().fails(
            WithinDeadline::from_marker("ending", "save_failed", limit),
            &["came 1.199s after marker `ending`", "limit 300ms"],
        );
        obs.assert().oracle(WithinDeadline::from_marker("ending", "save_failed", Duration::from_secs(2)));
        obs.assert().fails(WithinDeadline::from_kind("nothing", "save_failed", limit), &["no `nothing` event"]);
        let quick = observation(&[marker(7, 1_000, "ending"), line(7, 2_000, "save_failed", "")], &[]);
        quick.assert().oracle(WithinDeadline::from_marker("ending", "save_failed", limit));
        let never = observation(&[marker(7, 1_000, "ending")], &[]);
        never.assert().fails(WithinDeadline::from_marker("ending", "save_failed", limit), &["no `save_failed` event"]);
        assert_eq!(WithinDeadline::from_kind("a", "b", limit).id(), "within_deadline[b]");
    }
}
