//! The human report: one row per cell, one column per oracle, then the evidence of failures.

use std::fmt::Write as _;

use super::{Summary, oracle_columns};
use crate::cell::CellResult;

/// Renders `results` as a plain-text table (one column per oracle name, showing the worst
/// verdict of its instances) followed by the evidence of every failing oracle instance of each
/// failing cell, and a summary line.
pub fn render(results: &[CellResult]) -> String {
    let oracles = oracle_columns(results);
    let mut header: Vec<String> = vec!["cell".into(), "family".into()];
    header.extend(oracles.iter().map(|o| (*o).to_owned()));
    header.extend(["saves j/bb (expected)".into(), "wall ms".into()]);
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            let mut row = vec![r.name.clone(), r.family.clone()];
            row.extend(oracles.iter().map(|o| match (r.status_of(o), &r.observation) {
                (_, Err(_)) => "ERROR".to_owned(),
                (Some(status), _) => status.to_owned(),
                (None, _) => "-".to_owned(),
            }));
            let seen = r.saves_seen().map_or("-".to_owned(), |(j, b)| format!("{j}/{b}"));
            let expected = r.expected_saves.as_deref().map(|e| format!(" ({e})")).unwrap_or_default();
            row.push(format!("{seen}{expected}"));
            row.push(format!("{:.0}", r.wall.as_secs_f64() * 1000.0));
            row
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).chain([header[c].len()]).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        let _ = writeln!(out, "{}", padded.join("  ").trim_end());
    };
    line(&header);
    line(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>());
    for row in &rows {
        line(row);
    }
    for r in results.iter().filter(|r| !r.passed()) {
        let _ = writeln!(out, "\n{} FAILED", r.name);
        for failure in r.failures() {
            let _ = writeln!(out, "  {}", failure.replace('\n', "\n  "));
        }
    }
    let s = Summary::of(results);
    let _ = write!(out, "\n{} cell(s): {} passed, {} failed\n", s.cells, s.passed, s.failed);
    out
}
