//! How this program ends: the planned [`Ending`], or [`give_up`] when a scenario cannot be
//! carried out. At the bottom of the import order: it uses no other module of this program.

use std::process::ExitCode;

use scenarios::contract::{Ending, PLANNED_PANIC};
use scenarios::wiring;

/// The exit code of a scenario that could not be carried out (EX_SOFTWARE).
const GAVE_UP: i32 = 70;

/// Ends the process as `ending` says, after the `ending` marker. `Return` gives back the exit
/// code for `main` to return (so that `main`'s locals are dropped); every other ending does not
/// return.
pub fn end(ending: Ending) -> ExitCode {
    wiring::marker("ending");
    match ending {
        Ending::Return => ExitCode::SUCCESS,
        Ending::Exit(code) => std::process::exit(code),
        Ending::Panic => panic!("{PLANNED_PANIC}"),
        Ending::SigTerm => die_by(signal_hook::consts::SIGTERM),
        Ending::SigInt => die_by(signal_hook::consts::SIGINT),
        Ending::Abort => std::process::abort(),
        Ending::SigKill => die_by(signal_hook::consts::SIGKILL),
    }
}

/// Raises `signal` and waits to die by it (with the termination handler, the handler's thread
/// saves first, then re-raises).
fn die_by(signal: i32) -> ! {
    let _ = signal_hook::low_level::raise(signal);
    loop {
        std::thread::park();
    }
}

/// Reports a broken scenario (not a cache failure) on stderr, where every oracle will see it,
/// and exits with code 70.
pub fn give_up(why: &str) -> ! {
    eprintln!("scenario-child: {why}");
    std::process::exit(GAVE_UP)
}
