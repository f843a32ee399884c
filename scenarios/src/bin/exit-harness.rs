//! `exit-harness`: lists and checks the runtime-cache scenario catalog.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    exit_harness::cli::main_with_catalog(&scenarios::catalog::RuntimeCacheCatalog::locate())
}
