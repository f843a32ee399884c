//! Snapshots: an [`Observation`] normalized for `insta`, so a test can pin down everything a run
//! showed and review changes as diffs.
//!
//! What varies from run to run is redacted: the scratch and temporary paths (`[scratch]`,
//! `[tmp]`), process and thread ids (`[pid]`), addresses (`0x[addr]`), source lines of panics
//! (`file.rs:[line]`), and timings (not kept).
//! The journal keeps event kinds and the fields that do not vary (marker names, save triggers);
//! files keep their facts (exists, size, valid, keys), not their hashes.
//!
//! ```no_run
//! use exit_harness::{ChildSpec, FileUnderTest};
//! let obs = ChildSpec::new("my-program").run(&[FileUnderTest::new("out.log")]).unwrap();
//! insta::assert_yaml_snapshot!(obs.snapshot());
//! ```

use regex::Regex;
use serde::Serialize;

use crate::observation::{FileSnapshot, Observation};

/// A normalized [`Observation`], for snapshot testing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObservationSnapshot {
    /// How the child ended (`exit code 0`, `signal 15 (SIGTERM)`), and whether at the timeout.
    pub outcome: String,
    /// Whether the harness ended it at its timeout.
    pub timed_out: bool,
    /// Signals sent on triggers, as `when: signal`.
    pub signals_sent: Vec<String>,
    /// stdout lines, redacted.
    pub stdout: Vec<String>,
    /// stderr lines, redacted.
    pub stderr: Vec<String>,
    /// Journal events, in order: the kind, and for markers and saves their name or trigger.
    pub journal: Vec<String>,
    /// The files under test.
    pub files: Vec<FileFacts>,
    /// New entries in each folder under test, as `folder: name`.
    pub new_in_folders: Vec<String>,
    /// How many descendants outlived the child.
    pub leaked: usize,
}

/// What a snapshot keeps of a file under test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileFacts {
    /// The name the scenario gave it.
    pub name: String,
    /// Before the run: `absent`, `present` and its validity (keys counted; sizes and hashes are
    /// left out: they vary with what a run writes, such as a pid); `not observed` when not
    /// looked at.
    pub before: String,
    /// After the run.
    pub after: String,
    /// Saves the black box counted, when it watched.
    pub black_box_saves: Option<u64>,
}

impl Observation {
    /// This observation, normalized for a snapshot.
    pub fn snapshot(&self) -> ObservationSnapshot {
        let redact = &Redactor::new(self);
        let lines = |text: &str| text.lines().map(|l| redact.apply(l)).collect();
        ObservationSnapshot {
            outcome: self.outcome.to_string(),
            timed_out: self.timed_out,
            signals_sent: self.signals_sent.iter().map(|(when, sig)| format!("{when}: {sig}")).collect(),
            stdout: lines(&self.stdout),
            stderr: lines(&self.stderr),
            journal: self
                .journal
                .entries
                .iter()
                .map(|e| match (e.str_field("name"), e.str_field("trigger")) {
                    (Some(name), _) => format!("{} {name}", e.kind),
                    (None, Some(trigger)) => format!("{} (trigger {trigger})", e.kind),
                    (None, None) => e.kind.clone(),
                })
                .collect(),
            files: self
                .files
                .iter()
                .map(|f| FileFacts {
                    name: f.name.clone(),
                    before: f.before.as_ref().map_or("not observed".into(), facts),
                    after: facts(&f.after),
                    black_box_saves: f.black_box.map(|b| b.saves()),
                })
                .collect(),
            new_in_folders: self
                .folders
                .iter()
                .flat_map(|f| f.new_entries().map(move |n| format!("{}: {}", f.name, redact.apply(n))))
                .collect(),
            leaked: self.leaked.len(),
        }
    }
}

fn facts(snapshot: &FileSnapshot) -> String {
    if !snapshot.exists {
        return "absent".into();
    }
    if let Some(why) = &snapshot.unreadable {
        return format!("not read: {why}");
    }
    match &snapshot.validity {
        None => "present".into(),
        Some(Ok(content)) => match &content.keys {
            Some(keys) => format!("valid, {} key(s)", keys.len()),
            None => "valid".into(),
        },
        Some(Err(why)) => format!("invalid: {why}"),
    }
}

struct Redactor {
    scratch: Option<String>,
    patterns: Vec<(Regex, &'static str)>,
}

impl Redactor {
    fn new(obs: &Observation) -> Self {
        let patterns = [
            (r"0x[0-9a-fA-F]+", "0x[addr]"),
            (r"\b(pid|process) \d+", "$1 [pid]"),
            (r"thread '([^']*)' \(\d+\)", "thread '$1' ([pid])"),
            (r"/tmp/[^\s:'\x22]+", "[tmp]"),
            (r"\.rs:\d+:\d+", ".rs:[line]"),
        ];
        Self {
            scratch: obs.scratch_path().map(|p| p.display().to_string()),
            patterns: patterns.iter().filter_map(|(re, to)| Regex::new(re).ok().map(|re| (re, *to))).collect(),
        }
    }

    fn apply(&self, line: &str) -> String {
        let mut line = match &self.scratch {
            Some(scratch) => line.replace(scratch.as_str(), "[scratch]"),
            None => line.to_owned(),
        };
        for (re, to) in &self.patterns {
            line = re.replace_all(&line, *to).into_owned();
        }
        line
    }
}
