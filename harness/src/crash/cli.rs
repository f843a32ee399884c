//! `exit-harness crash FILE... [--mode both|process|power] [--jobs N] [--all] [--json] [--junit
//! FILE]`: explores scenario files; a catalog binary's `crash [--filter TEXT]` (e.g.
//! `runtime-cache-scenarios crash`) explores its catalog's crash scenarios. Exit status: 0 when
//! every state passed, 1 when one failed or could not be judged, 2 on a usage error, a malformed
//! file, or strace missing.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use super::{CrashScenario, ExploreOptions, explore};
use crate::cell::{Catalog, CellResult};
use crate::report::{human, json, junit, table};

/// How many failing states' evidence the text report prints after the table.
const EVIDENCE_SHOWN: usize = 3;

/// Which crashes to explore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Process crashes and power losses.
    Both,
    /// SIGKILL at every recorded step.
    Process,
    /// Every modelled power-loss state.
    Power,
}

/// Options of `crash`.
#[derive(Debug, Clone, Args)]
pub struct CrashArgs {
    /// Scenario files (TOML, with optional [crash] and [recovery] tables); without any, the
    /// catalog's cells (narrowed by --filter).
    pub files: Vec<PathBuf>,
    /// Only cells whose name or family contains this text (catalog cells only).
    #[arg(long)]
    pub filter: Option<String>,
    /// Which crashes to explore.
    #[arg(long, value_enum, default_value_t = Mode::Both)]
    pub mode: Mode,
    /// Runs at once (default: the available parallelism).
    #[arg(long, short)]
    pub jobs: Option<usize>,
    /// The most power-loss states per scenario.
    #[arg(long, default_value_t = 4096)]
    pub max_states: usize,
    /// Demand durability of every scenario (a power loss after the program ended keeps the new
    /// content), to measure what a save that does not promise it can lose.
    #[arg(long)]
    pub demand_durable: bool,
    /// List every state in the table, not only the failing ones.
    #[arg(long)]
    pub all: bool,
    /// Print the JSON report (every state) instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Also write a JUnit XML report (every state) to this file.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

impl CrashArgs {
    /// The exploration options these arguments ask for.
    pub fn options(&self) -> ExploreOptions {
        let mut options = ExploreOptions {
            process_crash: self.mode != Mode::Power,
            power_loss: self.mode != Mode::Process,
            ..ExploreOptions::default()
        };
        if let Some(jobs) = self.jobs {
            options.jobs = jobs.max(1);
        }
        options.limits.total = self.max_states;
        options
    }
}

/// `crash` for a binary with a catalog: explores the named scenario files. A catalog's cells
/// are explored through crash scenarios the binary builds (a recovery per cell: see
/// [`CrashScenario`]), handed to [`run_scenarios`]; this generic entry only knows files.
pub fn run(_catalog: &dyn Catalog, args: &CrashArgs) -> ExitCode {
    if args.files.is_empty() {
        eprintln!(
            "exit-harness crash: name scenario files (this binary's catalog has no crash scenarios; a catalog \
             offers them by handing CrashScenarios to exit_harness::crash::cli::run_scenarios)"
        );
        return ExitCode::from(2);
    }
    run_files(args)
}

/// `crash FILE...`: loads every file (all or nothing), then explores each.
pub fn run_files(args: &CrashArgs) -> ExitCode {
    let mut scenarios = Vec::new();
    for path in &args.files {
        match super::file::load(path) {
            Ok(scenario) => scenarios.push(scenario),
            Err(error) => {
                eprintln!("exit-harness crash: {error}");
                return ExitCode::from(2);
            }
        }
    }
    run_scenarios(&scenarios, args)
}

/// Explores `scenarios` one after another and reports every state through the common reporter.
pub fn run_scenarios(scenarios: &[CrashScenario], args: &CrashArgs) -> ExitCode {
    let options = args.options();
    let mut results: Vec<CellResult> = Vec::new();
    let mut summaries = Vec::new();
    let mut failed = false;
    for scenario in scenarios {
        eprintln!("exploring {} ...", scenario.name);
        let scenario = if args.demand_durable { scenario.clone().durable(true) } else { scenario.clone() };
        match explore(&scenario, &options) {
            Ok(exploration) => {
                failed |= !exploration.passed();
                summaries.push(exploration.summary());
                results.push(exploration.reference);
                results.extend(exploration.states);
            }
            Err(error @ super::ExploreError::NoStrace(_)) => {
                eprintln!("exit-harness crash: {error}");
                return ExitCode::from(2);
            }
            Err(error) => {
                failed = true;
                summaries.push(error.to_string());
            }
        }
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        let _ = writeln!(out, "{}", json::render(&results));
    } else {
        let shown: Vec<CellResult> = results.iter().filter(|r| args.all || !r.passed()).cloned().collect();
        if !shown.is_empty() {
            let _ = writeln!(out, "{}", table::render(&shown));
        }
        // The evidence of the first failing states, as `run` prints it (all of it: --json).
        let failing: Vec<&CellResult> = results.iter().filter(|r| !r.passed()).collect();
        for result in failing.iter().take(EVIDENCE_SHOWN) {
            let _ = writeln!(out, "{}", human::failure_block(result, ""));
        }
        if failing.len() > EVIDENCE_SHOWN {
            let _ = writeln!(
                out,
                "... and {} more failing states (--json has every one)\n",
                failing.len() - EVIDENCE_SHOWN
            );
        }
        for summary in &summaries {
            let _ = writeln!(out, "{summary}");
        }
    }
    if let Some(path) = &args.junit
        && let Err(e) = std::fs::write(path, junit::render(&results))
    {
        eprintln!("could not write the JUnit report {}: {e}", path.display());
        return ExitCode::from(2);
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}
