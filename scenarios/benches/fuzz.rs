//! Fuzz throughput, side by side in one run (a bench binary: medians of 3 runs each):
//!
//! - the floor: `fork()` + `_exit(0)` + `waitpid` of a do-nothing child, per second, on one
//!   thread and on two (what no fuzzer that forks a process per case can beat);
//! - `fuzz::fuzz` in this process: the fork server on 2 jobs and on 1, and spawning a fresh
//!   child per case on 2 jobs;
//! - the `runtime-cache-scenarios fuzz --jobs 2` command line as a user runs it: this bench's (release)
//!   build, and the debug build next to it (`target/debug/runtime-cache-scenarios`, the README's, with
//!   seeds 1 and 20260625, 5 000 cases each) when there is one; then the floor again.
//!
//! `cargo bench -p scenarios --bench fuzz`
//!
//! `cargo bench -p scenarios --bench fuzz -- faults` instead measures what two kinds of page
//! fault cost a forked child: read faults of a file mapping, as a program's code takes them, and
//! copy-on-write faults of the parent's heap. Most of a case's time is the kernel's, and these
//! are two of the kernel's costs per case besides the fork itself (zero-filled fresh pages and
//! system calls are others).
//!
//! Each run fuzzes runtime-cache (which passes) from a fixed seed, so every run executes the same
//! cases: real child processes, real files, real forks, each judged by the model's oracles.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use scenarios::fuzz::{self, Executor, FuzzConfig};

const CHILD: &str = env!("CARGO_BIN_EXE_scenario-child");
const RUNTIME_CACHE_SCENARIOS: &str = env!("CARGO_BIN_EXE_runtime-cache-scenarios");
const SEED: u64 = 20_260_625;

fn median(mut rates: Vec<f64>) -> (f64, Vec<f64>) {
    rates.sort_by(f64::total_cmp);
    (rates[rates.len() / 2], rates)
}

/// Forks, exits and reaps `n` do-nothing children on each of `threads` threads: children per
/// second, all threads together.
fn floor_rate(threads: usize, n: usize) -> f64 {
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                for _ in 0..n {
                    // SAFETY: the child calls only `_exit`, which is async-signal-safe; the parent
                    // reaps it with a live status variable.
                    unsafe {
                        let pid = libc::fork();
                        if pid == 0 {
                            libc::_exit(0);
                        }
                        assert!(pid > 0, "fork failed");
                        let mut status = 0;
                        libc::waitpid(pid, &mut status, 0);
                    }
                }
            });
        }
    });
    (threads * n) as f64 / started.elapsed().as_secs_f64()
}

/// Where a forked child takes its page faults, for [`faulting_child`].
#[derive(Clone, Copy)]
enum Pages {
    /// Reads of this bench's own executable, mapped read-only as a program's code is (every
    /// page resident in the page cache, so each fault is a minor one).
    File,
    /// Writes to a heap the parent filled before forking: copy-on-write.
    Heap,
}

/// `fork` + `_exit` + wait of `n` children, each of which first touches `touches` pages of
/// `pages`, one per 64 KiB window (the kernel maps up to 16 pages of a file around a fault). The
/// mapping is there whether or not a child touches it, so that `touches: 0` is the same fork.
/// Returns microseconds per child and the minor faults a child took (`ru_minflt`, averaged).
fn faulting_child(pages: Pages, touches: usize, n: usize) -> (f64, f64) {
    const WINDOW: usize = 64 * 1024;
    const WINDOWS: usize = 100;
    assert!(touches <= WINDOWS);
    let exe = std::fs::File::open(std::env::current_exe().expect("current_exe")).expect("open own executable");
    let file_len = usize::try_from(exe.metadata().expect("stat").len()).expect("size");
    let (len, prot, flags, fd) = match pages {
        Pages::File => {
            assert!(file_len >= WINDOWS * WINDOW, "the executable is too small");
            (file_len, libc::PROT_READ, libc::MAP_PRIVATE, std::os::fd::AsRawFd::as_raw_fd(&exe))
        }
        Pages::Heap => {
            (WINDOWS * WINDOW, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1)
        }
    };
    // SAFETY: a fresh private mapping of `len` bytes (of a file this function keeps open, or
    // anonymous); unmapped below and used only within its bounds.
    let base = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, fd, 0) };
    assert_ne!(base, libc::MAP_FAILED, "mmap");
    let base = base.cast::<u8>();
    // SAFETY: advice on the mapping just made: 4 KiB pages only, so each write copies one page.
    unsafe { libc::madvise(base.cast(), len, libc::MADV_NOHUGEPAGE) };
    for offset in (0..len).step_by(4096) {
        // SAFETY: every offset is inside the mapping. Reading the file makes each of its pages
        // resident; writing the heap gives the parent its own pages, shared with a child by fork.
        unsafe {
            match pages {
                Pages::File => drop(std::hint::black_box(base.add(offset).read_volatile())),
                Pages::Heap => base.add(offset).write_volatile(1),
            }
        }
    }
    let (mut faults, started) = (0i64, Instant::now());
    for _ in 0..n {
        // SAFETY: the single-threaded child only reads or writes the mapping within its bounds
        // (no allocation, no lock), then calls `_exit`; the parent reaps it with live out-values.
        unsafe {
            let pid = libc::fork();
            if pid == 0 {
                for window in 0..touches {
                    match pages {
                        Pages::File => drop(std::hint::black_box(base.add(window * WINDOW).read_volatile())),
                        Pages::Heap => base.add(window * WINDOW).write_volatile(2),
                    }
                }
                libc::_exit(0);
            }
            assert!(pid > 0, "fork failed");
            let (mut status, mut usage) = (0, std::mem::zeroed::<libc::rusage>());
            assert_eq!(libc::wait4(pid, &mut status, 0, &mut usage), pid, "wait4");
            faults += usage.ru_minflt;
        }
    }
    let micros = started.elapsed().as_secs_f64() * 1e6 / n as f64;
    // SAFETY: the mapping made above, no longer used.
    unsafe { libc::munmap(base.cast(), len) };
    (micros, faults as f64 / n as f64)
}

fn library_rate(executor: Executor, jobs: usize, cases: u64) -> f64 {
    let out = tempfile::tempdir().expect("tempdir");
    let config = FuzzConfig {
        child: PathBuf::from(CHILD),
        cases,
        seed: SEED,
        jobs,
        out: out.path().to_owned(),
        defect: None,
        executor,
        max_ops: 6,
    };
    let report = fuzz::fuzz(&config, &|_| {}).expect("fuzz");
    assert!(report.finding.is_none(), "runtime-cache failed a case: {:?}", report.finding.map(|f| f.result));
    report.rate()
}

/// `runtime-cache-scenarios fuzz --jobs 2 --seed SEED`, as a user runs it: the rate it prints.
fn cli_rate(program: &Path, seed: u64, cases: u64) -> f64 {
    let out = tempfile::tempdir().expect("tempdir");
    let output = Command::new(program)
        .args(["fuzz", "--jobs", "2", "--seed", &seed.to_string(), "--cases", &cases.to_string(), "--out"])
        .arg(out.path())
        .output()
        .expect("run runtime-cache-scenarios fuzz");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{} fuzz failed:\n{stdout}", program.display());
    // `fuzz: pass: N cases, N runs in S s (R runs/s), seed S`
    stdout
        .split('(')
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|rate| rate.parse().ok())
        .unwrap_or_else(|| panic!("no rate in {stdout:?}"))
}

fn row(name: &str, rates: Vec<f64>) {
    let (median, rates) = median(rates);
    let runs: Vec<String> = rates.iter().map(|rate| format!("{rate:.0}")).collect();
    println!("  {name:<34} {median:>6.0} /s  (runs: {})", runs.join(", "));
}

fn main() {
    // `cargo bench` passes `--bench`; accept and ignore libtest-style arguments, except `faults`.
    if std::env::args().any(|arg| arg == "faults") {
        return fault_costs();
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    println!("fuzz throughput on {cores} core(s), median of 3 runs:");
    row("floor: fork+_exit+wait, 1 thread", (0..3).map(|_| floor_rate(1, 5_000)).collect());
    row("floor: fork+_exit+wait, 2 threads", (0..3).map(|_| floor_rate(2, 5_000)).collect());
    for (name, executor, jobs, cases) in [
        ("fuzz::fuzz, fork server, 2 jobs", Executor::ForkServer, 2, 5_000),
        ("fuzz::fuzz, fork server, 1 job", Executor::ForkServer, 1, 3_000),
        ("fuzz::fuzz, spawn, 2 jobs", Executor::Spawn, 2, 500),
    ] {
        row(name, (0..3).map(|_| library_rate(executor, jobs, cases)).collect());
    }
    row(
        "CLI runtime-cache-scenarios fuzz -j2 (release)",
        (0..3).map(|_| cli_rate(Path::new(RUNTIME_CACHE_SCENARIOS), SEED, 5_000)).collect(),
    );
    // target/release/runtime-cache-scenarios -> target/debug/runtime-cache-scenarios: the README's debug build, if built.
    let debug = Path::new(RUNTIME_CACHE_SCENARIOS)
        .parent()
        .and_then(Path::parent)
        .map(|target| target.join("debug/runtime-cache-scenarios"));
    if let Some(debug) = debug.filter(|path| path.is_file()) {
        for seed in [1, SEED] {
            let name = format!("CLI runtime-cache-scenarios fuzz -j2 (debug), seed {seed}");
            row(&name, (0..3).map(|_| cli_rate(&debug, seed, 5_000)).collect());
        }
    }
    // The floor again, last: the machine's load may have changed while the rows above ran.
    row("floor: fork+_exit+wait, 2 threads", (0..3).map(|_| floor_rate(2, 5_000)).collect());
}

/// `cargo bench -p scenarios --bench fuzz -- faults`: what a child's page faults cost, each kind
/// against the same fork without the touches (medians of 3 runs of 2 000 children each).
fn fault_costs() {
    const N: usize = 2_000;
    const TOUCHES: usize = 100;
    let run = |pages: Pages, touches: usize| {
        let runs: Vec<(f64, f64)> = (0..3).map(|_| faulting_child(pages, touches, N)).collect();
        let faults = runs.iter().map(|run| run.1).sum::<f64>() / runs.len() as f64;
        (median(runs.iter().map(|run| run.0).collect()).0, faults)
    };
    println!("a forked child's page faults, one thread, median of 3 runs of {N} children:");
    for (name, pages) in
        [("read faults of a file mapping (code)", Pages::File), ("copy-on-write faults of the heap", Pages::Heap)]
    {
        let (without, faults_without) = run(pages, 0);
        let (with, faults_with) = run(pages, TOUCHES);
        let extra = faults_with - faults_without;
        println!(
            "  {name:<38} {without:>7.1} us per child without, {with:>7.1} with {TOUCHES} touches \
             ({extra:.0} more faults): {:.2} us per fault",
            (with - without) / extra
        );
    }
}
