//! Places an engine where a holder says (a `static`, a leak, a thread-local, a running thread,
//! ...), so that it is still alive when the process ends. Ending the process is not its job
//! (see `ending`).

use std::cell::RefCell;
use std::sync::{Arc, Mutex, mpsc};

use runtime_cache::Engine;
use scenarios::fuzz::ops::Place;
use scenarios::plan::Holder;

/// Engines moved into a `static` (never dropped).
static STATIC_ENGINES: Mutex<Vec<Engine>> = Mutex::new(Vec::new());

thread_local! {
    /// Engines moved into a main-thread `thread_local!` (destroyed before atexit handlers run).
    static THREAD_LOCAL_ENGINES: RefCell<Vec<Engine>> = const { RefCell::new(Vec::new()) };
}

/// A reference cycle that is never collected.
struct Cycle {
    _engine: Engine,
    next: Mutex<Option<Arc<Cycle>>>,
}

/// Moves `engine` into `holder`. A main-local engine comes back, for the caller to keep as a
/// local until the process ends; every other holder keeps it itself.
#[must_use]
pub fn place(holder: Holder, engine: Engine) -> Option<Engine> {
    match holder {
        Holder::MainLocal => return Some(engine),
        Holder::Static => STATIC_ENGINES.lock().unwrap_or_else(|p| p.into_inner()).push(engine),
        Holder::BoxLeak => {
            let _leaked: &'static Engine = Box::leak(Box::new(engine));
        }
        Holder::MemForget => std::mem::forget(engine),
        Holder::ArcCycle => {
            let cycle = Arc::new(Cycle { _engine: engine, next: Mutex::new(None) });
            *cycle.next.lock().unwrap_or_else(|p| p.into_inner()) = Some(cycle.clone());
        }
        Holder::MainThreadLocal => THREAD_LOCAL_ENGINES.with(|engines| engines.borrow_mut().push(engine)),
        Holder::RunningThread => hand_to_running_thread(engine),
    }
    None
}

/// Moves `engine` to where a fuzz case's `move` op says (the same holders, by the fuzzer's names).
pub fn place_at(to: Place, engine: Engine) {
    let holder = match to {
        Place::Static => Holder::Static,
        Place::ThreadLocal => Holder::MainThreadLocal,
        Place::Thread => Holder::RunningThread,
    };
    let _not_main_local = place(holder, engine);
}

/// Moves `engine` into a new thread that keeps running (parked) until the process ends, and
/// returns once the thread holds it.
fn hand_to_running_thread(engine: Engine) {
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
