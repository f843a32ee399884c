//! `tempfile::NamedTempFile` and `std::process::exit`: the file is left behind.
//!
//! `tempfile-exit buggy|fixed DIR` creates a named temporary file in DIR with
//! `tempfile::Builder::new().tempfile_in(DIR)` (the way a download or an atomic save starts),
//! writes to it, then ends the process with `std::process::exit(0)`.
//!
//! * `buggy`: `process::exit` runs no destructors, so `NamedTempFile`'s `Drop`, which deletes
//!   the file, never runs: DIR keeps `upload-XXXXXX.part`. The tempfile docs say so, under
//!   "Resource Leaking" on `NamedTempFile`: "If the program exits before the `NamedTempFile`
//!   destructor is run, the temporary file will not be deleted. This can happen if the process
//!   exits using `std::process::exit()`, a segfault occurs, receiving an interrupt signal like
//!   `SIGINT` that is not handled, or by using a statically declared `NamedTempFile` instance".
//! * `fixed`: closes the file (`NamedTempFile::close`, which deletes it and reports errors)
//!   before `process::exit`: DIR is as it was.
//!
//! The real fix is structural: return an exit code from `main` (`std::process::ExitCode`) so
//! every destructor runs, and call `process::exit` only where nothing owns a resource; or use
//! `tempfile::tempfile()` (unnamed, removed by the OS even on SIGKILL) when no name is needed.
#![forbid(unsafe_code)]

use std::io::Write as _;

use third_party_cases::{Variant, args};

fn main() {
    let args = args("tempfile-exit buggy|fixed DIR", 1);
    let mut part = match tempfile::Builder::new().prefix("upload-").suffix(".part").tempfile_in(&args.path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("tempfile-exit: {}: {e}", args.path.display());
            std::process::exit(1);
        }
    };
    let _ = part.write_all(b"partial download\n");

    // ... the program decides it is done (a CLI's early exit, a `--help`, a fatal config error).
    if args.variant == Variant::Fixed {
        // The fix: end the temp file's life before ending the process.
        let _ = part.close();
    }
    std::process::exit(0);
}
