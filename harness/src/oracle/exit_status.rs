//! `exit_status`: the process ended with the expected code or signal, on its own.

use super::{Oracle, OracleVerdict, quote_lines};
use crate::observation::{ExitOutcome, Observation};

/// Fails when the child's outcome differs from the expected one, or when the harness had to
/// end it at its timeout (whatever the outcome then).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus {
    expected: ExitOutcome,
}

impl ExitStatus {
    /// Expects exit code `code`.
    pub fn code(code: i32) -> Self {
        Self { expected: ExitOutcome::Code(code) }
    }

    /// Expects exit code 0.
    pub fn success() -> Self {
        Self::code(0)
    }

    /// Expects death by signal `sig`.
    pub fn signal(sig: i32) -> Self {
        Self { expected: ExitOutcome::Signal(sig) }
    }
}

impl Oracle for ExitStatus {
    fn name(&self) -> &str {
        "exit_status"
    }

    fn judge(&self, obs: &Observation) -> OracleVerdict {
        if obs.outcome == self.expected && !obs.timed_out {
            return OracleVerdict::Pass;
        }
        let why = if obs.timed_out { " after the harness's timeout" } else { "" };
        let tail: Vec<&str> = obs.stderr_lines().collect();
        let tail = &tail[tail.len().saturating_sub(5)..];
        OracleVerdict::fail(format!(
            "expected {}, got {}{why}; last stderr lines:\n{}",
            self.expected,
            obs.outcome,
            quote_lines(tail.iter().copied(), 5)
        ))
    }
}
