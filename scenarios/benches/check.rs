//! Measures the main job and the harness's per-cell cost (a bench binary: medians, side by side).
//!
//! `cargo bench -p scenarios --bench check`
//!
//! 1. Per-cell overhead: one cell whose child does nothing, run through the harness (runner,
//!    journal, inotify black box, every oracle) against a bare spawn-and-wait of the same child
//!    with the same plan. Interleaved, 60 rounds, medians and their ratio.
//! 2. The full `runtime-cache-scenarios check` (every cell of the catalog, default jobs), 3 runs: median wall
//!    time and cells per second.

use std::process::Command;
use std::time::{Duration, Instant};

use exit_harness::Catalog;
use exit_harness::oracle::{ExitStatus, NoLeakedProcesses, QuietStderr, SaveCount};
use exit_harness::{Cell, ChildSpec};
use scenarios::catalog::{RuntimeCacheCatalog, Sizes, cache_file};
use scenarios::contract::Ending;
use scenarios::plan::{ChildPlan, Family, Holder};

const CHILD: &str = env!("CARGO_BIN_EXE_scenario-child");
const RUNTIME_CACHE_SCENARIOS: &str = env!("CARGO_BIN_EXE_runtime-cache-scenarios");

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; accept and ignore libtest-style arguments.
    let plan = ChildPlan::new(Holder::MainLocal, Ending::Return, Family::Nothing);
    let cell = Cell::new("nothing", "benchmark", ChildSpec::new(CHILD).arg(plan.to_arg()))
        .file(cache_file(&plan.cache))
        .oracle(SaveCount::none())
        .oracle(ExitStatus::success())
        .oracle(QuietStderr::empty())
        .oracle(NoLeakedProcesses);
    let (mut bare, mut harnessed) = (Vec::new(), Vec::new());
    for _ in 0..60 {
        let started = Instant::now();
        let status = Command::new(CHILD).arg(plan.to_arg()).status().expect("spawn the child");
        bare.push(started.elapsed());
        assert!(status.success());
        let started = Instant::now();
        let result = cell.run();
        harnessed.push(started.elapsed());
        assert!(result.passed(), "{:?}", result.failures());
    }
    let (bare, harnessed) = (median(bare), median(harnessed));
    println!(
        "per cell: bare spawn+wait {:.2} ms, harness cell {:.2} ms, ratio {:.2}x, overhead {:.2} ms",
        bare.as_secs_f64() * 1e3,
        harnessed.as_secs_f64() * 1e3,
        harnessed.as_secs_f64() / bare.as_secs_f64(),
        (harnessed.saturating_sub(bare)).as_secs_f64() * 1e3,
    );

    let cells = RuntimeCacheCatalog::new(CHILD, Sizes::default()).cells().len();
    let mut walls = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let output =
            Command::new(RUNTIME_CACHE_SCENARIOS).arg("check").output().expect("run runtime-cache-scenarios check");
        walls.push(started.elapsed());
        assert!(output.status.success(), "check failed:\n{}", String::from_utf8_lossy(&output.stdout));
    }
    let wall = median(walls);
    println!(
        "full check: {cells} cells in {:.2} s (median of 3), {:.1} cells/s",
        wall.as_secs_f64(),
        cells as f64 / wall.as_secs_f64()
    );
}
