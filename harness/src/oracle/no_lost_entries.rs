//! `no_lost_entries`: the final file holds every key any process committed to it.

use std::collections::BTreeSet;

use super::save_count::journal_about;
use super::{Oracle, OracleVerdict, all, files_named, qualified};
use crate::observation::{FileObservation, Observation};

/// The union of the keys of all `committed` events for a file must be in the final file, as the
/// file's validator reads it. Fails without `committed` events, on an invalid or absent final
/// file, and when the validator exposes no keys.
#[derive(Debug, Clone, Default)]
pub struct NoLostEntries {
    file: Option<String>,
}

impl NoLostEntries {
    /// Every file under test.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only the file under test named `name`.
    #[must_use]
    pub fn of(mut self, name: impl Into<String>) -> Self {
        self.file = Some(name.into());
        self
    }

    fn judge_file(obs: &Observation, file: &FileObservation) -> OracleVerdict {
        if let Err(verdict) = obs.judgeable_journal() {
            return verdict;
        }
        if let Some(why) = &file.after.unreadable {
            return OracleVerdict::cannot_judge(format!("{}: final file not read: {why}", file.name));
        }
        let commits = journal_about(obs, "committed", file);
        if commits.is_empty() {
            return OracleVerdict::fail(format!("{}: the journal holds no `committed` events", file.name));
        }
        let committed: BTreeSet<&str> = commits.iter().flat_map(|e| e.keys()).collect();
        let cut: Vec<usize> = commits.iter().filter(|e| e.truncated()).map(|e| e.line).collect();
        let held = match (&file.after.validity, file.after.keys()) {
            (_, Some(keys)) => keys,
            (Some(Err(why)), _) => return OracleVerdict::fail(format!("{}: final file is invalid: {why}", file.name)),
            _ if !file.after.exists => return OracleVerdict::fail(format!("{}: final file is absent", file.name)),
            _ => {
                return OracleVerdict::fail(format!(
                    "{}: no validator exposing keys for this file ({})",
                    file.name,
                    file.after.describe()
                ));
            }
        };
        let lost: Vec<&str> = committed.iter().copied().filter(|k| !held.contains(*k)).collect();
        if lost.is_empty() {
            return OracleVerdict::Pass;
        }
        let processes: BTreeSet<u32> = commits.iter().map(|e| e.pid).collect();
        let note = if cut.is_empty() { String::new() } else { format!(" (journal lines {cut:?} were truncated)") };
        OracleVerdict::fail(format!(
            "{}: {} of {} committed key(s) missing from the final file{note}: {}{}; {} process(es) committed, the file holds {} key(s)",
            file.name,
            lost.len(),
            committed.len(),
            lost.iter().take(10).map(|k| format!("{k:?}")).collect::<Vec<_>>().join(", "),
            if lost.len() > 10 { ", ..." } else { "" },
            processes.len(),
            held.len()
        ))
    }
}

impl Oracle for NoLostEntries {
    fn name(&self) -> &str {
        "no_lost_entries"
    }

    fn id(&self) -> String {
        qualified(self.name(), self.file.as_deref())
    }

    fn needs_journal(&self) -> bool {
        true
    }

    fn judge(&self, obs: &Observation) -> OracleVerdict {
        match files_named(obs, self.file.as_deref()) {
            Ok(files) => all(files.into_iter().map(|f| Self::judge_file(obs, f))),
            Err(verdict) => verdict,
        }
    }
}
