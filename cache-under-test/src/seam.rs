//! Seams: the few points of the lifecycle code that a test build can switch off or around, so
//! that the scenario catalog can be shown to catch a broken cache.
//!
//! There is one injection mechanism, the `fail` crate's failpoints, driven per process by the
//! `FAILPOINTS` variable: a seam is a failpoint that is *active* when it is configured (with
//! `return`), and the code takes its other path then. Seams are named for what they do, not for
//! the bug they make; the scenarios crate's defect zoo (`scenarios/src/defects.rs`) composes
//! them into the defects it hunts (for example `no-lock` is `FAILPOINTS=skip-lock=return`).
//!
//! | seam | what the code does when it is active |
//! | --- | --- |
//! | `skip-exit-hook` | an autosave handle registers no exit hook (only its drop saves) |
//! | `register-before-open` | an exit hook is registered before the fallible steps of `open`, with no rollback |
//! | `pin-dropped-handle` | a dropped handle is kept alive (strongly) until exit, unsaved |
//! | `skip-unregister` | a dropped handle never leaves the exit registry |
//! | `skip-once-guard` | every autosave trigger saves, dirty or not |
//! | `skip-owner-check` | a `fork()`ed child saves the handles it inherited |
//! | `swap-skips-disarm` | a swap saves without ending the handle's autosave (its drop saves again) |
//! | `swap-save-keeps-dirty` | a swap's save leaves its entries dirty |
//! | `touch-thread-local` | opening and every autosave touch a thread-local (destroyed before atexit handlers) |
//! | `print-at-exit` | the exit path prints a line to stderr |
//! | `skip-lock` | a save takes no inter-process lock |
//! | `unbounded-lock-wait` | a save waits for the lock without a bound |
//! | `skip-merge` | a save never re-reads the file (the last writer wins) |
//! | `write-in-place` | a save truncates and rewrites the file in place (no temp file, no rename) |
//!
//! The failure-injecting failpoints (`lock`, `read`, `parse`, `save-*`, the hook registration,
//! `compiler-init`) are not seams: they make the step fail with an ordinary error of that step
//! ([`injected`]), so the real error path runs.
//!
//! Only with the crate's `failpoints` feature. Without it, [`active!`] is the literal `false`,
//! the branches it guards are compiled out (in every profile: no call is left to inline), and
//! the helpers below do not exist: a user's build carries no seam, no seam name, no print.
//! This module uses nothing else of the crate.

/// Whether the seam `$name` (a literal) is active in this process: `seam::active!("skip-lock")`.
/// Without the `failpoints` feature it expands to the literal `false`, so the branch it guards
/// is compiled out even in an unoptimized build, and no seam name reaches the binary.
#[cfg(feature = "failpoints")]
macro_rules! active {
    ($name:literal) => {
        $crate::seam::is_set($name)
    };
}

/// Whether the seam `$name` is active: never, without the `failpoints` feature (`false`).
#[cfg(not(feature = "failpoints"))]
macro_rules! active {
    ($name:literal) => {
        false
    };
}

pub(crate) use active;

/// Whether the failpoint `name` is configured in this process (with any action that returns).
#[cfg(feature = "failpoints")]
pub(crate) fn is_set(name: &str) -> bool {
    (|| {
        fail::fail_point!(name, |_| true);
        false
    })()
}

/// The error an injected failure at the failpoint `point` carries (inside the step's ordinary
/// error, e.g. [`crate::CacheError::Io`]).
#[cfg(feature = "failpoints")]
pub(crate) fn injected(point: &str) -> std::io::Error {
    std::io::Error::other(format!("injected failure at {point}"))
}

#[cfg(feature = "failpoints")]
thread_local! {
    /// For the `touch-thread-local` seam: a thread-local with a destructor.
    static TOUCHED: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The `touch-thread-local` seam: touches a thread-local. On the exit path, after the main
/// thread's thread-locals were destroyed (glibc does that before atexit handlers), this panics.
#[cfg(feature = "failpoints")]
pub(crate) fn touch_thread_local() {
    if is_set("touch-thread-local") {
        TOUCHED.with(|touched| touched.borrow_mut().push(1));
    }
}

/// The `print-at-exit` seam: the exit path announces itself on stderr.
#[cfg(feature = "failpoints")]
pub(crate) fn print_at_exit(handles: usize) {
    if is_set("print-at-exit") {
        eprintln!("runtime-cache: saving {handles} cache(s) at exit");
    }
}

/// For the `pin-dropped-handle` seam: strong refs that keep dropped handles alive until exit.
#[cfg(feature = "failpoints")]
static PINNED: std::sync::Mutex<Vec<std::sync::Arc<dyn Send + Sync>>> = std::sync::Mutex::new(Vec::new());

/// For the `pin-dropped-handle` seam: keeps `handle` alive until the process ends.
#[cfg(feature = "failpoints")]
pub(crate) fn pin(handle: std::sync::Arc<dyn Send + Sync>) {
    PINNED.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(handle);
}
