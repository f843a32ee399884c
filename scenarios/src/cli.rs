//! runtime-cache's subcommands of the `runtime-cache-scenarios` binary: `defects` (the defect
//! hunt), `fuzz` (churn fuzzing against the model) and `repro` (replaying reproducers). The
//! catalog subcommands (`list`, `check`, `crash`) are the harness's own ([`exit_harness::cli`]);
//! the binary flattens both into one command line.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use exit_harness::report::human;

use crate::catalog::{RuntimeCacheCatalog, Sizes};
use crate::defect_hunt::DefectHunt;
use crate::fuzz::reproducer::Reproducer;
use crate::fuzz::{self, Executor, FuzzConfig};

/// runtime-cache's own subcommands, next to the harness's generic `list`, `check` and `run`.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Run the catalog against the correct cache and each defect; fail unless the correct cache
    /// passes every cell and every defect is caught.
    Defects {
        /// Print JSON instead of the table.
        #[arg(long)]
        json: bool,
        /// Worker threads (default: the available parallelism).
        #[arg(long, short)]
        jobs: Option<usize>,
    },
    /// Churn-fuzz runtime-cache against its reference model, each case in a real child process;
    /// on a failure, shrink it and write a minimal reproducer.
    Fuzz {
        /// Cases to generate.
        #[arg(long, default_value_t = 1000)]
        cases: u64,
        /// The seed (default: a fresh one, printed).
        #[arg(long)]
        seed: Option<u64>,
        /// Parallel jobs, each with its own fork server (default: the available parallelism).
        #[arg(long, short)]
        jobs: Option<usize>,
        /// Where to write the reproducer of a failure.
        #[arg(long, default_value = "fuzz-out")]
        out: PathBuf,
        /// Run against this defect of the defect zoo (e.g. fork-unaware), to see it found.
        #[arg(long, value_parser = parse_defect)]
        defect: Option<crate::defects::Defect>,
        /// Spawn a fresh child per case instead of forking from the fork server.
        #[arg(long)]
        spawn: bool,
        /// Most operations per generated case (6: a mean of 3.5, as many as the earlier
        /// generator kept of its 12 draws).
        #[arg(long, default_value_t = 6)]
        max_ops: usize,
    },
    /// Replay reproducer files and print each verdict with its evidence; the exit status is 0
    /// when every one passes, 1 when one fails, 2 when a file is malformed.
    Repro {
        /// Reproducer files (TOML).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Replay against this defect of the defect zoo.
        #[arg(long, value_parser = parse_defect)]
        defect: Option<crate::defects::Defect>,
    },
}

/// Runs one of runtime-cache's subcommands against `catalog`.
pub fn run(catalog: &RuntimeCacheCatalog, command: CacheCommand) -> ExitCode {
    match command {
        CacheCommand::Defects { json, jobs } => {
            let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
            let on_terminal = std::io::stderr().is_terminal();
            let hunt = DefectHunt::run(catalog.child(), Sizes::defect_hunt(), jobs, |done, total| {
                if on_terminal {
                    eprint!("\r{done}/{total} cells");
                } else if done % 100 == 0 || done == total {
                    eprintln!("{done}/{total} cells");
                }
            });
            if on_terminal {
                eprintln!();
            }
            println!("{}", if json { hunt.json() } else { hunt.table() });
            if hunt.passed() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        CacheCommand::Fuzz { cases, seed, jobs, out, defect, spawn, max_ops } => {
            let config = FuzzConfig {
                child: catalog.child().to_owned(),
                cases,
                seed: seed.unwrap_or_else(fresh_seed),
                jobs: jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from)),
                out,
                defect,
                executor: if spawn { Executor::Spawn } else { Executor::ForkServer },
                max_ops,
            };
            fuzz_command(&config)
        }
        CacheCommand::Repro { files, defect } => repro_command(catalog.child(), &files, defect),
    }
}

fn parse_defect(name: &str) -> Result<crate::defects::Defect, String> {
    crate::defects::Defect::from_name(name).ok_or_else(|| {
        let known: Vec<&str> = crate::defects::Defect::ALL.iter().map(|d| d.name()).collect();
        format!("unknown defect (one of {})", known.join(", "))
    })
}

/// A seed from the clock and the process id, through std's randomly keyed hasher.
fn fresh_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher
        .write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    hasher.write_u32(std::process::id());
    hasher.finish() % 1_000_000_000
}

fn fuzz_command(config: &FuzzConfig) -> ExitCode {
    let executor = match config.executor {
        Executor::ForkServer => "fork server",
        Executor::Spawn => "spawn",
    };
    let against = config.defect.map_or("runtime-cache".to_string(), |d| format!("defect {}", d.name()));
    eprintln!(
        "fuzz: seed {}, {} cases, {} job(s), {executor}, against {against}",
        config.seed, config.cases, config.jobs
    );
    let bar = indicatif::ProgressBar::new(config.cases);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} cases, {per_sec} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let cases = config.cases;
    let progress = |runs: u64| {
        bar.set_position(runs.min(cases));
        if runs > cases {
            bar.set_message("(shrinking)");
        }
    };
    let report = fuzz::fuzz(config, &progress);
    bar.finish_and_clear();
    let report = match report {
        Ok(report) => report,
        Err(error) => {
            eprintln!("fuzz: {error}");
            return ExitCode::from(2);
        }
    };
    let summary = format!(
        "{} cases, {} runs in {:.1} s ({:.0} runs/s), seed {}",
        report.cases,
        report.runs,
        report.elapsed.as_secs_f64(),
        report.rate(),
        config.seed
    );
    match &report.finding {
        None => {
            println!("fuzz: pass: {summary}");
            ExitCode::SUCCESS
        }
        Some(finding) => {
            println!("fuzz: FAILED: {summary}");
            println!(
                "minimal case ({} ops, shrunk from {} generated):\n{}",
                finding.reproducer.case.ops.len(),
                finding.original_ops,
                finding.reproducer.case
            );
            print!("{}", human::failure_block(&finding.result, &finding.command()));
            println!("reproducer: {}", finding.reproducer.path.display());
            println!("replay it (paste into the issue):\n  {}", finding.command());
            ExitCode::FAILURE
        }
    }
}

fn repro_command(child: &std::path::Path, files: &[PathBuf], defect: Option<crate::defects::Defect>) -> ExitCode {
    let mut results = Vec::new();
    let mut malformed = false;
    for path in files {
        match Reproducer::load(path) {
            Ok(reproducer) => {
                let mut result = fuzz::replay(child, &reproducer, defect);
                if let Some(defect) = defect {
                    result.name = format!("{} [defect {}]", result.name, defect.name());
                }
                println!("{}", human::status_line(&result));
                results.push((reproducer, result));
            }
            Err(error) => {
                eprintln!("runtime-cache-scenarios repro: {error}");
                malformed = true;
            }
        }
    }
    for (reproducer, result) in results.iter().filter(|(_, result)| !result.passed()) {
        let against = defect.map_or(String::new(), |d| format!("--defect {} ", d.name()));
        println!("\n{}", reproducer.title);
        if let Some(issue) = &reproducer.issue {
            println!("  issue: {issue}");
        }
        println!("  case:\n  {}", reproducer.case.to_string().replace('\n', "\n  "));
        let rerun = format!("runtime-cache-scenarios repro {against}{}", reproducer.path.display());
        print!("{}", human::failure_block(result, &rerun));
    }
    let only: Vec<_> = results.iter().map(|(_, result)| result.clone()).collect();
    let summary = exit_harness::report::Summary::of(&only);
    println!("\n{} passed, {} failed", summary.passed, summary.failed);
    match (malformed, summary.failed) {
        (true, _) => ExitCode::from(2),
        (false, 0) => ExitCode::SUCCESS,
        (false, _) => ExitCode::FAILURE,
    }
}
