//! `quiet_stderr`: nothing on stderr but what the scenario allows.

use regex::Regex;

use super::{Oracle, OracleVerdict, quote_lines};
use crate::observation::Observation;

/// One allowed stderr line.
#[derive(Debug, Clone)]
enum Allow {
    Substring(String),
    Pattern(Regex),
}

impl Allow {
    fn admits(&self, line: &str) -> bool {
        match self {
            Self::Substring(s) => line.contains(s.as_str()),
            Self::Pattern(re) => re.is_match(line),
        }
    }
}

/// Fails when stderr holds a non-blank line that no allowance admits.
#[derive(Debug, Clone, Default)]
pub struct QuietStderr {
    allowed: Vec<Allow>,
}

impl QuietStderr {
    /// stderr must be empty (blank lines aside).
    pub fn empty() -> Self {
        Self::default()
    }

    /// Also allows lines containing `text`.
    #[must_use]
    pub fn allow_substring(mut self, text: impl Into<String>) -> Self {
        self.allowed.push(Allow::Substring(text.into()));
        self
    }

    /// Also allows lines matching `pattern`.
    pub fn allow_regex(mut self, pattern: &str) -> Result<Self, regex::Error> {
        self.allowed.push(Allow::Pattern(Regex::new(pattern)?));
        Ok(self)
    }

    /// Allows the lines Rust's default panic hook prints for a panic with `message` (the
    /// `thread '…' panicked at …` line, the message, the `RUST_BACKTRACE` note), and nothing else.
    #[must_use]
    pub fn allow_panic(mut self, message: impl Into<String>) -> Self {
        let patterns = [r"^thread '.*' (\(\d+\) )?panicked at ", r"^note: run with `RUST_BACKTRACE=1`"];
        for pattern in patterns {
            if let Ok(re) = Regex::new(pattern) {
                self.allowed.push(Allow::Pattern(re));
            }
        }
        self.allowed.push(Allow::Substring(message.into()));
        self
    }
}

impl Oracle for QuietStderr {
    fn name(&self) -> &str {
        "quiet_stderr"
    }

    fn judge(&self, obs: &Observation) -> OracleVerdict {
        let unexpected: Vec<&str> =
            obs.stderr_lines().filter(|line| !self.allowed.iter().any(|a| a.admits(line))).collect();
        if unexpected.is_empty() {
            return OracleVerdict::Pass;
        }
        OracleVerdict::fail(format!("{} unexpected stderr line(s):\n{}", unexpected.len(), quote_lines(unexpected, 10)))
    }
}
