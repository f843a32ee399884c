//! The machine report: JSON with a stable, versioned schema.
//!
//! Schema version 1 (fields are only ever added; a removal or change bumps `version`):
//!
//! ```json
//! {
//!   "schema": "exit-harness.report",
//!   "version": 1,
//!   "summary": { "cells": 2, "passed": 1, "failed": 1 },
//!   "cells": [{
//!     "name": "local/return", "family": "local", "passed": false,
//!     "error": null,                          // why there is no observation, or null
//!     "outcome": { "code": 0 },               // or { "signal": 15 }, or null on error
//!     "timed_out": false,
//!     "wall_ms": 12.5,
//!     "saves": { "journal": 2, "black_box": 2, "expected": "exactly 1" },
//!     "leaked_pids": [],
//!     "journal_torn_tail": null,
//!     "verdicts": [{ "oracle": "save_count", "id": "save_count[cache]", "status": "fail",
//!                    "passed": false, "evidence": "cache: ..." }]   // status: pass | fail | cannot_judge
//!   }]
//! }
//! ```

use serde::Serialize;

use super::Summary;
use crate::cell::CellResult;
use crate::observation::ExitOutcome;
use crate::oracle::OracleVerdict;

/// The schema version written in every report.
pub const VERSION: u32 = 1;

#[derive(Serialize)]
struct Report<'a> {
    schema: &'static str,
    version: u32,
    summary: SummaryJson,
    cells: Vec<CellJson<'a>>,
}

#[derive(Serialize)]
struct SummaryJson {
    cells: usize,
    passed: usize,
    failed: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum OutcomeJson {
    Code(i32),
    Signal(i32),
}

#[derive(Serialize)]
struct SavesJson<'a> {
    journal: Option<u64>,
    black_box: Option<u64>,
    expected: Option<&'a str>,
}

#[derive(Serialize)]
struct VerdictJson<'a> {
    oracle: &'a str,
    id: &'a str,
    status: &'static str,
    passed: bool,
    evidence: Option<&'a str>,
}

#[derive(Serialize)]
struct CellJson<'a> {
    name: &'a str,
    family: &'a str,
    passed: bool,
    error: Option<&'a str>,
    outcome: Option<OutcomeJson>,
    timed_out: bool,
    wall_ms: f64,
    saves: SavesJson<'a>,
    leaked_pids: Vec<u32>,
    journal_torn_tail: Option<&'a str>,
    verdicts: Vec<VerdictJson<'a>>,
}

/// Renders `results` as a pretty-printed JSON report (schema [`VERSION`]).
pub fn render(results: &[CellResult]) -> String {
    let s = Summary::of(results);
    let report = Report {
        schema: "exit-harness.report",
        version: VERSION,
        summary: SummaryJson { cells: s.cells, passed: s.passed, failed: s.failed },
        cells: results.iter().map(cell).collect(),
    };
    serde_json::to_string_pretty(&report).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

fn cell(r: &CellResult) -> CellJson<'_> {
    let obs = r.observation.as_ref().ok();
    let seen = r.saves_seen();
    CellJson {
        name: &r.name,
        family: &r.family,
        passed: r.passed(),
        error: r.observation.as_ref().err().map(String::as_str),
        outcome: obs.map(|o| match o.outcome {
            ExitOutcome::Code(c) => OutcomeJson::Code(c),
            ExitOutcome::Signal(s) => OutcomeJson::Signal(s),
        }),
        timed_out: obs.is_some_and(|o| o.timed_out),
        wall_ms: r.wall.as_secs_f64() * 1000.0,
        saves: SavesJson {
            journal: seen.map(|s| s.0),
            black_box: seen.map(|s| s.1),
            expected: r.expected_saves.as_deref(),
        },
        leaked_pids: obs.map(|o| o.leaked.iter().filter_map(|p| p.pid).collect()).unwrap_or_default(),
        journal_torn_tail: obs.and_then(|o| o.journal.torn_tail.as_deref()),
        verdicts: r
            .verdicts
            .iter()
            .map(|v| VerdictJson {
                oracle: &v.oracle,
                id: &v.id,
                status: match v.verdict {
                    OracleVerdict::Pass => "pass",
                    OracleVerdict::Fail { .. } => "fail",
                    OracleVerdict::CannotJudge { .. } => "cannot_judge",
                },
                passed: v.verdict.passed(),
                evidence: v.verdict.evidence(),
            })
            .collect(),
    }
}
