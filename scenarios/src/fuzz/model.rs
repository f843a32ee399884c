//! The reference model: what the contract (DESIGN.md) says a [`Case`] must do, predicted
//! without running anything.
//!
//! It tracks, per engine, its cache file, the kernels its handle holds, the removals and the
//! clear it has not saved yet, and whether it is dirty; per file, the kernels on disk; per
//! process, the saves of each file. A save of a dirty handle merges: the file becomes the union
//! of what it held and what the handle holds, less the handle's removals (after a `clear`, only
//! what the handle holds), and the handle learns what the file then holds. A clean handle never
//! writes. A handle saves exactly once at drop,
//! at swap, or (alive and dirty) at the ending when the contract table says so. A forked child
//! saves nothing of its parent's. A save that fails (`fail-save` of a dirty handle) writes
//! nothing, counts a failed save and leaves the handle dirty, so its next save writes everything.
//!
//! A thread operation (`thread-compile`, `thread-save`) overlaps the next operation when that
//! one only borrows an engine ([`Op::overlaps_a_thread`]); its effect then lands before or after
//! that operation's, and the model predicts both: [`predict_all`] returns one prediction per
//! order of each such pair (each effect is atomic where it matters: a compile inserts under the
//! contents lock, a save snapshots its dirty set under it, and a file is replaced by a rename),
//! and a run passes when it matches one of them. Anything else is a bug.

use std::collections::{BTreeMap, BTreeSet};

use exit_harness::ExitOutcome;

use super::ops::{Case, FileUsers, MAIN, Op, User, process_name};
use crate::contract::{Ending, contract};

/// Saves per process per file: `saves["main"]["a.rtc"] == 1`.
pub type Saves = BTreeMap<String, BTreeMap<String, u64>>;

/// Whether a compile finds its kernel in the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Found: nothing compiled.
    Hit,
    /// Compiled now.
    Miss,
}

impl Origin {
    /// `hit` or `miss`, as the child journals it.
    pub fn name(self) -> &'static str {
        match self {
            Origin::Hit => "hit",
            Origin::Miss => "miss",
        }
    }
}

/// What must hold right after one operation (in the case's own process).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// The exit registry's size: the live autosave handles.
    pub registry: u64,
    /// For a compile: hit or miss.
    pub origin: Option<Origin>,
    /// For a `remove`: whether the handle held the kernel (what `RuntimeCache::remove` returns).
    pub held: Option<bool>,
    /// Saves so far, of every process.
    pub saves: Saves,
}

/// What an operation on the main thread answers, where the model predicts it.
#[derive(Clone, Copy, Debug, Default)]
struct Answer {
    origin: Option<Origin>,
    held: Option<bool>,
}

/// What must hold at the end of the run: what a reproducer writes down as its expectations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expectations {
    /// How the case's process ends.
    pub exit: ExitOutcome,
    /// Whether stderr may hold the planned panic's message (else it must be empty).
    pub panic_message: bool,
    /// The exit registry's size when the ending begins (live handles).
    pub registry: u64,
    /// Saves per process per file, over the whole run (zeros included for every file the
    /// process could have saved).
    pub saves: Saves,
    /// The kernels each cache file holds afterwards (empty: the file does not exist).
    pub entries: BTreeMap<String, BTreeSet<String>>,
    /// How each forked or spawned process ended.
    pub children: BTreeMap<String, ExitOutcome>,
    /// Saves that failed (`save_failed` events), each made to fail by a `fail-save`.
    pub failed_saves: u64,
}

/// The model's full prediction for a case (the oracles it implies: [`super::oracles`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prediction {
    /// After each operation.
    pub steps: Vec<Step>,
    /// At the end.
    pub expect: Expectations,
}

/// A case that breaks the rules: which op (1-based) and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("op {op}: {message}")]
pub struct CaseError {
    /// The 1-based operation number.
    pub op: usize,
    /// What is wrong.
    pub message: String,
}

#[derive(Clone, Debug)]
struct EngineState {
    path: String,
    kernels: BTreeSet<String>,
    /// Kernels removed since the last save: the next save keeps them out of the file.
    removed: BTreeSet<String>,
    /// Cleared since the last save: the next save writes only what the handle holds.
    cleared: bool,
    dirty: bool,
    /// Still owned by the case (not leaked or moved): operations may act on it.
    owned: bool,
}

struct State {
    engines: BTreeMap<u32, EngineState>,
    retired: BTreeSet<u32>,
    files: BTreeMap<String, BTreeSet<String>>,
    saves: Saves,
    handler: bool,
    panics: bool,
    children: BTreeMap<String, ExitOutcome>,
    failed_saves: u64,
    /// Who uses each file: a `remove` or `clear` needs a file of its own.
    users: FileUsers,
}

impl EngineState {
    /// Caches `kernel` if the handle does not hold it (a miss: compiled, dirty, no longer a
    /// pending removal); true if it did.
    fn insert(&mut self, kernel: &str) -> bool {
        let missed = self.kernels.insert(kernel.to_owned());
        if missed {
            self.removed.remove(kernel);
            self.dirty = true;
        }
        missed
    }
}

impl State {
    /// A save by `process` of a handle: merge, count, clean.
    fn save(&mut self, process: &str, engine: &mut EngineState) {
        if !engine.dirty {
            return;
        }
        let on_disk = self.files.entry(engine.path.clone()).or_default();
        if std::mem::take(&mut engine.cleared) {
            on_disk.clone_from(&engine.kernels);
        } else {
            on_disk.extend(engine.kernels.iter().cloned());
        }
        for removed in std::mem::take(&mut engine.removed) {
            on_disk.remove(&removed);
        }
        engine.kernels.clone_from(on_disk);
        engine.dirty = false;
        *self.saves.entry(process.into()).or_default().entry(engine.path.clone()).or_default() += 1;
    }

    fn note_file(&mut self, process: &str, path: &str) {
        self.saves.entry(process.into()).or_default().entry(path.into()).or_default();
    }

    fn loaded(&self, path: &str) -> BTreeSet<String> {
        self.files.get(path).cloned().unwrap_or_default()
    }

    /// A fresh, clean handle on `path`, holding what the file holds.
    fn opened(&self, path: &str) -> EngineState {
        EngineState {
            path: path.to_owned(),
            kernels: self.loaded(path),
            removed: BTreeSet::new(),
            cleared: false,
            dirty: false,
            owned: true,
        }
    }
}

/// Predicts `case` with every thread's effect landing before the operation it overlaps, or says
/// which op breaks the rules (an engine used before `create`, after `drop`/`leak`/`move`, or
/// created twice). A case without thread operations has this one prediction only.
pub fn predict(case: &Case) -> Result<Prediction, CaseError> {
    predict_ordered(case, &mut |_| true)
}

/// Most thread operations a case may overlap with another operation (each doubles the
/// predictions).
pub const MAX_OVERLAPS: usize = 4;

/// Every legal outcome of `case`: one prediction per order of each thread operation and the
/// operation it overlaps (duplicates removed; the first is [`predict`]'s).
pub fn predict_all(case: &Case) -> Result<Vec<Prediction>, CaseError> {
    let overlaps = case.ops.windows(2).filter(|pair| pair[0].is_threaded() && pair[1].overlaps_a_thread()).count();
    if overlaps > MAX_OVERLAPS {
        let op = case.ops.iter().position(Op::is_threaded).map_or(1, |index| index + 1);
        return Err(CaseError {
            op,
            message: format!("{overlaps} overlapping thread operations (at most {MAX_OVERLAPS})"),
        });
    }
    let mut predictions: Vec<Prediction> = Vec::new();
    for orders in 0..1u32 << overlaps {
        // Bit i clear: the i-th overlapping thread's effect lands first.
        let mut next = 0;
        let mut thread_first = |_: usize| {
            let first = orders & (1 << next) == 0;
            next += 1;
            first
        };
        let prediction = predict_ordered(case, &mut thread_first)?;
        if !predictions.contains(&prediction) {
            predictions.push(prediction);
        }
    }
    Ok(predictions)
}

/// A thread operation started at (1-based) op `n`, not yet joined.
struct Pending {
    n: usize,
    op: Op,
}

/// Predicts `case`; `thread_first(n)` says whether the thread started at op `n` lands its
/// effect before the operation it overlaps.
fn predict_ordered(case: &Case, thread_first: &mut dyn FnMut(usize) -> bool) -> Result<Prediction, CaseError> {
    let mut state = State {
        engines: BTreeMap::new(),
        retired: BTreeSet::new(),
        files: BTreeMap::new(),
        saves: BTreeMap::from([(MAIN.into(), BTreeMap::new())]),
        handler: false,
        panics: false,
        children: BTreeMap::new(),
        failed_saves: 0,
        users: FileUsers::default(),
    };
    let mut steps = Vec::with_capacity(case.ops.len());
    let mut pending: Option<Pending> = None;
    for (index, op) in case.ops.iter().enumerate() {
        let n = index + 1;
        let fail = |message: String| CaseError { op: n, message };
        if let Some(id) = op.acts_on() {
            match state.engines.get(&id) {
                Some(engine) if engine.owned => {}
                Some(_) => return Err(fail(format!("e{id} was leaked or moved; the case no longer owns it"))),
                None if state.retired.contains(&id) => return Err(fail(format!("e{id} was dropped"))),
                None => return Err(fail(format!("e{id} was never created"))),
            }
        }
        if op.is_threaded() {
            // Journaled before the thread starts: its effect shows from the next step on.
            if let Some(earlier) = pending.take() {
                state.apply(&earlier.op, earlier.n)?;
            }
            let registry = state.engines.len() as u64;
            steps.push(Step { registry, origin: None, held: None, saves: state.saves.clone() });
            pending = Some(Pending { n, op: op.clone() });
            continue;
        }
        let answer = match pending.take() {
            None => state.apply(op, n)?,
            Some(thread) if !op.overlaps_a_thread() || thread_first(thread.n) => {
                state.apply(&thread.op, thread.n)?;
                state.apply(op, n)?
            }
            Some(thread) => {
                let answer = state.apply(op, n)?;
                state.apply(&thread.op, thread.n)?;
                answer
            }
        };
        let Answer { origin, held } = answer;
        steps.push(Step { registry: state.engines.len() as u64, origin, held, saves: state.saves.clone() });
    }
    if let Some(thread) = pending.take() {
        // Joined before the ending begins.
        state.apply(&thread.op, thread.n)?;
    }
    let registry = state.engines.len() as u64;
    let row = contract(case.ending, state.handler);
    if row.saves {
        let mut engines = std::mem::take(&mut state.engines);
        for engine in engines.values_mut() {
            state.save(MAIN, engine);
        }
    }
    state.panics |= row.panic_message;
    let entries = state
        .saves
        .values()
        .flat_map(|files| files.keys())
        .map(|path| (path.clone(), state.files.get(path).cloned().unwrap_or_default()));
    let entries = entries.collect();
    Ok(Prediction {
        steps,
        expect: Expectations {
            exit: row.exit,
            panic_message: state.panics,
            registry,
            saves: state.saves,
            entries,
            children: state.children,
            failed_saves: state.failed_saves,
        },
    })
}

impl State {
    /// Applies op `n` (already checked to act on an engine the case owns); for a compile on
    /// the main thread, says whether it hits.
    fn apply(&mut self, op: &Op, n: usize) -> Result<Answer, CaseError> {
        let state = self;
        let fail = |message: String| CaseError { op: n, message };
        let mut answer = Answer::default();
        match op {
            Op::Create { engine, path, handler } => {
                if state.engines.contains_key(engine) || state.retired.contains(engine) {
                    return Err(fail(format!("e{engine} already exists")));
                }
                state.users.uses(path, User::Engine(*engine)).map_err(fail)?;
                state.handler |= handler;
                state.note_file(MAIN, path);
                let handle = state.opened(path);
                state.engines.insert(*engine, handle);
            }
            Op::Compile { engine, kernel } => {
                let engine = state.engines.get_mut(engine).expect("checked above");
                answer.origin = Some(if engine.insert(kernel) { Origin::Miss } else { Origin::Hit });
            }
            Op::Remove { engine: id, kernel } => {
                let engine = state.engines.get_mut(id).expect("checked above");
                state.users.claim(&engine.path, User::Engine(*id)).map_err(fail)?;
                answer.held = Some(engine.kernels.remove(kernel));
                engine.removed.insert(kernel.clone());
                engine.dirty = true;
            }
            Op::Clear { engine: id } => {
                let engine = state.engines.get_mut(id).expect("checked above");
                state.users.claim(&engine.path, User::Engine(*id)).map_err(fail)?;
                engine.kernels.clear();
                engine.removed.clear();
                engine.cleared = true;
                engine.dirty = true;
            }
            Op::Save { engine } => {
                let mut handle = state.engines.remove(engine).expect("checked above");
                state.save(MAIN, &mut handle);
                state.engines.insert(*engine, handle);
            }
            Op::Drop { engine } => {
                let mut handle = state.engines.remove(engine).expect("checked above");
                state.save(MAIN, &mut handle);
                state.retired.insert(*engine);
            }
            Op::Leak { engine } | Op::Move { engine, .. } => {
                state.engines.get_mut(engine).expect("checked above").owned = false;
            }
            Op::Swap { engine, path } => {
                let mut handle = state.engines.remove(engine).expect("checked above");
                if handle.path != *path {
                    state.users.uses(path, User::Engine(*engine)).map_err(fail)?;
                    // The new cache opens first, then the old one saves once (trigger swap).
                    let opened = state.opened(path);
                    state.save(MAIN, &mut handle);
                    state.note_file(MAIN, path);
                    handle = opened;
                }
                state.engines.insert(*engine, handle);
            }
            Op::Fork { ending } => {
                let name = process_name(op, n).expect("fork names a process");
                for path in state.engines.values().map(|e| e.path.clone()).collect::<Vec<_>>() {
                    state.note_file(&name, &path);
                }
                state.saves.entry(name.clone()).or_default();
                state.panics |= *ending == Ending::Panic;
                state.children.insert(name, contract(*ending, false).exit);
            }
            Op::Spawn { path, kernel } => {
                let name = process_name(op, n).expect("spawn names a process");
                state.users.uses(path, User::Spawned).map_err(fail)?;
                state.note_file(&name, path);
                let mut worker = state.opened(path);
                worker.insert(kernel);
                state.save(&name, &mut worker);
                state.children.insert(name, ExitOutcome::Code(0));
            }
            Op::ThreadCompile { engine, kernel } => {
                state.engines.get_mut(engine).expect("checked above").insert(kernel);
            }
            Op::ThreadSave { engine } => {
                let mut handle = state.engines.remove(engine).expect("checked above");
                state.save(MAIN, &mut handle);
                state.engines.insert(*engine, handle);
            }
            Op::FailSave { engine, .. } => {
                // A dirty handle's save fails and writes nothing; the handle stays dirty.
                if state.engines.get(engine).expect("checked above").dirty {
                    state.failed_saves += 1;
                }
            }
            Op::Wait { .. } => {}
        }
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(ops: &[&str], ending: Ending) -> Case {
        Case { ops: ops.iter().map(|op| op.parse().unwrap()).collect(), ending }
    }

    #[test]
    fn a_spawned_process_and_a_later_save_merge() {
        let p =
            predict(&case(&["create e0 a.rtc", "compile e0 k1", "spawn a.rtc k2", "save e0"], Ending::Return)).unwrap();
        assert_eq!(p.expect.entries["a.rtc"], BTreeSet::from(["k1".into(), "k2".into()]));
        assert_eq!(p.expect.saves["main"]["a.rtc"], 1);
        assert_eq!(p.expect.saves["spawn-3"]["a.rtc"], 1);
    }

    #[test]
    fn swap_saves_the_old_cache_once_and_the_new_one_at_exit() {
        let p =
            predict(&case(&["create e0 a.rtc", "compile e0 k1", "swap e0 b.rtc", "compile e0 k1"], Ending::Exit(3)))
                .unwrap();
        assert_eq!(p.expect.saves["main"], BTreeMap::from([("a.rtc".into(), 1), ("b.rtc".into(), 1)]));
        assert_eq!(p.expect.exit, ExitOutcome::Code(3));
    }

    #[test]
    fn a_hit_stays_clean_and_sigterm_without_handler_saves_nothing() {
        let p = predict(&case(&["spawn a.rtc k1", "create e0 a.rtc", "compile e0 k1"], Ending::SigTerm)).unwrap();
        assert_eq!(p.steps[2].origin, Some(Origin::Hit));
        assert_eq!(p.expect.saves["main"]["a.rtc"], 0);
    }

    #[test]
    fn a_thread_compile_racing_a_save_has_exactly_two_legal_outcomes() {
        let racy = case(&["create e0 a.rtc", "compile e0 k1", "thread-compile e0 k2", "save e0"], Ending::Return);
        let outcomes = predict_all(&racy).unwrap();
        let saves: Vec<u64> = outcomes.iter().map(|p| p.expect.saves["main"]["a.rtc"]).collect();
        // Before the save's snapshot: one save holds both; after it: the drop at return saves k2.
        assert_eq!(saves, [1, 2]);
        assert_eq!(outcomes[0].steps[3].saves["main"]["a.rtc"], 1);
        for outcome in &outcomes {
            assert_eq!(outcome.expect.entries["a.rtc"], BTreeSet::from(["k1".into(), "k2".into()]));
        }
        // A thread followed by an operation that gives its engine up is joined first: one order.
        let joined = case(&["create e0 a.rtc", "thread-compile e0 k2", "drop e0"], Ending::Return);
        assert_eq!(predict_all(&joined).unwrap().len(), 1);
    }

    #[test]
    fn a_failed_save_keeps_its_entries_dirty_for_the_next_save() {
        let p = predict(&case(
            &["create e0 a.rtc", "compile e0 k1", "fail-save e0 before-rename", "fail-save e0 lock", "save e0"],
            Ending::Exit(0),
        ))
        .unwrap();
        assert_eq!(p.expect.failed_saves, 2);
        assert_eq!(p.steps[3].saves["main"].get("a.rtc").copied().unwrap_or(0), 0);
        assert_eq!(p.expect.saves["main"]["a.rtc"], 1);
        assert_eq!(p.expect.entries["a.rtc"], BTreeSet::from(["k1".into()]));
        // A clean handle does not write, so it does not fail either.
        let clean = predict(&case(&["create e0 a.rtc", "fail-save e0 lock"], Ending::Return)).unwrap();
        assert_eq!(clean.expect.failed_saves, 0);
    }

    #[test]
    fn removals_and_a_clear_reach_the_file_and_nothing_merges_back() {
        let removed = predict(&case(
            &["create e0 a.rtc", "compile e0 k1", "compile e0 k2", "save e0", "remove e0 k1"],
            Ending::Return,
        ))
        .unwrap();
        // The drop at return saves the removal: k1 leaves the file.
        assert_eq!(removed.steps[4].held, Some(true));
        assert_eq!(removed.expect.saves["main"]["a.rtc"], 2);
        assert_eq!(removed.expect.entries["a.rtc"], BTreeSet::from(["k2".into()]));
        // Removing a kernel the handle does not hold makes it dirty all the same.
        let not_held = predict(&case(&["create e0 a.rtc", "remove e0 k3"], Ending::Exit(0))).unwrap();
        assert_eq!(not_held.steps[1].held, Some(false));
        assert_eq!(not_held.expect.saves["main"]["a.rtc"], 1);
        assert_eq!(not_held.expect.entries["a.rtc"], BTreeSet::new());
        let cleared = predict(&case(
            &["create e0 a.rtc", "compile e0 k1", "compile e0 k2", "save e0", "clear e0", "compile e0 k1"],
            Ending::Exit(0),
        ))
        .unwrap();
        // After the clear, k1 is a miss again, and the exit's save writes only what the handle
        // holds: k2 is gone.
        assert_eq!(cleared.steps[5].origin, Some(Origin::Miss));
        assert_eq!(cleared.expect.entries["a.rtc"], BTreeSet::from(["k1".into()]));
        // A file another engine or process uses cannot be removed from, nor used once removed
        // from: what a save does with another handle's removals is not in the contract.
        for (ops, op) in [
            (&["spawn a.rtc k3", "create e0 a.rtc", "remove e0 k3"][..], 3),
            (&["create e0 a.rtc", "create e1 a.rtc", "clear e1"][..], 3),
            (&["create e0 a.rtc", "clear e0", "spawn a.rtc k1"][..], 3),
            (&["create e0 a.rtc", "remove e0 k1", "create e1 b.rtc", "swap e1 a.rtc"][..], 4),
        ] {
            assert_eq!(predict(&case(ops, Ending::Return)).unwrap_err().op, op, "{ops:?}");
        }
        // A clear racing a save on a thread: the save's snapshot first (it writes k1, the clear
        // leaves the handle dirty, and the drop at return empties the file), or the clear first
        // (the save writes the empty file, and the drop has nothing left to save).
        let racy = case(&["create e0 a.rtc", "compile e0 k1", "thread-save e0", "clear e0"], Ending::Return);
        let outcomes = predict_all(&racy).unwrap();
        let saves: Vec<u64> = outcomes.iter().map(|p| p.expect.saves["main"]["a.rtc"]).collect();
        assert_eq!(saves, [2, 1]);
        for outcome in &outcomes {
            assert_eq!(outcome.expect.entries["a.rtc"], BTreeSet::new());
        }
    }

    #[test]
    fn using_a_moved_engine_is_rejected_with_its_op() {
        let error = predict(&case(&["create e0 a.rtc", "move e0 static", "save e0"], Ending::Return)).unwrap_err();
        assert_eq!(error.op, 3);
    }
}
