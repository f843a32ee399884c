//! `file_content`: a file under test holds what it must, judged from its bytes alone (no journal).

use regex::Regex;

use super::{Oracle, OracleVerdict, all, files_named, qualified, quote_lines};
use crate::observation::{FileObservation, Observation};

/// What the content must be.
#[derive(Debug, Clone)]
enum Expect {
    Equals(String),
    ContainsLines(Vec<String>),
    Matches(Regex),
}

/// Judges the final content of a file under test: equal to a text, containing every one of some
/// lines (in any order), or matching a regex. An absent or unread file fails (or cannot be
/// judged), quoting what was there.
#[derive(Debug, Clone)]
pub struct FileContent {
    file: Option<String>,
    expect: Expect,
}

impl FileContent {
    /// The file's content equals `text`.
    pub fn equals(text: impl Into<String>) -> Self {
        Self { file: None, expect: Expect::Equals(text.into()) }
    }

    /// The file holds each of `lines` as a whole line.
    pub fn contains_lines<S: Into<String>>(lines: impl IntoIterator<Item = S>) -> Self {
        Self { file: None, expect: Expect::ContainsLines(lines.into_iter().map(Into::into).collect()) }
    }

    /// The file's content matches `pattern` (a regex, searched anywhere; use `(?m)` for `^`/`$`
    /// per line).
    pub fn matches(pattern: &str) -> Result<Self, regex::Error> {
        Ok(Self { file: None, expect: Expect::Matches(Regex::new(pattern)?) })
    }

    /// Only the file under test named `name`.
    #[must_use]
    pub fn of(mut self, name: impl Into<String>) -> Self {
        self.file = Some(name.into());
        self
    }

    fn judge_file(&self, file: &FileObservation, content: Option<&str>) -> OracleVerdict {
        if let Some(why) = &file.after.unreadable {
            return OracleVerdict::cannot_judge(format!("{}: not read: {why}", file.name));
        }
        let Some(text) = content else {
            return OracleVerdict::fail(format!("{}: the file is absent after the run", file.name));
        };
        let shown = || quote_lines(text.lines(), 10);
        match &self.expect {
            Expect::Equals(want) if text == want => OracleVerdict::Pass,
            Expect::Equals(want) => OracleVerdict::fail(format!(
                "{}: content differs; expected {} byte(s):\n{}\n  found {} byte(s):\n{}",
                file.name,
                want.len(),
                quote_lines(want.lines(), 10),
                text.len(),
                shown()
            )),
            Expect::ContainsLines(lines) => {
                let missing: Vec<&str> =
                    lines.iter().map(String::as_str).filter(|want| !text.lines().any(|l| l == *want)).collect();
                if missing.is_empty() {
                    return OracleVerdict::Pass;
                }
                OracleVerdict::fail(format!(
                    "{}: {} of {} expected line(s) missing:\n{}\n  the file holds {} line(s):\n{}",
                    file.name,
                    missing.len(),
                    lines.len(),
                    quote_lines(missing, 10),
                    text.lines().count(),
                    shown()
                ))
            }
            Expect::Matches(re) if re.is_match(text) => OracleVerdict::Pass,
            Expect::Matches(re) => {
                OracleVerdict::fail(format!("{}: content does not match /{re}/; it holds:\n{}", file.name, shown()))
            }
        }
    }
}

impl Oracle for FileContent {
    fn name(&self) -> &str {
        "file_content"
    }

    fn id(&self) -> String {
        qualified(self.name(), self.file.as_deref())
    }

    fn judge(&self, obs: &Observation) -> OracleVerdict {
        match files_named(obs, self.file.as_deref()) {
            Ok(files) => all(files.into_iter().map(|f| match (&f.after.content, f.after.exists) {
                (None, true) if f.after.unreadable.is_none() => OracleVerdict::cannot_judge(format!(
                    "{}: {} bytes, more than the {} kept as text",
                    f.name,
                    f.after.size,
                    crate::observation::TEXT_KEPT
                )),
                (content, _) => self.judge_file(f, content.as_deref()),
            })),
            Err(verdict) => verdict,
        }
    }
}
