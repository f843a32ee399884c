//! `save_count`: how many saves reached each file, by the journal **and** the black box.

use std::collections::BTreeMap;
use std::fmt;

use super::{Oracle, OracleVerdict, all, files_named, qualified, quote_lines};
use crate::journal::Entry;
use crate::observation::{ExitOutcome, FileObservation, Observation};

/// The expected number of saves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Exactly this many.
    Exactly(u64),
    /// This many or fewer.
    AtMost(u64),
}

impl Expect {
    fn admits(self, n: u64) -> bool {
        match self {
            Self::Exactly(want) => n == want,
            Self::AtMost(max) => n <= max,
        }
    }
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exactly(n) => write!(f, "exactly {n}"),
            Self::AtMost(n) => write!(f, "at most {n}"),
        }
    }
}

/// Counts the saves of a file two independent ways, the journal's `save` events and the black
/// box's renames onto / writes into the file, and fails when they disagree or when the count is
/// not the expected one. For a child declared not to write the journal
/// ([`ChildSpec::without_journal`](crate::ChildSpec::without_journal)), it counts from the black
/// box alone and its evidence says "black box only".
#[derive(Debug, Clone)]
pub struct SaveCount {
    expect: Expect,
    file: Option<String>,
    per_process: bool,
    torn_commit_ok: bool,
}

impl SaveCount {
    /// Exactly `n` saves of each file under test.
    pub fn exactly(n: u64) -> Self {
        Self { expect: Expect::Exactly(n), file: None, per_process: false, torn_commit_ok: false }
    }

    /// At most `n` saves of each file under test.
    pub fn at_most(n: u64) -> Self {
        Self { expect: Expect::AtMost(n), ..Self::exactly(0) }
    }

    /// No save at all.
    pub fn none() -> Self {
        Self::exactly(0)
    }

    /// Only the file under test named `name`.
    #[must_use]
    pub fn of(mut self, name: impl Into<String>) -> Self {
        self.file = Some(name.into());
        self
    }

    /// Applies the expectation to the journaled saves of each process that wrote to the journal,
    /// instead of to the total (the black box, blind to processes, is still checked against
    /// the total).
    #[must_use]
    pub fn per_process(mut self) -> Self {
        self.per_process = true;
        self
    }

    /// When the child was killed by a signal, accepts one more save in the black box than in the
    /// journal: the commit (rename) landed and the kill came before its journal line.
    #[must_use]
    pub fn allow_torn_commit(mut self) -> Self {
        self.torn_commit_ok = true;
        self
    }

    fn judge_file(&self, obs: &Observation, file: &FileObservation) -> OracleVerdict {
        let Some(seen) = file.black_box else {
            return OracleVerdict::cannot_judge(format!("{}: no black box watched this run", file.name));
        };
        if obs.black_box_overflowed {
            return OracleVerdict::cannot_judge(format!(
                "{}: the black box's inotify queue overflowed, so its counts are only a lower bound",
                file.name
            ));
        }
        let black_box = seen.saves();
        if black_box == 0
            && let Some(before) = &file.before
            && file.after.hash.is_some()
            && before.hash != file.after.hash
        {
            // The snapshots saw new content the black box did not see written: a write through a
            // hard link in another folder, or through mmap, raises no inotify event on this name.
            // (Something other than a file put at the path, a FIFO or a link, has no content.)
            return OracleVerdict::cannot_judge(format!(
                "{}: its content changed ({} -> {} bytes) but the black box saw no write: it was written through \
                 a hard link elsewhere or through mmap, which inotify cannot see, so its saves cannot be counted",
                file.name, before.size, file.after.size
            ));
        }
        let counts = format!(
            "black box: {black_box} ({} rename(s) onto it, {} write(s) in place, {} close-after-write); child: {}",
            seen.renames_onto, seen.in_place_writes, seen.close_writes, obs.outcome
        );
        if !obs.instrumented {
            // Black box only: the program is declared not to write a journal.
            return match self.expect.admits(black_box) && !self.per_process {
                true => OracleVerdict::Pass,
                false if self.per_process => OracleVerdict::cannot_judge(
                    "per-process save counts need the journal; the child is declared not to write one",
                ),
                false => OracleVerdict::fail(format!(
                    "{}: expected {} (black box only: the child writes no journal)\n  {counts}",
                    file.name, self.expect
                )),
            };
        }
        if let Err(verdict) = obs.judgeable_journal() {
            return verdict;
        }
        let saves: Vec<&Entry> = journal_about(obs, "save", file);
        let failed: Vec<&Entry> = journal_about(obs, "save_failed", file);
        let journal = saves.len() as u64;
        let killed = matches!(obs.outcome, ExitOutcome::Signal(_));
        let agree = journal == black_box || (self.torn_commit_ok && killed && black_box == journal + 1);
        let counts_ok = if self.per_process {
            let mut by_pid: BTreeMap<u32, u64> = obs.journal.entries.iter().map(|e| (e.pid, 0)).collect();
            for save in &saves {
                *by_pid.entry(save.pid).or_default() += 1;
            }
            by_pid.values().all(|&n| self.expect.admits(n)) && !by_pid.is_empty()
        } else {
            self.expect.admits(journal.max(black_box))
        };
        if agree && counts_ok {
            return OracleVerdict::Pass;
        }
        let mut problem = Vec::new();
        if !agree {
            problem.push("journal and black box disagree".to_owned());
        }
        if !counts_ok {
            let scope = if self.per_process { " per process" } else { "" };
            problem.push(format!("expected {}{scope}", self.expect));
        }
        OracleVerdict::fail(format!(
            "{}: {}\n  journal: {journal} save(s), {counts}\n  journal `save` lines:\n{}\n  journal `save_failed` lines:\n{}",
            file.name,
            problem.join("; "),
            quote_lines(saves.iter().map(|e| e.raw.as_str()), 8),
            quote_lines(failed.iter().map(|e| e.raw.as_str()), 4),
        ))
    }
}

/// The file under test named `name` and the journal's `save` events about it; the verdict to
/// give instead when no file has that name or the journal cannot be judged. For oracle authors.
pub fn journaled_saves<'a>(
    obs: &'a Observation,
    name: &str,
) -> Result<(&'a FileObservation, Vec<&'a Entry>), OracleVerdict> {
    let file = files_named(obs, Some(name))?[0];
    obs.judgeable_journal()?;
    Ok((file, journal_about(obs, "save", file)))
}

/// Journal events of `kind` naming `file` (see [`names_file`]). For oracle authors.
pub fn journal_about<'a>(obs: &'a Observation, kind: &'a str, file: &FileObservation) -> Vec<&'a Entry> {
    obs.journal.of_kind(kind).filter(|e| names_file(e, file)).collect()
}

/// Whether journal event `entry` is about `file`: its `file` field is the file's absolute path,
/// or the name the scenario gave it. For oracle authors.
pub fn names_file(entry: &Entry, file: &FileObservation) -> bool {
    entry.file().is_some_and(|p| p == file.path || p == std::path::Path::new(&file.name))
}

impl Oracle for SaveCount {
    fn name(&self) -> &str {
        "save_count"
    }

    fn id(&self) -> String {
        qualified(self.name(), self.file.as_deref())
    }

    fn needs_journal(&self) -> bool {
        self.per_process
    }

    fn judge(&self, obs: &Observation) -> OracleVerdict {
        match files_named(obs, self.file.as_deref()) {
            Ok(files) => all(files.into_iter().map(|f| self.judge_file(obs, f))),
            Err(verdict) => verdict,
        }
    }

    fn expected_saves(&self) -> Option<String> {
        Some(self.expect.to_string())
    }
}
