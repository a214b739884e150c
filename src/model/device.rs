//! Choice of the libtorch device, which never falls back from CUDA to the CPU silently, and of
//! the number format the network computes in.

use std::fmt;
use std::str::FromStr;

use super::ModelError;

/// The device a user asked for, before checking that libtorch can use it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceRequest {
    /// The CPU, with libtorch's intra-op thread pool.
    #[default]
    Cpu,
    /// The CUDA device with this index.
    Cuda(usize),
}

impl FromStr for DeviceRequest {
    type Err = ModelError;

    /// Parses `cpu`, `cuda` (device 0) or `cuda:N`, without regard to case.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let lower = text.trim().to_ascii_lowercase();
        let invalid = || ModelError::InvalidDevice {
            value: text.to_owned(),
        };
        match lower.as_str() {
            "cpu" => Ok(DeviceRequest::Cpu),
            "cuda" => Ok(DeviceRequest::Cuda(0)),
            _ => {
                let index = lower.strip_prefix("cuda:").ok_or_else(invalid)?;
                index
                    .parse()
                    .map(DeviceRequest::Cuda)
                    .map_err(|_| invalid())
            }
        }
    }
}

impl fmt::Display for DeviceRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceRequest::Cpu => f.write_str("cpu"),
            DeviceRequest::Cuda(index) => write!(f, "cuda:{index}"),
        }
    }
}

/// Turns a device request into a libtorch device, checking that a CUDA device exists.
///
/// # Errors
///
/// [`ModelError::CudaUnavailable`] when CUDA is requested and libtorch has no CUDA support, or
/// no device with the requested index.
pub fn resolve_device(request: DeviceRequest) -> Result<tch::Device, ModelError> {
    let DeviceRequest::Cuda(index) = request else {
        tracing::info!(
            threads = tch::get_num_threads(),
            "running the model on the cpu"
        );
        return Ok(tch::Device::Cpu);
    };
    if !tch::Cuda::is_available() {
        return Err(ModelError::CudaUnavailable {
            requested: request.to_string(),
            reason: "libtorch reports no usable CUDA device".to_owned(),
        });
    }
    let count = tch::Cuda::device_count();
    if index as i64 >= count {
        return Err(ModelError::CudaUnavailable {
            requested: request.to_string(),
            reason: format!("only {count} CUDA device(s) are present"),
        });
    }
    tracing::info!(device = %request, count, "running the model on a CUDA device");
    Ok(tch::Device::Cuda(index))
}

/// The number format requested for inference.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum PrecisionRequest {
    /// bfloat16 for batches of two or more views on a CPU with AVX-512 bfloat16 instructions,
    /// 32-bit floats otherwise.
    #[default]
    Auto,
    /// 32-bit floats.
    F32,
    /// bfloat16 weights and activations, with the probabilities computed in 32-bit floats.
    Bf16,
}

/// The number format the network computes in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    F32,
    Bf16,
    /// bfloat16 for batches of at least [`BF16_MIN_BATCH`] views (faces times TTA views), and
    /// 32-bit floats for a single view, where bfloat16 gains little and rounds more.
    Bf16Batches,
}

/// Smallest batch of views that [`Precision::Bf16Batches`] runs in bfloat16. On the Xeon the
/// project is measured on, with the weights and activations stored channels-last, `moodscope
/// bench --threads 2` timed bfloat16 at 0.61 times f32 for one face with its mirror image and
/// 0.45 times at batch 8. For one face alone it took 0.92 times f32 in a `--precision bf16`
/// run, too small a gain to give up f32's exact results.
pub const BF16_MIN_BATCH: usize = 2;

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Precision::F32 => f.write_str("f32"),
            Precision::Bf16 => f.write_str("bf16"),
            Precision::Bf16Batches => f.write_str("f32/bf16"),
        }
    }
}

/// Turns a precision request into a format for `device`.
///
/// `auto` picks bfloat16 for batches only on a CPU that has AVX-512 bfloat16 instructions, where
/// libtorch's oneDNN convolutions run batches faster in it than in 32-bit floats. Elsewhere,
/// including on CUDA, it keeps 32-bit floats.
pub fn resolve_precision(request: PrecisionRequest, device: tch::Device) -> Precision {
    match request {
        PrecisionRequest::F32 => Precision::F32,
        PrecisionRequest::Bf16 => Precision::Bf16,
        PrecisionRequest::Auto if device == tch::Device::Cpu && cpu_has_bf16() => {
            Precision::Bf16Batches
        }
        PrecisionRequest::Auto => Precision::F32,
    }
}

fn cpu_has_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precision_auto_on_cuda_is_f32() {
        let cuda = tch::Device::Cuda(0);
        assert_eq!(
            resolve_precision(PrecisionRequest::Auto, cuda),
            Precision::F32
        );
        assert_eq!(
            resolve_precision(PrecisionRequest::Bf16, cuda),
            Precision::Bf16
        );
        let cpu = tch::Device::Cpu;
        assert_eq!(
            resolve_precision(PrecisionRequest::F32, cpu),
            Precision::F32
        );
        assert_eq!(
            resolve_precision(PrecisionRequest::Auto, cpu) == Precision::Bf16Batches,
            cpu_has_bf16()
        );
    }

    #[test]
    fn device_parses_cpu_and_cuda() {
        assert_eq!("cpu".parse::<DeviceRequest>().unwrap(), DeviceRequest::Cpu);
        assert_eq!(
            "CUDA".parse::<DeviceRequest>().unwrap(),
            DeviceRequest::Cuda(0)
        );
        assert_eq!(
            "cuda:2".parse::<DeviceRequest>().unwrap(),
            DeviceRequest::Cuda(2)
        );
        assert_eq!(DeviceRequest::Cuda(1).to_string(), "cuda:1");
    }

    #[test]
    fn device_rejects_unknown_names() {
        for text in ["gpu", "cuda:", "cuda:x", "cuda:-1", ""] {
            let error = text.parse::<DeviceRequest>().unwrap_err();
            assert!(
                error.to_string().contains("invalid device"),
                "{text}: {error}"
            );
        }
    }

    #[test]
    fn missing_cuda_device_is_an_error() {
        // An index no machine has, so that the check fails also where CUDA works.
        let error = resolve_device(DeviceRequest::Cuda(999)).unwrap_err();
        assert!(matches!(error, ModelError::CudaUnavailable { .. }));
        assert!(error.to_string().contains("CUDA"));
        assert!(error.to_string().contains("--device cpu"));
    }
}
