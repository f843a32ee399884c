//! `no_leaked_processes`: nothing of the child's process group outlived it.

use super::{Oracle, OracleVerdict, quote_lines};
use crate::observation::Observation;

/// Fails when a descendant of the child (in its process group or escaped from it) was still
/// alive after the child exited; cannot judge where escaped descendants were not watched.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoLeakedProcesses;

impl Oracle for NoLeakedProcesses {
    fn name(&self) -> &str {
        "no_leaked_processes"
    }

    fn judge(&self, obs: &Observation) -> OracleVerdict {
        if obs.leaked.is_empty() && !obs.descendants_watched {
            return OracleVerdict::cannot_judge(
                "descendants that left the child's process group were not watched (this runner is not a subreaper)",
            );
        }
        if obs.leaked.is_empty() {
            return OracleVerdict::Pass;
        }
        let lines: Vec<String> = obs
            .leaked
            .iter()
            .map(|p| match p.pid {
                Some(pid) => format!("pid {pid}: {}", p.cmdline),
                None => format!("pid unknown: {}", p.cmdline),
            })
            .collect();
        OracleVerdict::fail(format!(
            "{} descendant(s) of the child outlived it (killed by the harness):\n{}",
            lines.len(),
            quote_lines(lines.iter().map(String::as_str), 10)
        ))
    }
}
