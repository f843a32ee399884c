//! The human reporter, in nextest's manner: one status line per cell as it finishes, then a
//! block per failing cell with every failing oracle instance and its evidence, the child's
//! command line, the tail of its stderr and a one-line rerun command, then `N passed, N failed`.
//!
//! ```text
//!    PASS [   7ms] survive-to-exit  survive/static/exit-0
//!    FAIL [  12ms] swap  swap/explicit
//! ```
//!
//! A status line is at most [`WIDTH`] columns for names up to 60 characters, whatever the
//! number of oracles (the family is shortened first, keeping its end).

use std::fmt::Write as _;
use std::time::Duration;

use super::Summary;
use crate::cell::CellResult;

/// The widest status line, for names up to 60 characters.
pub const WIDTH: usize = 100;

/// Oracles whose evidence already quotes stderr: a block does not repeat its tail after them.
const STDERR_ORACLES: [&str; 2] = ["quiet_stderr", "stderr"];

/// How many stderr lines a failure block quotes.
const STDERR_TAIL: usize = 10;

/// One cell's status line.
pub fn status_line(result: &CellResult) -> String {
    let status = match (&result.observation, result.passed()) {
        (_, true) => "PASS",
        (Err(_), false) => "ERROR",
        (Ok(_), false) => "FAIL",
    };
    let head = format!("{status:>6} [{:>6}] ", format_duration(result.wall));
    let room = WIDTH.saturating_sub(head.chars().count() + result.name.chars().count() + 2);
    format!("{head}{}  {}", shorten(&result.family, room.max(8)), result.name)
}

/// `7ms`, `1.25s`.
fn format_duration(wall: Duration) -> String {
    match wall.as_millis() {
        ms if ms < 10_000 => format!("{ms}ms"),
        _ => format!("{:.2}s", wall.as_secs_f64()),
    }
}

/// `text` cut to its last `max` characters, led by `…` when cut (the end of a family is its most
/// telling part: a scenario file's folder and name).
fn shorten(text: &str, max: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= max {
        return text.to_owned();
    }
    let tail: String = chars[chars.len() - max.saturating_sub(1)..].iter().collect();
    format!("…{tail}")
}

/// The block of one failing cell: every failing oracle instance with its evidence, the child's
/// command line, the tail of its stderr, and `rerun`, the command that runs it alone.
pub fn failure_block(result: &CellResult, rerun: &str) -> String {
    let mut out = format!(
        "--- {} {} ({})\n",
        if result.observation.is_err() { "ERROR" } else { "FAIL" },
        result.name,
        result.family
    );
    for failure in result.failures() {
        let _ = writeln!(out, "  {}", failure.replace('\n', "\n  "));
    }
    if !result.command.is_empty() {
        let _ = writeln!(out, "  command: {}", result.command);
    }
    if let Ok(obs) = &result.observation {
        let lines: Vec<&str> = obs.stderr.lines().collect();
        let tail = &lines[lines.len().saturating_sub(STDERR_TAIL)..];
        let _ = writeln!(out, "  child: {}{}", obs.outcome, if obs.timed_out { " (timed out)" } else { "" });
        let quoted = result.verdicts.iter().any(|v| !v.verdict.passed() && STDERR_ORACLES.contains(&v.oracle.as_str()));
        match tail {
            [] => out.push_str("  stderr: (empty)\n"),
            _ if quoted => out.push_str("  stderr: quoted above\n"),
            lines => {
                let _ = writeln!(out, "  stderr (last {} lines):\n    {}", lines.len(), lines.join("\n    "));
            }
        }
    }
    if !rerun.is_empty() {
        let _ = writeln!(out, "  rerun: {rerun}");
    }
    out
}

/// The closing part of a run: every failure block, then `N passed, N failed`.
pub fn summary(results: &[CellResult], rerun: &dyn Fn(&CellResult) -> String) -> String {
    let mut out = String::new();
    for result in results.iter().filter(|r| !r.passed()) {
        out.push('\n');
        out.push_str(&failure_block(result, &rerun(result)));
    }
    let s = Summary::of(results);
    let _ = writeln!(out, "\n{} passed, {} failed", s.passed, s.failed);
    out
}

/// Status lines for every result, then the [`summary`]: the whole human report at once.
pub fn render(results: &[CellResult], rerun: &dyn Fn(&CellResult) -> String) -> String {
    let mut out: String = results.iter().map(|r| status_line(r) + "\n").collect();
    out.push_str(&summary(results, rerun));
    out
}
