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

use super::ops::{FileUsers, Op, Place, SaveFault, User, WAIT_MS};
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
#[derive(Clone, Debug)]
pub struct Drawn {
    /// How the case ends, drawn first (a `wait` is drawn only before a termination signal).
    ending: Ending,
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
    /// Whether an engine the case still owns compiled something (is likely dirty).
    compiled: bool,
    /// The engine the last operation started a thread on: its thread runs alongside the next
    /// operation, which is then most often a save of that engine (the race a save must win).
    threading: Option<u32>,
    /// Who uses each file: `remove` and `clear` are drawn only on a file of the engine's own.
    users: FileUsers,
}

/// The operations of a case, as a reference state machine.
#[derive(Debug)]
pub struct CaseMachine;

impl CaseMachine {
    /// A case waits at most once, before a termination signal, with the handler installed.
    fn may_wait(state: &Drawn) -> bool {
        state.handler && !state.waited && matches!(state.ending, Ending::SigTerm | Ending::SigInt)
    }

    /// Whether engine `engine` may `remove` or `clear`: no one else uses its file.
    fn may_claim(state: &Drawn, engine: u32) -> bool {
        state.paths.get(&engine).is_some_and(|path| state.users.may_claim(path, User::Engine(engine)))
    }
}

/// The files of the pool that `user` may use, or `None` when every one is another's.
fn file_for(users: &FileUsers, user: User) -> Option<BoxedStrategy<String>> {
    let files: Vec<String> =
        FILE_POOL.iter().filter(|path| users.may_use(path, user)).map(|path| (*path).to_owned()).collect();
    (!files.is_empty()).then(|| proptest::sample::select(files).boxed())
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
        ending([4, 2, 1, 1, 1, 1, 1, 1])
            .prop_map(|ending| Drawn {
                ending,
                owned: Vec::new(),
                created: 0,
                processes: 0,
                paths: BTreeMap::new(),
                saved: Vec::new(),
                threads: 0,
                handler: false,
                waited: false,
                compiled: false,
                threading: None,
                users: FileUsers::default(),
            })
            .boxed()
    }

    fn transitions(state: &Drawn) -> BoxedStrategy<Op> {
        // Weights are out of about 60 when the case owns an engine.
        let mut choices: Vec<(u32, BoxedStrategy<Op>)> = Vec::new();
        if let Some(engine) = state.threading {
            choices.push((40, Just(Op::Save { engine }).boxed()));
            if Self::may_claim(state, engine) {
                // A removal or a clear while the thread saves (or compiles): a change the save
                // must neither lose nor undo with what it reads back.
                choices.push((6, kernel().prop_map(move |kernel| Op::Remove { engine, kernel }).boxed()));
                choices.push((3, Just(Op::Clear { engine }).boxed()));
            }
        }
        if state.created < MAX_ENGINES
            && let Some(file) = file_for(&state.users, User::Engine(state.created))
        {
            let engine = state.created;
            let create = (file, prop::bool::weighted(0.15)).prop_map(move |(path, handler)| Op::Create {
                engine,
                path,
                handler,
            });
            choices.push((12, create.boxed()));
        }
        if state.processes < MAX_PROCESSES {
            let fork = ending([1; 8]).prop_map(|ending| Op::Fork { ending });
            choices.push((3, fork.boxed()));
            if let Some(file) = file_for(&state.users, User::Spawned) {
                choices.push((3, (file, kernel()).prop_map(|(path, kernel)| Op::Spawn { path, kernel }).boxed()));
            }
            let saved: Vec<String> =
                state.saved.iter().filter(|path| state.users.may_use(path, User::Spawned)).cloned().collect();
            if !saved.is_empty() {
                // Between two saves of one handle: another process saves the same file.
                let path = proptest::sample::select(saved);
                choices.push((9, (path, kernel()).prop_map(|(path, kernel)| Op::Spawn { path, kernel }).boxed()));
            }
        }
        if state.compiled && Self::may_wait(state) {
            // Time passing before the signal, longer than the exit budget: the handler must
            // still save what a live engine compiled. Only here: each wait costs its time.
            choices.push((24, Just(Op::Wait { ms: WAIT_MS }).boxed()));
        }
        if !state.owned.is_empty() {
            let engine = proptest::sample::select(state.owned.clone());
            let compile = (engine.clone(), kernel()).prop_map(|(engine, kernel)| Op::Compile { engine, kernel });
            let moved = (engine.clone(), proptest::sample::select(Place::ALL.to_vec()))
                .prop_map(|(engine, to)| Op::Move { engine, to });
            let users = state.users.clone();
            let swap = (engine.clone(), proptest::sample::select(FILE_POOL.to_vec()))
                .prop_filter("the file is another engine's", move |(engine, path)| {
                    users.may_use(path, User::Engine(*engine))
                })
                .prop_map(|(engine, path)| Op::Swap { engine, path: path.to_owned() });
            choices.extend([
                (18, compile.boxed()),
                (6, engine.clone().prop_map(|engine| Op::Save { engine }).boxed()),
                (6, engine.clone().prop_map(|engine| Op::Drop { engine }).boxed()),
                (3, engine.clone().prop_map(|engine| Op::Leak { engine }).boxed()),
                (6, moved.boxed()),
                (3, swap.boxed()),
            ]);
            let claimers: Vec<u32> =
                state.owned.iter().copied().filter(|engine| Self::may_claim(state, *engine)).collect();
            if !claimers.is_empty() {
                let claimer = proptest::sample::select(claimers);
                let remove = (claimer.clone(), kernel()).prop_map(|(engine, kernel)| Op::Remove { engine, kernel });
                choices.push((3, remove.boxed()));
                choices.push((1, claimer.prop_map(|engine| Op::Clear { engine }).boxed()));
            }
            let fault = proptest::sample::select(SaveFault::ALL.to_vec());
            let fail_save = (engine.clone(), fault).prop_map(|(engine, at)| Op::FailSave { engine, at });
            choices.push((6, fail_save.boxed()));
            if state.threads < MAX_THREADS {
                let thread_compile =
                    (engine.clone(), kernel()).prop_map(|(engine, kernel)| Op::ThreadCompile { engine, kernel });
                choices.push((12, thread_compile.boxed()));
                choices.push((3, engine.prop_map(|engine| Op::ThreadSave { engine }).boxed()));
            }
        }
        Union::new_weighted(choices).boxed()
    }

    fn preconditions(state: &Drawn, op: &Op) -> bool {
        match op {
            // A shrunk case may skip numbers; an engine is never created twice.
            Op::Create { engine, path, .. } => {
                *engine >= state.created
                    && state.created < MAX_ENGINES
                    && state.users.may_use(path, User::Engine(*engine))
            }
            Op::Fork { .. } => state.processes < MAX_PROCESSES,
            Op::Spawn { path, .. } => state.processes < MAX_PROCESSES && state.users.may_use(path, User::Spawned),
            Op::Swap { engine, path } => {
                state.owned.contains(engine) && state.users.may_use(path, User::Engine(*engine))
            }
            Op::Remove { engine, .. } | Op::Clear { engine } => {
                state.owned.contains(engine) && Self::may_claim(state, *engine)
            }
            Op::Wait { .. } => Self::may_wait(state),
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
                let _ = state.users.uses(path, User::Engine(*engine));
                state.owned.push(*engine);
                state.created = engine + 1;
                state.paths.insert(*engine, path.clone());
                state.handler |= handler;
            }
            Op::Drop { engine } | Op::Leak { engine } | Op::Move { engine, .. } => {
                state.owned.retain(|owned| owned != engine);
                state.paths.remove(engine);
                state.compiled &= !state.owned.is_empty();
            }
            Op::Compile { .. } => state.compiled = true,
            Op::Fork { .. } => state.processes += 1,
            Op::Spawn { path, .. } => {
                let _ = state.users.uses(path, User::Spawned);
                state.processes += 1;
            }
            Op::Save { engine } => {
                if let Some(path) = state.paths.get(engine)
                    && !state.saved.contains(path)
                {
                    state.saved.push(path.clone());
                }
            }
            Op::Swap { engine, path } => {
                let _ = state.users.uses(path, User::Engine(*engine));
                state.paths.insert(*engine, path.clone());
            }
            Op::ThreadCompile { .. } => {
                state.threads += 1;
                state.compiled = true;
            }
            Op::ThreadSave { .. } => state.threads += 1,
            Op::Wait { .. } => state.waited = true,
            // A removal or a clear makes the handle dirty, as a compile does.
            Op::Remove { engine, .. } | Op::Clear { engine } => {
                if let Some(path) = state.paths.get(engine) {
                    let _ = state.users.claim(path, User::Engine(*engine));
                }
                state.compiled = true;
            }
            Op::FailSave { .. } => {}
        }
        state
    }
}

/// A generated case: the machine's value (its final state, the operations, and the counter of
/// operations the run got through, which tells shrinking what it may drop) and the ending.
pub type Generated = ((Drawn, Vec<Op>, Option<Arc<AtomicUsize>>), Ending);

/// Cases of 1 to `max_ops` operations and an ending (returning most often), drawn first as the
/// machine's initial state.
pub fn cases(max_ops: usize) -> impl Strategy<Value = Generated> {
    CaseMachine::sequential_strategy(1..=max_ops.max(1)).prop_map(|machine| {
        let ending = machine.0.ending;
        (machine, ending)
    })
}
#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    use super::*;
    use crate::fuzz::model::predict_all;
    use crate::fuzz::ops::Case;

    /// 3 000 cases (the CI budget) draw every operation, wait only before a termination signal,
    /// and draw the shapes the new operations exist for often enough: a thread's compile racing
    /// a save of its engine, a spawn on a file between two saves of one handle, racy cases the
    /// model must predict more than one outcome for.
    #[test]
    fn three_thousand_cases_draw_every_shape_the_oracles_need() {
        let mut runner = TestRunner::deterministic();
        let strategy = cases(6);
        let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
        let (mut thread_then_save, mut spawn_between_saves, mut racy) = (0, 0, 0);
        for _ in 0..3000 {
            let ((_, ops, _), ending) = strategy.new_tree(&mut runner).unwrap().current();
            for op in &ops {
                let text = op.to_string();
                *kinds.entry(text.split(' ').next().unwrap_or_default().to_owned()).or_default() += 1;
                if matches!(op, Op::Wait { .. }) {
                    assert!(matches!(ending, Ending::SigTerm | Ending::SigInt), "a wait before {ending}");
                }
            }
            thread_then_save += ops
                .windows(2)
                .filter(|pair| {
                    matches!((&pair[0], &pair[1]), (Op::ThreadCompile { engine: a, .. }, Op::Save { engine: b }) if a == b)
                })
                .count();
            let first_save = ops.iter().position(|op| matches!(op, Op::Save { .. }));
            let spawn_after = |at: usize| ops[at..].iter().any(|op| matches!(op, Op::Spawn { .. }));
            spawn_between_saves += usize::from(first_save.is_some_and(spawn_after));
            let case = Case { ops, ending };
            racy += usize::from(predict_all(&case).expect("every generated case is legal").len() > 1);
        }
        let every = ["create", "compile", "save", "drop", "leak", "move", "swap", "fork", "spawn"];
        let new = ["thread-compile", "thread-save", "fail-save", "wait", "remove", "clear"];
        for kind in every.iter().chain(&new) {
            assert!(kinds.get(*kind).copied().unwrap_or(0) >= 5, "`{kind}` drawn too rarely: {kinds:?}");
        }
        assert!(thread_then_save >= 100, "{thread_then_save} thread-compile + save pairs");
        assert!(spawn_between_saves >= 60, "{spawn_between_saves} cases spawn after a save");
        assert!(racy >= 100, "{racy} racy cases");
        // Each wait costs its time: few enough to keep 3 000 cases within CI's budget.
        assert!(kinds["wait"] <= 40, "{} waits", kinds["wait"]);
    }
}
