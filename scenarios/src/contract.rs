//! The cache's contract table (DESIGN.md, "The cache's contract"), written once: how a process
//! ends ([`Ending`]), and what that means for a dirty handle still alive then ([`Contract`]).
//! The catalog builds its survive-to-exit cells from it and the fuzz model predicts from it.
//! Its second table, [`hostile_contract`], says what comes of a hostile cache path ([`Hostile`]):
//! a cold start, a refused save, or a damaged file set aside; the catalog's hostile cells.

use std::fmt;
use std::str::FromStr;

use exit_harness::ExitOutcome;
use exit_harness::oracle::{ExitStatus, QuietStderr};
use runtime_cache::UnavailableReason;
use serde::{Deserialize, Serialize};
use signal_hook::consts::{SIGABRT, SIGINT, SIGKILL, SIGTERM};

/// The panic message a child prints when it panics out of `main` as planned.
pub const PLANNED_PANIC: &str = "scenario-child: panicking out of main as planned";

/// How a process ends: a row of the contract table. Whether SIGTERM/SIGINT find the
/// termination handler installed is not part of the ending (see [`contract`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ending {
    /// `main` returns.
    Return,
    /// `std::process::exit(code)`.
    Exit(i32),
    /// A panic unwinds out of `main`.
    Panic,
    /// SIGTERM.
    SigTerm,
    /// SIGINT.
    SigInt,
    /// `std::process::abort()`.
    Abort,
    /// SIGKILL.
    SigKill,
}

impl Ending {
    /// A name for cell names: `return`, `exit-3`, `panic`, `sigterm`, ...
    pub fn name(self) -> String {
        self.to_string().replace('(', "-").replace(')', "")
    }
}

impl fmt::Display for Ending {
    /// The text form reproducers use: `return`, `exit(3)`, `panic`, `sigterm`, `sigint`, `abort`,
    /// `sigkill`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ending::Return => f.write_str("return"),
            Ending::Exit(code) => write!(f, "exit({code})"),
            Ending::Panic => f.write_str("panic"),
            Ending::SigTerm => f.write_str("sigterm"),
            Ending::SigInt => f.write_str("sigint"),
            Ending::Abort => f.write_str("abort"),
            Ending::SigKill => f.write_str("sigkill"),
        }
    }
}

impl FromStr for Ending {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Ok(match text.trim() {
            "return" => Ending::Return,
            "panic" => Ending::Panic,
            "sigterm" => Ending::SigTerm,
            "sigint" => Ending::SigInt,
            "abort" => Ending::Abort,
            "sigkill" => Ending::SigKill,
            other => {
                let code = other.strip_prefix("exit(").and_then(|rest| rest.strip_suffix(')'));
                match code.map(str::parse::<u8>) {
                    Some(Ok(code)) => Ending::Exit(i32::from(code)),
                    _ => {
                        return Err(format!(
                            "unknown ending `{other}` (expected return, exit(N) with N in 0..=255, panic, sigterm, \
                             sigint, abort or sigkill)"
                        ));
                    }
                }
            }
        })
    }
}

/// One row of the contract table: what must come of a dirty handle alive when the process ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Contract {
    /// Whether the handle is saved (exactly once) on the way out; else it is never saved and the
    /// old file stays intact.
    pub saves: bool,
    /// How the process ends, as the parent sees it.
    pub exit: ExitOutcome,
    /// Whether stderr may hold the planned panic's message (else it must be empty).
    pub panic_message: bool,
}

/// The contract table: what `ending` means for a dirty handle alive then, with or without the
/// termination handler installed (`handler` matters only for SIGTERM and SIGINT).
pub fn contract(ending: Ending, handler: bool) -> Contract {
    let (saves, exit) = match ending {
        Ending::Return => (true, ExitOutcome::Code(0)),
        Ending::Exit(code) => (true, ExitOutcome::Code(code)),
        Ending::Panic => (true, ExitOutcome::Code(101)),
        Ending::SigTerm => (handler, ExitOutcome::Signal(SIGTERM)),
        Ending::SigInt => (handler, ExitOutcome::Signal(SIGINT)),
        Ending::Abort => (false, ExitOutcome::Signal(SIGABRT)),
        Ending::SigKill => (false, ExitOutcome::Signal(SIGKILL)),
    };
    Contract { saves, exit, panic_message: ending == Ending::Panic }
}

impl Contract {
    /// The saves of the handle: 1 or 0.
    pub fn save_count(&self) -> u64 {
        u64::from(self.saves)
    }

    /// The exit-status oracle of this row.
    pub fn exit_status(&self) -> ExitStatus {
        exit_status(self.exit)
    }

    /// The stderr oracle of this row: empty, or the planned panic's message only.
    pub fn quiet_stderr(&self) -> QuietStderr {
        quiet_stderr(self.panic_message)
    }
}

/// The oracle expecting `outcome`.
pub fn exit_status(outcome: ExitOutcome) -> ExitStatus {
    match outcome {
        ExitOutcome::Code(code) => ExitStatus::code(code),
        ExitOutcome::Signal(signal) => ExitStatus::signal(signal),
    }
}

/// Empty stderr, or (with `panic_message`) the planned panic's lines only. Built once: the
/// panic allowance compiles regexes, and the fuzzer judges thousands of cases a second.
pub fn quiet_stderr(panic_message: bool) -> QuietStderr {
    static QUIET: std::sync::LazyLock<[QuietStderr; 2]> =
        std::sync::LazyLock::new(|| [QuietStderr::empty(), QuietStderr::empty().allow_panic(PLANNED_PANIC)]);
    QUIET[usize::from(panic_message)].clone()
}

/// How a process ended, from its wait status: the one conversion from std's `ExitStatus` (or a
/// raw `waitpid` status through `ExitStatusExt::from_raw`) to the harness's [`ExitOutcome`].
pub fn outcome_of(status: std::process::ExitStatus) -> ExitOutcome {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitOutcome::Code(code),
        (None, Some(signal)) => ExitOutcome::Signal(signal),
        (None, None) => ExitOutcome::Code(-1),
    }
}

/// Something hostile at or around the cache path when the process runs (issue #12): planted by
/// another local user sharing the folder, or left by a broken disk or tool. DESIGN.md: "The cache
/// never follows a symlink it did not create, never blocks on a FIFO, and refuses a folder that
/// another user owns or can write. A damaged file (checksum first) is set aside."
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Hostile {
    /// `<path>.lock` is a symlink, owned by another user (`nobody`), to a file that does not
    /// exist yet: following it would create that file with the victim's rights.
    SymlinkedLock,
    /// A FIFO sits at the cache path when the engine opens it.
    FifoAtOpen,
    /// The cache file is replaced by a FIFO after the engine opened it, before its exit save.
    FifoBeforeExitSave,
    /// The cache file is replaced, after the engine opened it, by a symlink (owned by another
    /// user) to another private file of the victim's.
    SymlinkBeforeExitSave,
    /// The cache folder is a symlink (owned by another user) to a folder of the victim's, which
    /// holds the victim's own cache file.
    FolderIsSymlink,
    /// The cache folder is writable by everyone and not sticky (mode 0777).
    FolderWorldWritable,
    /// The cache folder is owned by another user (`nobody`).
    FolderOwnedByAnotherUser,
    /// The cache file is valid but for one flipped bit in its header's version field.
    FlippedHeaderBit,
    /// The cache file is owned by another user (`nobody`).
    FileOwnedByAnotherUser,
    /// The cache file is a sparse file of 1 GiB, over the size limit (512 MiB).
    OversizedFile,
    /// Beside the cache file: names like its temp files that are not its own (another cache's
    /// temp file, a symlink, a file another user owns), and one torn temp file of its own.
    TempLookalikes,
}

impl Hostile {
    /// Every hostile case, in catalog order.
    pub const ALL: [Hostile; 11] = [
        Hostile::SymlinkedLock,
        Hostile::FifoAtOpen,
        Hostile::FifoBeforeExitSave,
        Hostile::SymlinkBeforeExitSave,
        Hostile::FolderIsSymlink,
        Hostile::FolderWorldWritable,
        Hostile::FolderOwnedByAnotherUser,
        Hostile::FlippedHeaderBit,
        Hostile::FileOwnedByAnotherUser,
        Hostile::OversizedFile,
        Hostile::TempLookalikes,
    ];

    /// Kebab-case name, as in cell names (`hostile/<name>`).
    pub fn name(self) -> &'static str {
        match self {
            Hostile::SymlinkedLock => "symlinked-lock-of-another-user",
            Hostile::FifoAtOpen => "fifo-at-open",
            Hostile::FifoBeforeExitSave => "fifo-before-exit-save",
            Hostile::SymlinkBeforeExitSave => "symlink-before-exit-save",
            Hostile::FolderIsSymlink => "folder-is-a-symlink",
            Hostile::FolderWorldWritable => "folder-world-writable",
            Hostile::FolderOwnedByAnotherUser => "folder-of-another-user",
            Hostile::FlippedHeaderBit => "flipped-header-bit",
            Hostile::FileOwnedByAnotherUser => "file-of-another-user",
            Hostile::OversizedFile => "oversized-file",
            Hostile::TempLookalikes => "temp-lookalikes",
        }
    }
}

/// What the cache's contract says comes of a [`Hostile`] case, for a dirty engine that is still
/// alive when the process ends (so its exit hook meets what was planted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostileOutcome {
    /// A hostile cache path degrades to a cold start: the engine is built within a second (the
    /// open never blocks), `Engine::cache_unavailable()` and one `CacheUnavailable` event give
    /// this typed reason, kernels stay in memory, nothing is ever written at or beside the path,
    /// and the exit finishes (exit 0, no stderr).
    RunsCold(UnavailableReason),
    /// The cache opened fine, but what was planted before the exit save makes that save fail
    /// with a typed error (reported as `save_failed`) within the exit budget: nothing is
    /// followed, opened blocking, created or replaced through it, and the exit finishes.
    SaveRefused,
    /// A damaged file is set aside byte-exact (never taken for another format version), the
    /// engine starts cold with its cache usable, and the exit save writes a valid file.
    SetAsideThenSaves,
    /// A file over the size limit is not read (the open takes no time for it): the engine
    /// starts cold with its cache usable, nothing is set aside, and the exit save replaces the
    /// file with a valid one.
    NotReadThenReplaced,
    /// The open removes only its own torn temp file and leaves every lookalike as it is (not
    /// followed, not removed); the cache works and the exit save writes a valid file.
    SparesWhatIsNotItsOwn,
}

/// The hostile rows of the contract: what `hostile` must come to (see [`HostileOutcome`]).
pub fn hostile_contract(hostile: Hostile) -> HostileOutcome {
    match hostile {
        Hostile::SymlinkedLock | Hostile::FifoBeforeExitSave | Hostile::SymlinkBeforeExitSave => {
            HostileOutcome::SaveRefused
        }
        Hostile::FifoAtOpen => HostileOutcome::RunsCold(UnavailableReason::NotAFile),
        Hostile::FolderIsSymlink => HostileOutcome::RunsCold(UnavailableReason::Symlink),
        Hostile::FolderWorldWritable | Hostile::FolderOwnedByAnotherUser => {
            HostileOutcome::RunsCold(UnavailableReason::UntrustedFolder)
        }
        Hostile::FileOwnedByAnotherUser => HostileOutcome::RunsCold(UnavailableReason::UntrustedFile),
        Hostile::FlippedHeaderBit => HostileOutcome::SetAsideThenSaves,
        Hostile::OversizedFile => HostileOutcome::NotReadThenReplaced,
        Hostile::TempLookalikes => HostileOutcome::SparesWhatIsNotItsOwn,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endings_round_trip_through_their_text_and_name_cells() {
        for ending in [Ending::Return, Ending::Exit(3), Ending::Panic, Ending::SigTerm, Ending::SigKill] {
            assert_eq!(ending.to_string().parse::<Ending>(), Ok(ending));
        }
        assert_eq!(Ending::Exit(3).name(), "exit-3");
        assert!("exit(300)".parse::<Ending>().is_err());
    }

    #[test]
    fn the_handler_matters_only_for_termination_signals() {
        assert!(contract(Ending::SigTerm, true).saves && !contract(Ending::SigTerm, false).saves);
        assert!(!contract(Ending::Abort, true).saves && contract(Ending::Exit(0), false).saves);
        assert_eq!(contract(Ending::Panic, false).exit, ExitOutcome::Code(101));
    }

    #[test]
    fn hostile_names_are_distinct_and_only_planted_objects_refuse_a_save() {
        let names: std::collections::BTreeSet<&str> = Hostile::ALL.iter().map(|hostile| hostile.name()).collect();
        assert_eq!(names.len(), Hostile::ALL.len());
        assert_eq!(hostile_contract(Hostile::FifoAtOpen), HostileOutcome::RunsCold(UnavailableReason::NotAFile));
        assert_eq!(hostile_contract(Hostile::SymlinkedLock), HostileOutcome::SaveRefused);
    }
}
