//! `file_intact`: the final file is the old content or a valid new one, never a mix.

use super::{Oracle, OracleVerdict, all, files_named, qualified};
use crate::observation::{FileObservation, Observation};

/// "Old or new": the final file is byte-identical to the before snapshot (both absent counts),
/// or it is valid by its validator and holds every key the before snapshot held. With
/// [`unchanged`](Self::unchanged), only byte-identical passes.
#[derive(Debug, Clone, Default)]
pub struct FileIntact {
    file: Option<String>,
    unchanged: bool,
}

impl FileIntact {
    /// Every file under test is old or new.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every file under test is exactly as before.
    pub fn unchanged() -> Self {
        Self { file: None, unchanged: true }
    }

    /// Only the file under test named `name`.
    #[must_use]
    pub fn of(mut self, name: impl Into<String>) -> Self {
        self.file = Some(name.into());
        self
    }

    fn judge_file(&self, file: &FileObservation) -> OracleVerdict {
        let Some(before) = &file.before else {
            return OracleVerdict::cannot_judge(format!("{}: the file was not observed before the run", file.name));
        };
        let after = &file.after;
        for (when, snapshot) in [("before", before), ("after", after)] {
            if let Some(why) = &snapshot.unreadable {
                return OracleVerdict::cannot_judge(format!("{}: not read {when} the run: {why}", file.name));
            }
        }
        if before.exists == after.exists && before.hash == after.hash {
            return OracleVerdict::Pass;
        }
        let seen = format!("before: {}; after: {}", before.describe(), after.describe());
        if self.unchanged {
            return OracleVerdict::fail(format!("{}: changed; {seen}", file.name));
        }
        if !after.exists {
            return OracleVerdict::fail(format!("{}: the file is gone; {seen}", file.name));
        }
        match &after.validity {
            None => OracleVerdict::fail(format!(
                "{}: changed and no validator can tell whether it is a valid new state; {seen}",
                file.name
            )),
            Some(Err(_)) => OracleVerdict::fail(format!("{}: torn or invalid; {seen}", file.name)),
            Some(Ok(_)) => match (before.keys(), after.keys()) {
                (Some(old), Some(new)) => {
                    let missing: Vec<&String> = old.difference(new).collect();
                    if missing.is_empty() {
                        OracleVerdict::Pass
                    } else {
                        OracleVerdict::fail(format!(
                            "{}: valid but lost {} old key(s) ({:?}{}); {seen}",
                            file.name,
                            missing.len(),
                            &missing[..missing.len().min(5)],
                            if missing.len() > 5 { ", ..." } else { "" }
                        ))
                    }
                }
                _ => OracleVerdict::Pass,
            },
        }
    }
}

impl Oracle for FileIntact {
    fn name(&self) -> &str {
        "file_intact"
    }

    fn id(&self) -> String {
        qualified(self.name(), self.file.as_deref())
    }

    fn judge(&self, obs: &Observation) -> OracleVerdict {
        match files_named(obs, self.file.as_deref()) {
            Ok(files) => all(files.into_iter().map(|f| self.judge_file(f))),
            Err(verdict) => verdict,
        }
    }
}
