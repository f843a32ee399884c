//! Recording a run's file-system system calls with strace, and reading them back as the
//! operations on the scratch folder that the crash explorer replays, kills at and models.
//!
//! strace runs as the child program (`strace [options] -- program args...`), so the runner's
//! process group, timeout, output capture and leak check apply to strace and every tracee alike.
//! `-f` follows forks and threads, `-y` prints the path behind every file descriptor (so a write
//! names its file, and a renamed temp file its new name), `-s 0` keeps written data out of the
//! trace (the bytes are taken from the files themselves; see [`super::model`]), `-qq` keeps
//! attach and exit notices off the program's stderr, and `-o FILE` writes the trace to a file of
//! the explorer's own, outside the scratch folder.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The system calls recorded: every call that names a path (`%file`), every call that writes
/// data, changes a size, moves a file offset or asks for durability.
pub const TRACED: &str = "%file,write,pwrite64,writev,pwritev,pwritev2,ftruncate,fallocate,fsync,fdatasync,\
sync_file_range,syncfs,sync,lseek,copy_file_range,sendfile";

/// Where strace is looked up when `EXIT_HARNESS_STRACE` does not name it.
pub const STRACE_ENV: &str = "EXIT_HARNESS_STRACE";

/// The strace program to run: `EXIT_HARNESS_STRACE`, else `strace` on the `PATH`.
pub fn strace_program() -> PathBuf {
    std::env::var_os(STRACE_ENV).map_or_else(|| PathBuf::from("strace"), PathBuf::from)
}

/// Whether strace can be run at all, with the reason when not.
pub fn strace_available() -> Result<String, String> {
    let program = strace_program();
    match std::process::Command::new(&program).arg("-V").output() {
        Ok(out) if out.status.success() => {
            Ok(String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or("strace").to_owned())
        }
        Ok(out) => Err(format!("{} -V failed: {}", program.display(), String::from_utf8_lossy(&out.stderr).trim())),
        Err(e) => Err(format!(
            "cannot run {} ({e}): crash exploration records system calls with strace; install it \
             (Debian: apt-get install strace) or name it in {STRACE_ENV}",
            program.display()
        )),
    }
}

/// Where a run is killed: before the `ordinal`-th call of `syscall` in a process (strace counts
/// calls per traced process and thread).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KillPoint {
    /// The system call's name, as strace spells it.
    pub syscall: String,
    /// 1-based count of that call in its process.
    pub ordinal: u64,
}

/// strace's arguments, before `--` and the program: record to `out`, and kill at `kill`.
///
/// The recording traces every call of [`TRACED`], filtered in the kernel (`--seccomp-bpf`).
/// A killing run prints only the call it kills at (strace stops at every call then anyway:
/// with `--seccomp-bpf`, strace 6.1 was seen not to inject at all), which is all the divergence
/// check needs, and is much cheaper than decoding every descriptor of an interpreter's start.
pub fn strace_args(out: &Path, kill: Option<&KillPoint>) -> Vec<OsString> {
    let traced = match kill {
        Some(kill) => kill.syscall.clone(),
        None => TRACED.to_owned(),
    };
    let mut args: Vec<OsString> =
        ["-f", "-qq", "-y", "-s", "0", "-e", &format!("trace={traced}")].iter().map(OsString::from).collect();
    if kill.is_none() {
        args.push("--seccomp-bpf".into());
    }
    if let Some(kill) = kill {
        // Without an error or a return value, the signal is delivered on entering the call:
        // the kernel never runs it (a fatal signal is pending at the syscall-entry stop).
        args.push("-e".into());
        args.push(format!("inject={}:signal=KILL:when={}", kill.syscall, kill.ordinal).into());
    }
    args.push("-o".into());
    args.push(out.into());
    args.push("--".into());
    args
}

/// A return value as strace printed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ret {
    /// A value, with the path strace decoded for a returned descriptor.
    Value(i64, Option<String>),
    /// `-1 ERRNO (...)`.
    Error(String),
    /// `?`: the call did not return (the process was killed in it).
    Unfinished,
}

/// One system call of the trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The thread that made it.
    pub pid: u32,
    /// Its name.
    pub name: String,
    /// Its arguments, as strace printed them (strings still quoted).
    pub args: Vec<String>,
    /// What it returned.
    pub ret: Ret,
    /// 1-based count of this call's name in its thread: what strace's `when=` counts.
    pub ordinal: u64,
}

/// A parsed trace: the calls in order, and the threads killed by SIGKILL.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    /// Every call, in the order they finished.
    pub calls: Vec<Call>,
    /// Threads that strace saw killed by SIGKILL.
    pub killed: Vec<u32>,
}

impl Trace {
    /// Parses strace's `-f -y` output.
    pub fn parse(text: &str) -> Self {
        let mut trace = Trace::default();
        let mut pending: HashMap<u32, String> = HashMap::new();
        let mut counts: HashMap<(u32, String), u64> = HashMap::new();
        for line in text.lines() {
            let Some((pid, rest)) = line.split_once(' ') else { continue };
            let Ok(pid) = pid.trim().parse::<u32>() else { continue };
            let rest = rest.trim_start();
            if rest.starts_with("+++ killed by SIGKILL") {
                trace.killed.push(pid);
                continue;
            }
            if rest.starts_with("+++") || rest.starts_with("---") {
                continue;
            }
            let full = if let Some(stripped) = rest.strip_prefix("<... ") {
                // `<... name resumed>rest`
                let Some((_, tail)) = stripped.split_once(" resumed>") else { continue };
                match pending.remove(&pid) {
                    Some(head) => format!("{head}{tail}"),
                    None => continue,
                }
            } else if let Some(head) = rest.strip_suffix(" <unfinished ...>") {
                pending.insert(pid, head.to_owned());
                continue;
            } else {
                rest.to_owned()
            };
            if let Some(mut call) = parse_call(pid, &full) {
                let count = counts.entry((pid, call.name.clone())).or_insert(0);
                *count += 1;
                call.ordinal = *count;
                trace.calls.push(call);
            }
        }
        // A call left unfinished by a kill is still a call strace counted.
        for (pid, head) in pending {
            if let Some(mut call) = parse_call(pid, &format!("{head}) = ?")) {
                let count = counts.entry((pid, call.name.clone())).or_insert(0);
                *count += 1;
                call.ordinal = *count;
                trace.calls.push(call);
            }
        }
        trace
    }

    /// The call a SIGKILL interrupted on entry (`= ?` in a killed thread), if any.
    pub fn killed_call(&self) -> Option<&Call> {
        self.calls.iter().rev().find(|c| c.ret == Ret::Unfinished && self.killed.contains(&c.pid))
    }
}

/// `name(args) = ret` into a [`Call`] (ordinal left 0).
fn parse_call(pid: u32, text: &str) -> Option<Call> {
    let open = text.find('(')?;
    let name = text[..open].trim().to_owned();
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    let (args, after) = split_args(&text[open + 1..])?;
    let ret = after.trim_start().strip_prefix('=').map(str::trim)?;
    let ret = parse_ret(ret);
    Some(Call { pid, name, args, ret, ordinal: 0 })
}

fn parse_ret(text: &str) -> Ret {
    if text.starts_with('?') {
        return Ret::Unfinished;
    }
    if let Some(rest) = text.strip_prefix("-1 ") {
        return Ret::Error(rest.split_whitespace().next().unwrap_or("").to_owned());
    }
    let digits_end = text.find(|c: char| !(c.is_ascii_digit() || c == '-' || c == 'x')).unwrap_or(text.len());
    let value = &text[..digits_end];
    let value = match value.strip_prefix("0x") {
        Some(hex) => i64::from_str_radix(hex, 16).unwrap_or(0),
        None => value.parse().unwrap_or(0),
    };
    let decoded = text[digits_end..].strip_prefix('<').and_then(decoration).map(|(p, _)| p);
    Ret::Value(value, decoded)
}

/// Splits a top-level argument list (after the opening parenthesis) at commas, up to the
/// matching `)`; returns the arguments and what follows the `)`.
fn split_args(text: &str) -> Option<(Vec<String>, &str)> {
    let bytes = text.as_bytes();
    let mut args = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'<' if i > 0 && (bytes[i - 1].is_ascii_digit() || bytes[i - 1] == b'D') => {
                // A descriptor's decoded path: `3</a/b>` or `AT_FDCWD</a>`; skip to its `>`.
                let (_, used) = decoration(&text[i + 1..])?;
                i += used;
            }
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' if depth > 0 => depth -= 1,
            b')' => {
                let last = text[start..i].trim();
                if !last.is_empty() {
                    args.push(last.to_owned());
                }
                return Some((args, &text[i + 1..]));
            }
            b',' if depth == 0 => {
                args.push(text[start..i].trim().to_owned());
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The path inside a descriptor decoration, from just after its `<`: the path (strace escapes
/// `>` and non-printable bytes in it) and the bytes consumed including the closing `>`.
fn decoration(text: &str) -> Option<(String, usize)> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'>' => return Some((unescape(&text[..i]), i + 1)),
            _ => i += 1,
        }
    }
    None
}

/// Undoes strace's escaping (`\n`, `\t`, `\"`, `\\`, `\xHH`, octal `\NNN`).
pub fn unescape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' || i + 1 >= bytes.len() {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let c = bytes[i + 1];
        i += 2;
        match c {
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'v' => out.push(0x0b),
            b'f' => out.push(0x0c),
            b'x' => {
                let hex = text.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok());
                if let Some(byte) = hex {
                    out.push(byte);
                    i += 2;
                }
            }
            b'0'..=b'7' => {
                let mut value = u32::from(c - b'0');
                let mut n = 1;
                while n < 3 && i < bytes.len() && (b'0'..=b'7').contains(&bytes[i]) {
                    value = value * 8 + u32::from(bytes[i] - b'0');
                    i += 1;
                    n += 1;
                }
                out.push(value as u8);
            }
            other => out.push(other),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A quoted string argument's value (`"a\nb"` -> `a<newline>b`); `None` if not a string.
pub fn string_arg(arg: &str) -> Option<String> {
    let inner = arg.strip_prefix('"')?;
    let end = inner.rfind('"')?;
    Some(unescape(&inner[..end]))
}

/// A descriptor argument's decoded path (`3</a/b>` -> `/a/b`, `AT_FDCWD</a>` -> `/a`).
pub fn fd_path(arg: &str) -> Option<String> {
    let start = arg.find('<')?;
    decoration(&arg[start + 1..]).map(|(path, _)| path)
}

/// A descriptor argument's number (`3</a/b>` -> 3); `None` for `AT_FDCWD`.
pub fn fd_number(arg: &str) -> Option<i64> {
    arg.split('<').next()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_calls_decorations_and_kills() {
        let text = r#"10 openat(AT_FDCWD</s>, "/s/t.tmp", O_WRONLY|O_CREAT|O_EXCL|O_CLOEXEC, 0600) = 3</s/t.tmp>
10 write(3</s/t.tmp>, ""..., 11) = 11
11 write(1<pipe:[5]>, ""..., 2 <unfinished ...>
10 fsync(3</s/t.tmp>)          = 0
11 <... write resumed>) = 2
10 renameat2(4</s>, "a,b\"", 4</s>, "c", RENAME_NOREPLACE) = -1 EEXIST (File exists)
10 rename("/s/t.tmp", "/s/f") = ?
10 +++ killed by SIGKILL +++
"#;
        let trace = Trace::parse(text);
        assert_eq!(trace.calls.len(), 6);
        let open = &trace.calls[0];
        assert_eq!(open.name, "openat");
        assert_eq!(fd_path(&open.args[0]).as_deref(), Some("/s"));
        assert_eq!(string_arg(&open.args[1]).as_deref(), Some("/s/t.tmp"));
        assert_eq!(open.ret, Ret::Value(3, Some("/s/t.tmp".into())));
        assert_eq!(trace.calls[1].ordinal, 1);
        assert_eq!(trace.calls[3].pid, 11);
        assert_eq!(trace.calls[3].ret, Ret::Value(2, None));
        assert_eq!(string_arg(&trace.calls[4].args[1]).as_deref(), Some("a,b\""));
        assert_eq!(trace.calls[4].ret, Ret::Error("EEXIST".into()));
        let killed = trace.killed_call().unwrap();
        assert_eq!((killed.name.as_str(), killed.ordinal), ("rename", 1));
    }
}
