//! `runtime-cache-scenarios`: runtime-cache's scenario catalog on the command line. The harness's
//! catalog subcommands (`list`, `check`, `crash`) over runtime-cache's catalog, plus runtime-cache's
//! own (`defects`, `fuzz`, `repro`; see [`scenarios::cli`]). Scenario files of any program are the
//! generic `exit-harness run` (the harness package's binary).
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use scenarios::catalog::RuntimeCacheCatalog;
use scenarios::cli::CacheCommand;

/// Run runtime-cache's scenario catalog in real child processes and judge how each ended.
#[derive(Debug, Parser)]
#[command(name = "runtime-cache-scenarios")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The harness's catalog subcommands.
    #[command(flatten)]
    Harness(exit_harness::cli::Command),
    /// runtime-cache's subcommands.
    #[command(flatten)]
    Cache(CacheCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Harness(exit_harness::cli::Command::Crash(args)) = &cli.command
        && !args.files.is_empty()
    {
        // Scenario files need no catalog.
        let code = exit_harness::crash::cli::run_files(args);
        exit_harness::finish_cleanup();
        return code;
    }
    let catalog = RuntimeCacheCatalog::locate();
    if !catalog.child().is_file() {
        eprintln!(
            "runtime-cache-scenarios: the child program {} is missing; build both programs with `cargo build -p scenarios`",
            catalog.child().display()
        );
        return ExitCode::from(2);
    }
    let code = match cli.command {
        Command::Harness(exit_harness::cli::Command::Crash(args)) => {
            // runtime-cache's save at each durability level (FAILPOINTS in the environment
            // reaches every child: a defect's recipe there shows it caught).
            let scenarios = scenarios::crash::scenarios(catalog.child(), args.filter.as_deref());
            exit_harness::crash::cli::run_scenarios(&scenarios, &args)
        }
        Command::Harness(command) => exit_harness::cli::run(&catalog, command),
        Command::Cache(command) => scenarios::cli::run(&catalog, command),
    };
    // Run folders are removed in the background; let that finish before the process ends.
    exit_harness::finish_cleanup();
    code
}
