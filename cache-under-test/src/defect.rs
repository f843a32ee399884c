//! The defect zoo: deliberately broken variants of this crate, each a bug someone really shipped
//! (DESIGN.md says which design point guards against which). They exist to prove that the
//! scenario catalog catches them.
//!
//! Compiled in only with the `defects` feature, which is off by default; even then a defect is
//! inert unless the process's `RUNTIME_CACHE_DEFECT` variable names it. Without the feature,
//! [`active`] is a constant `false` and every defect path is compiled out.

/// The environment variable that selects one defect per process (with the `defects` feature).
pub const DEFECT_ENV: &str = "RUNTIME_CACHE_DEFECT";

/// One deliberately broken variant of the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Defect {
    /// No exit hook: only `Drop` saves (the upstream bug): a handle alive at exit is lost.
    DropOnly,
    /// The registry holds strong refs: a dropped engine is pinned and saves only at exit.
    StrongHook,
    /// `Drop` never unregisters: the registry grows with every handle ever made.
    NoUnregister,
    /// No once-guard: every trigger saves, unconditionally (drop and exit both write).
    NoOnceGuard,
    /// The exit hook is registered before the fallible steps, with no rollback.
    EarlyRegister,
    /// The exit path prints.
    NoisyExit,
    /// No temp file and rename: the file is rewritten in place (torn on a crash).
    InPlaceWrite,
    /// No inter-process lock.
    NoLock,
    /// No re-read and merge: the last writer wins.
    NoMerge,
    /// No owner pid: a forked child saves its parent's handles.
    ForkUnaware,
    /// The exit path touches a thread-local (destroyed before atexit handlers run).
    TlsInExit,
    /// The lock is waited for without a bound: exit hangs while another process holds it.
    UnboundedLockWait,
    /// A settings swap saves the old cache and leaves it dirty, so its drop saves it again.
    SwapDoubleSave,
}

impl Defect {
    /// Every defect.
    pub const ALL: [Defect; 13] = [
        Defect::DropOnly,
        Defect::StrongHook,
        Defect::NoUnregister,
        Defect::NoOnceGuard,
        Defect::EarlyRegister,
        Defect::NoisyExit,
        Defect::InPlaceWrite,
        Defect::NoLock,
        Defect::NoMerge,
        Defect::ForkUnaware,
        Defect::TlsInExit,
        Defect::UnboundedLockWait,
        Defect::SwapDoubleSave,
    ];

    /// The kebab-case name, as `RUNTIME_CACHE_DEFECT` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Defect::DropOnly => "drop-only",
            Defect::StrongHook => "strong-hook",
            Defect::NoUnregister => "no-unregister",
            Defect::NoOnceGuard => "no-once-guard",
            Defect::EarlyRegister => "early-register",
            Defect::NoisyExit => "noisy-exit",
            Defect::InPlaceWrite => "in-place-write",
            Defect::NoLock => "no-lock",
            Defect::NoMerge => "no-merge",
            Defect::ForkUnaware => "fork-unaware",
            Defect::TlsInExit => "tls-in-exit",
            Defect::UnboundedLockWait => "unbounded-lock-wait",
            Defect::SwapDoubleSave => "swap-double-save",
        }
    }

    /// The defect named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|defect| defect.name() == name)
    }
}

/// Whether `defect` is the one selected for this process.
#[cfg(feature = "defects")]
pub(crate) fn active(defect: Defect) -> bool {
    static SELECTED: std::sync::OnceLock<Option<Defect>> = std::sync::OnceLock::new();
    *SELECTED.get_or_init(|| std::env::var(DEFECT_ENV).ok().as_deref().and_then(Defect::from_name)) == Some(defect)
}

/// Whether `defect` is the one selected for this process: never, without the `defects` feature.
#[cfg(not(feature = "defects"))]
pub(crate) const fn active(_: Defect) -> bool {
    false
}

#[cfg(feature = "defects")]
thread_local! {
    /// For [`Defect::TlsInExit`]: a thread-local with a destructor, touched on the exit path.
    static SAVES_ON_THIS_THREAD: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// For [`Defect::TlsInExit`]: counts a save in a thread-local. After the main thread's
/// thread-locals are destroyed (glibc does that before atexit handlers), this panics.
pub(crate) fn count_save_in_thread_local() {
    #[cfg(feature = "defects")]
    if active(Defect::TlsInExit) {
        SAVES_ON_THIS_THREAD.with(|saves| saves.borrow_mut().push(1));
    }
}

/// For [`Defect::SwapDoubleSave`]: whether a save with `trigger` leaves its entries dirty.
pub(crate) fn keeps_dirty_after(trigger: crate::observer::Trigger) -> bool {
    active(Defect::SwapDoubleSave) && trigger == crate::observer::Trigger::Swap
}
