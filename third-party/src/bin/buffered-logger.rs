//! A buffering logger loses its buffer at `std::process::exit` (flexi_logger, buffered mode).
//!
//! `buffered-logger buggy|fixed DIR [N]` starts `flexi_logger` writing to `DIR/app.log` with
//! `WriteMode::BufferAndFlush` (an 8 KiB buffer, flushed by a background thread every second),
//! logs N lines (default 10) with `log::info!`, then calls `std::process::exit(0)`.
//!
//! * `buggy`: `process::exit` runs no destructors, so the `LoggerHandle`, whose `Drop` flushes,
//!   is never dropped, and the process ends long before the one-second flush: `DIR/app.log`
//!   exists but is empty. The same loss hit simplelog 0.10.1, whose `TermLogger` started
//!   buffering (Drakulix/simplelog.rs#80): the `log` crate keeps the installed logger in a
//!   static that is never dropped, so the buffer's own flush-on-drop never ran and up to 8 KiB
//!   of output went missing at exit; simplelog.rs#82 fixed it by flushing each entry (0.10.1
//!   was yanked). Any logger that buffers and relies on a destructor to flush has this shape.
//! * `fixed`: calls `handle.flush()` and `handle.shutdown()` before `process::exit`: all N lines
//!   are in the file. (Returning from `main` with the handle alive would also do, since the
//!   handle is then dropped; flexi_logger's docs: keep the `LoggerHandle` alive "up to the very
//!   end of your program to ensure that all buffered log lines are flushed out".)
//!
//! A logger that must survive `process::exit` without the application's help would need an
//! `atexit` hook; the `log` crate's `Log::flush` exists precisely for the application to call
//! on its way out.
#![forbid(unsafe_code)]

use flexi_logger::{FileSpec, Logger, WriteMode};
use third_party_cases::{Variant, args, line};

fn main() {
    let args = args("buffered-logger buggy|fixed DIR [N]", 10);
    let started = Logger::try_with_str("info").and_then(|logger| {
        logger
            .log_to_file(FileSpec::default().directory(&args.path).basename("app").suppress_timestamp())
            .format(|w, _now, record| write!(w, "{}", record.args()))
            .write_mode(WriteMode::BufferAndFlush)
            .start()
    });
    let handle = match started {
        Ok(h) => h,
        Err(e) => {
            eprintln!("buffered-logger: {e}");
            std::process::exit(1);
        }
    };

    for n in 1..=args.count {
        log::info!("{}", line(n));
    }

    if args.variant == Variant::Fixed {
        // The fix: push the buffer to the file before ending the process.
        handle.flush();
        handle.shutdown();
    }
    std::process::exit(0);
}
