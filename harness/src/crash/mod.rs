//! Crash at every step: systematic process-crash and power-loss exploration of a save, for any
//! program (issue #13). `exit-harness crash` is its command line ([`cli`]).
//!
//! # How it works
//!
//! 1. **Record.** The scenario's program runs once under strace ([`trace`]): every file-system
//!    system call of the child and its descendants, with the path behind each descriptor. The
//!    calls that touched the run's scratch folder become the steps ([`ops`]). This reference run
//!    is judged by the scenario's own oracles: an exploration of a run that fails uncrashed
//!    says so first.
//! 2. **Process crash at every step.** A step is a recorded call that changes the folder or asks
//!    for durability (create, truncate, write, fsync, rename, link, unlink, mkdir, ...); a kill
//!    before a read-only call (a `stat`, an open for reading, an `lseek`) leaves what a kill
//!    before the next changing call leaves, so those are recorded and counted, not re-run.
//!    The program runs again once per step, under strace with
//!    `-e inject=SYSCALL:signal=KILL:when=N`: SIGKILL on entry to the N-th call of that system
//!    call in its thread, which the kernel then never runs (a fatal signal is pending at the
//!    syscall-entry stop). So step k's run leaves exactly what steps 1..k-1 left, the real
//!    kernel's state, page cache included. The explorer checks, in the killed run's own trace,
//!    that the call killed is the step aimed at (same call, same path shape: random temp-file
//!    suffixes are masked); a run that diverged is reported "cannot judge", never passed.
//! 3. **Power loss.** From the recorded steps, the [`model`] builds every state a machine crash
//!    could leave under ext4 `data=ordered` (the model and its limits are documented there):
//!    unsynced data may be lost or torn, metadata persists in order up to the last fsync.
//! 4. **Recovery and judgement.** Each state, real or modelled, is seeded into a fresh scratch
//!    folder and the recovery runs on it: by default the scenario itself, run again (the next
//!    open, the next save), or the scenario's own `[recovery]`. It is judged by the recovery's
//!    own oracles (exit status, quiet stderr, saves, no lost entries, ...) plus the explorer's
//!    ([`checks`]): `old_or_new` (the crash left each file old or new, never torn or gone),
//!    `recovered_clean` (no temp file remains after the recovery), and, for a scenario that
//!    promises durability, `durable` (a power loss after the program ended keeps the new
//!    content). Each state is one [`CellResult`], named by its minimal description, so the same
//!    reporter (table, JSON, JUnit) renders an exploration.
//!
//! # Why strace, not a ptrace crate
//!
//! strace follows forks, threads and `exec`, decodes every file-system call's arguments and
//! the path behind each descriptor (`-y`), and injects a signal at the N-th call of a system
//! call: exactly the recorder and the killer needed, packaged by Debian (`apt-get install
//! strace`, what CI does). A Rust tracer over `ptrace` (nix, pete) would re-implement the
//! decoder for some forty system calls on each architecture and need `unsafe` in a crate that
//! forbids it; the harness keeps to parsing text. Its costs: strace must be installed (without
//! it, exploration fails with that message, it never passes), and a traced run is slower.
//!
//! # Limits
//!
//! - strace counts calls per thread: in a run whose processes or threads all make the same
//!   call, the first to reach the count is killed. The divergence check catches that (the
//!   state is "cannot judge"); the saves explored here are single-threaded.
//! - A scenario ended by a harness signal (`[signal]`) is refused: the signal would reach
//!   strace, not the program.
//! - Only the scratch folder is explored (files elsewhere are not seeded into the recovery);
//!   empty sub-folders and file modes are not carried into the recovery.

pub mod checks;
pub mod cli;
pub mod file;
pub mod folder;
pub mod model;
pub mod ops;
pub mod trace;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::cell::{Cell, CellResult, NamedVerdict};
use crate::observation::Observation;
use crate::oracle::OracleVerdict;
use crate::spec::{ChildSpec, FileUnderTest, FolderUnderTest};

use checks::{Durable, OldOrNew, RecoveredClean, Reference};
use folder::FolderState;
use model::ModelLimits;
use ops::Op;
use trace::{KillPoint, Trace};

/// Makes a fresh cell (cells are not `Clone`: their oracles are boxed).
pub type CellFactory = Arc<dyn Fn() -> Cell + Send + Sync>;

/// What to explore: the run whose save is crashed, the recovery, and what must hold.
#[derive(Clone)]
pub struct CrashScenario {
    /// The scenario's name.
    pub name: String,
    save: CellFactory,
    recovery: Option<CellFactory>,
    judged: Option<Vec<String>>,
    allowed: Vec<String>,
    durable: bool,
}

impl std::fmt::Debug for CrashScenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrashScenario")
            .field("name", &self.name)
            .field("custom_recovery", &self.recovery.is_some())
            .field("judged", &self.judged)
            .field("allowed", &self.allowed)
            .field("durable", &self.durable)
            .finish()
    }
}

impl CrashScenario {
    /// Explores the save of the cell `save` makes; the recovery is the same cell, run again on
    /// each crash state and judged by its own oracles.
    pub fn new(name: impl Into<String>, save: impl Fn() -> Cell + Send + Sync + 'static) -> Self {
        Self {
            name: name.into(),
            save: Arc::new(save),
            recovery: None,
            judged: None,
            allowed: Vec::new(),
            durable: false,
        }
    }

    /// Runs the cell `recovery` makes on each crash state instead (the next open).
    #[must_use]
    pub fn recovery(mut self, recovery: impl Fn() -> Cell + Send + Sync + 'static) -> Self {
        self.recovery = Some(Arc::new(recovery));
        self
    }

    /// Judges only these files old-or-new (default: every file under test of the save cell).
    #[must_use]
    pub fn judging<S: Into<String>>(mut self, files: impl IntoIterator<Item = S>) -> Self {
        self.judged = Some(files.into_iter().map(Into::into).collect());
        self
    }

    /// Allows names matching `glob` in the folder after the recovery.
    #[must_use]
    pub fn allow_after_recovery(mut self, glob: impl Into<String>) -> Self {
        self.allowed.push(glob.into());
        self
    }

    /// Declares that the save is durable: a power loss after the program ended keeps the new
    /// content (the `durable` oracle judges every such state).
    #[must_use]
    pub fn durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }
}

/// Which crashes to explore, and how.
#[derive(Debug, Clone, Copy)]
pub struct ExploreOptions {
    /// SIGKILL at every step.
    pub process_crash: bool,
    /// Every modelled power-loss state.
    pub power_loss: bool,
    /// Runs at once.
    pub jobs: usize,
    /// Bounds on the power-loss states.
    pub limits: ModelLimits,
}

impl Default for ExploreOptions {
    fn default() -> Self {
        Self {
            process_crash: true,
            power_loss: true,
            jobs: std::thread::available_parallelism().map_or(1, usize::from),
            limits: ModelLimits::default(),
        }
    }
}

/// The family of a process-crash state's result.
pub const PROCESS_CRASH: &str = "process-crash";
/// The family of a power-loss state's result.
pub const POWER_LOSS: &str = "power-loss";

/// What an exploration found.
#[derive(Debug)]
pub struct Exploration {
    /// The scenario.
    pub scenario: String,
    /// The uncrashed, recorded run, judged by the scenario's own oracles.
    pub reference: CellResult,
    /// The recorded calls that touched the scratch folder (the steps are those that change it).
    pub steps: Vec<Op>,
    /// One result per explored state: process crashes first, then power losses.
    pub states: Vec<CellResult>,
    /// Whether the power-loss limits cut the list of states.
    pub cut: bool,
    /// From the first run to the last judgement.
    pub elapsed: Duration,
}

impl Exploration {
    /// States explored of `family` ([`PROCESS_CRASH`] or [`POWER_LOSS`]).
    pub fn count(&self, family: &str) -> usize {
        self.states.iter().filter(|r| r.family.ends_with(family)).count()
    }

    /// The states that did not pass (failed, or could not be judged).
    pub fn failing(&self) -> impl Iterator<Item = &CellResult> {
        self.states.iter().filter(|r| !r.passed())
    }

    /// Whether the reference run and every state passed.
    pub fn passed(&self) -> bool {
        self.reference.passed() && self.failing().next().is_none()
    }

    /// States explored per second of wall time.
    pub fn states_per_second(&self) -> f64 {
        self.states.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// One line: states, failures, time.
    pub fn summary(&self) -> String {
        format!(
            "{}: {} calls on the folder recorded; {} process-crash and {} power-loss states explored{}, {} failing; {:.2} s ({:.1} states/s){}",
            self.scenario,
            self.steps.len(),
            self.count(PROCESS_CRASH),
            self.count(POWER_LOSS),
            if self.cut { " (power-loss states cut at the limit)" } else { "" },
            self.failing().count(),
            self.elapsed.as_secs_f64(),
            self.states_per_second(),
            if self.reference.passed() { "" } else { "; the uncrashed run itself FAILED" },
        )
    }
}

/// Why an exploration could not run.
#[derive(Debug, thiserror::Error)]
pub enum ExploreError {
    /// strace is missing.
    #[error("{0}")]
    NoStrace(String),
    /// The scenario cannot be explored.
    #[error("{scenario}: cannot be explored: {why}")]
    Unsupported {
        /// The scenario.
        scenario: String,
        /// Why.
        why: String,
    },
    /// The recorded run failed to run or to record.
    #[error("{scenario}: the recorded run failed: {why}")]
    Record {
        /// The scenario.
        scenario: String,
        /// Why.
        why: String,
    },
}

/// The most bytes of a trace read.
const TRACE_CAP: u64 = 256 << 20;

/// `spec`, run under strace writing its trace to `out`, killed at `kill`.
fn traced(spec: &ChildSpec, out: &Path, kill: Option<&KillPoint>, _record: bool) -> ChildSpec {
    let mut traced = spec.clone();
    traced.program = trace::strace_program();
    let mut args = trace::strace_args(out, kill);
    args.push(spec.program.clone().into_os_string());
    args.extend(spec.args.iter().cloned());
    traced.args = args;
    traced
}

fn read_trace(path: &Path) -> Result<Trace, String> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open the trace {}: {e}", path.display()))?;
    let mut text = String::new();
    file.take(TRACE_CAP + 1).read_to_string(&mut text).map_err(|e| format!("cannot read the trace: {e}"))?;
    if text.len() as u64 > TRACE_CAP {
        return Err(format!("the trace is larger than {TRACE_CAP} bytes"));
    }
    Ok(Trace::parse(&text))
}

fn canonical_scratch(obs: &Observation) -> Result<PathBuf, String> {
    let scratch = obs.scratch_path().ok_or("the run kept no scratch folder")?;
    std::fs::canonicalize(scratch).map_err(|e| format!("scratch folder {}: {e}", scratch.display()))
}

/// Everything the recorded run taught, shared by every state's judgement.
struct Recorded {
    scenario: CrashScenario,
    /// The recorded run's scratch folder (canonical; gone by now, named in its steps).
    scratch: PathBuf,
    references: Vec<Reference>,
    expected_names: BTreeSet<String>,
    file_cap: u64,
}

/// Explores `scenario`: records it, crashes it at every step and under every modelled power
/// loss, recovers and judges each state.
pub fn explore(scenario: &CrashScenario, options: &ExploreOptions) -> Result<Exploration, ExploreError> {
    trace::strace_available().map_err(ExploreError::NoStrace)?;
    let started = Instant::now();
    let unsupported = |why: String| ExploreError::Unsupported { scenario: scenario.name.clone(), why };
    let record_error = |why: String| ExploreError::Record { scenario: scenario.name.clone(), why };
    let cell = (scenario.save)();
    if !cell.spec.triggers.is_empty() {
        return Err(unsupported("it is ended by a harness signal, which would reach strace, not the program".into()));
    }
    if let Some(problem) = cell.journal_problem() {
        return Err(unsupported(problem));
    }
    // Private (0700: the traces name every path the program touched) and named like a run
    // folder, so that the sweep of a dead harness's folders removes it after a kill.
    let traces = crate::run_folder::private_temp_folder("crash").map_err(|e| record_error(e.to_string()))?;
    let file_cap = cell.spec.limits.file_cap;

    // 1. The recorded, uncrashed run.
    let reference_trace = traces.path().join("reference.trace");
    let run_started = Instant::now();
    let obs = traced(&cell.spec, &reference_trace, None, true)
        .run_watching(&cell.scenario.files, &cell.scenario.folders)
        .map_err(|e| record_error(e.to_string()))?;
    let scratch = canonical_scratch(&obs).map_err(record_error)?;
    let final_state = FolderState::read(&scratch, file_cap).map_err(|e| record_error(e.to_string()))?;
    let steps = ops::scratch_ops(&read_trace(&reference_trace).map_err(record_error)?, &scratch);
    let judged: Vec<String> =
        scenario.judged.clone().unwrap_or_else(|| cell.scenario.files.iter().map(|f| f.name.clone()).collect());
    let references = judged
        .iter()
        .map(|name| {
            let file = obs.file(name);
            Reference {
                name: name.clone(),
                old: file.and_then(|f| f.before.clone()),
                new: file.map(|f| f.after.clone()),
            }
        })
        .collect();
    let initial = FolderState {
        files: cell.scenario.files.iter().filter_map(|f| f.seed.clone().map(|seed| (f.name.clone(), seed))).collect(),
        ..FolderState::default()
    };
    let mut expected_names: BTreeSet<String> = final_state
        .files
        .keys()
        .chain(&final_state.dirs)
        .chain(initial.files.keys())
        .filter(|n| !n.contains('/'))
        .cloned()
        .collect();
    expected_names.extend(cell.scenario.files.iter().map(|f| f.name.clone()));
    let mut reference = CellResult::judge(&cell.scenario, Ok(obs), run_started.elapsed());
    reference.name = format!("{}: the uncrashed run (recorded)", scenario.name);
    if let Ok(obs) = &mut reference.observation {
        obs.scratch = None;
    }
    if steps.is_empty() {
        return Err(unsupported(format!(
            "the recorded run made no file-system call in its scratch folder {} (strace saw none)",
            scratch.display()
        )));
    }
    let recorded =
        Recorded { scenario: scenario.clone(), scratch: scratch.clone(), references, expected_names, file_cap };

    // 2 and 3: every state, as a task.
    let mut tasks: Vec<Task<'_>> = Vec::new();
    if options.process_crash {
        for (index, step) in steps.iter().enumerate().filter(|(_, step)| step.changes_disk()) {
            let trace_path = traces.path().join(format!("step-{index}.trace"));
            let (recorded, total) = (&recorded, steps.len());
            tasks.push(Box::new(move || process_crash(recorded, step, index, total, &trace_path)));
        }
    }
    let mut cut = false;
    if options.power_loss {
        let (states, was_cut) = model::power_loss_states(&steps, &initial, &final_state, options.limits);
        cut = was_cut;
        for state in states {
            let recorded = &recorded;
            let durable = scenario.durable && state.complete;
            tasks
                .push(Box::new(move || recover(recorded, &state.folder, state.description, POWER_LOSS, durable, None)));
        }
    }
    let results = run_tasks(tasks, options.jobs);
    Ok(Exploration {
        scenario: scenario.name.clone(),
        reference,
        steps,
        states: results,
        cut,
        elapsed: started.elapsed(),
    })
}

/// One state's exploration, to run on a worker thread.
type Task<'a> = Box<dyn FnOnce() -> CellResult + Send + 'a>;

/// Runs `tasks` on `jobs` threads; results in the tasks' order.
fn run_tasks(tasks: Vec<Task<'_>>, jobs: usize) -> Vec<CellResult> {
    let count = tasks.len();
    let slots: Vec<std::sync::Mutex<Option<Task<'_>>>> =
        tasks.into_iter().map(|t| std::sync::Mutex::new(Some(t))).collect();
    let results: Vec<std::sync::Mutex<Option<CellResult>>> = (0..count).map(|_| std::sync::Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, count.max(1)) {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(slot) = slots.get(index) else { return };
                    let task = slot.lock().ok().and_then(|mut t| t.take());
                    if let Some(task) = task {
                        let result = task();
                        if let Ok(mut out) = results[index].lock() {
                            *out = Some(result);
                        }
                    }
                }
            });
        }
    });
    results.into_iter().filter_map(|r| r.into_inner().ok().flatten()).collect()
}

/// A result that judged nothing: the state could not be produced.
fn cannot_judge(name: String, family: String, why: String, wall: Duration) -> CellResult {
    CellResult {
        name,
        family,
        observation: Err(why),
        verdicts: Vec::new(),
        expected_saves: None,
        wall,
        command: String::new(),
    }
}

/// Kills the program on entry to `step`, then recovers from what it left.
fn process_crash(recorded: &Recorded, step: &Op, index: usize, total: usize, trace_path: &Path) -> CellResult {
    let started = Instant::now();
    let name = format!("kill before step {}/{total} `{}`", index + 1, step.text);
    let family = format!("{} {PROCESS_CRASH}", recorded.scenario.name);
    let cell = (recorded.scenario.save)();
    let kill = KillPoint { syscall: step.call.name.clone(), ordinal: step.call.ordinal };
    let obs = match traced(&cell.spec, trace_path, Some(&kill), false)
        .run_watching(&cell.scenario.files, &cell.scenario.folders)
    {
        Ok(obs) => obs,
        Err(e) => return cannot_judge(name, family, format!("the killed run failed to run: {e}"), started.elapsed()),
    };
    let diverged = |why: String| {
        cannot_judge(
            name.clone(),
            family.clone(),
            format!("the re-run diverged from the recording: {why}"),
            started.elapsed(),
        )
    };
    let scratch = match canonical_scratch(&obs) {
        Ok(scratch) => scratch,
        Err(e) => return diverged(e),
    };
    let killed_trace = match read_trace(trace_path) {
        Ok(trace) => trace,
        Err(e) => return diverged(e),
    };
    let killed_ops = ops::scratch_ops(&killed_trace, &scratch);
    let killed = killed_ops
        .iter()
        .find(|op| op.call.ret == trace::Ret::Unfinished && killed_trace.killed.contains(&op.call.pid));
    match killed {
        Some(op) if op.key(&scratch) == step.key(&recorded.scratch) => {}
        Some(op) => return diverged(format!("killed at `{}`, not at `{}`", op.text, step.text)),
        None => {
            let other =
                killed_trace.killed_call().map(|c| format!("; SIGKILL came in `{}`", c.name)).unwrap_or_default();
            return diverged(format!("no call in the scratch folder was killed ({}){other}", obs.outcome));
        }
    }
    let state = match FolderState::read(&scratch, recorded.file_cap) {
        Ok(state) => state,
        Err(e) => return diverged(format!("cannot read the crash state: {e}")),
    };
    drop(obs);
    let mut result = recover(recorded, &state, name, PROCESS_CRASH, false, Some(started));
    result.wall = started.elapsed();
    result
}

/// Runs the recovery on `state` and judges it.
fn recover(
    recorded: &Recorded,
    state: &FolderState,
    name: String,
    kind: &str,
    durable: bool,
    started: Option<Instant>,
) -> CellResult {
    let started = started.unwrap_or_else(Instant::now);
    let scenario = &recorded.scenario;
    let family = format!("{} {kind}", scenario.name);
    let mut cell = scenario.recovery.as_ref().unwrap_or(&scenario.save)();
    for file in &mut cell.scenario.files {
        file.seed = state.files.get(&file.name).cloned();
    }
    for (file, bytes) in &state.files {
        if !cell.scenario.files.iter().any(|f| &f.name == file) {
            cell.scenario.files.push(FileUnderTest::new(file).seeded(bytes.clone()));
        }
    }
    for reference in &recorded.references {
        if !cell.scenario.files.iter().any(|f| f.name == reference.name) {
            cell.scenario.files.push(FileUnderTest::new(&reference.name));
        }
    }
    if !cell.scenario.folders.iter().any(|f| matches!(f.path(), "." | "")) {
        cell.scenario.folders.push(FolderUnderTest::new("."));
    }
    cell.scenario.oracles.push(Box::new(OldOrNew { files: recorded.references.clone() }));
    cell.scenario.oracles.push(Box::new(RecoveredClean {
        expected: recorded.expected_names.clone(),
        allowed: scenario.allowed.clone(),
    }));
    if durable {
        cell.scenario.oracles.push(Box::new(Durable { files: recorded.references.clone() }));
    }
    let mut notes: Vec<NamedVerdict> = Vec::new();
    if !state.skipped.is_empty() {
        notes.push(NamedVerdict {
            oracle: "crash_state".into(),
            id: "crash_state".into(),
            verdict: OracleVerdict::cannot_judge(format!("not carried to the recovery: {}", state.skipped.join("; "))),
        });
    }
    let observation =
        cell.spec.run_watching(&cell.scenario.files, &cell.scenario.folders).map_err(|e| format!("recovery: {e}"));
    let mut result = CellResult::judge(&cell.scenario, observation, started.elapsed());
    result.name = name;
    result.family = family;
    result.verdicts.extend(notes);
    if let Ok(obs) = &mut result.observation {
        obs.scratch = None;
    }
    result
}
