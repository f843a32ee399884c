//! `marker_seen`: the program reached a named point (a journal `marker`).

use super::{JournalOracle, OracleVerdict, quote_lines};
use crate::observation::Observation;

/// Fails unless the journal holds a `marker` event named as expected: the program got that far.
/// The evidence lists the markers it did reach.
#[derive(Debug, Clone)]
pub struct MarkerSeen {
    name: String,
}

impl MarkerSeen {
    /// Expects marker `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }
}

impl JournalOracle for MarkerSeen {
    const NAME: &'static str = "marker_seen";

    fn about(&self) -> Option<String> {
        Some(self.name.clone())
    }

    fn verdict(&self, obs: &Observation) -> Result<OracleVerdict, OracleVerdict> {
        let journal = obs.judgeable_journal()?;
        if journal.has_marker(&self.name) {
            return Ok(OracleVerdict::Pass);
        }
        let seen: Vec<&str> = journal.of_kind("marker").map(|e| e.raw.as_str()).collect();
        Ok(OracleVerdict::fail(format!(
            "marker `{}` is not in the journal ({} line(s)); the markers it holds:\n{}",
            self.name,
            journal.entries.len(),
            quote_lines(seen, 8)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oracle::Oracle;
    use crate::oracle::journal_fixture::{marker, observation};

    #[test]
    fn passes_on_the_marker_and_fails_quoting_the_others() {
        let obs = observation(&[marker(1, 0, "ready"), marker(1, 5, "done")], &[]);
        obs.assert().oracle(MarkerSeen::new("done"));
        obs.assert().fails(MarkerSeen::new("recovered"), &["marker `recovered`", "\"name\":\"ready\""]);
        assert_eq!(MarkerSeen::new("done").id(), "marker_seen[done]");
    }
}
