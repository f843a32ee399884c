//! `no_leaked_processes`: nothing of the child's process group outlived it.

use super::{Oracle, OracleVerdict, quote_lines};
use crate::observation::Observation;

/// Fails when a process of the child's group was still alive after the child exited.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoLeakedProcesses;

impl Oracle for NoLeakedProcesses {
    fn name(&self) -> &str {
        "no_leaked_processes"
    }

    fn judge(&self, obs: &Observation) -> OracleVerdict {
        if obs.leaked.is_empty() {
            return OracleVerdict::Pass;
        }
        let lines: Vec<String> = obs.leaked.iter().map(|p| format!("pid {}: {}", p.pid, p.cmdline)).collect();
        OracleVerdict::fail(format!(
            "{} process(es) of the child's group outlived it (killed by the harness):\n{}",
            lines.len(),
            quote_lines(lines.iter().map(String::as_str), 10)
        ))
    }
}
