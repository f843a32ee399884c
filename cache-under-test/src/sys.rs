//! Every `unsafe` call of this crate, each wrapped in a safe function with its `// SAFETY:` note:
//! `atexit`, `geteuid`, the signal action of forked children, and NVRTC's C API, loaded with
//! `dlopen` from one exact file (see [`nvrtc::NvrtcLibrary`]).

#[cfg(any(feature = "nvrtc", feature = "cudarc"))]
use std::ffi::CString;
#[cfg(feature = "nvrtc")]
use std::ffi::{CStr, c_char, c_int, c_void};
#[cfg(feature = "nvrtc")]
use std::os::unix::ffi::OsStrExt;
#[cfg(feature = "nvrtc")]
use std::path::Path;

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

/// Whether `dlopen` finds the CUDA driver library (`libcuda.so.1`), as `cudarc` will look for it.
/// Every driver call of `cudarc` panics when it is missing: probe with this first. (Under
/// `dynamic-linking` the driver is linked at start-up, so it is present.)
#[cfg(feature = "cudarc")]
pub(crate) fn cuda_driver_library_present() -> bool {
    ["libcuda.so.1", "libcuda.so"].iter().any(|name| library_loads(name))
}

/// Whether `dlopen(name)` succeeds (the library is then left loaded, as `cudarc` would load it next).
#[cfg(feature = "cudarc")]
fn library_loads(name: &str) -> bool {
    let Ok(name) = CString::new(name) else { return false };
    // SAFETY: `name` is a NUL-terminated string that outlives the call. `dlopen` runs the
    // library's initialisers, which the vendor wrote for any loader; the handle is never closed,
    // so nothing of the library is unmapped while `cudarc` may use it.
    !unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) }.is_null()
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

/// NVRTC's C API through `dlopen`/`dlsym`.
#[cfg(feature = "nvrtc")]
pub(crate) mod nvrtc {
    use super::*;

    /// NVRTC's `nvrtcResult` code for success.
    const NVRTC_SUCCESS: c_int = 0;

    type NvrtcProgram = *mut c_void;
    type CreateProgram = unsafe extern "C" fn(
        *mut NvrtcProgram,
        *const c_char,
        *const c_char,
        c_int,
        *const *const c_char,
        *const *const c_char,
    ) -> c_int;
    type DestroyProgram = unsafe extern "C" fn(*mut NvrtcProgram) -> c_int;
    type CompileProgram = unsafe extern "C" fn(NvrtcProgram, c_int, *const *const c_char) -> c_int;
    type GetSize = unsafe extern "C" fn(NvrtcProgram, *mut usize) -> c_int;
    type GetBytes = unsafe extern "C" fn(NvrtcProgram, *mut c_char) -> c_int;
    type Version = unsafe extern "C" fn(*mut c_int, *mut c_int) -> c_int;
    type GetErrorString = unsafe extern "C" fn(c_int) -> *const c_char;

    /// NVRTC's C API, resolved from one library file that stays loaded for the life of the process
    /// (it is never `dlclose`d, so no function pointer here can dangle).
    #[derive(Debug)]
    pub(crate) struct NvrtcLibrary {
        create_program: CreateProgram,
        destroy_program: DestroyProgram,
        compile_program: CompileProgram,
        get_ptx_size: GetSize,
        get_ptx: GetBytes,
        get_cubin_size: GetSize,
        get_cubin: GetBytes,
        get_log_size: GetSize,
        get_log: GetBytes,
        version: Version,
        get_error_string: GetErrorString,
    }

    /// What NVRTC produces: PTX text, or a CUBIN for a real architecture (`sm_XX`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) enum NvrtcOutput {
        Ptx,
        Cubin,
    }

    /// Why an NVRTC call failed.
    #[derive(Debug)]
    pub(crate) enum NvrtcFailure {
        /// `nvrtcCompileProgram` failed: NVRTC's message and the program log.
        Rejected { message: String, log: String },
        /// Any other call failed (`step` says which).
        Call { step: &'static str, message: String },
    }

    /// Destroys an NVRTC program when dropped.
    struct Program<'a> {
        library: &'a NvrtcLibrary,
        program: NvrtcProgram,
    }

    impl Drop for Program<'_> {
        fn drop(&mut self) {
            // SAFETY: `program` was created by `nvrtcCreateProgram` of this library and is destroyed
            // exactly once, here; the pointer to it is live for the call.
            let _ = unsafe { (self.library.destroy_program)(&mut self.program) };
        }
    }

    impl NvrtcLibrary {
        /// Loads NVRTC from exactly `path` (no search) and resolves the functions this crate uses.
        pub(crate) fn open(path: &Path) -> Result<Self, String> {
            let c_path =
                CString::new(path.as_os_str().as_bytes()).map_err(|_| "the path holds a NUL byte".to_owned())?;
            // SAFETY: `c_path` is NUL-terminated and outlives the call. A path with a slash makes
            // `dlopen` load that file and no other. Its initialisers are NVIDIA's, written for any
            // loader. The handle is deliberately never closed (see the type's doc).
            let handle = unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
            if handle.is_null() {
                return Err(last_dl_error());
            }
            let symbol = |name: &CStr| -> Result<*mut c_void, String> {
                // SAFETY: `handle` is a live handle from `dlopen` above; `name` is NUL-terminated.
                let address = unsafe { libc::dlsym(handle, name.as_ptr()) };
                if address.is_null() {
                    Err(format!("{} not found: {}", name.to_string_lossy(), last_dl_error()))
                } else {
                    Ok(address)
                }
            };
            // SAFETY (for each `transmute` below): the symbol is NVRTC's exported C function of that
            // name, whose C signature (NVRTC 11 to 13, `nvrtc.h`) is the function pointer type it is
            // cast to; function and data pointers have the same size on every platform Linux runs on.
            unsafe {
                Ok(Self {
                    create_program: std::mem::transmute::<*mut c_void, CreateProgram>(symbol(c"nvrtcCreateProgram")?),
                    destroy_program: std::mem::transmute::<*mut c_void, DestroyProgram>(symbol(
                        c"nvrtcDestroyProgram",
                    )?),
                    compile_program: std::mem::transmute::<*mut c_void, CompileProgram>(symbol(
                        c"nvrtcCompileProgram",
                    )?),
                    get_ptx_size: std::mem::transmute::<*mut c_void, GetSize>(symbol(c"nvrtcGetPTXSize")?),
                    get_ptx: std::mem::transmute::<*mut c_void, GetBytes>(symbol(c"nvrtcGetPTX")?),
                    get_cubin_size: std::mem::transmute::<*mut c_void, GetSize>(symbol(c"nvrtcGetCUBINSize")?),
                    get_cubin: std::mem::transmute::<*mut c_void, GetBytes>(symbol(c"nvrtcGetCUBIN")?),
                    get_log_size: std::mem::transmute::<*mut c_void, GetSize>(symbol(c"nvrtcGetProgramLogSize")?),
                    get_log: std::mem::transmute::<*mut c_void, GetBytes>(symbol(c"nvrtcGetProgramLog")?),
                    version: std::mem::transmute::<*mut c_void, Version>(symbol(c"nvrtcVersion")?),
                    get_error_string: std::mem::transmute::<*mut c_void, GetErrorString>(symbol(
                        c"nvrtcGetErrorString",
                    )?),
                })
            }
        }

        /// NVRTC's `(major, minor)` version.
        pub(crate) fn version(&self) -> Option<(i32, i32)> {
            let (mut major, mut minor) = (0, 0);
            // SAFETY: both pointers point to live, writable `c_int`s for the duration of the call.
            let status = unsafe { (self.version)(&mut major, &mut minor) };
            (status == NVRTC_SUCCESS).then_some((major, minor))
        }

        /// NVRTC's text for a result code.
        fn error_string(&self, code: c_int) -> String {
            // SAFETY: `nvrtcGetErrorString` accepts any code and returns a pointer to a static,
            // NUL-terminated string (or NULL, checked).
            let text = unsafe { (self.get_error_string)(code) };
            if text.is_null() {
                return format!("NVRTC error {code}");
            }
            // SAFETY: non-NULL, NUL-terminated, static (see above).
            unsafe { CStr::from_ptr(text) }.to_string_lossy().into_owned()
        }

        /// Compiles `source` (named `name` in diagnostics) with in-memory `headers` (name, contents)
        /// and `options`, and returns the PTX text or CUBIN bytes. Every string must be free of NUL
        /// bytes (the caller checks; a NUL here is reported as a failed call).
        pub(crate) fn compile(
            &self,
            source: &str,
            name: &str,
            headers: &[(String, String)],
            options: &[String],
            output: NvrtcOutput,
        ) -> Result<Vec<u8>, NvrtcFailure> {
            let nul = |step| NvrtcFailure::Call { step, message: "a NUL byte in a string".into() };
            let source = CString::new(source).map_err(|_| nul("source"))?;
            let name = CString::new(name).map_err(|_| nul("program name"))?;
            let header_contents = headers
                .iter()
                .map(|(_, text)| CString::new(text.as_str()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| nul("header"))?;
            let header_names = headers
                .iter()
                .map(|(name, _)| CString::new(name.as_str()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| nul("header name"))?;
            let options = options
                .iter()
                .map(|o| CString::new(o.as_str()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| nul("option"))?;
            let content_ptrs: Vec<*const c_char> = header_contents.iter().map(|c| c.as_ptr()).collect();
            let name_ptrs: Vec<*const c_char> = header_names.iter().map(|c| c.as_ptr()).collect();
            let option_ptrs: Vec<*const c_char> = options.iter().map(|c| c.as_ptr()).collect();
            let count = |n: usize, step| {
                c_int::try_from(n).map_err(|_| NvrtcFailure::Call { step, message: "too many".into() })
            };
            let header_count = count(headers.len(), "headers")?;
            let option_count = count(options.len(), "options")?;

            let mut program: NvrtcProgram = std::ptr::null_mut();
            // SAFETY: every pointer is to a live NUL-terminated string owned by a local of this
            // function (they outlive the program, which is destroyed when `guard` drops); the arrays
            // hold exactly `header_count` entries each; `program` is a live, writable pointer.
            let status = unsafe {
                (self.create_program)(
                    &mut program,
                    source.as_ptr(),
                    name.as_ptr(),
                    header_count,
                    content_ptrs.as_ptr(),
                    name_ptrs.as_ptr(),
                )
            };
            if status != NVRTC_SUCCESS {
                return Err(NvrtcFailure::Call { step: "nvrtcCreateProgram", message: self.error_string(status) });
            }
            let guard = Program { library: self, program };
            // SAFETY: `program` is live (owned by `guard`); `option_ptrs` holds `option_count` live
            // NUL-terminated strings.
            let status = unsafe { (self.compile_program)(guard.program, option_count, option_ptrs.as_ptr()) };
            if status != NVRTC_SUCCESS {
                let log = self.read(&guard, self.get_log_size, self.get_log, "nvrtcGetProgramLog").unwrap_or_default();
                let log = String::from_utf8_lossy(&log).into_owned();
                return Err(NvrtcFailure::Rejected { message: self.error_string(status), log });
            }
            match output {
                NvrtcOutput::Ptx => self.read(&guard, self.get_ptx_size, self.get_ptx, "nvrtcGetPTX"),
                NvrtcOutput::Cubin => self.read(&guard, self.get_cubin_size, self.get_cubin, "nvrtcGetCUBIN"),
            }
        }

        /// Reads one of the program's outputs (PTX, CUBIN, log) with its size function, without the
        /// trailing NUL NVRTC adds to text.
        fn read(
            &self,
            program: &Program<'_>,
            size: GetSize,
            bytes: GetBytes,
            step: &'static str,
        ) -> Result<Vec<u8>, NvrtcFailure> {
            let mut len = 0usize;
            // SAFETY: `program.program` is live; `len` is a live, writable `size_t`.
            let status = unsafe { size(program.program, &mut len) };
            if status != NVRTC_SUCCESS {
                return Err(NvrtcFailure::Call { step, message: self.error_string(status) });
            }
            let mut buffer = vec![0u8; len];
            // SAFETY: NVRTC writes exactly `len` bytes (the size it just reported) into `buffer`,
            // which holds `len` bytes; `program.program` is live.
            let status = unsafe { bytes(program.program, buffer.as_mut_ptr().cast::<c_char>()) };
            if status != NVRTC_SUCCESS {
                return Err(NvrtcFailure::Call { step, message: self.error_string(status) });
            }
            if step != "nvrtcGetCUBIN" {
                while buffer.last() == Some(&0) {
                    buffer.pop();
                }
            }
            Ok(buffer)
        }
    }

    /// The dynamic loader's last error message on this thread.
    fn last_dl_error() -> String {
        // SAFETY: `dlerror` returns NULL or a pointer to a NUL-terminated message owned by the loader,
        // valid until the next `dl*` call on this thread; it is copied before any such call.
        let message = unsafe { libc::dlerror() };
        if message.is_null() {
            return "unknown dynamic loader error".into();
        }
        // SAFETY: non-NULL, NUL-terminated (see above).
        unsafe { CStr::from_ptr(message) }.to_string_lossy().into_owned()
    }
}
