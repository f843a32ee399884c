//! The command lines of harness binaries.
//!
//! - Scenario files, any program, no catalog: the `exit-harness` binary of this package
//!   ([`main_for_files`]): `run FILE... [--runs N] [--jobs N] [--json] [--junit FILE]` and
//!   `crash FILE...` ([`FileCommand`]).
//! - A project's catalog of cells: the harness knows none, so a project's own binary calls
//!   [`main_with_catalog`] with its catalog (runtime-cache's is `runtime-cache-scenarios`):
//!   `list [--filter TEXT]`, `check [--filter TEXT] [--jobs N] [--json] [--matrix] [--junit FILE]`
//!   and `crash` ([`Command`]).
//!
//! The exit code is 0 when every run passed, 1 when one failed, 2 on a usage or I/O error.

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use crate::cell::{Catalog, Cell, CellResult};
use crate::report::{Reporter, RunEvent, Summary, human, json, junit, table};

/// A catalog binary's command line.
#[derive(Debug, Parser)]
#[command(about = "Run scenario cells in real child processes and judge how they ended")]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The `exit-harness` binary's command line: scenario files, any program.
#[derive(Debug, Parser)]
#[command(
    name = "exit-harness",
    about = "Run programs (any language) as their scenario files say, let them end, and judge how they ended"
)]
pub struct FileCli {
    /// What to do.
    #[command(subcommand)]
    pub command: FileCommand,
}

/// The subcommands over scenario files.
#[derive(Debug, Subcommand)]
pub enum FileCommand {
    /// Run scenario files (see `exit_harness::scenario_file`) and judge them. Exit status: 0 when
    /// every run passed, 1 when one failed, 2 when a file is malformed (named with its line;
    /// nothing runs then).
    Run(RunArgs),
    /// Crash at every step: record a scenario's file-system calls with strace, SIGKILL it at
    /// each, build every power-loss state, run the recovery on each and judge it (see
    /// `exit_harness::crash`).
    Crash(crate::crash::cli::CrashArgs),
}

/// The `exit-harness` binary: parses the process's arguments and runs scenario files.
pub fn main_for_files() -> ExitCode {
    let cli = match FileCli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let code = match cli.command {
        FileCommand::Run(args) => run_files(&args),
        FileCommand::Crash(args) if args.files.is_empty() => {
            eprintln!("exit-harness crash: name one or more scenario files");
            ExitCode::from(2)
        }
        FileCommand::Crash(args) => crate::crash::cli::run_files(&args),
    };
    crate::finish_cleanup();
    code
}

/// A catalog binary's generic subcommands. A project's binary may add its own beside them
/// (flatten this enum into its own `Subcommand` enum, as `runtime-cache-scenarios` does for
/// runtime-cache's `defects`, `fuzz` and `repro`).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the catalog's cells.
    List {
        /// Only cells whose name or family contains this text.
        #[arg(long)]
        filter: Option<String>,
    },
    /// Run cells and judge them.
    Check(CheckArgs),
    /// Crash at every step: the catalog's crash scenarios (or scenario files), each save
    /// killed at every recorded step and cut by every power-loss state (see
    /// `exit_harness::crash`).
    Crash(crate::crash::cli::CrashArgs),
}

/// Options of `run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Scenario files (TOML).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Run each file this many times (exit races are flaky by nature): every failing run is
    /// reported with its own evidence.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,
    /// Worker threads (default: the available parallelism).
    #[arg(long, short)]
    pub jobs: Option<usize>,
    /// Print the JSON report instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Also write a JUnit XML report to this file.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

/// Options of `check`.
#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// Only cells whose name or family contains this text.
    #[arg(long)]
    pub filter: Option<String>,
    /// Worker threads (default: the available parallelism).
    #[arg(long, short)]
    pub jobs: Option<usize>,
    /// Print the JSON report (schema in `exit_harness::report::json`) instead of the summary.
    #[arg(long)]
    pub json: bool,
    /// Also print the oracle matrix: per family, one column per oracle it uses.
    #[arg(long)]
    pub matrix: bool,
    /// Also write a JUnit XML report to this file.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

/// Parses the process's arguments and runs the command against `catalog`.
pub fn main_with_catalog(catalog: &dyn Catalog) -> ExitCode {
    main_with_args(catalog, std::env::args_os())
}

/// Like [`main_with_catalog`], with explicit arguments (the first is the program name).
pub fn main_with_args<I, T>(catalog: &dyn Catalog, args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    run(catalog, cli.command)
}

/// Runs one parsed subcommand over `catalog`: for binaries that add subcommands of their own
/// (flatten [`Command`] into their own `Subcommand` enum and hand its variants here).
pub fn run(catalog: &dyn Catalog, command: Command) -> ExitCode {
    let code = run_command(catalog, command);
    crate::finish_cleanup();
    code
}

fn run_command(catalog: &dyn Catalog, command: Command) -> ExitCode {
    match command {
        Command::List { filter } => {
            let mut out = std::io::stdout().lock();
            for cell in select(catalog.cells(), filter.as_deref()) {
                let _ = writeln!(out, "{}\t{}", cell.scenario.name, cell.scenario.family);
            }
            ExitCode::SUCCESS
        }
        Command::Check(args) => check(catalog, &args),
        Command::Crash(args) => crate::crash::cli::run(catalog, &args),
    }
}

/// `run`: loads every scenario file (all or nothing), then runs and judges them.
pub fn run_files(args: &RunArgs) -> ExitCode {
    let mut cells = Vec::new();
    let mut malformed = false;
    for path in &args.files {
        // Each run gets its own cell (oracles are not shared); the file is parsed once per run.
        for k in 1..=args.runs {
            match crate::scenario_file::load(path) {
                Ok(mut cell) if args.runs > 1 => {
                    cell.scenario.name = format!("{} [run {k}/{}]", cell.scenario.name, args.runs);
                    cells.push(cell);
                }
                Ok(cell) => cells.push(cell),
                Err(error) => {
                    eprintln!("exit-harness run: {error}");
                    malformed = true;
                    break;
                }
            }
        }
    }
    if malformed {
        return ExitCode::from(2);
    }
    let options = ReportOptions {
        jobs: args.jobs,
        json: args.json,
        junit: args.junit.clone(),
        matrix: false,
        rerun: Box::new(|result: &CellResult| format!("{} run {}", program_name(), result.family)),
    };
    run_and_report(&cells, &options)
}

/// `check`: runs the selected cells and prints the report.
fn check(catalog: &dyn Catalog, args: &CheckArgs) -> ExitCode {
    let cells = select(catalog.cells(), args.filter.as_deref());
    if cells.is_empty() {
        eprintln!("no cell matches the filter {:?}", args.filter.as_deref().unwrap_or(""));
        return ExitCode::from(2);
    }
    let options = ReportOptions {
        jobs: args.jobs,
        json: args.json,
        junit: args.junit.clone(),
        matrix: args.matrix,
        rerun: Box::new(|result: &CellResult| format!("{} check --filter '{}'", program_name(), result.name)),
    };
    run_and_report(&cells, &options)
}

/// The name this program was started as, for rerun commands.
fn program_name() -> String {
    std::env::args_os()
        .next()
        .and_then(|arg0| std::path::Path::new(&arg0).file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "exit-harness".into())
}

/// How `check` and `run` report.
struct ReportOptions {
    jobs: Option<usize>,
    json: bool,
    junit: Option<PathBuf>,
    matrix: bool,
    rerun: Box<Rerun>,
}

/// Runs `cells` in parallel with a progress display, prints the report, writes JUnit if asked;
/// the exit status follows the verdicts.
fn run_and_report(cells: &[Cell], args: &ReportOptions) -> ExitCode {
    let jobs = args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let mut human = HumanReporter::new(args.json, args.matrix, &args.rerun);
    let results = run_cells(cells, jobs, &mut human);
    if args.json {
        let _ = writeln!(std::io::stdout().lock(), "{}", json::render(&results));
    }
    if let Some(path) = &args.junit
        && let Err(e) = std::fs::write(path, junit::render(&results))
    {
        eprintln!("could not write the JUnit report {}: {e}", path.display());
        return ExitCode::from(2);
    }
    if Summary::of(&results).failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// The cells whose name or family contains `filter`.
pub fn select(cells: Vec<Cell>, filter: Option<&str>) -> Vec<Cell> {
    match filter {
        Some(text) => {
            cells.into_iter().filter(|c| c.scenario.name.contains(text) || c.scenario.family.contains(text)).collect()
        }
        None => cells,
    }
}

/// Runs `cells` on `jobs` worker threads, telling `reporter` every [`RunEvent`] on the calling
/// thread. Results come back in the cells' order.
pub fn run_cells(cells: &[Cell], jobs: usize, reporter: &mut dyn Reporter) -> Vec<CellResult> {
    reporter.event(&RunEvent::Started { cells: cells.len() });
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel();
    let mut slots: Vec<Option<CellResult>> = (0..cells.len()).map(|_| None).collect();
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, cells.len().max(1)) {
            let tx = tx.clone();
            let next = &next;
            scope.spawn(move || {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(cell) = cells.get(index) else { return };
                    if tx.send((index, cell.run())).is_err() {
                        return;
                    }
                }
            });
        }
        drop(tx);
        for (done, (index, result)) in rx.into_iter().enumerate() {
            reporter.event(&RunEvent::Finished { done: done + 1, total: cells.len(), result: &result });
            slots[index] = Some(result);
        }
    });
    let results: Vec<CellResult> = slots.into_iter().flatten().collect();
    reporter.event(&RunEvent::Done { results: &results });
    results
}

/// How a cell is rerun alone, for the failure blocks.
pub type Rerun = dyn Fn(&CellResult) -> String;

/// The human reporter: status lines as cells finish (on stdout; on stderr when stdout carries
/// JSON), a progress bar on a terminal, then the matrix if asked and the failure blocks.
struct HumanReporter<'a> {
    bar: Option<ProgressBar>,
    json: bool,
    matrix: bool,
    rerun: &'a Rerun,
}

impl<'a> HumanReporter<'a> {
    fn new(json: bool, matrix: bool, rerun: &'a Rerun) -> Self {
        Self { bar: None, json, matrix, rerun }
    }

    fn line(&self, line: &str) {
        let print = || match self.json {
            true => eprintln!("{line}"),
            false => println!("{line}"),
        };
        match &self.bar {
            Some(bar) => bar.suspend(print),
            None => print(),
        }
    }
}

impl Reporter for HumanReporter<'_> {
    fn event(&mut self, event: &RunEvent<'_>) {
        match event {
            RunEvent::Started { cells } => {
                self.bar = std::io::stderr().is_terminal().then(|| {
                    let bar = ProgressBar::new(*cells as u64);
                    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} {elapsed} {msg}") {
                        bar.set_style(style);
                    }
                    bar
                });
            }
            RunEvent::Finished { result, .. } => {
                self.line(&human::status_line(result));
                if let Some(bar) = &self.bar {
                    bar.inc(1);
                }
            }
            RunEvent::Done { results } => {
                if let Some(bar) = self.bar.take() {
                    bar.finish_and_clear();
                }
                if self.json {
                    return;
                }
                let mut out = std::io::stdout().lock();
                if self.matrix {
                    let _ = write!(out, "\n{}", table::render(results));
                }
                let _ = write!(out, "{}", human::summary(results, self.rerun));
            }
        }
    }
}
