//! Churn fuzzing with a reference model, and regression reproducers.
//!
//! - [`ops`]: the operations a case performs and their one-line text form.
//! - [`generate`]: cases drawn and shrunk by a proptest-state-machine reference state machine.
//! - [`model`]: the reference model: what the contract says each case must do, and the oracles
//!   that prediction implies.
//! - [`oracles`]: the model's own oracles (steps, saves per process, entries, child endings).
//! - [`fork_server`] and [`spawn`]: the two ways a case runs in a real child process.
//! - [`reproducer`]: the TOML files an issue report carries.
//!
//! [`fuzz`] generates cases with proptest ([`generate`]), runs each in a real child process (the fork server by
//! default), judges it with the oracles the model implies (a harness [`CellResult`], as every
//! catalog cell), and on the first failure lets proptest shrink it to a
//! minimal case, which it writes as a [`reproducer::Reproducer`]. [`replay`] runs a reproducer.

pub mod fork_server;
pub mod generate;
pub mod model;
pub mod ops;
pub mod oracles;
pub mod reproducer;
pub mod spawn;

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use exit_harness::{CellResult, Observation, Scenario};
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

use self::fork_server::ForkServer;
use self::ops::{Case, Op};
use self::reproducer::Reproducer;
use crate::defects::Defect;

/// How each case runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Executor {
    /// One pre-initialised `scenario-child serve` per job forks a child per case.
    ForkServer,
    /// Each case spawns `scenario-child fuzz-case` through the harness's runner.
    Spawn,
}

/// What to fuzz, and how.
#[derive(Clone, Debug)]
pub struct FuzzConfig {
    /// The `scenario-child` program.
    pub child: PathBuf,
    /// Cases to generate (shrinking runs come on top).
    pub cases: u64,
    /// The seed; each job derives its own stream from it.
    pub seed: u64,
    /// Parallel jobs, each with its own executor.
    pub jobs: usize,
    /// Where a failing case's reproducer is written.
    pub out: PathBuf,
    /// Run against this defect of the defect zoo (to show the fuzzer finds it).
    pub defect: Option<Defect>,
    /// How cases run.
    pub executor: Executor,
    /// Most operations in a generated case.
    pub max_ops: usize,
}

/// A failure found, shrunk and written down.
#[derive(Debug)]
pub struct Finding {
    /// The minimal reproducer, with the path it was written to.
    pub reproducer: Reproducer,
    /// The minimal case's result, from a spawned run with the black box.
    pub result: CellResult,
    /// The ops of the first failing case, before shrinking.
    pub original_ops: usize,
}

impl Finding {
    /// The command that replays the reproducer, to paste into an issue.
    pub fn command(&self) -> String {
        let defect = self.reproducer.defect.map_or(String::new(), |d| format!("--defect {} ", d.name()));
        format!("runtime-cache-scenarios repro {defect}{}", self.reproducer.path.display())
    }
}

/// What a fuzz run did.
#[derive(Debug)]
pub struct FuzzReport {
    /// Cases generated and run.
    pub cases: u64,
    /// Child processes run in all (cases plus shrinking runs).
    pub runs: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// The failure found, if any.
    pub finding: Option<Finding>,
}

impl FuzzReport {
    /// Cases per second.
    pub fn rate(&self) -> f64 {
        self.runs as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs cases one at a time with the configured executor.
enum Runner {
    Fork { server: ForkServer, child: PathBuf, defect: Option<Defect> },
    Spawn { child: PathBuf, defect: Option<Defect> },
}

impl Runner {
    fn start(config: &FuzzConfig) -> Result<Self, String> {
        let (child, defect) = (config.child.clone(), config.defect);
        Ok(match config.executor {
            Executor::ForkServer => Runner::Fork {
                server: ForkServer::start(&child, defect)
                    .map_err(|error| format!("start the fork server {}: {error}", child.display()))?,
                child,
                defect,
            },
            Executor::Spawn => Runner::Spawn { child, defect },
        })
    }

    fn observe(&mut self, case: &Case) -> Result<Observation, String> {
        match self {
            Runner::Fork { server, child, defect } => {
                let result = server.run(case);
                if result.is_err() {
                    // A broken server is replaced for the next case.
                    if let Ok(fresh) = ForkServer::start(child, *defect) {
                        *server = fresh;
                    }
                }
                result
            }
            Runner::Spawn { child, defect } => spawn::run_spawned(child, case, *defect).map_err(|e| e.to_string()),
        }
    }

    /// Runs `case` and judges it with the oracles the model's predictions imply: it passes
    /// when it matches one of them (a case without threads has one).
    fn check(&mut self, case: &Case) -> CellResult {
        let black_box = matches!(self, Runner::Spawn { .. });
        let started = Instant::now();
        match model::predict_all(case) {
            Ok(predictions) => {
                let candidates: Vec<_> = predictions.iter().map(|p| (p, &p.expect)).collect();
                let observation = self.observe(case);
                judge_against_any("fuzz case", case, &candidates, black_box, observation, started, self.command(case))
            }
            Err(error) => Scenario::new("fuzz case").family("fuzz").judge(
                Err(format!("the case breaks the rules: {error}")),
                started.elapsed(),
                self.command(case),
            ),
        }
    }

    /// How a case is run, for reports.
    fn command(&self, case: &Case) -> String {
        match self {
            Runner::Fork { child, .. } => format!("{} {} (forked per case)", child.display(), fork_server::SERVE_ARG),
            Runner::Spawn { child, defect } => spawn::spec(child, case, *defect).command_line(),
        }
    }
}

/// Judges `observation` of `case` against each legal outcome in turn (a prediction and the
/// expectations to hold it to): the first that passes is the result; when none does, the first
/// candidate's failing result, its title saying how many outcomes were legal.
fn judge_against_any(
    name: &str,
    case: &Case,
    candidates: &[(&model::Prediction, &model::Expectations)],
    black_box: bool,
    observation: Result<Observation, String>,
    started: Instant,
    command: String,
) -> CellResult {
    let judge = |(prediction, expect): &(&model::Prediction, &model::Expectations), observation| {
        let scenario = prediction.scenario(name, case, expect, black_box);
        scenario.judge(observation, started.elapsed(), command.clone())
    };
    let (Some(first), Ok(seen)) = (candidates.first(), &observation) else {
        let scenario = Scenario::new(name).family("fuzz");
        return scenario.judge(observation, started.elapsed(), command);
    };
    for candidate in &candidates[1..] {
        let result = judge(candidate, Ok(seen.clone()));
        if result.passed() {
            return result;
        }
    }
    let mut result = judge(first, observation);
    if !result.passed() && candidates.len() > 1 {
        result.name =
            format!("{name} (matched none of its {} legal outcomes; judged against the first)", candidates.len());
    }
    result
}

/// A failed result's first failure as one line (for titles and progress output): the oracle
/// and the first line of its evidence, with the first quoted line when the first only
/// announces them.
pub fn headline(result: &CellResult) -> String {
    let failures = result.failures();
    let Some(failure) = failures.first() else { return "pass".into() };
    let mut lines = failure.lines().map(str::trim).filter(|line| !line.is_empty());
    let first = lines.next().unwrap_or("");
    match lines.next() {
        Some(next) if first.ends_with(':') => format!("{first} {next}"),
        _ => first.to_owned(),
    }
}

/// Runs of a racy case (one with more than one legal outcome) while shrinking, and in a
/// replay: it fails as soon as one run matches no legal outcome.
pub const RACY_RUNS: usize = 10;

fn is_racy(case: &Case) -> bool {
    model::predict_all(case).is_ok_and(|predictions| predictions.len() > 1)
}

/// 16 bytes of XorShift seed for job `job` of a run seeded with `seed`.
fn job_seed(seed: u64, job: usize) -> [u8; 16] {
    let mut hasher = blake3::Hasher::new_derive_key("runtime-cache-scenarios fuzz seed v2");
    hasher.update(&seed.to_le_bytes()).update(&(job as u64).to_le_bytes());
    let mut out = [0; 16];
    out.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
    out
}

/// Fuzzes: runs `config.cases` generated cases across `config.jobs` jobs, stops at the first
/// failure, shrinks it and writes its reproducer under `config.out`. `progress` is called with
/// the number of child processes run so far.
pub fn fuzz(config: &FuzzConfig, progress: &(dyn Fn(u64) + Sync)) -> Result<FuzzReport, String> {
    let started = Instant::now();
    let jobs = config.jobs.max(1);
    let stop = AtomicBool::new(false);
    let (cases, runs, first_failing_ops) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let found: Mutex<Option<Case>> = Mutex::new(None);
    // The last failing run's result: the minimal case's once shrinking ends (its evidence, when a
    // racy failure does not show again in the spawned re-run).
    let last_failure: Mutex<Option<CellResult>> = Mutex::new(None);
    let errors: Mutex<Vec<String>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for job in 0..jobs {
            let share = config.cases / jobs as u64 + u64::from((job as u64) < config.cases % jobs as u64);
            let (stop, cases, runs, found, errors) = (&stop, &cases, &runs, &found, &errors);
            let last_failure = &last_failure;
            let first_failing_ops = &first_failing_ops;
            scope.spawn(move || {
                let runner = match Runner::start(config) {
                    Ok(runner) => RefCell::new(runner),
                    Err(error) => {
                        errors.lock().unwrap_or_else(|p| p.into_inner()).push(error);
                        stop.store(true, Ordering::SeqCst);
                        return;
                    }
                };
                let proptest_config = Config {
                    cases: u32::try_from(share).unwrap_or(u32::MAX),
                    failure_persistence: None,
                    max_shrink_iters: 1024,
                    max_global_rejects: u32::MAX,
                    ..Config::default()
                };
                // XorShift, not proptest's default ChaCha: generating a case is then a small part
                // of its cost (ChaCha took a quarter of the parent's time in a debug build).
                let rng = TestRng::from_seed(RngAlgorithm::XorShift, &job_seed(config.seed, job));
                let mut test_runner = TestRunner::new_with_rng(proptest_config, rng);
                let strategy = generate::cases(config.max_ops);
                let shrinking = AtomicBool::new(false);
                let result = test_runner.run(&strategy, |((_, ops, seen), ending)| {
                    if !shrinking.load(Ordering::Relaxed) {
                        if stop.load(Ordering::Relaxed) {
                            return Ok(());
                        }
                        cases.fetch_add(1, Ordering::Relaxed);
                    }
                    progress(runs.fetch_add(1, Ordering::Relaxed) + 1);
                    let case = Case { ops, ending };
                    let mut result = runner.borrow_mut().check(&case);
                    if shrinking.load(Ordering::Relaxed) && result.passed() && is_racy(&case) {
                        // A race may not happen again on the first try: a simplification of a
                        // racy failure is kept when any of a few runs fails.
                        for _ in 1..RACY_RUNS {
                            progress(runs.fetch_add(1, Ordering::Relaxed) + 1);
                            result = runner.borrow_mut().check(&case);
                            if !result.passed() {
                                break;
                            }
                        }
                    }
                    // The child ran the whole case: shrinking may drop any of its operations.
                    if let Some(seen) = seen {
                        seen.store(case.ops.len(), Ordering::SeqCst);
                    }
                    if result.passed() {
                        return Ok(());
                    }
                    if !shrinking.swap(true, Ordering::Relaxed) {
                        // The first failure of this job: the other jobs stop, this one shrinks.
                        if stop.swap(true, Ordering::SeqCst) {
                            shrinking.store(false, Ordering::Relaxed);
                            return Ok(());
                        }
                        first_failing_ops.store(case.ops.len() as u64, Ordering::Relaxed);
                    }
                    let headline = headline(&result);
                    *last_failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
                    Err(TestCaseError::fail(headline))
                });
                if let Err(TestError::Fail(_, ((_, ops, _), ending))) = result {
                    *found.lock().unwrap_or_else(|p| p.into_inner()) = Some(Case { ops, ending });
                }
            });
        }
    });
    if let Some(error) = errors.into_inner().unwrap_or_else(|p| p.into_inner()).into_iter().next() {
        return Err(error);
    }
    let mut report = FuzzReport {
        cases: cases.load(Ordering::Relaxed),
        runs: runs.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
        finding: None,
    };
    if let Some(case) = found.into_inner().unwrap_or_else(|p| p.into_inner()) {
        let case = renumber(case);
        let original_ops = first_failing_ops.load(Ordering::Relaxed) as usize;
        let last_failure = last_failure.into_inner().unwrap_or_else(|p| p.into_inner());
        report.finding = Some(write_finding(config, case, original_ops, last_failure)?);
        report.runs = runs.load(Ordering::Relaxed);
    }
    Ok(report)
}

/// Numbers engines e0, e1, ... in the order the case creates them.
fn renumber(mut case: Case) -> Case {
    let mut numbers = std::collections::BTreeMap::new();
    for op in &mut case.ops {
        let engine = match op {
            Op::Create { engine, .. } => {
                let next = numbers.len() as u32;
                numbers.insert(*engine, next);
                engine
            }
            Op::Compile { engine, .. }
            | Op::Save { engine }
            | Op::Remove { engine, .. }
            | Op::Clear { engine }
            | Op::Drop { engine }
            | Op::Leak { engine }
            | Op::Move { engine, .. }
            | Op::Swap { engine, .. }
            | Op::ThreadCompile { engine, .. }
            | Op::ThreadSave { engine }
            | Op::FailSave { engine, .. } => engine,
            Op::Fork { .. } | Op::Spawn { .. } | Op::Wait { .. } => continue,
        };
        *engine = numbers.get(engine).copied().unwrap_or(*engine);
    }
    case
}

/// Re-runs the minimal case (spawned, with the black box) for its evidence, and writes it down;
/// `last_failure` is the minimal case's failing run, whose evidence is kept when the re-run
/// passes (a race that did not happen again).
fn write_finding(
    config: &FuzzConfig,
    case: Case,
    original_ops: usize,
    last_failure: Option<CellResult>,
) -> Result<Finding, String> {
    let mut spawned = Runner::Spawn { child: config.child.clone(), defect: config.defect };
    let mut result = spawned.check(&case);
    if result.passed() {
        // Failed under the fork server only, or not every time: keep the failing run's evidence.
        result = match last_failure {
            Some(failure) if !failure.passed() => failure,
            _ => Runner::start(config)?.check(&case),
        };
    }
    let headline: String = headline(&result).chars().take(120).collect();
    let title = format!("fuzz (seed {}): {headline}", config.seed);
    let mut reproducer = Reproducer::from_case(title, case, config.defect).map_err(|error| error.to_string())?;
    std::fs::create_dir_all(&config.out).map_err(|error| format!("create {}: {error}", config.out.display()))?;
    let text = reproducer.to_toml();
    let digest = blake3::hash(text.as_bytes()).to_hex();
    let path = config.out.join(format!("fuzz-{}-{}.toml", config.seed, &digest[..8]));
    std::fs::write(&path, &text).map_err(|error| format!("write {}: {error}", path.display()))?;
    reproducer.path = path;
    result.name = reproducer.path.display().to_string();
    Ok(Finding { reproducer, result, original_ops })
}

/// Replays `reproducer` once, spawned through the harness's runner (with the black box), against
/// `defect` of the defect zoo if given, and judges it with the oracles its expectations imply
/// (for a racy case, each legal outcome's: a run passes when it matches one, and the replay runs
/// it up to [`RACY_RUNS`] times, failing at the first run that matches none).
pub fn replay(child: &Path, reproducer: &Reproducer, defect: Option<Defect>) -> CellResult {
    let name = reproducer.path.display().to_string();
    let spec = spawn::spec(child, &reproducer.case, defect);
    let candidates = reproducer.outcomes();
    let runs = if reproducer.is_racy() { RACY_RUNS } else { 1 };
    let mut result = None;
    for _ in 0..runs {
        let started = Instant::now();
        let observation = spec.run(&spawn::files_under_test(&reproducer.case)).map_err(|error| error.to_string());
        let mut run =
            judge_against_any(&name, &reproducer.case, &candidates, true, observation, started, spec.command_line());
        run.family = "reproducer".into();
        let failed = !run.passed();
        result = Some(run);
        if failed {
            break;
        }
    }
    result.expect("at least one run")
}
