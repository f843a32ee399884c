//! The device path: a cached PTX artifact loads into a CUDA module on a real GPU (needs the CUDA
//! driver and a GPU: build.rs sets `cuda_driver_present`); without the driver, a typed
//! `DriverMissing` error instead of `cudarc`'s panic.

use bytes::Bytes;
use runtime_cache::{DeviceError, Kernel, KernelKey, KernelOrigin, Output, load_on_device};

/// A minimal hand-written PTX module with one entry point, so this test needs no NVRTC.
const PTX: &str = r#"
.version 7.0
.target sm_52
.address_size 64

.visible .entry noop(
    .param .u64 out
)
{
    .reg .b64 %rd<2>;
    .reg .b32 %r<2>;
    ld.param.u64 %rd1, [out];
    cvta.to.global.u64 %rd1, %rd1;
    mov.u32 %r1, 42;
    st.global.u32 [%rd1], %r1;
    ret;
}
"#;

fn kernel(ptx: &str) -> Kernel {
    Kernel::new(KernelKey([0; 32]), KernelOrigin::CacheHit, Output::Ptx, Bytes::copy_from_slice(ptx.as_bytes()))
}

#[test]
#[cfg_attr(
    not(cuda_gpu_present),
    ignore = "needs a GPU: libcuda.so.1 (the NVIDIA driver, on LD_LIBRARY_PATH or the loader's path) and /dev/nvidia0"
)]
fn ptx_loads_into_a_module_on_the_gpu_and_bad_ptx_is_refused() {
    let report = load_on_device(&kernel(PTX), &["noop"]).expect("load on GPU 0");
    assert!(!report.device_name.is_empty());
    assert_eq!(report.entry_points, ["noop"]);
    assert!(matches!(load_on_device(&kernel(PTX), &["absent"]), Err(DeviceError::Driver { .. })));
    assert!(matches!(load_on_device(&kernel("not ptx at all"), &[]), Err(DeviceError::Driver { .. })));
    assert!(matches!(load_on_device(&kernel("a\0b"), &[]), Err(DeviceError::NotPtx(_))));
}

#[test]
#[cfg_attr(cuda_driver_present, ignore = "the CUDA driver is installed here: the missing-driver error cannot occur")]
fn without_the_driver_loading_is_a_typed_error_not_a_panic() {
    assert!(matches!(load_on_device(&kernel(PTX), &["noop"]), Err(DeviceError::DriverMissing)));
}
