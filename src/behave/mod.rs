//! Behavioural diff: run one input suite through a trusted baseline and a candidate (candle, CPU
//! by default) and flag backdoor-like divergence, i.e. the candidate sending probed inputs of
//! every class to one target class where the baseline does not.
//!
//! Entry points: [`run`] (one pair), [`Prepared`] (baseline evaluated once, many candidates),
//! [`calibrate::calibrate`] (threshold from known-benign candidates).

pub mod calibrate;
pub mod error;
pub mod models;
pub mod probes;
pub mod report;
pub mod runner;
pub mod stats;
pub mod suite;
pub mod tensors;

pub use error::{BehaveError, Result};
pub use report::BehaveReport;
pub use runner::{run, Prepared, Progress};

/// The compute device: CPU, or CUDA when built with the `cuda` feature.
pub fn device(cuda: bool) -> Result<candle_core::Device> {
    if cuda {
        if !candle_core::utils::cuda_is_available() {
            return Err(BehaveError::Format {
                path: "--device".into(),
                message: "this mlsign was built without CUDA support (cargo feature `cuda`)".into(),
            });
        }
        Ok(candle_core::Device::new_cuda(0)?)
    } else {
        Ok(candle_core::Device::Cpu)
    }
}
