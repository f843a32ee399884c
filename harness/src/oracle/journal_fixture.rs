//! Test support for the journal oracles: an [`Observation`] built from journal lines alone.

use std::path::PathBuf;
use std::time::Duration;

use crate::journal::Journal;
use crate::observation::{ExitOutcome, FileObservation, FileSnapshot, Observation, ValidContent};

/// The scratch folder the fixture's files live in.
pub(crate) const SCRATCH: &str = "/scratch";

/// A journal line of process `pid` at `t_us`, with `fields` (a JSON object's members, or empty).
pub(crate) fn line(pid: u32, t_us: u64, kind: &str, fields: &str) -> String {
    let sep = if fields.is_empty() { "" } else { "," };
    format!(r#"{{"pid":{pid},"seq":0,"t_us":{t_us},"kind":"{kind}"{sep}{fields}}}"#)
}

/// An instrumented run that exited 0 with `lines` as its journal and `files` (name, keys after)
/// under test in [`SCRATCH`].
pub(crate) fn observation(lines: &[String], files: &[(&str, &[&str])]) -> Observation {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    Observation {
        outcome: ExitOutcome::Code(0),
        timed_out: false,
        signals_sent: Vec::new(),
        stdout: String::new(),
        stderr: String::new(),
        wall: Duration::ZERO,
        journal: Journal::parse(&text),
        files: files
            .iter()
            .map(|(name, keys)| FileObservation {
                name: (*name).to_owned(),
                path: PathBuf::from(SCRATCH).join(name),
                before: None,
                after: FileSnapshot {
                    exists: true,
                    size: 1,
                    hash: None,
                    validity: Some(Ok(ValidContent::with_keys(keys.iter().copied()))),
                    content: None,
                    unreadable: None,
                },
                black_box: None,
            })
            .collect(),
        folders: Vec::new(),
        black_box_overflowed: false,
        leaked: Vec::new(),
        descendants_watched: true,
        instrumented: true,
        scratch: None,
    }
}

/// A `save` line of `file` (in [`SCRATCH`]) with `extra` fields.
pub(crate) fn save(pid: u32, t_us: u64, file: &str, extra: &str) -> String {
    let sep = if extra.is_empty() { "" } else { "," };
    line(pid, t_us, "save", &format!(r#""file":"{SCRATCH}/{file}"{sep}{extra}"#))
}

/// A `marker` line.
pub(crate) fn marker(pid: u32, t_us: u64, name: &str) -> String {
    line(pid, t_us, "marker", &format!(r#""name":"{name}""#))
}
