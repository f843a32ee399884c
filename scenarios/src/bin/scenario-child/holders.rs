//! Places a dirty engine where the plan's holder says, then ends the process with it there.

use std::cell::RefCell;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, OnceLock, mpsc};

use runtime_cache::Engine;
use scenarios::plan::{ChildPlan, Holder};

use crate::end;
use scenarios::wiring;

static STATIC_ENGINE: OnceLock<Engine> = OnceLock::new();

thread_local! {
    static THREAD_LOCAL_ENGINE: RefCell<Option<Engine>> = const { RefCell::new(None) };
}

/// A reference cycle that is never collected.
struct Cycle {
    _engine: Engine,
    next: Mutex<Option<Arc<Cycle>>>,
}

/// Moves `engine` into `plan.holder` and ends the process with it still there.
pub fn end_holding(plan: &ChildPlan, engine: Engine) -> ExitCode {
    wiring::sample_registry(1);
    match plan.holder {
        Holder::MainLocal => {
            let _engine = engine;
            end(plan.ending)
        }
        Holder::Static => {
            let _ = STATIC_ENGINE.set(engine);
            end(plan.ending)
        }
        Holder::BoxLeak => {
            let _leaked: &'static Engine = Box::leak(Box::new(engine));
            end(plan.ending)
        }
        Holder::MemForget => {
            std::mem::forget(engine);
            end(plan.ending)
        }
        Holder::ArcCycle => {
            let cycle = Arc::new(Cycle { _engine: engine, next: Mutex::new(None) });
            *cycle.next.lock().unwrap_or_else(|p| p.into_inner()) = Some(cycle.clone());
            drop(cycle);
            end(plan.ending)
        }
        Holder::MainThreadLocal => {
            THREAD_LOCAL_ENGINE.with(|slot| *slot.borrow_mut() = Some(engine));
            end(plan.ending)
        }
        Holder::RunningThread => {
            hand_to_running_thread(engine);
            end(plan.ending)
        }
    }
}

/// Moves `engine` into a new thread that keeps running (parked) until the process ends, and
/// returns once the thread holds it.
pub fn hand_to_running_thread(engine: Engine) {
    let (ready, is_ready) = mpsc::channel();
    std::thread::spawn(move || {
        let _engine = engine;
        let _ = ready.send(());
        loop {
            std::thread::park();
        }
    });
    let _ = is_ready.recv();
}
