//! Real third-party exit-time bugs, each a `buggy`/`fixed` pair judged by exit-harness.
//!
//! The programs are the binaries in `src/bin/` (Rust) and `python/` (Python); the scenario files
//! that say how to run and judge them are in `scenarios/<case>/{buggy,fixed}.toml`. See the
//! crate's README for each case, where it comes from and what evidence the harness prints.
//!
//! This library only holds what the binaries share: reading `buggy|fixed` and the paths from
//! the command line.
#![forbid(unsafe_code)]

use std::path::PathBuf;

/// Which variant of a case to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// The program as people write it, with the exit-time bug.
    Buggy,
    /// The same program with the fix.
    Fixed,
}

/// The command line of a case binary: `buggy|fixed PATH [COUNT]`.
#[derive(Debug, Clone)]
pub struct Args {
    /// Which variant.
    pub variant: Variant,
    /// The file or folder the case writes to.
    pub path: PathBuf,
    /// How many lines or records to write.
    pub count: usize,
}

/// Parses `buggy|fixed PATH [COUNT]`; on a usage error, prints the usage and exits with 2.
pub fn args(usage: &str, default_count: usize) -> Args {
    let mut it = std::env::args_os().skip(1);
    let variant = match it.next().as_ref().and_then(|v| v.to_str()) {
        Some("buggy") => Variant::Buggy,
        Some("fixed") => Variant::Fixed,
        _ => usage_error(usage),
    };
    let Some(path) = it.next() else { usage_error(usage) };
    let count = match it.next() {
        None => default_count,
        Some(n) => n.to_str().and_then(|n| n.parse().ok()).unwrap_or_else(|| usage_error(usage)),
    };
    Args { variant, path: PathBuf::from(path), count }
}

fn usage_error(usage: &str) -> ! {
    eprintln!("usage: {usage}");
    std::process::exit(2)
}

/// The `n`th line (1-based) the cases write: `line 01`, `line 02`, ...
pub fn line(n: usize) -> String {
    format!("line {n:02}")
}
