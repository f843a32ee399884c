//! The process-global exit registry: which autosave handles are alive, and the one `atexit`
//! callback that saves them when the process exits.
//!
//! - One libc `atexit` callback, installed once, on the first registration.
//! - Entries hold [`Weak`] refs: the registry never keeps a handle alive.
//! - A slab with generation-tagged [`HookToken`]s: register and unregister are O(1), and a stale
//!   token can never remove someone else's entry. The registry's size equals the number of live
//!   autosave handles, always: a handle registers last in its construction and unregisters in its
//!   `Drop` right after its save (so an exit racing the drop waits for that save).
//! - The exit path ([`save_all`]) takes a snapshot of the live handles under the registry lock,
//!   releases it, and saves each one within one exit budget for all ([`Budget::exit`], set by
//!   [`crate::set_exit_deadline`]); a handle whose drop is saving on another thread is still
//!   registered, so the exit path waits for it. It never panics (the callback catches every unwind at the `extern "C"` boundary), never prints and
//!   never touches a thread-local: glibc runs main-thread TLS destructors *before* atexit handlers.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use crate::bounded;
use crate::budget::Budget;
use crate::error::CacheError;
use crate::observer::{self, Event, Trigger};
#[cfg(feature = "failpoints")]
use crate::seam;
use crate::sys;

/// Something the exit path can save.
pub(crate) trait ExitSave: Send + Sync {
    /// Saves once if still armed; otherwise waits (bounded by `budget`) for a save in progress
    /// elsewhere.
    fn autosave(&self, trigger: Trigger, budget: Budget);
}

/// Names one registration. Generation-tagged, so a stale token never matches a reused slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HookToken {
    index: u32,
    generation: u32,
}

impl fmt::Display for HookToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}g{}", self.index, self.generation)
    }
}

struct Slot {
    generation: u32,
    target: Option<Weak<dyn ExitSave>>,
}

struct Registry {
    slots: Vec<Slot>,
    free: Vec<u32>,
    len: usize,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry { slots: Vec::new(), free: Vec::new(), len: 0 });
static ATEXIT_INSTALLED: OnceLock<bool> = OnceLock::new();

/// How many autosave handles are registered for exit: always the number alive.
pub fn exit_registry_len() -> usize {
    bounded::lock(&REGISTRY).len
}

/// Registers `target` for the exit path, installing the `atexit` callback on first use.
pub(crate) fn register(target: Weak<dyn ExitSave>) -> Result<HookToken, CacheError> {
    if !*ATEXIT_INSTALLED.get_or_init(|| sys::register_atexit(run_exit_hooks)) {
        return Err(CacheError::ExitHookUnavailable);
    }
    let (token, len) = {
        let mut registry = bounded::lock(&REGISTRY);
        let index = match registry.free.pop() {
            Some(index) => index,
            None => {
                let index = u32::try_from(registry.slots.len()).map_err(|_| CacheError::ExitHookUnavailable)?;
                registry.slots.push(Slot { generation: 0, target: None });
                index
            }
        };
        let slot = &mut registry.slots[index as usize];
        slot.target = Some(target);
        let token = HookToken { index, generation: slot.generation };
        registry.len += 1;
        (token, registry.len)
    };
    observer::emit(|| Event::HookRegistered { token, registry_len: len });
    Ok(token)
}

/// Removes the registration named by `token`. A stale or repeated token is a no-op.
pub(crate) fn unregister(token: HookToken) {
    let len = {
        let mut registry = bounded::lock(&REGISTRY);
        let Some(slot) = registry.slots.get_mut(token.index as usize) else { return };
        if slot.generation != token.generation || slot.target.is_none() {
            return;
        }
        slot.target = None;
        slot.generation = slot.generation.wrapping_add(1);
        registry.free.push(token.index);
        registry.len -= 1;
        registry.len
    };
    observer::emit(|| Event::HookUnregistered { token, registry_len: len });
}

/// Autosaves every live registered handle, within the exit budget `budget` in total (made by
/// [`Budget::exit`]: `trigger` is `Exit` or `Signal`).
pub(crate) fn save_all(trigger: Trigger, budget: Budget) {
    // A forked child may find the lock held by a parent thread that does not exist here.
    let live: Vec<Arc<dyn ExitSave>> = match budget.lock(&REGISTRY) {
        Some(registry) => registry.slots.iter().filter_map(|slot| slot.target.as_ref()?.upgrade()).collect(),
        None => {
            log::error!(target: "runtime_cache", "exit registry stayed locked until the deadline; nothing saved");
            return;
        }
    };
    #[cfg(feature = "failpoints")]
    if trigger == Trigger::Exit {
        seam::print_at_exit(live.len());
    }
    for handle in live {
        handle.autosave(trigger, budget);
    }
}

/// The one `atexit` callback.
extern "C" fn run_exit_hooks() {
    // Unwinding out of an `extern "C"` function aborts the process: catch everything here.
    let _ = catch_unwind(AssertUnwindSafe(|| save_all(Trigger::Exit, Budget::exit())));
}
