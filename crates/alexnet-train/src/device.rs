//! Turning `--device` strings into Burn devices. The only module that names a backend.

use burn::prelude::Device;

use crate::error::{Result, TrainError};

/// The device used when none is configured: the first backend compiled in.
pub const DEFAULT_DEVICE: &str = if cfg!(feature = "flex") {
    "flex"
} else if cfg!(feature = "cuda") {
    "cuda:0"
} else if cfg!(feature = "tch") {
    "tch-cpu"
} else {
    "flex"
};

fn device_error(spec: &str, reason: impl Into<String>) -> TrainError {
    TrainError::Device {
        spec: spec.to_string(),
        reason: reason.into(),
    }
}

fn index(spec: &str, text: &str) -> Result<usize> {
    text.parse()
        .map_err(|_| device_error(spec, format!("`{text}` is not a device index")))
}

fn not_compiled(spec: &str, feature: &str) -> TrainError {
    device_error(
        spec,
        format!("this build has no `{feature}` backend; rebuild with `--features {feature}`"),
    )
}

/// One device from its name: `flex`, `tch-cpu`, `tch-cuda:N`, `cuda:N`.
pub fn parse_device(spec: &str) -> Result<Device> {
    let spec = spec.trim();
    if spec == "flex" {
        #[cfg(feature = "flex")]
        return Ok(Device::flex());
        #[cfg(not(feature = "flex"))]
        return Err(not_compiled(spec, "flex"));
    }
    if spec == "tch-cpu" {
        #[cfg(feature = "tch")]
        #[allow(deprecated)]
        return Ok(Device::libtorch());
        #[cfg(not(feature = "tch"))]
        return Err(not_compiled(spec, "tch"));
    }
    if let Some(n) = spec.strip_prefix("tch-cuda:") {
        let _n = index(spec, n)?;
        #[cfg(feature = "tch")]
        {
            // libtorch panics on the first tensor if the GPU is missing: check up front.
            let available = Device::enumerate(burn::tensor::DeviceType::LibTorch).len();
            if _n >= available {
                return Err(device_error(
                    spec,
                    format!(
                        "libtorch sees {available} CUDA device(s) here (no NVIDIA GPU or driver, or a CPU-only libtorch)"
                    ),
                ));
            }
            #[allow(deprecated)]
            return Ok(Device::libtorch_cuda(_n));
        }
        #[cfg(not(feature = "tch"))]
        return Err(not_compiled(spec, "tch"));
    }
    if let Some(n) = spec.strip_prefix("cuda:") {
        let _n = index(spec, n)?;
        #[cfg(feature = "cuda")]
        return Ok(Device::cuda(_n));
        #[cfg(not(feature = "cuda"))]
        return Err(not_compiled(spec, "cuda"));
    }
    Err(device_error(
        spec,
        "unknown device (expected flex, tch-cpu, tch-cuda:N, cuda:N, or a comma-separated list)",
    ))
}

/// The devices of a `--device` value; several, comma-separated, train data-parallel.
pub fn parse_devices(spec: &str) -> Result<Vec<Device>> {
    let devices = spec
        .split(',')
        .map(parse_device)
        .collect::<Result<Vec<_>>>()?;
    if devices.is_empty() {
        return Err(device_error(spec, "no device given"));
    }
    Ok(devices)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_missing_backends_are_named() {
        let error = parse_devices("gpu").unwrap_err().to_string();
        assert!(
            error.contains("device `gpu`") && error.contains("unknown device"),
            "{error}"
        );
        let error = parse_devices("cuda:x").unwrap_err().to_string();
        assert!(error.contains("not a device index"), "{error}");
        #[cfg(not(feature = "cuda"))]
        {
            let error = parse_devices("cuda:0").unwrap_err().to_string();
            assert!(error.contains("--features cuda"), "{error}");
        }
        #[cfg(not(feature = "tch"))]
        {
            let error = parse_devices("flex,tch-cuda:1").unwrap_err().to_string();
            assert!(error.contains("--features tch"), "{error}");
        }
    }

    #[cfg(feature = "flex")]
    #[test]
    fn lists_give_one_device_each() {
        assert_eq!(parse_devices("flex").unwrap().len(), 1);
        assert_eq!(parse_devices("flex, flex").unwrap().len(), 2);
    }
}
