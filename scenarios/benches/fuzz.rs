//! Fuzz throughput: cases per second through the fork server against spawning a fresh child per
//! case (a bench binary: medians of 3 runs each, side by side). Target: 500 cases/s with the fork
//! server on a 2-core machine.
//!
//! `cargo bench -p scenarios --bench fuzz`
//!
//! Each run fuzzes runtime-cache (which passes) from a fixed seed, so every run executes the same
//! cases: real child processes, real files, real forks, each judged against the model.

use std::path::PathBuf;

use scenarios::fuzz::{self, Executor, FuzzConfig};

const CHILD: &str = env!("CARGO_BIN_EXE_scenario-child");

fn median_rate(executor: Executor, jobs: usize, cases: u64) -> (f64, Vec<f64>) {
    let out = tempfile::tempdir().expect("tempdir");
    let mut rates: Vec<f64> = (0..3)
        .map(|_| {
            let config = FuzzConfig {
                child: PathBuf::from(CHILD),
                cases,
                seed: 20_260_625,
                jobs,
                out: out.path().to_owned(),
                defect: None,
                executor,
                max_ops: 12,
            };
            let report = fuzz::fuzz(&config, &|_| {}).expect("fuzz");
            assert!(report.finding.is_none(), "runtime-cache failed a case: {:?}", report.finding);
            report.rate()
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    (rates[1], rates)
}

fn main() {
    // `cargo bench` passes `--bench`; accept and ignore libtest-style arguments.
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    println!("fuzz throughput on {cores} core(s), median of 3 runs (cases/s):");
    for (name, executor, jobs, cases) in [
        ("fork server, 2 jobs", Executor::ForkServer, 2, 5_000),
        ("fork server, 1 job ", Executor::ForkServer, 1, 3_000),
        ("spawn,       2 jobs", Executor::Spawn, 2, 500),
    ] {
        let (median, rates) = median_rate(executor, jobs, cases);
        let runs: Vec<String> = rates.iter().map(|rate| format!("{rate:.0}")).collect();
        println!("  {name}: {median:>6.0} cases/s  (runs: {}, {cases} cases each)", runs.join(", "));
    }
}
