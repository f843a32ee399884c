//! `exit-harness`: lists and checks the runtime-cache scenario catalog.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use scenarios::catalog::RuntimeCacheCatalog;

fn main() -> ExitCode {
    let catalog = RuntimeCacheCatalog::locate();
    if !catalog.child().is_file() {
        eprintln!(
            "exit-harness: the child program {} is missing; build both programs with `cargo build -p scenarios`",
            catalog.child().display()
        );
        return ExitCode::from(2);
    }
    exit_harness::cli::main_with_catalog(&catalog)
}
