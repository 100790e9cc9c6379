//! Where training and evaluation run: the CPU (burn flex with rayon and SIMD, the default and
//! what CI uses) or a GPU through burn's native wgpu backend on Vulkan (cargo feature `gpu`,
//! which neither the browser build nor the default native build carries).

use anyhow::{Result, bail};
use burn::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compute {
    Cpu,
    Gpu,
}

impl Compute {
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "cpu" => Ok(Compute::Cpu),
            "gpu" => Ok(Compute::Gpu),
            other => bail!("unknown device '{other}': use cpu or gpu"),
        }
    }

    /// The device to run on (without autodiff).
    pub fn device(self) -> Result<Device> {
        match self {
            Compute::Cpu => Ok(Device::flex()),
            Compute::Gpu => gpu_device(),
        }
    }

    /// A description for logs: the backend and, on the GPU, the adapter wgpu chose.
    pub fn describe(self) -> String {
        match self {
            Compute::Cpu => format!("cpu (burn flex, {} threads)", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)),
            Compute::Gpu => "gpu (burn wgpu, Vulkan)".to_string(),
        }
    }
}

#[cfg(feature = "gpu")]
fn gpu_device() -> Result<Device> {
    Device::wgpu_options().init().map_err(|e| {
        anyhow::anyhow!(
            "no GPU could be opened through Vulkan ({e:?}); check that a Vulkan driver and the libvulkan1 loader are installed (`vulkaninfo --summary`), or use --device cpu"
        )
    })
}

#[cfg(not(feature = "gpu"))]
fn gpu_device() -> Result<Device> {
    bail!("this histoseg was built without GPU support: rebuild it with `cargo build --release --features gpu`, or use --device cpu")
}
