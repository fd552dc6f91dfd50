//! # subspace-host: loads node plugins and evaluates node graphs
//!
//! The parts, in the order a graph meets them: [`plugins`] finds and loads plugin libraries and refuses
//! incompatible ones; [`graph`] reads the graph document; [`validate`] checks it against the loaded node types
//! and produces a [`validate::Plan`], expanding presets used as nodes ([`preset`]); [`exec`] runs the plan lazily
//! on a worker pool with a cross-run cache, streaming [`exec::Event`]s. The `subspace` binary (main.rs) is thin
//! glue over these, and a long-running server can drive the same [`exec::Evaluator`]. The host reads plugin files
//! and graph files; only nodes write.

pub mod cache;
pub mod catalog;
pub mod disk_cache;
pub mod exec;
pub mod graph;
pub mod paths;
pub mod plugins;
pub mod preset;
pub mod report;
pub mod validate;

pub use cache::CacheStats;
pub use disk_cache::{DiskCache, DiskStats};
pub use exec::{CancelToken, Evaluator, Event, NodeStatus, RunOptions, RunReport};
pub use graph::Graph;
pub use plugins::Registry;
pub use preset::PresetSearch;
pub use validate::{validate, validate_with, Plan, Problem, ValidationError};

/// Parses `auto|cpu|cuda|cuda:N`. `auto` picks CUDA device 0 when libtorch finds one.
pub fn parse_device(s: &str) -> anyhow::Result<subspace_sdk::DeviceSpec> {
    use subspace_sdk::DeviceSpec;
    let cuda_count = || tch::Cuda::device_count() as usize;
    match s {
        "auto" => Ok(if tch::Cuda::is_available() { DeviceSpec::cuda(0) } else { DeviceSpec::CPU }),
        "cpu" => Ok(DeviceSpec::CPU),
        _ => {
            let index = match s.strip_prefix("cuda") {
                Some("") => 0,
                Some(rest) => rest
                    .strip_prefix(':')
                    .and_then(|n| n.parse::<usize>().ok())
                    .ok_or_else(|| anyhow::anyhow!("--device '{s}': expected auto, cpu, cuda or cuda:N"))?,
                None => anyhow::bail!("--device '{s}': expected auto, cpu, cuda or cuda:N"),
            };
            if index >= cuda_count() {
                anyhow::bail!("--device {s}: libtorch sees {} CUDA device(s)", cuda_count());
            }
            Ok(DeviceSpec::cuda(index))
        }
    }
}
