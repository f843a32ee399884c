//! The fuzzer's two modes of this program:
//!
//! - `scenario-child fuzz-case CASE_JSON`: runs one [`Case`] (spawned by the harness's runner).
//! - `scenario-child serve`: the fork server. Initialised once and single-threaded, it reads one
//!   [`ServeRequest`] per line from stdin, forks a child per case, which runs it to its real
//!   ending, reaps the child, kills what is left of its process group, and answers one line:
//!   the raw wait status and whether anything was left (`STATUS 0|1`): in the case's process
//!   group, or adopted by the server (a child subreaper) after leaving it.
//!
//! A case reports through the journal: `fuzz_process` (which process this is), `fuzz_op` after
//! each op (its number, the exit registry's size, hit or miss), `fuzz_child_exit` for each
//! forked or spawned process, and `fuzz_ending` when the ending begins, plus every cache event
//! through the observer.
//!
//! A thread operation (`thread-compile`, `thread-save`) journals its `fuzz_op` line, then starts
//! its thread on a shared reference to the engine; the thread runs alongside the next operation
//! when that one only borrows an engine ([`Op::overlaps_a_thread`]) and is joined right after
//! it, before its `fuzz_op` line; otherwise it is joined first. A `fail-save` arms its failpoint
//! (`fail::cfg`) for the one explicit save and removes it after.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitCode, ExitStatus};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use exit_harness::journal::{Event as Line, JOURNAL_ENV};
use exit_harness::spec::SCRATCH_ENV;
use runtime_cache::{Backend, Durability, Engine, KernelOrigin, RuntimeSettings};
use scenarios::fuzz::fork_server::{SERVE_ARG, ServeRequest};
use scenarios::fuzz::ops::{self, Case, MAIN, Op};
use scenarios::fuzz::spawn::FUZZ_CASE_ARG;
use scenarios::wiring;

use crate::ending::{end, give_up};
use crate::sys::{self, Forked};
use crate::{engines, holders};

/// How long a forked case may run before SIGALRM ends it.
const CASE_ALARM_SECS: u32 = 20;

/// Runs the fuzzer's modes; `None` when `first` names neither (a catalog plan follows).
pub fn dispatch(first: &str, mut rest: impl Iterator<Item = String>) -> Option<ExitCode> {
    match first {
        FUZZ_CASE_ARG => Some(match rest.next().as_deref().map(Case::from_arg) {
            Some(Ok(case)) => {
                prepare();
                run_case(&case)
            }
            Some(Err(error)) => give_up(&format!("bad case: {error}")),
            None => give_up("usage: scenario-child fuzz-case CASE_JSON"),
        }),
        SERVE_ARG => Some(serve()),
        _ => None,
    }
}

/// What every case process sets up before its first op (the fork server does it once).
fn prepare() {
    std::mem::forget(fail::FailScenario::setup());
    wiring::wire_observer();
    sys::no_core_dumps();
}

fn serve() -> ExitCode {
    prepare();
    if let Err(error) = sys::become_subreaper() {
        give_up(&format!("serve: become a subreaper: {error}"));
    }
    // Warm up what every case needs, so that each forked child finds it done.
    let _ = ops::kernel_key_hex("warm-up");
    let _ = Backend::Synthetic(ops::compiler()).select();
    let mut line = String::new();
    loop {
        line.clear();
        match std::io::stdin().read_line(&mut line) {
            Ok(0) => return ExitCode::SUCCESS,
            Ok(_) => {}
            Err(error) => give_up(&format!("serve: read a request: {error}")),
        }
        let request: ServeRequest = match serde_json::from_str(&line) {
            Ok(request) => request,
            Err(error) => give_up(&format!("serve: bad request: {error}")),
        };
        let (status, leaked) = match sys::fork() {
            Err(error) => give_up(&format!("serve: fork: {error}")),
            // The child runs the case to its real ending: returning from here returns from main.
            Ok(Forked::Child) => return enter_case(&request),
            Ok(Forked::Parent(pid)) => match sys::wait_for(pid) {
                // `|` not `||`: both sweeps always run.
                Ok(status) => (status, sys::kill_group(pid) | sys::kill_adopted()),
                Err(error) => give_up(&format!("serve: waitpid: {error}")),
            },
        };
        let mut out = std::io::stdout();
        if writeln!(out, "{status} {}", u8::from(leaked)).and_then(|()| out.flush()).is_err() {
            return ExitCode::FAILURE;
        }
    }
}

/// In the fork server's child: becomes the case's process, then runs the case.
fn enter_case(request: &ServeRequest) -> ExitCode {
    let open = |path: &PathBuf| std::fs::File::create(path);
    let setup = open(&request.stdout).and_then(|stdout| {
        let stderr = open(&request.stderr)?;
        let env = [(JOURNAL_ENV, request.journal.as_path()), (SCRATCH_ENV, request.dir.as_path())];
        sys::become_case_process(CASE_ALARM_SECS, &stdout, &stderr, &env)?;
        std::env::set_current_dir(&request.dir)
    });
    match setup {
        Ok(()) => run_case(&request.case),
        Err(error) => give_up(&format!("serve: set up the case process: {error}")),
    }
}

fn settings(path: &str) -> RuntimeSettings {
    // Thousands of cases: no fsync, which no check here can observe.
    engines::settings(path, ops::compiler(), Durability::None, Duration::from_secs(2))
}

fn compile(engine: &Engine, kernel: &str) -> KernelOrigin {
    engines::compile(engine, &ops::kernel_spec(kernel))
}

fn role(name: &str) {
    wiring::record(Line::new("fuzz_process").with("role", name));
}

/// A thread operation's thread, not yet joined.
struct Running {
    n: usize,
    thread: JoinHandle<()>,
}

impl Running {
    fn join(self) {
        if self.thread.join().is_err() {
            give_up(&format!("the thread of op {} panicked", self.n));
        }
    }
}

/// Starts the thread of op `n` (`thread-compile` or `thread-save`) on `engine`, and returns once
/// it runs: the thread and the next operation then start together, so that the thread's effect
/// lands inside that operation (a save's write, say) as often as before or after it.
fn start_thread(n: usize, op: &Op, engine: Arc<Engine>) -> Running {
    let op = op.clone();
    let started = Arc::new(std::sync::Barrier::new(2));
    let barrier = Arc::clone(&started);
    let thread = std::thread::spawn(move || match &op {
        Op::ThreadCompile { kernel, .. } => {
            barrier.wait();
            compile(&engine, kernel);
        }
        Op::ThreadSave { .. } => {
            barrier.wait();
            if let Some(cache) = engine.runtime_cache() {
                let _ = cache.save();
            }
        }
        _ => {
            barrier.wait();
        }
    });
    started.wait();
    Running { n, thread }
}

/// The engine itself, once no thread shares it (every thread is joined before an operation
/// that gives an engine up).
fn unshared(engine: Arc<Engine>, n: usize) -> Engine {
    Arc::into_inner(engine).unwrap_or_else(|| give_up(&format!("op {n}: the engine is still shared with a thread")))
}

/// Runs `case` in this process and ends it as the case says.
fn run_case(case: &Case) -> ExitCode {
    role(MAIN);
    if case.ops.iter().any(|op| matches!(op, Op::Wait { .. })) {
        runtime_cache::set_exit_deadline(ops::WAIT_EXIT_BUDGET);
    }
    let mut engines: BTreeMap<u32, Arc<Engine>> = BTreeMap::new();
    let mut running: Option<Running> = None;
    for (index, op) in case.ops.iter().enumerate() {
        let n = index + 1;
        let mut line = Line::new("fuzz_op").with("n", n as u64).with("op", op.to_string());
        if !op.overlaps_a_thread()
            && let Some(thread) = running.take()
        {
            thread.join();
        }
        if op.is_threaded() {
            let Some(engine) = op.acts_on().and_then(|id| engines.get(&id)) else {
                give_up(&format!("op {n} `{op}`: its engine is not owned by the case"))
            };
            let engine = Arc::clone(engine);
            wiring::record(line.with("registry", runtime_cache::exit_registry_len() as u64));
            running = Some(start_thread(n, op, engine));
            continue;
        }
        let mut owned = |id: &u32| {
            engines.remove(id).unwrap_or_else(|| give_up(&format!("op {n} `{op}`: e{id} is not owned by the case")))
        };
        match op {
            Op::Create { engine, path, handler } => {
                if *handler && let Err(error) = runtime_cache::install_termination_handler() {
                    give_up(&format!("install_termination_handler: {error}"));
                }
                engines.insert(*engine, Arc::new(engines::new_engine(settings(path))));
            }
            Op::Compile { engine, kernel } => {
                let handle = owned(engine);
                let origin = match compile(&handle, kernel) {
                    KernelOrigin::CacheHit => "hit",
                    // Compiled here, or by a concurrent call for the same key (single flight).
                    _ => "miss",
                };
                line = line.with("origin", origin);
                engines.insert(*engine, handle);
            }
            Op::Save { engine } => {
                let handle = owned(engine);
                // A failed save is journaled by the observer (`save_failed`); its oracle sees it.
                if let Some(cache) = handle.runtime_cache() {
                    let _ = cache.save();
                }
                engines.insert(*engine, handle);
            }
            Op::Remove { engine, kernel } => {
                let handle = owned(engine);
                if let Some(cache) = handle.runtime_cache() {
                    line = line.with("held", u64::from(cache.remove(&ops::kernel_key(kernel))));
                }
                engines.insert(*engine, handle);
            }
            Op::Clear { engine } => {
                let handle = owned(engine);
                if let Some(cache) = handle.runtime_cache() {
                    cache.clear();
                }
                engines.insert(*engine, handle);
            }
            Op::Drop { engine } => drop(unshared(owned(engine), n)),
            Op::Leak { engine } => {
                let _leaked: &'static Engine = Box::leak(Box::new(unshared(owned(engine), n)));
            }
            Op::Move { engine, to } => holders::place_at(*to, unshared(owned(engine), n)),
            Op::Swap { engine, path } => {
                let mut handle = unshared(owned(engine), n);
                if let Err(error) = handle.set_settings(settings(path)) {
                    give_up(&format!("set_settings({path}): {error}"));
                }
                engines.insert(*engine, Arc::new(handle));
            }
            Op::FailSave { engine, at } => {
                let handle = owned(engine);
                if let Err(error) = fail::cfg(at.failpoint(), "return") {
                    give_up(&format!("arm failpoint {}: {error}", at.failpoint()));
                }
                // Fails when dirty (journaled by the observer as `save_failed`); clean, it
                // writes nothing and reaches no failpoint.
                if let Some(cache) = handle.runtime_cache() {
                    let _ = cache.save();
                }
                fail::remove(at.failpoint());
                engines.insert(*engine, handle);
            }
            Op::Wait { ms } => std::thread::sleep(Duration::from_millis(*ms)),
            Op::ThreadCompile { .. } | Op::ThreadSave { .. } => unreachable!("started above"),
            Op::Fork { ending } => match sys::fork() {
                Err(error) => give_up(&format!("fork: {error}")),
                Ok(Forked::Child) => {
                    role(&ops::process_name(op, n).unwrap_or_default());
                    return end(*ending);
                }
                Ok(Forked::Parent(pid)) => child_exit(op, n, pid),
            },
            Op::Spawn { path, kernel } => match sys::fork() {
                Err(error) => give_up(&format!("fork: {error}")),
                Ok(Forked::Child) => {
                    role(&ops::process_name(op, n).unwrap_or_default());
                    let engine = engines::new_engine(settings(path));
                    compile(&engine, kernel);
                    drop(engine);
                    std::process::exit(0)
                }
                Ok(Forked::Parent(pid)) => child_exit(op, n, pid),
            },
        }
        if let Some(thread) = running.take() {
            thread.join();
        }
        wiring::record(line.with("registry", runtime_cache::exit_registry_len() as u64));
    }
    if let Some(thread) = running.take() {
        thread.join();
    }
    wiring::record(
        Line::new("fuzz_ending")
            .with("ending", case.ending.to_string())
            .with("registry", runtime_cache::exit_registry_len() as u64),
    );
    // Engines still owned are locals: dropped on return and on unwinding, not on exit or signal.
    end(case.ending)
}

/// Waits for the process op `n` made and journals how it ended.
fn child_exit(op: &Op, n: usize, pid: libc::pid_t) {
    let line = Line::new("fuzz_child_exit").with("role", ops::process_name(op, n).unwrap_or_default());
    match sys::wait_for(pid) {
        Ok(raw) => wiring::record_exit(line, ExitStatus::from_raw(raw)),
        Err(error) => give_up(&format!("waitpid: {error}")),
    }
}
