//! `exit-harness`: lists and checks the runtime-cache scenario catalog, and hunts the defect zoo.
#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use scenarios::catalog::{RuntimeCacheCatalog, Sizes};
use scenarios::defects::DefectHunt;

/// Run runtime-cache's scenario catalog in real child processes and judge how each ended.
#[derive(Debug, Parser)]
#[command(name = "exit-harness")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    #[command(flatten)]
    Harness(exit_harness::cli::Command),
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let catalog = RuntimeCacheCatalog::locate();
    if !catalog.child().is_file() {
        eprintln!(
            "exit-harness: the child program {} is missing; build both programs with `cargo build -p scenarios`",
            catalog.child().display()
        );
        return ExitCode::from(2);
    }
    match cli.command {
        Command::Harness(command) => exit_harness::cli::run(&catalog, command),
        Command::Defects { json, jobs } => {
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
    }
}
