//! `journal_events`: how many events of one kind the journal holds, and what they say.

use serde_json::Value;

use super::{JournalOracle, OracleVerdict, quote_lines};
use crate::journal::Entry;
use crate::observation::Observation;

/// How many matching events there must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Count {
    AtLeast(usize),
    Exactly(usize),
}

/// Counts the journal's events of a kind (optionally only those whose field `matching` has a
/// value), and optionally requires every counted event to have a field value (`each`): "a
/// `save_failed` was journaled", "no `init_failed`", "8 `worker_exit` events, each with code 0",
/// "some `save_skipped` with reason `clean`". Quotes the events it counted, or the journal's size.
#[derive(Debug, Clone)]
pub struct JournalEvents {
    kind: String,
    matching: Vec<(String, Value)>,
    each: Vec<(String, Value)>,
    count: Count,
}

impl JournalEvents {
    /// At least one event of `kind` (change with [`none`](Self::none), [`exactly`](Self::exactly)).
    pub fn of_kind(kind: impl Into<String>) -> Self {
        Self { kind: kind.into(), matching: Vec::new(), each: Vec::new(), count: Count::AtLeast(1) }
    }

    /// No such event.
    #[must_use]
    pub fn none(mut self) -> Self {
        self.count = Count::Exactly(0);
        self
    }

    /// Exactly `n` such events.
    #[must_use]
    pub fn exactly(mut self, n: usize) -> Self {
        self.count = Count::Exactly(n);
        self
    }

    /// Counts only the events whose `field` equals `value`.
    #[must_use]
    pub fn matching(mut self, field: impl Into<String>, value: impl Into<Value>) -> Self {
        self.matching.push((field.into(), value.into()));
        self
    }

    /// Every counted event must have `field` equal to `value`.
    #[must_use]
    pub fn each(mut self, field: impl Into<String>, value: impl Into<Value>) -> Self {
        self.each.push((field.into(), value.into()));
        self
    }

    fn describe(&self) -> String {
        let mut text = format!("`{}`", self.kind);
        for (field, value) in &self.matching {
            text.push_str(&format!(" {field}={value}"));
        }
        text
    }
}

fn has(entry: &Entry, (field, value): &(String, Value)) -> bool {
    entry.fields.get(field) == Some(value)
}

impl JournalOracle for JournalEvents {
    const NAME: &'static str = "journal_events";

    fn about(&self) -> Option<String> {
        let filters: Vec<String> = self.matching.iter().map(|(f, v)| format!(" {f}={v}")).collect();
        Some(format!("{}{}", self.kind, filters.concat()))
    }

    fn verdict(&self, obs: &Observation) -> Result<OracleVerdict, OracleVerdict> {
        let journal = obs.judgeable_journal()?;
        let events: Vec<&Entry> =
            journal.of_kind(&self.kind).filter(|e| self.matching.iter().all(|m| has(e, m))).collect();
        let what = self.describe();
        let count_ok = match self.count {
            Count::AtLeast(n) => events.len() >= n,
            Count::Exactly(n) => events.len() == n,
        };
        if !count_ok {
            let expected = match self.count {
                Count::AtLeast(n) => format!("at least {n}"),
                Count::Exactly(n) => format!("exactly {n}"),
            };
            let quoted = if events.is_empty() {
                let others: Vec<&str> = journal.of_kind(&self.kind).map(|e| e.raw.as_str()).collect();
                match others.is_empty() {
                    true => format!(
                        "    (the journal holds {} line(s), none of kind `{}`)",
                        journal.entries.len(),
                        self.kind
                    ),
                    false => format!("  other `{}` events:\n{}", self.kind, quote_lines(others, 5)),
                }
            } else {
                quote_lines(events.iter().map(|e| e.raw.as_str()), 5)
            };
            return Ok(OracleVerdict::fail(format!(
                "{} {what} event(s), expected {expected}:\n{quoted}",
                events.len()
            )));
        }
        let odd: Vec<&str> =
            events.iter().filter(|e| !self.each.iter().all(|m| has(e, m))).map(|e| e.raw.as_str()).collect();
        if odd.is_empty() {
            return Ok(OracleVerdict::Pass);
        }
        let want: Vec<String> = self.each.iter().map(|(f, v)| format!("{f}={v}")).collect();
        Ok(OracleVerdict::fail(format!(
            "{} of {} {what} event(s) lack {}:\n{}",
            odd.len(),
            events.len(),
            want.join(", "),
            quote_lines(odd, 5)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oracle::Oracle;
    use crate::oracle::journal_fixture::{line, observation};

    #[test]
    fn counts_filters_and_requires_fields() {
        let lines = [
            line(1, 0, "worker_exit", r#""code":0"#),
            line(2, 0, "worker_exit", r#""code":1"#),
            line(1, 0, "save_skipped", r#""reason":"clean""#),
        ];
        let obs = observation(&lines, &[]);
        obs.assert().oracle(JournalEvents::of_kind("worker_exit").exactly(2));
        obs.assert().fails(JournalEvents::of_kind("worker_exit").exactly(2).each("code", 0), &["1 of 2", "\"code\":1"]);
        obs.assert()
            .fails(JournalEvents::of_kind("worker_exit").exactly(3), &["2 `worker_exit` event(s), expected exactly 3"]);
        obs.assert().oracle(JournalEvents::of_kind("save_skipped").matching("reason", "clean"));
        obs.assert().oracle(JournalEvents::of_kind("save_skipped").matching("reason", "forked child").none());
        obs.assert().fails(
            JournalEvents::of_kind("save_skipped").matching("reason", "forked child"),
            &["0 `save_skipped` reason=\"forked child\"", "other `save_skipped` events", "clean"],
        );
        obs.assert().fails(JournalEvents::of_kind("init_failed"), &["none of kind `init_failed`"]);
        obs.assert().fails(JournalEvents::of_kind("save_skipped").none(), &["expected exactly 0", "clean"]);
        assert_eq!(
            JournalEvents::of_kind("save_skipped").matching("reason", "clean").id(),
            "journal_events[save_skipped reason=\"clean\"]"
        );
    }
}
