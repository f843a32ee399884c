//! **Benchmark support, not part of the API.** Drives the crate-private exit registry with a
//! no-op target, so `benches/registry.rs` can time register + unregister alone (a real
//! [`crate::RuntimeCache::open`] also locks and reads a file).

use std::sync::{Arc, LazyLock, Weak};
use std::time::Instant;

use crate::error::CacheError;
use crate::observer::Trigger;
use crate::registry::{self, ExitSave, HookToken};

struct Noop;

impl ExitSave for Noop {
    fn autosave(&self, _trigger: Trigger, _deadline: Instant) {}
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
