//! How cases are generated and shrunk: a proptest-state-machine [`ReferenceStateMachine`] whose
//! state is what generation needs (the engines the case still owns, how many it created, how
//! many processes it started). Each operation is drawn from what the state allows (a `compile`
//! names an engine the case owns, ...), and shrinking deletes or simplifies operations only
//! while the preconditions still hold, so every case generated or shrunk is one the model
//! accepts. What a case must do is the model's business ([`super::model`]), not this one's.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use proptest::prelude::*;
use proptest::strategy::Union;
use proptest_state_machine::ReferenceStateMachine;

use super::ops::{Op, Place};
use crate::contract::Ending;

/// The cache files cases choose from.
pub const FILE_POOL: [&str; 2] = ["a.rtc", "b.rtc"];

/// Kernels cases choose from (few, so that hits happen).
const KERNELS: u8 = 4;

/// Most engines one case creates.
const MAX_ENGINES: u32 = 6;

/// Most `fork`s and `spawn`s in one case.
const MAX_PROCESSES: u32 = 3;

/// What generation tracks while it draws a case's operations.
#[derive(Clone, Debug, Default)]
pub struct Drawn {
    /// Engines created and still owned by the case (not dropped, leaked or moved).
    owned: Vec<u32>,
    /// Engines created so far.
    created: u32,
    /// Processes forked or spawned so far.
    processes: u32,
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

/// The endings a forked child or a case draws from (the contract table's rows).
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
    let mut choices: Vec<(u32, BoxedStrategy<Ending>)> =
        endings.into_iter().zip(weights).map(|(ending, weight)| (weight, Just(ending).boxed())).collect();
    choices.push((weights[7], Just(Ending::SigKill).boxed()));
    Union::new_weighted(choices)
}

impl ReferenceStateMachine for CaseMachine {
    type State = Drawn;
    type Transition = Op;

    fn init_state() -> BoxedStrategy<Drawn> {
        Just(Drawn::default()).boxed()
    }

    fn transitions(state: &Drawn) -> BoxedStrategy<Op> {
        let mut choices: Vec<(u32, BoxedStrategy<Op>)> = Vec::new();
        if state.created < MAX_ENGINES {
            let engine = state.created;
            let create = (file(), prop::bool::weighted(0.15)).prop_map(move |(path, handler)| Op::Create {
                engine,
                path,
                handler,
            });
            choices.push((4, create.boxed()));
        }
        if state.processes < MAX_PROCESSES {
            let fork = ending([1; 8]).prop_map(|ending| Op::Fork { ending });
            choices.push((1, fork.boxed()));
            choices.push((1, (file(), kernel()).prop_map(|(path, kernel)| Op::Spawn { path, kernel }).boxed()));
        }
        if !state.owned.is_empty() {
            let engine = proptest::sample::select(state.owned.clone());
            let compile = (engine.clone(), kernel()).prop_map(|(engine, kernel)| Op::Compile { engine, kernel });
            let moved = (engine.clone(), proptest::sample::select(Place::ALL.to_vec()))
                .prop_map(|(engine, to)| Op::Move { engine, to });
            let swap = (engine.clone(), file()).prop_map(|(engine, path)| Op::Swap { engine, path });
            choices.extend([
                (6, compile.boxed()),
                (2, engine.clone().prop_map(|engine| Op::Save { engine }).boxed()),
                (2, engine.clone().prop_map(|engine| Op::Drop { engine }).boxed()),
                (1, engine.prop_map(|engine| Op::Leak { engine }).boxed()),
                (2, moved.boxed()),
                (1, swap.boxed()),
            ]);
        }
        Union::new_weighted(choices).boxed()
    }

    fn preconditions(state: &Drawn, op: &Op) -> bool {
        match op {
            // A shrunk case may skip numbers; an engine is never created twice.
            Op::Create { engine, .. } => *engine >= state.created && state.created < MAX_ENGINES,
            Op::Fork { .. } | Op::Spawn { .. } => state.processes < MAX_PROCESSES,
            other => other.acts_on().is_some_and(|engine| state.owned.contains(&engine)),
        }
    }

    fn apply(mut state: Drawn, op: &Op) -> Drawn {
        match op {
            Op::Create { engine, .. } => {
                state.owned.push(*engine);
                state.created = engine + 1;
            }
            Op::Drop { engine } | Op::Leak { engine } | Op::Move { engine, .. } => {
                state.owned.retain(|owned| owned != engine);
            }
            Op::Fork { .. } | Op::Spawn { .. } => state.processes += 1,
            Op::Compile { .. } | Op::Save { .. } | Op::Swap { .. } => {}
        }
        state
    }
}

/// A generated case: the machine's value (its final state, the operations, and the counter of
/// operations the run got through, which tells shrinking what it may drop) and the ending.
pub type Generated = ((Drawn, Vec<Op>, Option<Arc<AtomicUsize>>), Ending);

/// Cases of 1 to `max_ops` operations and an ending (returning most often).
pub fn cases(max_ops: usize) -> impl Strategy<Value = Generated> {
    (CaseMachine::sequential_strategy(1..=max_ops.max(1)), ending([4, 2, 1, 1, 1, 1, 1, 1]))
}
