//! A `BufWriter<File>` in a `static`: statics are never dropped, so its buffer is never flushed.
//!
//! `bufwriter-static buggy|fixed FILE [N]` writes N lines (default 10) to FILE through a
//! process-wide `static LOG: Mutex<Option<BufWriter<File>>>`, then returns from `main`.
//!
//! * `buggy`: returns from `main` with the lines still in the `BufWriter`'s 8 KiB buffer. Rust
//!   never runs destructors of statics, so `BufWriter`'s `Drop` (which would flush) never runs:
//!   FILE exists (it was created) but is empty. Nothing is printed: the loss is silent.
//! * `fixed`: flushes the writer before `main` returns: FILE has all N lines.
//!
//! In the wild: simplelog 0.10.1 (Drakulix/simplelog.rs#80, fixed by #82) put a buffered
//! stream inside the logger that the `log` crate keeps in a static; "the Case of the Missing
//! 8k" followed, since that static is never dropped.
//!
//! What a real fix looks like: a global writer needs an owner that ends before the process
//! does. Either keep the writer in `main` (or in a guard value owned by `main`, whose `Drop`
//! flushes, as `flexi_logger`'s `LoggerHandle` does) and pass it down; or, when it must be
//! global, flush it at every point where the program ends: before `main` returns, before each
//! `process::exit`, in the panic hook, in the termination-signal handler; or flush after each
//! line that must survive (`LineWriter`), trading speed for durability. An `atexit`/`libc`
//! hook would also run on return and on `process::exit`, but not on a signal or an abort.
#![forbid(unsafe_code)]

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::sync::Mutex;

use third_party_cases::{Variant, args, line};

/// The process-wide log, as a library or an application keeps it.
static LOG: Mutex<Option<BufWriter<File>>> = Mutex::new(None);

fn log_line(text: &str) {
    let mut log = LOG.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(w) = log.as_mut() {
        // Errors are ignored here as a typical logger does; the harness judges the file.
        let _ = writeln!(w, "{text}");
    }
}

fn main() {
    let args = args("bufwriter-static buggy|fixed FILE [N]", 10);
    let file = match File::create(&args.path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("bufwriter-static: {}: {e}", args.path.display());
            std::process::exit(1);
        }
    };
    *LOG.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(BufWriter::new(file));

    for n in 1..=args.count {
        log_line(&line(n));
    }

    if args.variant == Variant::Fixed {
        // The fix: flush before the process ends. (`take()` and drop would do as well.)
        let mut log = LOG.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(w) = log.as_mut() {
            let _ = w.flush();
        }
    }
    // main returns: `LOG` is a static, never dropped; whatever is still buffered is lost.
}
