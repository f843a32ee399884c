//! `no_leftover_files`: nothing new is left in a folder under test but what the scenario allows.

use super::{Oracle, OracleVerdict, all, qualified, quote_lines};
use crate::glob::glob_match;
use crate::observation::{FolderObservation, Observation};

/// Fails when a folder under test holds, after the run, an entry it did not hold before that is
/// neither a file under test nor matched by an allowed glob (`*` and `?`, on the entry's name).
/// The evidence lists the leftovers and what the black box saw happen in the folder.
#[derive(Debug, Clone, Default)]
pub struct NoLeftoverFiles {
    allowed: Vec<String>,
    folder: Option<String>,
}

impl NoLeftoverFiles {
    /// Nothing new but the files under test, in every folder under test.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also allows new entries whose names match `glob` (e.g. `*.lock`).
    #[must_use]
    pub fn allow(mut self, glob: impl Into<String>) -> Self {
        self.allowed.push(glob.into());
        self
    }

    /// Only the folder under test named `name`.
    #[must_use]
    pub fn of(mut self, name: impl Into<String>) -> Self {
        self.folder = Some(name.into());
        self
    }

    fn judge_folder(&self, obs: &Observation, folder: &FolderObservation) -> OracleVerdict {
        let under_test = |name: &str| obs.files.iter().any(|f| f.path == folder.path.join(name));
        let left: Vec<&str> = folder
            .new_entries()
            .filter(|name| !under_test(name) && !self.allowed.iter().any(|glob| glob_match(glob, name)))
            .collect();
        if left.is_empty() {
            return OracleVerdict::Pass;
        }
        OracleVerdict::fail(format!(
            "{}: {} entr(y/ies) left behind that were not there before:\n{}\n  allowed: {:?}; what happened in the folder:\n{}",
            folder.name,
            left.len(),
            quote_lines(left, 10),
            self.allowed,
            quote_lines(folder.events.iter().map(String::as_str), 10)
        ))
    }
}

impl Oracle for NoLeftoverFiles {
    fn name(&self) -> &str {
        "no_leftover_files"
    }

    fn id(&self) -> String {
        qualified(self.name(), self.folder.as_deref())
    }

    fn judge(&self, obs: &Observation) -> OracleVerdict {
        let folders: Vec<&FolderObservation> = match &self.folder {
            Some(name) => obs.folders.iter().filter(|f| &f.name == name).collect(),
            None => obs.folders.iter().collect(),
        };
        if folders.is_empty() {
            return OracleVerdict::fail(match &self.folder {
                Some(name) => format!("no folder under test is named {name:?}"),
                None => "the scenario names no folder under test".to_owned(),
            });
        }
        all(folders.into_iter().map(|f| self.judge_folder(obs, f)))
    }
}
