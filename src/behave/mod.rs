//! Behavioural diff: run one input suite through a trusted baseline and a candidate (candle, CPU
//! by default) and flag backdoor-like divergence, i.e. the candidate sending probed inputs of
//! every class to one target class where the baseline does not.
//!
//! Entry points: [`run`] (one pair), [`Prepared`] (baseline evaluated once, many candidates),
//! [`calibrate::calibrate`] (threshold from known-benign candidates).

pub mod calibrate;
pub mod error;
pub mod models;
pub mod null;
pub mod probes;
pub mod render;
pub mod report;
pub mod runner;
pub mod stats;
pub mod suite;
pub mod synth;
pub mod tensors;
pub mod tokensearch;

pub use error::{BehaveError, Result};
pub use report::BehaveReport;
pub use runner::{run, Prepared, Progress};

/// Fix candle's CPU thread count once, for the whole process. candle-core 0.11 asks for it on
/// every matmul and, without `RAYON_NUM_THREADS`, works it out again each time from
/// /sys and /proc/cpuinfo (hundreds of thousands of file opens for one suite, most of the run
/// time in system calls). Resolved once here and pinned in the variable candle reads first; a
/// value the user set is kept.
///
/// Call at start-up, before any thread exists: it sets an environment variable.
pub fn pin_thread_count() {
    let set = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n > 0);
    if !set {
        let n = candle_core::utils::get_num_threads();
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
}

/// The compute device: CPU, or CUDA when built with the `cuda` feature.
pub fn device(cuda: bool) -> Result<candle_core::Device> {
    if cuda {
        if !candle_core::utils::cuda_is_available() {
            return Err(BehaveError::Format {
                path: "--device".into(),
                message: "this mlsign was built without CUDA support (cargo feature `cuda`)".into(),
            });
        }
        new_cuda()
    } else {
        Ok(candle_core::Device::Cpu)
    }
}

/// Opens GPU 0. cudarc loads the driver library (`libcuda.so`) on first use and panics when it
/// is absent (a CUDA build on a machine without the NVIDIA driver), so the panic is caught and
/// turned into an error here, with the default hook silenced for that one call.
fn new_cuda() -> Result<candle_core::Device> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let opened = std::panic::catch_unwind(|| candle_core::Device::new_cuda(0));
    std::panic::set_hook(hook);
    let cuda_error = |message: String| {
        BehaveError::Format {
        path: "--device".into(),
        message: format!(
            "cannot open CUDA device 0: {message}; check that the NVIDIA driver is installed \
             (libcuda.so on the library path) and a GPU is visible (nvidia-smi), or use --device cpu"
        ),
    }
    };
    match opened {
        Ok(Ok(device)) => Ok(device),
        // The first line only: candle appends a backtrace when RUST_BACKTRACE is set.
        Ok(Err(e)) => Err(cuda_error(
            e.to_string().lines().next().unwrap_or_default().to_string(),
        )),
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "the CUDA library panicked".into());
            Err(cuda_error(message))
        }
    }
}
