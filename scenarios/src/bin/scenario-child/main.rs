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

// Dependencies point one way: `families` and `fuzz_case` use `engines`, `holders` and `sys`;
// those use at most `ending`, the bottom of the import order, which uses no other module here.
mod ending;
mod engines;
mod families;
mod fuzz_case;
mod holders;
#[allow(unsafe_code)]
mod sys;

use std::process::ExitCode;

use scenarios::plan::ChildPlan;
use scenarios::wiring;

fn main() -> ExitCode {
    sys::default_termination_signals();
    let mut args = std::env::args().skip(1);
    let Some(plan_arg) = args.next() else {
        ending::give_up("usage: scenario-child PLAN_JSON [--worker N]");
    };
    if let Some(code) = fuzz_case::dispatch(&plan_arg, args.by_ref()) {
        return code;
    }
    let plan = ChildPlan::from_arg(&plan_arg).unwrap_or_else(|error| ending::give_up(&format!("bad plan: {error}")));
    let worker = match (args.next().as_deref(), args.next()) {
        (Some("--worker"), Some(index)) => index.parse::<u32>().ok(),
        _ => None,
    };
    // FAILPOINTS from the environment configures runtime-cache's failpoints for this process:
    // failures a cell injects, and the seams of a defect's recipe (scenarios/src/defects.rs).
    // The scenario stays configured until the process ends (exit-time saves included).
    std::mem::forget(fail::FailScenario::setup());
    wiring::wire_observer();
    wiring::wire_log();
    match worker {
        Some(index) => families::worker(&plan, index),
        None => families::run(&plan),
    }
}
