//! The child program the harness spawns for every scenario cell.
//!
//! It reads a [`ChildPlan`] (one JSON argument), wires runtime-cache's observer to the harness
//! journal, builds engines with engine-implicit caches, compiles kernels (synthetic compiler, so
//! every cell runs on any machine), places the engine where the plan's holder says, performs the
//! family's events, and ends the process the way the plan's ending says. Families that need more
//! than one process (concurrent, drop-exit race, crash mid-save, lock held) run this same program
//! again as workers: `scenario-child PLAN --worker N`. The fuzzer runs it as `scenario-child
//! fuzz-case CASE_JSON` or as a fork server, `scenario-child serve` (see `fuzz_case`).
#![deny(unsafe_code)]

mod families;
mod fuzz_case;
mod holders;
#[allow(unsafe_code)]
mod sys;

use std::process::ExitCode;

use scenarios::plan::{ChildPlan, Ending};
use scenarios::wiring;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(plan_arg) = args.next() else {
        eprintln!("usage: scenario-child PLAN_JSON [--worker N]");
        return ExitCode::from(2);
    };
    if let Some(code) = fuzz_case::dispatch(&plan_arg, args.by_ref()) {
        return code;
    }
    let plan = match ChildPlan::from_arg(&plan_arg) {
        Ok(plan) => plan,
        Err(error) => {
            eprintln!("scenario-child: bad plan: {error}");
            return ExitCode::from(2);
        }
    };
    let worker = match (args.next().as_deref(), args.next()) {
        (Some("--worker"), Some(index)) => index.parse::<u32>().ok(),
        _ => None,
    };
    // FAILPOINTS from the environment configures runtime-cache's failpoints for this process.
    // The scenario stays configured until the process ends (exit-time saves included).
    std::mem::forget(fail::FailScenario::setup());
    wiring::wire_observer();
    match worker {
        Some(index) => families::worker(&plan, index),
        None => families::run(&plan),
    }
}

/// Ends the process as `ending` says. `ReturnFromMain` returns the exit code for `main` to return;
/// every other ending does not return.
pub fn end(ending: Ending) -> ExitCode {
    wiring::marker("ending");
    match ending {
        Ending::ReturnFromMain => ExitCode::SUCCESS,
        Ending::Exit(code) => std::process::exit(code),
        Ending::Panic => panic!("scenario-child: panicking out of main as planned"),
        Ending::SigTerm { .. } => die_by(signal_hook::consts::SIGTERM),
        Ending::SigInt { .. } => die_by(signal_hook::consts::SIGINT),
        Ending::Abort => std::process::abort(),
        Ending::SigKill => die_by(signal_hook::consts::SIGKILL),
    }
}

/// Raises `signal` and waits to die by it (with the termination handler, the handler's thread
/// saves first, then re-raises).
fn die_by(signal: i32) -> ! {
    let _ = signal_hook::low_level::raise(signal);
    loop {
        std::thread::park();
    }
}
