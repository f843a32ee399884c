//! `exit-harness`: runs any program, in any language, as its scenario file says, lets it end, and
//! judges how it ended (`run`), or crashes it at every step of its save (`crash`). See
//! [`exit_harness::cli`] and [`exit_harness::scenario_file`].
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    exit_harness::cli::main_for_files()
}
