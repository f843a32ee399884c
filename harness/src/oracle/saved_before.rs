//! `saved_before`: a file was saved, and only before a named point of the program.

use super::save_count::journal_about;
use super::{JournalOracle, OracleVerdict, files_named, quote_lines};
use crate::observation::Observation;

/// Fails unless the journal holds at least one `save` of the file and every one of them comes
/// before the `marker` event named as given (in journal order): for "the save happened at the
/// drop (or the swap), not later at exit". A missing marker fails too.
#[derive(Debug, Clone)]
pub struct SavedBefore {
    file: String,
    marker: String,
}

impl SavedBefore {
    /// Every save of the file under test named `file` comes before marker `marker`.
    pub fn new(file: impl Into<String>, marker: impl Into<String>) -> Self {
        Self { file: file.into(), marker: marker.into() }
    }
}

impl JournalOracle for SavedBefore {
    const NAME: &'static str = "saved_before";

    fn about(&self) -> Option<String> {
        Some(self.file.clone())
    }

    fn verdict(&self, obs: &Observation) -> Result<OracleVerdict, OracleVerdict> {
        let file = files_named(obs, Some(&self.file))?[0];
        let journal = obs.judgeable_journal()?;
        let marker = &self.marker;
        let Some(mark) = journal.of_kind("marker").find(|e| e.str_field("name") == Some(marker)) else {
            return Ok(OracleVerdict::fail(format!("marker `{marker}` is not in the journal")));
        };
        let saves = journal_about(obs, "save", file);
        let late: Vec<&str> = saves.iter().filter(|s| s.line > mark.line).map(|s| s.raw.as_str()).collect();
        Ok(match (saves.is_empty(), late.is_empty()) {
            (true, _) => OracleVerdict::fail(format!("{}: no save before marker `{marker}` (none at all)", file.name)),
            (false, true) => OracleVerdict::Pass,
            (false, false) => OracleVerdict::fail(format!(
                "{}: {} of {} save(s) after marker `{marker}` (line {}):\n{}",
                file.name,
                late.len(),
                saves.len(),
                mark.line,
                quote_lines(late, 5)
            )),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oracle::journal_fixture::{marker, observation, save};

    #[test]
    fn passes_on_an_early_save_and_fails_on_a_late_one_or_none() {
        let files: &[(&str, &[&str])] = &[("c.bin", &[]), ("d.bin", &[])];
        let early = observation(&[save(1, 0, "c.bin", ""), marker(1, 1, "mid"), save(1, 2, "d.bin", "")], files);
        early.assert().oracle(SavedBefore::new("c.bin", "mid"));
        early.assert().fails(SavedBefore::new("d.bin", "mid"), &["1 of 1 save(s) after marker `mid`", "d.bin"]);
        early.assert().fails(SavedBefore::new("c.bin", "gone"), &["marker `gone` is not in the journal"]);
        let none = observation(&[marker(1, 1, "mid")], files);
        none.assert().fails(SavedBefore::new("c.bin", "mid"), &["none at all"]);
        none.assert().fails(SavedBefore::new("x.bin", "mid"), &["no file under test is named"]);
    }
}
