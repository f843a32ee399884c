//! `save_triggers`: why each save of a file happened (the `trigger` field of its `save` events).

use super::save_count::journaled_saves;
use super::{JournalOracle, OracleVerdict, quote_lines};
use crate::observation::Observation;

/// What the triggers must be.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    /// Exactly these, in journal order.
    Sequence(Vec<String>),
    /// At least one save, every one with this trigger.
    Every(String),
}

/// Judges the `trigger` field of the journal's `save` events of one file (`exit`, `drop`,
/// `explicit`, `swap`: whatever words the program uses): exactly a given sequence, or at least
/// one save and every one with a given trigger. Quotes the saves seen.
#[derive(Debug, Clone)]
pub struct SaveTriggers {
    file: String,
    expect: Expect,
}

impl SaveTriggers {
    /// The saves of the file under test named `file` have exactly `triggers`, in order (none:
    /// no save).
    pub fn exactly<S: Into<String>>(file: impl Into<String>, triggers: impl IntoIterator<Item = S>) -> Self {
        Self { file: file.into(), expect: Expect::Sequence(triggers.into_iter().map(Into::into).collect()) }
    }

    /// The file was saved at least once, and every save has `trigger`.
    pub fn every(file: impl Into<String>, trigger: impl Into<String>) -> Self {
        Self { file: file.into(), expect: Expect::Every(trigger.into()) }
    }
}

impl JournalOracle for SaveTriggers {
    const NAME: &'static str = "save_triggers";

    fn about(&self) -> Option<String> {
        Some(self.file.clone())
    }

    fn verdict(&self, obs: &Observation) -> Result<OracleVerdict, OracleVerdict> {
        let (file, saves) = journaled_saves(obs, &self.file)?;
        let seen: Vec<&str> = saves.iter().map(|s| s.str_field("trigger").unwrap_or("(none)")).collect();
        let (ok, expected) = match &self.expect {
            Expect::Sequence(want) => (seen == *want, format!("exactly {want:?}")),
            Expect::Every(want) => {
                (!seen.is_empty() && seen.iter().all(|t| t == want), format!("at least one, every one `{want}`"))
            }
        };
        if ok {
            return Ok(OracleVerdict::Pass);
        }
        Ok(OracleVerdict::fail(format!(
            "{}: save triggers {seen:?}, expected {expected}; the `save` lines:\n{}",
            file.name,
            quote_lines(saves.iter().map(|s| s.raw.as_str()), 8)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oracle::journal_fixture::{observation, save};

    #[test]
    fn judges_the_sequence_and_the_every_forms() {
        let files: &[(&str, &[&str])] = &[("c.bin", &[])];
        let lines = [save(1, 0, "c.bin", r#""trigger":"explicit""#), save(1, 1, "c.bin", r#""trigger":"exit""#)];
        let obs = observation(&lines, files);
        obs.assert().oracle(SaveTriggers::exactly("c.bin", ["explicit", "exit"]));
        obs.assert().fails(SaveTriggers::exactly("c.bin", ["explicit"]), &["[\"explicit\", \"exit\"]", "exit\"}"]);
        obs.assert().fails(SaveTriggers::every("c.bin", "exit"), &["every one `exit`"]);
        let swap = observation(&[save(1, 0, "c.bin", r#""trigger":"swap""#)], files);
        swap.assert().oracle(SaveTriggers::every("c.bin", "swap"));
        let none = observation(&[], files);
        none.assert().fails(SaveTriggers::every("c.bin", "swap"), &["[]"]);
        none.assert().oracle(SaveTriggers::exactly("c.bin", Vec::<String>::new()));
    }
}
