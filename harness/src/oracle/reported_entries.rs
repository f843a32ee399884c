//! `reported_entries`: the last save of a file reports as many entries as the file holds.

use super::save_count::journal_about;
use super::{Oracle, OracleVerdict, files_named, qualified};
use crate::observation::Observation;

/// Fails unless the last journaled `save` of the file carries an `entries` count equal to the
/// number of keys the file's validator finds in the final file: the program's own account of
/// what it wrote agrees with what is on disk (a merge that reports what it meant to write, not
/// what it wrote, is caught). Needs a validator that exposes keys.
#[derive(Debug, Clone)]
pub struct ReportedEntries {
    file: String,
}

impl ReportedEntries {
    /// For the file under test named `file`.
    pub fn of(file: impl Into<String>) -> Self {
        Self { file: file.into() }
    }
}

impl Oracle for ReportedEntries {
    fn name(&self) -> &str {
        "reported_entries"
    }

    fn id(&self) -> String {
        qualified(self.name(), Some(&self.file))
    }

    fn needs_journal(&self) -> bool {
        true
    }

    fn judge(&self, obs: &Observation) -> OracleVerdict {
        self.verdict(obs).unwrap_or_else(|verdict| verdict)
    }
}

impl ReportedEntries {
    /// The verdict, or (as `Err`) the failure found on the way.
    fn verdict(&self, obs: &Observation) -> Result<OracleVerdict, OracleVerdict> {
        let file = files_named(obs, Some(&self.file))?[0];
        obs.judgeable_journal()?;
        let Some(last) = journal_about(obs, "save", file).pop() else {
            return Ok(OracleVerdict::fail(format!("{}: no save in the journal", file.name)));
        };
        let Some(keys) = file.after.keys() else {
            return Ok(OracleVerdict::fail(format!(
                "{}: no keys after the run ({})",
                file.name,
                file.after.describe()
            )));
        };
        Ok(match last.u64_field("entries") {
            Some(reported) if reported == keys.len() as u64 => OracleVerdict::Pass,
            reported => OracleVerdict::fail(format!(
                "{}: the last save reported {reported:?} entries; the file holds {}:\n    {}",
                file.name,
                keys.len(),
                last.raw
            )),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oracle::journal_fixture::{observation, save};

    #[test]
    fn passes_when_the_count_matches_and_fails_otherwise() {
        let files: &[(&str, &[&str])] = &[("c.bin", &["a", "b"])];
        let lines = [save(1, 0, "c.bin", r#""entries":1"#), save(2, 1, "c.bin", r#""entries":2"#)];
        observation(&lines, files).assert().oracle(ReportedEntries::of("c.bin"));
        let lines = [save(1, 0, "c.bin", r#""entries":2"#), save(2, 1, "c.bin", r#""entries":1"#)];
        observation(&lines, files).assert().fails(ReportedEntries::of("c.bin"), &["reported Some(1)", "holds 2"]);
        observation(&[], files).assert().fails(ReportedEntries::of("c.bin"), &["no save"]);
    }
}
