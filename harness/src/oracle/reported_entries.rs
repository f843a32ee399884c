//! `reported_entries`: the save that wrote a file reports as many entries as the file holds.

use super::save_count::journaled_saves;
use super::{JournalOracle, OracleVerdict, quote_lines};
use crate::journal::Entry;
use crate::observation::Observation;

/// Fails unless the last journaled `save` of the file by some process carries an `entries` count
/// equal to the number of keys the file's validator finds in the final file: the program's own
/// account of what it wrote agrees with what is on disk (a merge that reports what it meant to
/// write, not what it wrote, is caught). Each process's last save is a candidate, because the
/// final content is one process's last save and the journal orders lines by when they were
/// written, not by when the renames happened (two processes may journal their commits in the
/// other order). Needs a validator that exposes keys.
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

impl JournalOracle for ReportedEntries {
    const NAME: &'static str = "reported_entries";

    fn about(&self) -> Option<String> {
        Some(self.file.clone())
    }

    fn verdict(&self, obs: &Observation) -> Result<OracleVerdict, OracleVerdict> {
        let (file, saves) = journaled_saves(obs, &self.file)?;
        if saves.is_empty() {
            return Ok(OracleVerdict::fail(format!("{}: no save in the journal", file.name)));
        }
        let Some(keys) = file.after.keys() else {
            return Ok(OracleVerdict::fail(format!(
                "{}: no keys after the run ({})",
                file.name,
                file.after.describe()
            )));
        };
        // Each process's last save, in the order of the processes' first saves.
        let mut last: Vec<&Entry> = Vec::new();
        for save in saves {
            match last.iter_mut().find(|seen| seen.pid == save.pid) {
                Some(seen) => *seen = save,
                None => last.push(save),
            }
        }
        if last.iter().any(|save| save.u64_field("entries") == Some(keys.len() as u64)) {
            return Ok(OracleVerdict::Pass);
        }
        Ok(OracleVerdict::fail(format!(
            "{}: the file holds {} entries; no process's last save reported that many:\n{}",
            file.name,
            keys.len(),
            quote_lines(last.iter().map(|save| save.raw.as_str()), 8)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oracle::journal_fixture::{observation, save};

    #[test]
    fn passes_when_a_process_last_save_matches_and_fails_otherwise() {
        let files: &[(&str, &[&str])] = &[("c.bin", &["a", "b"])];
        let lines = [save(1, 0, "c.bin", r#""entries":1"#), save(2, 1, "c.bin", r#""entries":2"#)];
        observation(&lines, files).assert().oracle(ReportedEntries::of("c.bin"));
        // Process 2 renamed last but journaled first: its save still counts.
        let lines = [save(2, 0, "c.bin", r#""entries":2"#), save(1, 1, "c.bin", r#""entries":1"#)];
        observation(&lines, files).assert().oracle(ReportedEntries::of("c.bin"));
        // Process 1's earlier save matched, but its last one did not.
        let lines = [save(1, 0, "c.bin", r#""entries":2"#), save(1, 1, "c.bin", r#""entries":3"#)];
        observation(&lines, files).assert().fails(ReportedEntries::of("c.bin"), &["holds 2 entries", "\"entries\":3"]);
        observation(&[], files).assert().fails(ReportedEntries::of("c.bin"), &["no save"]);
    }
}
