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
        let why = match (obs.timed_out, obs.outcome == self.expected) {
            // The same status, but the harness's own timeout caused it: a scenario that waits
            // for a trigger (an output line, a marker) that never came.
            (true, true) => match obs.signals_sent.as_slice() {
                [] => " only because the harness's timeout ended the run: no signal trigger fired (a `when_output` \
                       trigger matches complete lines only: the line needs its newline)"
                    .to_owned(),
                sent => format!(" only because the harness's timeout ended the run (the triggers sent {sent:?})"),
            },
            (true, false) => " after the harness's timeout".to_owned(),
            (false, _) => String::new(),
        };
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
