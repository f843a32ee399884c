//! **Test and benchmark support, not part of the API.**
//!
//! - [`DummyRegistration`] drives the crate-private exit registry with a no-op target, so
//!   `benches/registry.rs` can time register + unregister alone (a real
//!   [`crate::RuntimeCache::open`] also locks and reads a file).
//! - [`run_exit_hooks_now`] calls the exit hook by hand, as the upstream pull request's tests did,
//!   so those tests can be ported as they are and compared with tests that really exit.

use std::sync::{Arc, LazyLock, Weak};

use crate::budget::Budget;
use crate::error::CacheError;
use crate::observer::Trigger;
use crate::registry::{self, ExitSave, HookToken};

/// Runs the exit path now, on this thread, exactly as the `atexit` callback would: every live
/// autosave handle saves once (or not, if it already did). The process goes on afterwards.
pub fn run_exit_hooks_now() {
    registry::save_all(Trigger::Exit, Budget::exit());
}

struct Noop;

impl ExitSave for Noop {
    fn autosave(&self, _trigger: Trigger, _budget: Budget) {}
}

static TARGET: LazyLock<Arc<Noop>> = LazyLock::new(|| Arc::new(Noop));

/// One registration of a no-op exit target; unregisters when dropped. It counts in
/// [`crate::exit_registry_len`] like a live autosave handle, and the exit path skips it at no cost.
#[derive(Debug)]
pub struct DummyRegistration(HookToken);

impl DummyRegistration {
    /// Registers a no-op target, exactly as an autosave handle's construction does.
    pub fn register() -> Result<Self, CacheError> {
        let weak: Weak<dyn ExitSave> = Arc::downgrade(&*TARGET) as Weak<dyn ExitSave>;
        registry::register(weak).map(Self)
    }
}

impl Drop for DummyRegistration {
    fn drop(&mut self) {
        registry::unregister(self.0);
    }
}
