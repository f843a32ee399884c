//! The oracle matrix (`check --matrix`): per family, one row per cell and one column per oracle
//! that family uses, each cell showing the worst verdict of that oracle's instances.

use std::fmt::Write as _;

use crate::cell::CellResult;

/// Renders `results` as one table per family.
pub fn render(results: &[CellResult]) -> String {
    let mut families: Vec<&str> = Vec::new();
    for r in results {
        if !families.contains(&r.family.as_str()) {
            families.push(&r.family);
        }
    }
    let mut out = String::new();
    for family in families {
        let rows: Vec<&CellResult> = results.iter().filter(|r| r.family == family).collect();
        let mut oracles: Vec<&str> = Vec::new();
        for verdict in rows.iter().flat_map(|r| &r.verdicts) {
            if !oracles.contains(&verdict.oracle.as_str()) {
                oracles.push(&verdict.oracle);
            }
        }
        let mut header: Vec<String> = vec![family.to_owned()];
        header.extend(oracles.iter().map(|o| (*o).to_owned()));
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                let mut row = vec![r.name.clone()];
                row.extend(oracles.iter().map(|o| match (&r.observation, r.status_of(o)) {
                    (Err(_), _) => "ERROR".to_owned(),
                    (_, Some(status)) => status.to_owned(),
                    (_, None) => "-".to_owned(),
                }));
                row
            })
            .collect();
        let widths: Vec<usize> = (0..header.len())
            .map(|c| table.iter().map(|r| r[c].chars().count()).chain([header[c].chars().count()]).max().unwrap_or(0))
            .collect();
        let mut line = |cells: &[String]| {
            let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
            let _ = writeln!(out, "{}", padded.join("  ").trim_end());
        };
        line(&header);
        line(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>());
        for row in &table {
            line(row);
        }
        out.push('\n');
    }
    out
}
