//! Detects, at build time, the native libraries the optional tests need, and sets cfgs the tests
//! gate on (`#[cfg_attr(not(nvrtc_present), ignore = "...")]`):
//!
//! - `nvrtc_present`: `libnvrtc.so.12` is in an `LD_LIBRARY_PATH` folder or in the project's
//!   `.nvrtc/nvidia/cuda_nvrtc/lib` (where `.ci/run` installs it from PyPI). The folder found is
//!   passed to the tests as `RUNTIME_CACHE_NVRTC_LIB_DIR`, so a test process started without it on
//!   `LD_LIBRARY_PATH` can re-run itself with it.
//! - `nvrtc_alt_present`: the folder found also holds `libnvrtc.alt.so.12` (the PyPI wheel's other
//!   build of NVRTC), so a test can check that two builds never share keys.
//! - `nvrtc_system_wide`: `libnvrtc.so.12` is also visible without `LD_LIBRARY_PATH` (the loader
//!   cache or a standard folder), so a child process cannot be made to miss it.
//! - `cuda_driver_present`: the CUDA driver `libcuda.so.1` can be found (a GPU may still be absent).
//! - `cuda_gpu_present`: the driver can be found and `/dev/nvidia0` exists.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const NVRTC: &str = "libnvrtc.so.12";
const DRIVER: &str = "libcuda.so.1";
const STANDARD_FOLDERS: [&str; 6] = [
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/cuda/lib64",
    "/usr/local/cuda/targets/x86_64-linux/lib",
];

fn main() {
    println!("cargo::rustc-check-cfg=cfg(nvrtc_present)");
    println!("cargo::rustc-check-cfg=cfg(nvrtc_system_wide)");
    println!("cargo::rustc-check-cfg=cfg(nvrtc_alt_present)");
    println!("cargo::rustc-check-cfg=cfg(cuda_driver_present)");
    println!("cargo::rustc-check-cfg=cfg(cuda_gpu_present)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=LD_LIBRARY_PATH");

    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let project_nvrtc = manifest_dir.join("../.nvrtc/nvidia/cuda_nvrtc/lib");
    // Re-run when `.ci/run` (or a user) installs NVRTC into the project folder.
    if let Some(nvidia) = project_nvrtc.ancestors().nth(3).filter(|dir| dir.is_dir()) {
        println!("cargo::rerun-if-changed={}", nvidia.display());
    }
    let library_path: Vec<PathBuf> =
        env::var_os("LD_LIBRARY_PATH").map(|value| env::split_paths(&value).collect()).unwrap_or_default();

    let nvrtc_dir = library_path
        .iter()
        .chain(std::iter::once(&project_nvrtc))
        .find(|dir| dir.join(NVRTC).is_file())
        .map(|dir| dir.canonicalize().unwrap_or_else(|_| dir.clone()));
    if let Some(dir) = nvrtc_dir {
        println!("cargo::rustc-cfg=nvrtc_present");
        if dir.join("libnvrtc.alt.so.12").is_file() {
            println!("cargo::rustc-cfg=nvrtc_alt_present");
        }
        println!("cargo::rustc-env=RUNTIME_CACHE_NVRTC_LIB_DIR={}", dir.display());
    }
    if visible_without_library_path(NVRTC) {
        println!("cargo::rustc-cfg=nvrtc_system_wide");
    }
    if library_path.iter().any(|dir| dir.join(DRIVER).is_file()) || visible_without_library_path(DRIVER) {
        println!("cargo::rustc-cfg=cuda_driver_present");
        if Path::new("/dev/nvidia0").exists() {
            println!("cargo::rustc-cfg=cuda_gpu_present");
        }
    }
}

/// Whether the dynamic loader finds `library` with `LD_LIBRARY_PATH` empty.
fn visible_without_library_path(library: &str) -> bool {
    let in_loader_cache = Command::new("ldconfig")
        .arg("-p")
        .output()
        .or_else(|_| Command::new("/sbin/ldconfig").arg("-p").output())
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).contains(library));
    in_loader_cache || STANDARD_FOLDERS.iter().any(|dir| Path::new(dir).join(library).is_file())
}
