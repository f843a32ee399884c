//! The command line of a harness binary, for any [`Catalog`].
//!
//! The harness knows no catalog: a project's own binary calls [`main_with_catalog`] with its
//! catalog. Subcommands: `list [--filter TEXT]`,
//! `check [--filter TEXT] [--jobs N] [--json] [--junit FILE]`, and
//! `run FILE... [--runs N] [--jobs N] [--json] [--junit FILE]` for scenario files (any program;
//! no catalog needed). The exit code is 0 when every
//! checked cell passed, 1 when one failed, 2 on a usage or I/O error.

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use crate::cell::{Catalog, Cell, CellResult};
use crate::report::{Summary, json, junit, table};

/// A harness binary's command line.
#[derive(Debug, Parser)]
#[command(about = "Run scenario cells in real child processes and judge how they ended")]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands. More (`defects`, `fuzz`, `repro`) will join these.
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
    /// Run scenario files (any program, in any language; see `exit_harness::scenario_file`) and
    /// judge them. Exit status: 0 when every run passed, 1 when one failed, 2 when a file is
    /// malformed (named with its line; nothing runs then).
    Run(RunArgs),
    /// Crash at every step: record a scenario's file-system calls with strace, SIGKILL it at
    /// each, build every power-loss state, run the recovery on each and judge it (see
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
    /// Print the JSON report (schema in `exit_harness::report::json`) instead of the table.
    #[arg(long)]
    pub json: bool,
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
                let _ = writeln!(out, "{}\t{}", cell.name, cell.family);
            }
            ExitCode::SUCCESS
        }
        Command::Check(args) => check(catalog, &args),
        Command::Run(args) => run_files(&args),
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
                    cell.name = format!("{} [run {k}/{}]", cell.name, args.runs);
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
    let options = ReportOptions { jobs: args.jobs, json: args.json, junit: args.junit.clone() };
    run_and_report(&cells, &options)
}

/// `check`: runs the selected cells and prints the report.
fn check(catalog: &dyn Catalog, args: &CheckArgs) -> ExitCode {
    let cells = select(catalog.cells(), args.filter.as_deref());
    if cells.is_empty() {
        eprintln!("no cell matches the filter {:?}", args.filter.as_deref().unwrap_or(""));
        return ExitCode::from(2);
    }
    let options = ReportOptions { jobs: args.jobs, json: args.json, junit: args.junit.clone() };
    run_and_report(&cells, &options)
}

/// How `check` and `run` report.
struct ReportOptions {
    jobs: Option<usize>,
    json: bool,
    junit: Option<PathBuf>,
}

/// Runs `cells` in parallel with a progress display, prints the report, writes JUnit if asked;
/// the exit status follows the verdicts.
fn run_and_report(cells: &[Cell], args: &ReportOptions) -> ExitCode {
    let jobs = args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let progress = Progress::new(cells.len());
    let results = run_cells(cells, jobs, |done, result| progress.finished(done, result));
    progress.clear();
    let report = if args.json { json::render(&results) } else { table::render(&results) };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{report}");
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
        Some(text) => cells.into_iter().filter(|c| c.name.contains(text) || c.family.contains(text)).collect(),
        None => cells,
    }
}

/// Runs `cells` on `jobs` worker threads; `on_done(count_done, result)` is called on the calling
/// thread as each finishes. Results come back in the cells' order.
pub fn run_cells(cells: &[Cell], jobs: usize, mut on_done: impl FnMut(usize, &CellResult)) -> Vec<CellResult> {
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
            on_done(done + 1, &result);
            slots[index] = Some(result);
        }
    });
    slots.into_iter().flatten().collect()
}

/// A progress bar on a terminal, plain lines otherwise (both on stderr).
struct Progress {
    bar: Option<ProgressBar>,
    total: usize,
}

impl Progress {
    fn new(total: usize) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total as u64);
            if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} {elapsed} {msg}") {
                bar.set_style(style);
            }
            bar
        });
        Self { bar, total }
    }

    fn finished(&self, done: usize, result: &CellResult) {
        let status = if result.passed() { "pass" } else { "FAIL" };
        match &self.bar {
            Some(bar) => {
                bar.set_message(format!("{status} {}", result.name));
                bar.inc(1);
            }
            None => eprintln!("[{done}/{}] {status} {}", self.total, result.name),
        }
    }

    fn clear(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
