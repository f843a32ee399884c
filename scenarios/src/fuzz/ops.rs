//! The fuzzer's vocabulary: a [`Case`] is a list of [`Op`]s that one child process performs on
//! engines and cache files, then one [`Ending`] from the contract table.
//!
//! Every operation has a one-line text form, used by reproducers and in every report:
//!
//! | text | what the child does |
//! | --- | --- |
//! | `create e0 a.rtc [handler]` | `Engine::new` on `a.rtc` (installing the termination handler first) |
//! | `compile e0 k1` | compiles kernel `k1` (a hit or a miss, the model says which) |
//! | `save e0` | an explicit `RuntimeCache::save` |
//! | `remove e0 k1` | `RuntimeCache::remove` of kernel `k1`'s entry (held or not: the next save keeps it out of the file) |
//! | `clear e0` | `RuntimeCache::clear`: the next save writes only what is inserted after it |
//! | `drop e0` | drops the engine |
//! | `leak e0` | `Box::leak`s it: alive at exit |
//! | `move e0 static` / `thread-local` / `thread` | moves it into a `static`, a main-thread `thread_local!`, or a thread that runs until exit |
//! | `swap e0 b.rtc` | `set_settings` moving its cache to `b.rtc` |
//! | `fork exit(3)` | `fork()`s; the child ends at once as said (`return`, `exit(N)`, `panic`, `abort`, `sigkill`) |
//! | `spawn a.rtc k2` | another process on `a.rtc`: opens a fresh engine, compiles `k2`, drops it (saving), exits, all before the next operation |
//! | `thread-compile e0 k3` | a thread compiles `k3` on `e0` *while the next operation runs* on the main thread; joined after it (before it when that op gives the engine up, forks, fails a save or ends the case) |
//! | `thread-save e0` | a thread saves `e0` explicitly while the next operation runs (joined as above) |
//! | `fail-save e0 before-rename` | an explicit save that fails once, at the runtime-cache failpoint `save-before-rename` (also `mid-write`, `lock`): armed with `fail::cfg` for this save only |
//! | `wait 45ms` | the main thread sleeps; a case with a `wait` sets the exit budget ([`WAIT_EXIT_BUDGET`]) shorter than the wait, so a signal arriving after it tests that the budget starts when the exit does |
//!
//! `remove` and `clear` act only on a file that no other engine or process of the case uses,
//! before or after ([`FileUsers`]): the contract does not say what one handle's save does with
//! another handle's removals (runtime-cache's append leaves them out, its full rewrite brings
//! back what the saving handle holds), nor in which order the exit saves handles that share a
//! file, which decides what a `clear` leaves.
//!
//! A thread operation makes a case racy: the model then predicts every legal order of the
//! thread's effect and the next operation's ([`crate::fuzz::model::predict_all`]), and a run
//! passes when it matches one of them.
//! Only engines still owned by the case (created, not yet dropped, leaked or moved) can be
//! operated on; [`crate::fuzz::model`] rejects a case that breaks that rule, naming the op.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use runtime_cache::{CompilerIdentity, KernelCompiler, KernelKey, KernelSpec, SyntheticCompiler};
use serde::{Deserialize, Serialize};

use crate::contract::Ending;

/// Synthetic artifact size of every fuzzed kernel (small: the fuzzer is about lifecycles).
pub const ARTIFACT_BYTES: usize = 64;

/// Where a case moves an engine so that it lives to exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Place {
    /// A `static` (never dropped).
    Static,
    /// A `thread_local!` of the main thread (destroyed before atexit handlers run).
    ThreadLocal,
    /// A thread still running at exit.
    Thread,
}

impl Place {
    /// Every place.
    pub const ALL: [Place; 3] = [Place::Static, Place::ThreadLocal, Place::Thread];

    fn name(self) -> &'static str {
        match self {
            Place::Static => "static",
            Place::ThreadLocal => "thread-local",
            Place::Thread => "thread",
        }
    }
}

/// One operation of a case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Op {
    /// Creates engine `engine` with its cache at `path`, installing the termination handler
    /// first when `handler`.
    Create {
        /// The new engine's number.
        engine: u32,
        /// Its cache file (a name in the scratch folder).
        path: String,
        /// Whether to install the termination handler first.
        handler: bool,
    },
    /// Compiles kernel `kernel` on engine `engine`.
    Compile {
        /// The engine.
        engine: u32,
        /// The kernel's name.
        kernel: String,
    },
    /// Saves engine `engine`'s cache explicitly.
    Save {
        /// The engine.
        engine: u32,
    },
    /// Drops engine `engine`.
    Drop {
        /// The engine.
        engine: u32,
    },
    /// Removes kernel `kernel`'s entry from engine `engine`'s cache (`RuntimeCache::remove`).
    Remove {
        /// The engine.
        engine: u32,
        /// The kernel's name.
        kernel: String,
    },
    /// Empties engine `engine`'s cache (`RuntimeCache::clear`).
    Clear {
        /// The engine.
        engine: u32,
    },
    /// Leaks engine `engine` (`Box::leak`).
    Leak {
        /// The engine.
        engine: u32,
    },
    /// Moves engine `engine` to `to`, where it lives to exit.
    Move {
        /// The engine.
        engine: u32,
        /// Where to.
        to: Place,
    },
    /// Moves engine `engine`'s cache to `path` (`set_settings`).
    Swap {
        /// The engine.
        engine: u32,
        /// The new cache file.
        path: String,
    },
    /// Forks; the child ends at once by `ending`.
    Fork {
        /// How the forked child ends.
        ending: Ending,
    },
    /// Another process on `path` compiles `kernel` and saves, to completion.
    Spawn {
        /// The shared cache file.
        path: String,
        /// The kernel the other process compiles.
        kernel: String,
    },
    /// A thread compiles `kernel` on engine `engine` while the next operation runs.
    ThreadCompile {
        /// The engine.
        engine: u32,
        /// The kernel's name.
        kernel: String,
    },
    /// A thread saves engine `engine` explicitly while the next operation runs.
    ThreadSave {
        /// The engine.
        engine: u32,
    },
    /// An explicit save of engine `engine` that fails once at failpoint `at` (a clean engine
    /// does not write, so nothing fails).
    FailSave {
        /// The engine.
        engine: u32,
        /// Where the save fails.
        at: SaveFault,
    },
    /// The main thread sleeps `ms` milliseconds.
    Wait {
        /// How long.
        ms: u64,
    },
}

/// Where a `fail-save` makes runtime-cache's save fail: one of its failpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SaveFault {
    /// Taking the file lock fails (as if another process held it past the timeout).
    Lock,
    /// The write fails half-way (disk full): an append is truncated back, a rewrite's temp file
    /// removed. Fires in both shapes of a save, unlike a failure after the temp file is created
    /// (an append creates none).
    MidWrite,
    /// Everything is written, then the rename fails.
    BeforeRename,
}

impl SaveFault {
    /// Every fault.
    pub const ALL: [SaveFault; 3] = [SaveFault::Lock, SaveFault::MidWrite, SaveFault::BeforeRename];

    /// The text form, as in `fail-save e0 before-rename`.
    pub fn name(self) -> &'static str {
        match self {
            SaveFault::Lock => "lock",
            SaveFault::MidWrite => "mid-write",
            SaveFault::BeforeRename => "before-rename",
        }
    }

    /// runtime-cache's failpoint.
    pub fn failpoint(self) -> &'static str {
        match self {
            SaveFault::Lock => "lock",
            SaveFault::MidWrite => "save-mid-write",
            SaveFault::BeforeRename => "save-before-rename",
        }
    }
}

/// The exit budget (`runtime_cache::set_exit_deadline`) of a case with a `wait`: shorter than
/// any wait the generator draws ([`WAIT_MS`]), long enough for a debug build's exit saves.
pub const WAIT_EXIT_BUDGET: Duration = Duration::from_millis(30);

/// How long a generated `wait` sleeps: longer than [`WAIT_EXIT_BUDGET`].
pub const WAIT_MS: u64 = 45;

impl Op {
    /// The engine this operation acts on, if any (not for `create`, which makes one).
    pub fn acts_on(&self) -> Option<u32> {
        match self {
            Op::Compile { engine, .. }
            | Op::Save { engine }
            | Op::Remove { engine, .. }
            | Op::Clear { engine }
            | Op::Drop { engine }
            | Op::Leak { engine }
            | Op::Move { engine, .. }
            | Op::Swap { engine, .. }
            | Op::ThreadCompile { engine, .. }
            | Op::ThreadSave { engine }
            | Op::FailSave { engine, .. } => Some(*engine),
            Op::Create { .. } | Op::Fork { .. } | Op::Spawn { .. } | Op::Wait { .. } => None,
        }
    }

    /// Whether the operation runs on another thread (`thread-compile`, `thread-save`), alongside
    /// the next operation.
    pub fn is_threaded(&self) -> bool {
        matches!(self, Op::ThreadCompile { .. } | Op::ThreadSave { .. })
    }

    /// Whether a thread started by the previous operation may still run while this one does;
    /// otherwise it is joined first. Only operations that borrow an engine (or make a new one)
    /// overlap a thread: those that give an engine up, fork, sleep or fail a save (the armed
    /// failpoint is process-wide) wait for it.
    pub fn overlaps_a_thread(&self) -> bool {
        matches!(self, Op::Create { .. } | Op::Compile { .. } | Op::Save { .. } | Op::Remove { .. } | Op::Clear { .. })
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Create { engine, path, handler } => {
                write!(f, "create e{engine} {path}{}", if *handler { " handler" } else { "" })
            }
            Op::Compile { engine, kernel } => write!(f, "compile e{engine} {kernel}"),
            Op::Save { engine } => write!(f, "save e{engine}"),
            Op::Remove { engine, kernel } => write!(f, "remove e{engine} {kernel}"),
            Op::Clear { engine } => write!(f, "clear e{engine}"),
            Op::Drop { engine } => write!(f, "drop e{engine}"),
            Op::Leak { engine } => write!(f, "leak e{engine}"),
            Op::Move { engine, to } => write!(f, "move e{engine} {}", to.name()),
            Op::Swap { engine, path } => write!(f, "swap e{engine} {path}"),
            Op::Fork { ending } => write!(f, "fork {ending}"),
            Op::Spawn { path, kernel } => write!(f, "spawn {path} {kernel}"),
            Op::ThreadCompile { engine, kernel } => write!(f, "thread-compile e{engine} {kernel}"),
            Op::ThreadSave { engine } => write!(f, "thread-save e{engine}"),
            Op::FailSave { engine, at } => write!(f, "fail-save e{engine} {}", at.name()),
            Op::Wait { ms } => write!(f, "wait {ms}ms"),
        }
    }
}

impl FromStr for Op {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let arity = |n: usize, usage: &str| {
            if words.len() == n { Ok(()) } else { Err(format!("`{}` takes the form `{usage}`", text.trim())) }
        };
        match words.first().copied() {
            Some("create") => {
                let handler = match words.get(3) {
                    None => false,
                    Some(&"handler") => true,
                    Some(other) => return Err(format!("`create` ends with `handler` or nothing, not `{other}`")),
                };
                if words.len() > 4 || words.len() < 3 {
                    arity(3, "create eN FILE [handler]")?;
                }
                Ok(Op::Create { engine: engine(words[1])?, path: file(words[2])?, handler })
            }
            Some("compile") => {
                arity(3, "compile eN KERNEL")?;
                Ok(Op::Compile { engine: engine(words[1])?, kernel: kernel(words[2])? })
            }
            Some("save") => arity(2, "save eN").and_then(|()| Ok(Op::Save { engine: engine(words[1])? })),
            Some("remove") => {
                arity(3, "remove eN KERNEL")?;
                Ok(Op::Remove { engine: engine(words[1])?, kernel: kernel(words[2])? })
            }
            Some("clear") => arity(2, "clear eN").and_then(|()| Ok(Op::Clear { engine: engine(words[1])? })),
            Some("drop") => arity(2, "drop eN").and_then(|()| Ok(Op::Drop { engine: engine(words[1])? })),
            Some("leak") => arity(2, "leak eN").and_then(|()| Ok(Op::Leak { engine: engine(words[1])? })),
            Some("move") => {
                arity(3, "move eN static|thread-local|thread")?;
                let to = Place::ALL
                    .into_iter()
                    .find(|place| place.name() == words[2])
                    .ok_or_else(|| format!("cannot move to `{}` (static, thread-local or thread)", words[2]))?;
                Ok(Op::Move { engine: engine(words[1])?, to })
            }
            Some("swap") => {
                arity(3, "swap eN FILE")?;
                Ok(Op::Swap { engine: engine(words[1])?, path: file(words[2])? })
            }
            Some("fork") => {
                arity(2, "fork ENDING")?;
                Ok(Op::Fork { ending: words[1].parse()? })
            }
            Some("spawn") => {
                arity(3, "spawn FILE KERNEL")?;
                Ok(Op::Spawn { path: file(words[1])?, kernel: kernel(words[2])? })
            }
            Some("thread-compile") => {
                arity(3, "thread-compile eN KERNEL")?;
                Ok(Op::ThreadCompile { engine: engine(words[1])?, kernel: kernel(words[2])? })
            }
            Some("thread-save") => {
                arity(2, "thread-save eN").and_then(|()| Ok(Op::ThreadSave { engine: engine(words[1])? }))
            }
            Some("fail-save") => {
                arity(3, "fail-save eN lock|mid-write|before-rename")?;
                let at = SaveFault::ALL.into_iter().find(|fault| fault.name() == words[2]).ok_or_else(|| {
                    format!("cannot fail a save at `{}` (lock, mid-write or before-rename)", words[2])
                })?;
                Ok(Op::FailSave { engine: engine(words[1])?, at })
            }
            Some("wait") => {
                arity(2, "wait Nms")?;
                let ms = words[1].strip_suffix("ms").and_then(|ms| ms.parse::<u64>().ok());
                match ms {
                    Some(ms) if ms <= 10_000 => Ok(Op::Wait { ms }),
                    _ => Err(format!("`{}` is not a wait (like 45ms, at most 10000ms)", words[1])),
                }
            }
            Some(other) => Err(format!(
                "unknown operation `{other}` (create, compile, save, remove, clear, drop, leak, move, swap, fork, \
                 spawn, thread-compile, thread-save, fail-save, wait)"
            )),
            None => Err("empty operation".into()),
        }
    }
}

fn engine(word: &str) -> Result<u32, String> {
    word.strip_prefix('e')
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("`{word}` is not an engine (e0, e1, ...)"))
}

fn file(word: &str) -> Result<String, String> {
    let ok = !word.starts_with('.')
        && word.len() <= 64
        && word.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok { Ok(word.to_owned()) } else { Err(format!("`{word}` is not a cache file name (like a.rtc)")) }
}

fn kernel(word: &str) -> Result<String, String> {
    let ok = !word.is_empty() && word.len() <= 32 && word.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok { Ok(word.to_owned()) } else { Err(format!("`{word}` is not a kernel name (like k1)")) }
}

/// Who uses each cache file of a case (engines `e0`, ... created on it or swapped to it, and
/// processes `spawn`ed on it), and which files a `remove` or `clear` claimed for one engine: no
/// one else may use a claimed file, and a file with another user cannot be claimed.
#[derive(Clone, Debug, Default)]
pub struct FileUsers {
    users: std::collections::BTreeMap<String, std::collections::BTreeSet<User>>,
    claimed: std::collections::BTreeSet<String>,
}

/// Who uses a cache file, for [`FileUsers`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum User {
    /// Engine `eN` of the case.
    Engine(u32),
    /// A process the case `spawn`ed.
    Spawned,
}

impl fmt::Display for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            User::Engine(engine) => write!(f, "e{engine}"),
            User::Spawned => write!(f, "a spawned process"),
        }
    }
}

impl FileUsers {
    /// Whether `user` may use `path`: it is not claimed by another.
    pub fn may_use(&self, path: &str, user: User) -> bool {
        !self.claimed.contains(path) || self.only_user(path, user)
    }

    /// Whether `user` may remove from or clear `path`: no one else uses it.
    pub fn may_claim(&self, path: &str, user: User) -> bool {
        self.only_user(path, user)
    }

    /// Notes that `user` uses `path`; says why not when another claimed it.
    pub fn uses(&mut self, path: &str, user: User) -> Result<(), String> {
        if !self.may_use(path, user) {
            return Err(format!("{user} uses {path}, which another engine removed from or cleared"));
        }
        self.users.entry(path.to_owned()).or_default().insert(user);
        Ok(())
    }

    /// Claims `path` for `user`'s removals; says why not when someone else uses it.
    pub fn claim(&mut self, path: &str, user: User) -> Result<(), String> {
        if !self.may_claim(path, user) {
            return Err(format!("{user} removes from or clears {path}, which another engine or process uses"));
        }
        self.claimed.insert(path.to_owned());
        Ok(())
    }

    fn only_user(&self, path: &str, user: User) -> bool {
        self.users.get(path).is_none_or(|users| users.iter().all(|other| *other == user))
    }
}

/// One fuzz case: what a child process does, then how it ends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Case {
    /// The operations, in order.
    pub ops: Vec<Op>,
    /// How the process ends.
    pub ending: Ending,
}

impl Case {
    /// The case as the child's command-line argument (JSON).
    pub fn to_arg(&self) -> String {
        serde_json::to_string(self).expect("cases always serialize")
    }

    /// Parses the child's command-line argument.
    pub fn from_arg(arg: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(arg)
    }

    /// Every cache file the case names, sorted.
    pub fn files(&self) -> Vec<String> {
        let mut files: Vec<String> = self
            .ops
            .iter()
            .filter_map(|op| match op {
                Op::Create { path, .. } | Op::Swap { path, .. } | Op::Spawn { path, .. } => Some(path.clone()),
                _ => None,
            })
            .collect();
        files.sort();
        files.dedup();
        files
    }
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, op) in self.ops.iter().enumerate() {
            writeln!(f, "  {:>2}. {op}", index + 1)?;
        }
        write!(f, "  end: {}", self.ending)
    }
}

/// The name of the process a `fork` or `spawn` at (1-based) op `n` creates: `fork-3`, `spawn-5`.
pub fn process_name(op: &Op, n: usize) -> Option<String> {
    match op {
        Op::Fork { .. } => Some(format!("fork-{n}")),
        Op::Spawn { .. } => Some(format!("spawn-{n}")),
        _ => None,
    }
}

/// The name of the case's own process.
pub const MAIN: &str = "main";

/// The synthetic compiler every fuzz engine uses.
pub fn compiler() -> SyntheticCompiler {
    SyntheticCompiler::new(ARTIFACT_BYTES, Duration::ZERO)
}

/// The kernel spec named `name` (the same source for the child and the model).
pub fn kernel_spec(name: &str) -> KernelSpec {
    let source = format!("extern \"C\" __global__ void {name}(float* x) {{ x[threadIdx.x] += 1.0f; }}");
    KernelSpec::new(format!("{name}.cu"), source, name)
}

/// The cache key of kernel `name`, as the child's engines compute it.
pub fn kernel_key(name: &str) -> KernelKey {
    let compiler = compiler();
    let identity: &CompilerIdentity = compiler.identity();
    KernelKey::derive(&kernel_spec(name), identity)
}

/// [`kernel_key`] in hex, as the cache file holds it (derived once per name: the fuzzer judges
/// thousands of cases a second, and cases draw from a handful of kernels).
pub fn kernel_key_hex(name: &str) -> String {
    static KEYS: std::sync::Mutex<std::collections::BTreeMap<String, String>> =
        std::sync::Mutex::new(std::collections::BTreeMap::new());
    let mut keys = KEYS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    keys.entry(name.to_owned()).or_insert_with(|| kernel_key(name).to_hex()).clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_round_trips_through_its_text() {
        let ops = [
            "create e0 a.rtc",
            "create e3 b.rtc handler",
            "compile e0 k1",
            "save e0",
            "remove e0 k2",
            "clear e1",
            "drop e0",
            "leak e1",
            "move e2 thread-local",
            "move e2 static",
            "move e2 thread",
            "swap e0 b.rtc",
            "fork exit(3)",
            "fork sigkill",
            "fork sigterm",
            "spawn a.rtc k2",
            "thread-compile e0 k3",
            "thread-save e1",
            "fail-save e0 lock",
            "fail-save e0 mid-write",
            "fail-save e0 before-rename",
            "wait 80ms",
        ];
        for text in ops {
            let op: Op = text.parse().unwrap();
            assert_eq!(op.to_string(), text);
        }
        assert!("fork explode".parse::<Op>().is_err());
        assert!("create e0 ../x".parse::<Op>().is_err());
        assert!("compile x k".parse::<Op>().unwrap_err().contains("not an engine"));
        assert!("fail-save e0 disk".parse::<Op>().unwrap_err().contains("cannot fail a save at `disk`"));
        assert!("wait 80".parse::<Op>().is_err());
    }
}
