//! `runtime-cache-scenarios defects`: runs the catalog against the correct cache and against every defect of
//! the defect zoo ([`crate::defects`]: each a recipe of runtime-cache seams, set per child through
//! `FAILPOINTS`), and shows what caught what.
//!
//! The verdict: the correct cache must pass every cell, and every defect must fail at least one
//! cell. A defect that no cell catches means the catalog has a blind spot.

use std::collections::BTreeMap;
use std::path::Path;

use exit_harness::cli::run_cells;
use exit_harness::report::RunEvent;
use exit_harness::{Catalog, CellResult};

use crate::catalog::{RuntimeCacheCatalog, Sizes};
use crate::defects::Defect;

/// The results of one catalog run per variant of the cache.
#[derive(Debug)]
pub struct DefectHunt {
    /// The correct cache's results.
    pub correct: Vec<CellResult>,
    /// Each defect's results, in [`Defect::ALL`] order.
    pub defects: Vec<(Defect, Vec<CellResult>)>,
}

/// What caught a defect: the cell and its first failing oracle instance, with its evidence
/// (taken from the cell's [`CellResult`] verdicts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catch {
    /// The cell's family.
    pub family: String,
    /// The cell's name.
    pub cell: String,
    /// The first failing oracle instance's id (`save_count[kernels.rtc]`), or "run" when the
    /// run itself failed.
    pub oracle: String,
    /// Its evidence.
    pub evidence: String,
}

impl DefectHunt {
    /// Runs the catalog (with `sizes`) against the correct cache and each defect, `jobs` cells
    /// at a time, all in one pool.
    pub fn run(child: &Path, sizes: Sizes, jobs: usize, on_done: impl FnMut(usize, usize)) -> Self {
        let correct = RuntimeCacheCatalog::new(child, sizes);
        let mut variants: Vec<Option<Defect>> = vec![None];
        variants.extend(Defect::ALL.map(Some));
        let mut cells = Vec::new();
        let mut counts = Vec::new();
        for variant in &variants {
            let catalog = match variant {
                None => correct.clone(),
                Some(defect) => correct.clone().with_defect(*defect),
            };
            let variant_cells = catalog.cells();
            counts.push(variant_cells.len());
            cells.extend(variant_cells);
        }
        let total = cells.len();
        let mut on_done = on_done;
        let mut progress = |event: &RunEvent<'_>| {
            if let RunEvent::Finished { done, .. } = event {
                on_done(*done, total);
            }
        };
        let mut results = run_cells(&cells, jobs, &mut progress).into_iter();
        let mut per_variant = counts.into_iter().map(|count| results.by_ref().take(count).collect::<Vec<_>>());
        let correct = per_variant.next().unwrap_or_default();
        let defects = Defect::ALL.into_iter().zip(per_variant).collect();
        Self { correct, defects }
    }

    /// The correct cache's failing cells (there must be none).
    pub fn correct_failures(&self) -> Vec<&CellResult> {
        self.correct.iter().filter(|result| !result.passed()).collect()
    }

    /// Every catch in `results` (one variant's): each failing cell with its first failing oracle.
    pub fn catches(results: &[CellResult]) -> Vec<Catch> {
        results
            .iter()
            .filter(|result| !result.passed())
            .map(|result| {
                let (oracle, evidence) = match &result.observation {
                    Err(error) => ("run".to_string(), error.clone()),
                    Ok(_) => result
                        .verdicts
                        .iter()
                        .find_map(|v| v.verdict.evidence().map(|e| (v.id.clone(), e.to_string())))
                        .unwrap_or_default(),
                };
                Catch { family: result.family.clone(), cell: result.name.clone(), oracle, evidence }
            })
            .collect()
    }

    /// Defects no cell caught.
    pub fn uncaught(&self) -> Vec<Defect> {
        self.defects.iter().filter(|(_, results)| Self::catches(results).is_empty()).map(|(d, _)| *d).collect()
    }

    /// Whether the catalog passes on the correct cache and catches every defect.
    pub fn passed(&self) -> bool {
        self.correct_failures().is_empty() && self.uncaught().is_empty()
    }

    /// The defect x family table: in each box, how many cells of that family failed and the
    /// oracle that failed most often; then the first catch of each defect with its evidence.
    pub fn table(&self) -> String {
        let families: Vec<String> = {
            let mut seen = Vec::new();
            for result in &self.correct {
                if !seen.contains(&result.family) {
                    seen.push(result.family.clone());
                }
            }
            seen
        };
        let mut rows: Vec<Vec<String>> = Vec::new();
        let mut header = vec!["defect".to_string()];
        header.extend(families.iter().cloned());
        rows.push(header);
        let correct_row = std::iter::once("(correct cache)".to_string())
            .chain(families.iter().map(|family| {
                let failed = self.correct.iter().filter(|r| &r.family == family && !r.passed()).count();
                if failed == 0 { "pass".into() } else { format!("{failed} FAILED") }
            }))
            .collect();
        rows.push(correct_row);
        for (defect, results) in &self.defects {
            let catches = Self::catches(results);
            let mut row = vec![defect.name().to_string()];
            for family in &families {
                let in_family: Vec<&Catch> = catches.iter().filter(|c| &c.family == family).collect();
                row.push(if in_family.is_empty() {
                    "-".into()
                } else {
                    let mut by_oracle = BTreeMap::<&str, usize>::new();
                    for catch in &in_family {
                        *by_oracle.entry(catch.oracle.as_str()).or_default() += 1;
                    }
                    let top = by_oracle.iter().max_by_key(|(_, n)| **n).map_or("", |(o, _)| *o);
                    format!("{} {top}", in_family.len())
                });
            }
            rows.push(row);
        }
        let widths: Vec<usize> =
            (0..rows[0].len()).map(|col| rows.iter().map(|row| row[col].len()).max().unwrap_or(0)).collect();
        let mut out = String::new();
        for (index, row) in rows.iter().enumerate() {
            let line: Vec<String> = row.iter().zip(&widths).map(|(text, width)| format!("{text:<width$}")).collect();
            out.push_str(line.join("  ").trim_end());
            out.push('\n');
            if index == 0 {
                let rule: Vec<String> = widths.iter().map(|width| "-".repeat(*width)).collect();
                out.push_str(&rule.join("  "));
                out.push('\n');
            }
        }
        out.push('\n');
        for (defect, results) in &self.defects {
            match Self::catches(results).first() {
                Some(catch) => out.push_str(&format!(
                    "{}: caught by {} in {}: {}\n",
                    defect.name(),
                    catch.oracle,
                    catch.cell,
                    first_line(&catch.evidence)
                )),
                None => out.push_str(&format!("{}: NOT CAUGHT by any cell\n", defect.name())),
            }
        }
        for failure in self.correct_failures() {
            out.push_str(&format!("correct cache FAILED {}: {}\n", failure.name, failure.failures().join("\n")));
        }
        out
    }

    /// The same as JSON: `{"correct": {"cells", "failed": [...]}, "defects": [{"defect", "caught",
    /// "catches": [{"family", "cell", "oracle", "evidence"}]}]}`.
    pub fn json(&self) -> String {
        let defects: Vec<serde_json::Value> = self
            .defects
            .iter()
            .map(|(defect, results)| {
                let catches: Vec<serde_json::Value> = Self::catches(results)
                    .into_iter()
                    .map(|c| serde_json::json!({"family": c.family, "cell": c.cell, "oracle": c.oracle, "evidence": c.evidence}))
                    .collect();
                serde_json::json!({"defect": defect.name(), "caught": !catches.is_empty(), "catches": catches})
            })
            .collect();
        let failed: Vec<&str> = self.correct_failures().iter().map(|r| r.name.as_str()).collect();
        serde_json::to_string_pretty(&serde_json::json!({
            "correct": {"cells": self.correct.len(), "failed": failed},
            "defects": defects,
            "passed": self.passed(),
        }))
        .unwrap_or_default()
    }
}

fn first_line(text: &str) -> &str {
    let line = text.lines().next().unwrap_or("");
    match line.char_indices().nth(160) {
        Some((at, _)) => &line[..at],
        None => line,
    }
}
