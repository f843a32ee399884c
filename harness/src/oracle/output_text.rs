//! `output_text`: the child's stdout or stderr is exactly a text, or matches a regex.

use regex::Regex;

use super::{Oracle, OracleVerdict, quote_lines};
use crate::observation::Observation;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Stdout,
    Stderr,
}

#[derive(Debug, Clone)]
enum Expect {
    Equals(String),
    Matches(Regex),
}

/// Judges the whole text of stdout or stderr: equal to a text, or matching a regex (searched
/// anywhere; `(?m)` for per-line anchors). For "nothing on stderr but these lines", use
/// [`QuietStderr`](super::QuietStderr).
#[derive(Debug, Clone)]
pub struct OutputText {
    stream: Stream,
    expect: Expect,
}

impl OutputText {
    /// stdout equals `text`.
    pub fn stdout_equals(text: impl Into<String>) -> Self {
        Self { stream: Stream::Stdout, expect: Expect::Equals(text.into()) }
    }

    /// stdout matches `pattern`.
    pub fn stdout_matches(pattern: &str) -> Result<Self, regex::Error> {
        Ok(Self { stream: Stream::Stdout, expect: Expect::Matches(Regex::new(pattern)?) })
    }

    /// stderr equals `text`.
    pub fn stderr_equals(text: impl Into<String>) -> Self {
        Self { stream: Stream::Stderr, expect: Expect::Equals(text.into()) }
    }

    /// stderr matches `pattern`.
    pub fn stderr_matches(pattern: &str) -> Result<Self, regex::Error> {
        Ok(Self { stream: Stream::Stderr, expect: Expect::Matches(Regex::new(pattern)?) })
    }
}

impl Oracle for OutputText {
    fn name(&self) -> &str {
        match self.stream {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    fn judge(&self, obs: &Observation) -> OracleVerdict {
        let text = match self.stream {
            Stream::Stdout => &obs.stdout,
            Stream::Stderr => &obs.stderr,
        };
        let wanted = match &self.expect {
            Expect::Equals(want) if text == want => return OracleVerdict::Pass,
            Expect::Matches(re) if re.is_match(text) => return OracleVerdict::Pass,
            Expect::Equals(want) => format!("expected exactly:\n{}", quote_lines(want.lines(), 10)),
            Expect::Matches(re) => format!("expected a match for /{re}/"),
        };
        OracleVerdict::fail(format!("{}: {wanted}\n  found:\n{}", self.name(), quote_lines(text.lines(), 10)))
    }
}
