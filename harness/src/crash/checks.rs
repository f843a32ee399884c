//! The crash explorer's own oracles. Each judges the *recovery* run's observation: its
//! "before" snapshots are the crash state (seeded into the recovery's scratch folder), its
//! "after" what the recovery left.

use std::collections::BTreeSet;

use crate::glob::glob_match;
use crate::observation::{FileSnapshot, Observation};
use crate::oracle::{Oracle, OracleVerdict};

/// A file's two acceptable contents: before the save, and after the uncrashed save.
#[derive(Debug, Clone)]
pub struct Reference {
    /// The file's name.
    pub name: String,
    /// Before the save (absent: `None`).
    pub old: Option<FileSnapshot>,
    /// After the uncrashed run.
    pub new: Option<FileSnapshot>,
}

fn same(state: &FileSnapshot, reference: Option<&FileSnapshot>) -> bool {
    match reference {
        None => !state.exists,
        Some(r) => r.exists == state.exists && r.hash == state.hash,
    }
}

fn keys_of(snapshot: Option<&FileSnapshot>) -> Option<&BTreeSet<String>> {
    snapshot.and_then(FileSnapshot::keys)
}

/// `old_or_new`: the crash left each file as it was before the save or as the uncrashed save
/// left it, byte for byte; with a validator, also any valid content that keeps every old key
/// (another process's merge). Never torn, never gone when it existed before.
#[derive(Debug, Clone)]
pub struct OldOrNew {
    /// The files judged.
    pub files: Vec<Reference>,
}

impl Oracle for OldOrNew {
    fn name(&self) -> &str {
        "old_or_new"
    }

    fn judge(&self, obs: &Observation) -> OracleVerdict {
        let mut failures = Vec::new();
        for reference in &self.files {
            let Some(file) = obs.file(&reference.name) else {
                return OracleVerdict::cannot_judge(format!("{}: not watched in the recovery run", reference.name));
            };
            let Some(state) = &file.before else {
                return OracleVerdict::cannot_judge(format!("{}: the crash state was not snapshotted", reference.name));
            };
            if let Some(why) = &state.unreadable {
                return OracleVerdict::cannot_judge(format!("{}: crash state not read: {why}", reference.name));
            }
            if same(state, reference.old.as_ref()) || same(state, reference.new.as_ref()) {
                continue;
            }
            let old_keys = keys_of(reference.old.as_ref());
            let valid_merge = matches!(&state.validity, Some(Ok(_)))
                && match (old_keys, state.keys()) {
                    (Some(old), Some(now)) => old.is_subset(now),
                    (None, _) => true,
                    (Some(_), None) => false,
                };
            if state.exists && valid_merge {
                continue;
            }
            let what = if !state.exists {
                "the file is gone".to_owned()
            } else if matches!(&state.validity, Some(Err(_))) {
                "torn or invalid".to_owned()
            } else {
                "neither the old nor the new content".to_owned()
            };
            let show = |s: Option<&FileSnapshot>| s.map_or("absent".to_owned(), FileSnapshot::describe);
            failures.push(format!(
                "{}: {what}: crash left {}; old: {}; new: {}",
                reference.name,
                state.describe(),
                show(reference.old.as_ref()),
                show(reference.new.as_ref())
            ));
        }
        if failures.is_empty() { OracleVerdict::Pass } else { OracleVerdict::fail(failures.join("\n")) }
    }
}

/// `durable`: after the program ended (its save returned), a power loss keeps the new content
/// (byte for byte, or valid and holding every key the new content holds).
#[derive(Debug, Clone)]
pub struct Durable {
    /// The files judged.
    pub files: Vec<Reference>,
}

impl Oracle for Durable {
    fn name(&self) -> &str {
        "durable"
    }

    fn judge(&self, obs: &Observation) -> OracleVerdict {
        let mut failures = Vec::new();
        for reference in &self.files {
            let Some(state) = obs.file(&reference.name).and_then(|f| f.before.as_ref()) else {
                return OracleVerdict::cannot_judge(format!("{}: the crash state was not snapshotted", reference.name));
            };
            if same(state, reference.new.as_ref()) {
                continue;
            }
            let keeps_new = match (keys_of(reference.new.as_ref()), state.keys()) {
                (Some(new), Some(now)) => matches!(&state.validity, Some(Ok(_))) && new.is_subset(now),
                _ => false,
            };
            if !keeps_new {
                let lost = if same(state, reference.old.as_ref()) {
                    "the save was undone (old content)"
                } else {
                    "the new content is not there"
                };
                failures.push(format!("{}: {lost}: crash left {}", reference.name, state.describe()));
            }
        }
        if failures.is_empty() { OracleVerdict::Pass } else { OracleVerdict::fail(failures.join("\n")) }
    }
}

/// `recovered_clean`: after the recovery, the folders under test hold nothing but what the
/// uncrashed run leaves (and the allowed globs): no temp file of the crashed save remains.
#[derive(Debug, Clone)]
pub struct RecoveredClean {
    /// Names the uncrashed run leaves (and the folder held before it).
    pub expected: BTreeSet<String>,
    /// Globs of other names allowed.
    pub allowed: Vec<String>,
}

impl Oracle for RecoveredClean {
    fn name(&self) -> &str {
        "recovered_clean"
    }

    fn judge(&self, obs: &Observation) -> OracleVerdict {
        if obs.folders.is_empty() {
            return OracleVerdict::cannot_judge("the recovery run watched no folder");
        }
        let mut left = Vec::new();
        for folder in &obs.folders {
            for name in &folder.after {
                if !self.expected.contains(name) && !self.allowed.iter().any(|g| glob_match(g, name)) {
                    let was = if folder.before.contains(name) { "left by the crash" } else { "made by the recovery" };
                    left.push(format!("{name} ({was})"));
                }
            }
        }
        if left.is_empty() {
            OracleVerdict::Pass
        } else {
            OracleVerdict::fail(format!(
                "after the recovery the folder still holds {}; the uncrashed run leaves only {:?}",
                left.join(", "),
                self.expected
            ))
        }
    }
}
