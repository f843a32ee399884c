//! How cases are generated and shrunk: a proptest-state-machine [`ReferenceStateMachine`] whose
//! state is what generation needs (the engines the case still owns, how many it created, how
//! many processes it started). Each operation is drawn from what the state allows (a `compile`
//! names an engine the case owns, ...), and shrinking deletes or simplifies operations only
//! while the preconditions still hold, so every case generated or shrunk is one the model
//! accepts. What a case must do is the model's business ([`super::model`]), not this one's.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use proptest::prelude::*;
use proptest::strategy::Union;
use proptest_state_machine::ReferenceStateMachine;

use super::ops::{Op, Place, SaveFault, WAIT_MS};
use crate::contract::Ending;

/// The cache files cases choose from.
pub const FILE_POOL: [&str; 2] = ["a.rtc", "b.rtc"];

/// Kernels cases choose from (few, so that hits happen).
const KERNELS: u8 = 4;

/// Most engines one case creates.
const MAX_ENGINES: u32 = 6;

/// Most `fork`s and `spawn`s in one case.
const MAX_PROCESSES: u32 = 3;

/// Most thread operations in one case (each racing one operation doubles the predictions).
const MAX_THREADS: u32 = 2;

/// What generation tracks while it draws a case's operations.
#[derive(Clone, Debug, Default)]
pub struct Drawn {
    /// Engines created and still owned by the case (not dropped, leaked or moved).
    owned: Vec<u32>,
    /// Engines created so far.
    created: u32,
    /// Processes forked or spawned so far.
    processes: u32,
    /// The cache file of each owned engine.
    paths: BTreeMap<u32, String>,
    /// Files an owned engine saved explicitly (a `spawn` on one, then that engine's next save,
    /// is the shape of a lost update: another process writes between two saves of one handle).
    saved: Vec<String>,
    /// Thread operations so far.
    threads: u32,
    /// Whether an engine installed the termination handler.
    handler: bool,
    /// Whether the case waits already.
    waited: bool,
    /// The engine the last operation started a thread on: its thread runs alongside the next
    /// operation, which is then most often a save of that engine (the race a save must win).
    threading: Option<u32>,
}

/// The operations of a case, as a reference state machine.
#[derive(Debug)]
pub struct CaseMachine;

fn file() -> impl Strategy<Value = String> + Clone {
    (0..FILE_POOL.len()).prop_map(|index| FILE_POOL[index].to_owned())
}

fn kernel() -> impl Strategy<Value = String> + Clone {
    (0..KERNELS).prop_map(|index| format!("k{index}"))
}

/// The endings a forked child or a case draws from (the contract table's rows: return,
/// exit(0), exit(3), panic, SIGTERM, SIGINT, abort, SIGKILL), each with its weight (0: never).
pub fn ending(weights: [u32; 8]) -> impl Strategy<Value = Ending> {
    let endings = [
        Ending::Return,
        Ending::Exit(0),
        Ending::Exit(3),
        Ending::Panic,
        Ending::SigTerm,
        Ending::SigInt,
        Ending::Abort,
    ];
    let choices = endings.into_iter().chain([Ending::SigKill]).zip(weights);
    let choices = choices.filter(|(_, weight)| *weight > 0).map(|(ending, weight)| (weight, Just(ending).boxed()));
    Union::new_weighted(choices.collect())
}

impl ReferenceStateMachine for CaseMachine {
    type State = Drawn;
    type Transition = Op;

    fn init_state() -> BoxedStrategy<Drawn> {
        Just(Drawn::default()).boxed()
    }

    fn transitions(state: &Drawn) -> BoxedStrategy<Op> {
        // Weights are out of about 60 when the case owns an engine.
        let mut choices: Vec<(u32, BoxedStrategy<Op>)> = Vec::new();
        if let Some(engine) = state.threading {
            choices.push((20, Just(Op::Save { engine }).boxed()));
        }
        if state.created < MAX_ENGINES {
            let engine = state.created;
            let create = (file(), prop::bool::weighted(0.15)).prop_map(move |(path, handler)| Op::Create {
                engine,
                path,
                handler,
            });
            choices.push((12, create.boxed()));
        }
        if state.processes < MAX_PROCESSES {
            let fork = ending([1; 8]).prop_map(|ending| Op::Fork { ending });
            choices.push((3, fork.boxed()));
            choices.push((3, (file(), kernel()).prop_map(|(path, kernel)| Op::Spawn { path, kernel }).boxed()));
            if !state.saved.is_empty() {
                // Between two saves of one handle: another process saves the same file.
                let path = proptest::sample::select(state.saved.clone());
                choices.push((9, (path, kernel()).prop_map(|(path, kernel)| Op::Spawn { path, kernel }).boxed()));
            }
        }
        if state.handler && !state.waited {
            // Rare (each costs its wait): time passing before the ending, which `cases` then
            // draws mostly from the termination signals.
            choices.push((1, Just(Op::Wait { ms: WAIT_MS }).boxed()));
        }
        if !state.owned.is_empty() {
            let engine = proptest::sample::select(state.owned.clone());
            let compile = (engine.clone(), kernel()).prop_map(|(engine, kernel)| Op::Compile { engine, kernel });
            let moved = (engine.clone(), proptest::sample::select(Place::ALL.to_vec()))
                .prop_map(|(engine, to)| Op::Move { engine, to });
            let swap = (engine.clone(), file()).prop_map(|(engine, path)| Op::Swap { engine, path });
            choices.extend([
                (18, compile.boxed()),
                (6, engine.clone().prop_map(|engine| Op::Save { engine }).boxed()),
                (6, engine.clone().prop_map(|engine| Op::Drop { engine }).boxed()),
                (3, engine.clone().prop_map(|engine| Op::Leak { engine }).boxed()),
                (6, moved.boxed()),
                (3, swap.boxed()),
            ]);
            let fault = proptest::sample::select(SaveFault::ALL.to_vec());
            let fail_save = (engine.clone(), fault).prop_map(|(engine, at)| Op::FailSave { engine, at });
            choices.push((6, fail_save.boxed()));
            if state.threads < MAX_THREADS {
                let thread_compile =
                    (engine.clone(), kernel()).prop_map(|(engine, kernel)| Op::ThreadCompile { engine, kernel });
                choices.push((6, thread_compile.boxed()));
                choices.push((3, engine.prop_map(|engine| Op::ThreadSave { engine }).boxed()));
            }
        }
        Union::new_weighted(choices).boxed()
    }

    fn preconditions(state: &Drawn, op: &Op) -> bool {
        match op {
            // A shrunk case may skip numbers; an engine is never created twice.
            Op::Create { engine, .. } => *engine >= state.created && state.created < MAX_ENGINES,
            Op::Fork { .. } | Op::Spawn { .. } => state.processes < MAX_PROCESSES,
            Op::Wait { .. } => !state.waited,
            Op::ThreadCompile { engine, .. } | Op::ThreadSave { engine } => {
                state.threads < MAX_THREADS && state.owned.contains(engine)
            }
            other => other.acts_on().is_some_and(|engine| state.owned.contains(&engine)),
        }
    }

    fn apply(mut state: Drawn, op: &Op) -> Drawn {
        state.threading = match op {
            Op::ThreadCompile { engine, .. } | Op::ThreadSave { engine } => Some(*engine),
            _ => None,
        };
        match op {
            Op::Create { engine, path, handler } => {
                state.owned.push(*engine);
                state.created = engine + 1;
                state.paths.insert(*engine, path.clone());
                state.handler |= handler;
            }
            Op::Drop { engine } | Op::Leak { engine } | Op::Move { engine, .. } => {
                state.owned.retain(|owned| owned != engine);
                state.paths.remove(engine);
            }
            Op::Fork { .. } | Op::Spawn { .. } => state.processes += 1,
            Op::Save { engine } => {
                if let Some(path) = state.paths.get(engine)
                    && !state.saved.contains(path)
                {
                    state.saved.push(path.clone());
                }
            }
            Op::Swap { engine, path } => {
                state.paths.insert(*engine, path.clone());
            }
            Op::ThreadCompile { .. } | Op::ThreadSave { .. } => state.threads += 1,
            Op::Wait { .. } => state.waited = true,
            Op::Compile { .. } | Op::FailSave { .. } => {}
        }
        state
    }
}

/// A generated case: the machine's value (its final state, the operations, and the counter of
/// operations the run got through, which tells shrinking what it may drop) and the ending.
pub type Generated = ((Drawn, Vec<Op>, Option<Arc<AtomicUsize>>), Ending);

/// Cases of 1 to `max_ops` operations and an ending (returning most often; a case that waits
/// ends mostly by a termination signal, which its handler must still save for).
pub fn cases(max_ops: usize) -> impl Strategy<Value = Generated> {
    CaseMachine::sequential_strategy(1..=max_ops.max(1)).prop_flat_map(|machine| {
        let waits = machine.1.iter().any(|op| matches!(op, Op::Wait { .. }));
        let weights = if waits { [1, 0, 1, 0, 4, 4, 0, 0] } else { [4, 2, 1, 1, 1, 1, 1, 1] };
        (Just(machine), ending(weights))
    })
}
