//! Every `unsafe` call of this crate, each wrapped in a safe function with its `// SAFETY:` note.

/// The C signature of an `atexit` callback.
pub(crate) type ExitCallback = extern "C" fn();

/// Registers `callback` with libc's `atexit`. Returns false if libc refused (out of memory).
pub(crate) fn register_atexit(callback: ExitCallback) -> bool {
    // SAFETY: `callback` is a plain `extern "C" fn()` with no captured state; libc stores the
    // pointer and calls it once, on the thread that calls `exit`. The callback itself catches
    // every unwind (see `registry::run_exit_hooks`), so no panic crosses the C boundary.
    unsafe { libc::atexit(callback) == 0 }
}

/// The effective user id of this process.
pub(crate) fn effective_uid() -> u32 {
    // SAFETY: `geteuid` takes no arguments, cannot fail and touches no memory of ours.
    unsafe { libc::geteuid() }
}

/// Whether `dlopen` finds an NVRTC library by any of the names `cudarc` tries.
pub(crate) fn nvrtc_library_present() -> bool {
    // SAFETY: `is_culib_present` only tries `libloading::Library::new` on each candidate name and
    // drops what it opened; it runs no code of the library beyond its initialisers, which are the
    // library vendor's and run for any loader.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// NVRTC's `(major, minor)` version. Call only after [`nvrtc_library_present`] returned true,
/// because `cudarc` panics when the library is missing.
pub(crate) fn nvrtc_version() -> Option<(i32, i32)> {
    let (mut major, mut minor) = (0, 0);
    // SAFETY: the library is present (caller's contract), so `cudarc` resolves the symbol instead
    // of panicking; both pointers point to live, writable `c_int`s for the duration of the call.
    let status = unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
    (status == cudarc::nvrtc::sys::nvrtcResult::NVRTC_SUCCESS).then_some((major, minor))
}

/// Whether `dlopen` finds the CUDA driver library (`libcuda.so.1`) by any of the names `cudarc`
/// tries. Every driver call of `cudarc` panics when it is missing: probe with this first.
pub(crate) fn cuda_driver_library_present() -> bool {
    // SAFETY: as for `nvrtc_library_present`: `is_culib_present` only tries to open each candidate
    // name with `libloading` and drops what it opened.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// Makes a `fork()`ed child die by `signal`'s default action, as if no handler were installed:
/// the signal-hook thread that would have handled it exists only in the process that installed it.
pub(crate) fn default_action_in_forked_children(signal: i32, installer_pid: u32) -> std::io::Result<()> {
    // SAFETY: the action only calls `getpid` (through `std::process::id`) and signal-hook's
    // `emulate_default_handler`, both async-signal-safe; it captures two plain integers.
    unsafe {
        signal_hook::low_level::register(signal, move || {
            if std::process::id() != installer_pid {
                let _ = signal_hook::low_level::emulate_default_handler(signal);
            }
        })
    }
    .map(|_| ())
}
