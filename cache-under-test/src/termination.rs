//! The opt-in termination handler: on SIGTERM, SIGINT or SIGHUP, save every live autosave handle,
//! then re-raise the signal so the process still dies by it (exit status 128+N, as its parent
//! expects).
//!
//! Saving is not async-signal-safe, so nothing is saved inside the signal handler itself:
//! `signal-hook` forwards the signal to a dedicated thread, which saves (within the exit deadline)
//! and then restores the default disposition and re-raises. A `fork()`ed child has no such thread,
//! so in a child these signals take their default action, as if no handler were installed.

use std::sync::OnceLock;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::budget::Budget;
use crate::observer::Trigger;
use crate::registry;
use crate::sys;

/// The signals the handler saves on.
pub const TERMINATION_SIGNALS: [i32; 3] = [SIGTERM, SIGINT, SIGHUP];

static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();

/// Installs the termination handler (once per process; later calls return the first outcome).
///
/// Without it, a termination signal kills the process without running any exit hook, and
/// nothing is saved: the contract's "SIGTERM, no handler" row.
pub fn install_termination_handler() -> std::io::Result<()> {
    INSTALLED
        .get_or_init(|| {
            let installer = std::process::id();
            for signal in TERMINATION_SIGNALS {
                sys::default_action_in_forked_children(signal, installer).map_err(|error| error.to_string())?;
            }
            let mut signals = Signals::new(TERMINATION_SIGNALS).map_err(|error| error.to_string())?;
            std::thread::Builder::new()
                .name("runtime-cache-signals".into())
                .spawn(move || {
                    if let Some(signal) = signals.forever().next() {
                        registry::save_all(Trigger::Signal(signal), Budget::exit());
                        // Restores the default action and re-raises: the process dies by `signal`.
                        let _ = signal_hook::low_level::emulate_default_handler(signal);
                    }
                })
                .map(|_| ())
                .map_err(|error| error.to_string())
        })
        .clone()
        .map_err(std::io::Error::other)
}
