//! The calls of a [`Trace`] that touched the scratch folder, as file-system operations named
//! relative to it: the steps the process-crash explorer kills at, and the input of the
//! power-loss [model](super::model).

use std::fmt;
use std::path::Path;

use super::trace::{Call, Ret, Trace, fd_number, fd_path, string_arg};

/// What one call did to the scratch folder. Names are relative to it (`"."` is the folder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpKind {
    /// A file opened (`open`, `openat`, `creat`) and the descriptor it got.
    Open {
        /// The file.
        name: String,
        /// `O_CREAT`.
        create: bool,
        /// `O_TRUNC`.
        truncate: bool,
        /// `O_APPEND`.
        append: bool,
        /// The descriptor.
        fd: i64,
    },
    /// Bytes written through a descriptor (`write`, `pwrite64`, `writev`, `copy_file_range`, ...).
    Write {
        /// The file, as the descriptor names it (`None` when it was already unlinked).
        name: Option<String>,
        /// The descriptor.
        fd: i64,
        /// The explicit offset (`pwrite64`), or `None` for the descriptor's position.
        offset: Option<u64>,
        /// Bytes written (the return value).
        len: u64,
    },
    /// A descriptor's position set (`lseek`'s return value).
    Seek {
        /// The descriptor.
        fd: i64,
        /// The new position.
        pos: u64,
    },
    /// A size set (`truncate`, `ftruncate`).
    Truncate {
        /// The file.
        name: Option<String>,
        /// The descriptor, for `ftruncate`.
        fd: Option<i64>,
        /// The new size.
        len: u64,
    },
    /// `fsync` or `fdatasync` of a file or a folder.
    Sync {
        /// The file or folder.
        name: Option<String>,
        /// The descriptor.
        fd: i64,
    },
    /// `sync`, `syncfs`: everything written so far is durable.
    SyncAll,
    /// A rename (`rename`, `renameat`, `renameat2`).
    Rename {
        /// The old name.
        from: String,
        /// The new name.
        to: String,
    },
    /// A hard link.
    Link {
        /// The existing name.
        from: String,
        /// The new name.
        to: String,
    },
    /// A name removed (`unlink`, `unlinkat`).
    Unlink {
        /// The name.
        name: String,
    },
    /// A folder made.
    Mkdir {
        /// The folder.
        name: String,
    },
    /// A folder removed.
    Rmdir {
        /// The folder.
        name: String,
    },
    /// A call that touched the scratch folder and changed nothing in it (a `stat`, a read-only
    /// open, a failed call, `sync_file_range`, which promises no durability).
    Other,
}

/// One call that touched the scratch folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// The call, with its thread and its ordinal (what a kill is aimed at).
    pub call: Call,
    /// What it did.
    pub kind: OpKind,
    /// A short human description (`rename .kernels.rtc.tmp-Ab12 -> kernels.rtc`).
    pub text: String,
}

impl Op {
    /// Whether the operation can change what is on disk (the others are steps, not changes).
    pub fn changes_disk(&self) -> bool {
        match &self.kind {
            OpKind::Open { create, truncate, .. } => *create || *truncate,
            OpKind::Seek { .. } | OpKind::Other => false,
            _ => true,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The operations of `trace` on `scratch` (a canonical path), in order.
pub fn scratch_ops(trace: &Trace, scratch: &Path) -> Vec<Op> {
    let root = scratch.to_string_lossy().trim_end_matches('/').to_owned();
    trace.calls.iter().filter_map(|call| to_op(call, &root)).collect()
}

/// `path` relative to `root` (`"."` for `root` itself), or `None` outside it.
fn relative(path: &str, root: &str) -> Option<String> {
    let path = path.strip_suffix(" (deleted)").unwrap_or(path);
    if path == root {
        return Some(".".into());
    }
    let rest = path.strip_prefix(root)?.strip_prefix('/')?;
    let mut parts: Vec<&str> = Vec::new();
    for part in rest.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            part => parts.push(part),
        }
    }
    Some(if parts.is_empty() { ".".into() } else { parts.join("/") })
}

/// The absolute path an `*at` call names: `path` itself, or `path` under the folder `dirfd` names.
fn at_path(dirfd: Option<&String>, path: &str) -> Option<String> {
    if path.starts_with('/') {
        return Some(path.to_owned());
    }
    let dir = fd_path(dirfd?)?;
    Some(format!("{}/{path}", dir.trim_end_matches('/')))
}

fn to_op(call: &Call, root: &str) -> Option<Op> {
    let a = &call.args;
    let arg = |i: usize| a.get(i);
    let s = |i: usize| arg(i).and_then(|x| string_arg(x));
    let fd_name = |i: usize| arg(i).and_then(|x| fd_path(x)).and_then(|p| relative(&p, root));
    let fd_deleted = |i: usize| arg(i).and_then(|x| fd_path(x)).is_some_and(|p| p.ends_with(" (deleted)"));
    let fd = |i: usize| arg(i).and_then(|x| fd_number(x));
    let num = |i: usize| arg(i).and_then(|x| x.trim_start_matches('[').trim_end_matches(']').parse::<u64>().ok());
    let ok = matches!(call.ret, Ret::Value(..));
    let ret = match call.ret {
        Ret::Value(v, _) => u64::try_from(v).unwrap_or(0),
        _ => 0,
    };
    let named = |path: Option<String>| path.and_then(|p| relative(&p, root));
    let touched_any = || {
        a.iter().any(|x| {
            fd_path(x).and_then(|p| relative(&p, root)).is_some()
                || string_arg(x).is_some_and(|p| p.starts_with('/') && relative(&p, root).is_some())
        }) || matches!(&call.ret, Ret::Value(_, Some(p)) if relative(p, root).is_some())
    };
    let other = || touched_any().then_some(OpKind::Other);
    let kind = match call.name.as_str() {
        "open" | "openat" | "creat" => {
            let (path, flags) = match call.name.as_str() {
                "openat" => (s(1).and_then(|p| at_path(arg(0), &p)), arg(2).cloned().unwrap_or_default()),
                "open" => (s(0), arg(1).cloned().unwrap_or_default()),
                _ => (s(0), "O_CREAT|O_WRONLY|O_TRUNC".to_owned()),
            };
            let name = named(path.clone()).or_else(|| match &call.ret {
                Ret::Value(_, Some(p)) => relative(p, root),
                _ => None,
            });
            match (name, ok) {
                (Some(name), true) => {
                    let has = |flag: &str| flags.split('|').any(|f| f.trim() == flag);
                    OpKind::Open {
                        name,
                        create: has("O_CREAT") || has("O_TMPFILE"),
                        truncate: has("O_TRUNC"),
                        append: has("O_APPEND"),
                        fd: match call.ret {
                            Ret::Value(v, _) => v,
                            _ => -1,
                        },
                    }
                }
                (Some(_), false) => OpKind::Other,
                (None, _) => return None,
            }
        }
        "write" | "writev" | "pwrite64" | "pwritev" | "pwritev2" => {
            let name = fd_name(0);
            if name.is_none() || !ok {
                return name.map(|_| Op { call: call.clone(), kind: OpKind::Other, text: describe(call, root) });
            }
            let offset = if call.name.starts_with('p') { num(3) } else { None };
            OpKind::Write { name: name.filter(|_| !fd_deleted(0)), fd: fd(0)?, offset, len: ret }
        }
        "copy_file_range" | "sendfile" => {
            let out = if call.name == "sendfile" { 0 } else { 2 };
            match (fd_name(out), ok) {
                (Some(name), true) => OpKind::Write { name: Some(name), fd: fd(out)?, offset: None, len: ret },
                (Some(_), false) => OpKind::Other,
                (None, _) => other()?,
            }
        }
        "lseek" => match (fd_name(0), ok) {
            (Some(_), true) => OpKind::Seek { fd: fd(0)?, pos: ret },
            (Some(_), false) => OpKind::Other,
            (None, _) => return None,
        },
        "ftruncate" => match (fd_name(0), ok) {
            (Some(name), true) => {
                OpKind::Truncate { name: Some(name).filter(|_| !fd_deleted(0)), fd: fd(0), len: num(1).unwrap_or(0) }
            }
            (Some(_), false) => OpKind::Other,
            (None, _) => return None,
        },
        "truncate" => match (named(s(0)), ok) {
            (Some(name), true) => OpKind::Truncate { name: Some(name), fd: None, len: num(1).unwrap_or(0) },
            (Some(_), false) => OpKind::Other,
            (None, _) => return None,
        },
        "fsync" | "fdatasync" => match (fd_name(0), ok) {
            (Some(name), true) => OpKind::Sync { name: Some(name).filter(|_| !fd_deleted(0)), fd: fd(0)? },
            (Some(_), false) => OpKind::Other,
            (None, _) => return None,
        },
        "sync" => OpKind::SyncAll,
        "syncfs" => match fd_name(0) {
            Some(_) if ok => OpKind::SyncAll,
            _ => other()?,
        },
        "rename" | "renameat" | "renameat2" | "link" | "linkat" => {
            let (from, to) = if call.name == "rename" || call.name == "link" {
                (s(0), s(1))
            } else {
                (s(1).and_then(|p| at_path(arg(0), &p)), s(3).and_then(|p| at_path(arg(2), &p)))
            };
            match (named(from), named(to), ok) {
                (Some(from), Some(to), true) if call.name.starts_with("link") => OpKind::Link { from, to },
                (Some(from), Some(to), true) => OpKind::Rename { from, to },
                (None, None, _) => return None,
                _ => OpKind::Other,
            }
        }
        "unlink" | "unlinkat" | "rmdir" => {
            let path = if call.name == "unlinkat" { s(1).and_then(|p| at_path(arg(0), &p)) } else { s(0) };
            let dir = call.name == "rmdir" || arg(2).is_some_and(|f| f.contains("AT_REMOVEDIR"));
            match (named(path), ok) {
                (Some(name), true) if dir => OpKind::Rmdir { name },
                (Some(name), true) => OpKind::Unlink { name },
                (Some(_), false) => OpKind::Other,
                (None, _) => return None,
            }
        }
        "mkdir" | "mkdirat" => {
            let path = if call.name == "mkdirat" { s(1).and_then(|p| at_path(arg(0), &p)) } else { s(0) };
            match (named(path), ok) {
                (Some(name), true) => OpKind::Mkdir { name },
                (Some(_), false) => OpKind::Other,
                (None, _) => return None,
            }
        }
        // Names the current folder in its output, changes nothing, and a call killed on entry
        // never prints it: not a step.
        "getcwd" => return None,
        _ => other()?,
    };
    Some(Op { call: call.clone(), kind, text: describe(call, root) })
}

/// The call as strace printed it, with the scratch folder's path shortened to `{scratch}` and
/// decorations dropped: `renameat({scratch}, ".k.tmp-Ab12", {scratch}, "k") = 0`.
fn describe(call: &Call, root: &str) -> String {
    let args: Vec<String> = call
        .args
        .iter()
        .map(|a| match (fd_path(a), string_arg(a)) {
            (Some(p), _) => {
                relative(&p, root).map_or_else(|| a.split('<').next().unwrap_or(a).to_owned(), |r| format!("<{r}>"))
            }
            (None, Some(p)) if p.starts_with('/') => {
                relative(&p, root).map_or_else(|| a.clone(), |r| format!("\"{r}\""))
            }
            _ => a.clone(),
        })
        .collect();
    let ret = match &call.ret {
        Ret::Value(v, _) => v.to_string(),
        Ret::Error(e) => format!("-1 {e}"),
        Ret::Unfinished => "?".into(),
    };
    format!("{}({}) = {ret}", call.name, args.join(", "))
}

impl Op {
    /// What identifies this step across runs: the call's name and the scratch-folder names it
    /// touched, with random parts masked (see [`shape`]). Output arguments (a `stat` buffer)
    /// are left out: a call killed on entry never fills them.
    pub fn key(&self, root: &Path) -> String {
        let root = root.to_string_lossy().trim_end_matches('/').to_owned();
        let mut names = Vec::new();
        for arg in &self.call.args {
            if let Some(p) = fd_path(arg).and_then(|p| relative(&p, &root)) {
                names.push(p);
            } else if let Some(p) = string_arg(arg) {
                let absolute = if p.starts_with('/') { Some(p) } else { None };
                if let Some(r) = absolute.and_then(|p| relative(&p, &root)) {
                    names.push(r);
                } else if !arg.ends_with("...") {
                    names.push(string_arg(arg).unwrap_or_default());
                }
            }
        }
        shape(&format!("{}({})", self.call.name, names.join(", ")))
    }
}

/// The shape of a description, for comparing the same step across runs: every run of six or
/// more letters, digits and underscores that holds a digit or mixes cases (a random temp-file
/// suffix) is masked, and the return value dropped.
pub fn shape(text: &str) -> String {
    let text = text.rsplit_once(" = ").map_or(text, |(head, _)| head);
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        let mixed_case = run.bytes().any(|b| b.is_ascii_lowercase()) && run.bytes().any(|b| b.is_ascii_uppercase());
        if run.len() >= 6 && (mixed_case || run.bytes().any(|b| b.is_ascii_digit())) {
            out.push('*');
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_are_named_relative_to_the_scratch_folder() {
        let text = r#"7 openat(AT_FDCWD</x>, "/etc/ld.so.cache", O_RDONLY|O_CLOEXEC) = 3</etc/ld.so.cache>
7 openat(3</s>, ".k.tmp-Ab12Cd34Ef", O_RDWR|O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC, 0600) = 4</s/.k.tmp-Ab12Cd34Ef>
7 write(4</s/.k.tmp-Ab12Cd34Ef>, ""..., 100) = 100
7 pwrite64(4</s/.k.tmp-Ab12Cd34Ef>, ""..., 8, 200) = 8
7 fsync(4</s/.k.tmp-Ab12Cd34Ef>) = 0
7 renameat(3</s>, ".k.tmp-Ab12Cd34Ef", 3</s>, "k") = 0
7 fsync(3</s>) = 0
7 newfstatat(AT_FDCWD</x>, "/s/k", {st_mode=S_IFREG|0600, st_size=108, ...}, 0) = 0
7 unlink("/s/gone") = -1 ENOENT (No such file or directory)
"#;
        let ops = scratch_ops(&Trace::parse(text), Path::new("/s"));
        let kinds: Vec<&OpKind> = ops.iter().map(|o| &o.kind).collect();
        assert_eq!(kinds.len(), 8, "{kinds:?}");
        assert!(matches!(kinds[0], OpKind::Open { name, create: true, fd: 4, .. } if name == ".k.tmp-Ab12Cd34Ef"));
        assert!(matches!(kinds[1], OpKind::Write { offset: None, len: 100, .. }));
        assert!(matches!(kinds[2], OpKind::Write { offset: Some(200), len: 8, .. }));
        assert_eq!(kinds[4], &OpKind::Rename { from: ".k.tmp-Ab12Cd34Ef".into(), to: "k".into() });
        assert_eq!(kinds[5], &OpKind::Sync { name: Some(".".into()), fd: 3 });
        assert_eq!(kinds[6], &OpKind::Other);
        assert_eq!(kinds[7], &OpKind::Other);
        assert_eq!(ops[4].text, r#"renameat(<.>, ".k.tmp-Ab12Cd34Ef", <.>, "k") = 0"#);
        assert_eq!(shape(&ops[4].text), shape(r#"renameat(<.>, ".k.tmp-Zz99Yy88Xx", <.>, "k") = 0"#));
        assert_eq!(ops[4].key(Path::new("/s")), "renameat(., .k.tmp-*, ., k)");
        assert_eq!(shape(".cache-vx_7w6xq.tmp"), shape(".cache-b3n60uk5.tmp"));
    }
}
