//! The device path: proves a cached PTX artifact valid by loading it into a CUDA module on a GPU.
//!
//! `cudarc` panics when the CUDA driver library is missing, so [`load_on_device`] probes for it
//! first and reports [`DeviceError::DriverMissing`]; a machine with the driver and no GPU gets
//! [`DeviceError::NoDevice`].

use cudarc::driver::{CudaContext, DriverError, sys::cudaError_enum};

use crate::engine::Kernel;
use crate::key::Output;
use crate::sys;

/// What loading a kernel on the device showed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceReport {
    /// The GPU's name, as the driver reports it.
    pub device_name: String,
    /// The entry points found in the loaded module.
    pub entry_points: Vec<String>,
}

/// Why a kernel could not be loaded on the device.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// The CUDA driver library (`libcuda.so.1`) cannot be loaded.
    #[error("the CUDA driver (libcuda.so.1) could not be loaded")]
    DriverMissing,
    /// The driver loaded, but there is no usable GPU.
    #[error("no CUDA device: {0}")]
    NoDevice(String),
    /// A PTX artifact is not text (not UTF-8, or holds a NUL byte), or an entry point name holds a
    /// NUL byte.
    #[error("not loadable PTX: {0}")]
    NotPtx(String),
    /// The driver refused the module or an entry point (`what` says which step).
    #[error("{what} failed: {error}")]
    Driver {
        /// The step: "create a context", "load the module", "find entry point `k`".
        what: String,
        /// The driver's error.
        error: DriverError,
    },
}

/// Loads `kernel`'s PTX (or CUBIN) into a module on GPU 0 and looks up each of `entry_points` in it.
pub fn load_on_device(kernel: &Kernel, entry_points: &[&str]) -> Result<DeviceReport, DeviceError> {
    if !sys::cuda_driver_library_present() {
        return Err(DeviceError::DriverMissing);
    }
    // `cudarc` unwraps `CString::new` on these: refuse NUL bytes with a typed error first.
    if entry_points.iter().any(|entry| entry.contains('\0')) {
        return Err(DeviceError::NotPtx("a NUL byte in an entry point name".into()));
    }
    let image = match kernel.output() {
        Output::Ptx => {
            let ptx = std::str::from_utf8(kernel.bytes()).map_err(|error| DeviceError::NotPtx(error.to_string()))?;
            if ptx.contains('\0') {
                return Err(DeviceError::NotPtx("a NUL byte in the PTX".into()));
            }
            cudarc::nvrtc::Ptx::from_src(ptx)
        }
        Output::Cubin => cudarc::nvrtc::Ptx::from_binary(kernel.bytes().to_vec()),
    };
    let context = CudaContext::new(0).map_err(|error| match error.0 {
        cudaError_enum::CUDA_ERROR_NO_DEVICE | cudaError_enum::CUDA_ERROR_INVALID_DEVICE => {
            DeviceError::NoDevice(error.to_string())
        }
        _ => DeviceError::Driver { what: "create a context".into(), error },
    })?;
    let device_name =
        context.name().map_err(|error| DeviceError::Driver { what: "read the device name".into(), error })?;
    let module =
        context.load_module(image).map_err(|error| DeviceError::Driver { what: "load the module".into(), error })?;
    for entry in entry_points {
        module
            .load_function(entry)
            .map_err(|error| DeviceError::Driver { what: format!("find entry point `{entry}`"), error })?;
    }
    Ok(DeviceReport { device_name, entry_points: entry_points.iter().map(|entry| (*entry).to_owned()).collect() })
}
