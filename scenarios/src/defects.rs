//! The defect zoo: deliberately broken variants of runtime-cache, each a bug someone really
//! shipped (DESIGN.md says which design point guards against which). They exist to prove that
//! the scenario catalog, the fuzzer and the crash explorer catch them.
//!
//! A defect is not code in runtime-cache: it is a *recipe*, the failpoint settings that switch
//! on the seams of runtime-cache's lifecycle code (`cache-under-test/src/seam.rs`, compiled in
//! only with its `failpoints` feature, which this crate turns on). A child process gets a
//! defect through the `FAILPOINTS` variable, the same one that injects failures; the
//! `scenario-child` program configures it with `fail::FailScenario::setup` before anything
//! else. [`failpoints`] combines a defect's recipe with a cell's own failpoints into one value.
//! For example `no-lock` is `FAILPOINTS=skip-lock=return`, and
//! `FAILPOINTS=write-in-place=return exit-harness crash` explores the in-place save.

/// The variable that configures a child's failpoints and seams (the `fail` crate's).
pub const FAILPOINTS_ENV: &str = "FAILPOINTS";

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

    /// The kebab-case name (`--defect`, reproducer files, reports).
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

    /// The recipe: the runtime-cache seams this defect switches on (each set to `return`).
    pub fn seams(self) -> &'static [&'static str] {
        match self {
            Defect::DropOnly => &["skip-exit-hook"],
            Defect::StrongHook => &["pin-dropped-handle"],
            Defect::NoUnregister => &["skip-unregister"],
            Defect::NoOnceGuard => &["skip-once-guard"],
            Defect::EarlyRegister => &["register-before-open"],
            Defect::NoisyExit => &["print-at-exit"],
            Defect::InPlaceWrite => &["write-in-place"],
            Defect::NoLock => &["skip-lock"],
            Defect::NoMerge => &["skip-merge"],
            Defect::ForkUnaware => &["skip-owner-check"],
            Defect::TlsInExit => &["touch-thread-local"],
            Defect::UnboundedLockWait => &["unbounded-lock-wait"],
            Defect::SwapDoubleSave => &["swap-skips-disarm", "swap-save-keeps-dirty"],
        }
    }

    /// The recipe as a [`FAILPOINTS_ENV`] value: `skip-lock=return`.
    pub fn failpoints(self) -> String {
        self.seams().iter().map(|seam| format!("{seam}=return")).collect::<Vec<_>>().join(";")
    }
}

/// The [`FAILPOINTS_ENV`] value of a child running against `defect` (if any) with the cell's own
/// failpoint settings `cell_failpoints` (each `name=actions`), joined by `;`; `None` when there
/// is nothing to set.
pub fn failpoints(defect: Option<Defect>, cell_failpoints: &[&str]) -> Option<String> {
    let settings: Vec<String> =
        defect.map(Defect::failpoints).into_iter().chain(cell_failpoints.iter().map(|s| s.to_string())).collect();
    (!settings.is_empty()).then(|| settings.join(";"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_defect_has_its_own_name_and_recipe() {
        for defect in Defect::ALL {
            assert_eq!(Defect::from_name(defect.name()), Some(defect));
            assert!(!defect.seams().is_empty(), "{} has no recipe", defect.name());
        }
        let mut recipes: Vec<String> = Defect::ALL.map(Defect::failpoints).to_vec();
        recipes.sort();
        recipes.dedup();
        assert_eq!(recipes.len(), Defect::ALL.len(), "two defects share a recipe");
        assert_eq!(Defect::from_name("no-such-defect"), None);
    }

    #[test]
    fn a_defect_recipe_and_a_cell_failpoint_share_one_failpoints_value() {
        assert_eq!(failpoints(None, &[]), None);
        assert_eq!(failpoints(Some(Defect::NoLock), &[]).as_deref(), Some("skip-lock=return"));
        assert_eq!(failpoints(None, &["read=return"]).as_deref(), Some("read=return"));
        assert_eq!(
            failpoints(Some(Defect::SwapDoubleSave), &["read=return"]).as_deref(),
            Some("swap-skips-disarm=return;swap-save-keeps-dirty=return;read=return")
        );
    }
}
