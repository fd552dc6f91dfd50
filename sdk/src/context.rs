//! What a running node may ask of the host: its device, a seed, progress, cancellation, a shared model cache.

// sabi_trait expands to impls inside a const block.
#![allow(non_local_definitions)]

use crate::{error::NodeError, tensor::TensorRef};
use abi_stable::{
    sabi_trait,
    std_types::{RArc, ROption, RResult, RStr, RString},
    StableAbi,
};
use rand::SeedableRng;
use std::fmt::Debug;

/// The device a node should compute on: `cuda_index < 0` means CPU.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceSpec {
    /// CUDA device index, or a negative number for the CPU.
    pub cuda_index: i32,
}

impl DeviceSpec {
    /// The CPU.
    pub const CPU: DeviceSpec = DeviceSpec { cuda_index: -1 };
    /// CUDA device `i`.
    pub fn cuda(i: usize) -> Self {
        DeviceSpec { cuda_index: i as i32 }
    }
    /// The libtorch device.
    pub fn to_tch(self) -> tch::Device {
        if self.cuda_index < 0 {
            tch::Device::Cpu
        } else {
            tch::Device::Cuda(self.cuda_index as usize)
        }
    }
    /// The spec of a libtorch device.
    pub fn from_tch(d: tch::Device) -> Self {
        match d {
            tch::Device::Cuda(i) => DeviceSpec::cuda(i),
            _ => DeviceSpec::CPU,
        }
    }
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.cuda_index < 0 {
            write!(f, "cpu")
        } else {
            write!(f, "cuda:{}", self.cuda_index)
        }
    }
}

/// A loaded model other nodes can run: a generator (latents to images in [0, 1]) or a classifier (images in
/// [0, 1] to label probabilities). Calls run in the plugin that loaded it; gradients flow through `forward`
/// because every plugin shares one libtorch.
#[sabi_trait]
pub trait Model: Clone + Debug + Send + Sync + 'static {
    /// Port type: [`crate::port::GENERATOR`] or [`crate::port::CLASSIFIER`] (or a vendor kind).
    fn kind(&self) -> RString;
    /// Display name.
    fn name(&self) -> RString;
    /// Metadata as JSON text (latent dimension, image size, label schema, ...).
    fn info(&self) -> RString;
    /// Runs the model on a batch, on the model's device. Differentiable w.r.t. the input.
    #[sabi(last_prefix_field)]
    fn forward(&self, input: &TensorRef) -> RResult<TensorRef, NodeError>;
    /// A named parameter of the model (e.g. the first layer's weight, for SeFa), if it has one by that name.
    fn parameter(&self, name: RStr<'_>) -> ROption<TensorRef>;
}

/// A shareable, cloneable handle to a [`Model`].
pub type ModelRef = Model_TO<RArc<()>>;

/// Services the host offers a running node.
#[sabi_trait]
pub trait HostServices: Send + Sync {
    /// Reports progress of the current node (`total` 0 means unknown).
    fn progress(&self, done: u64, total: u64, message: RStr<'_>);
    /// True once the run is cancelled; long loops should check it and stop.
    fn is_cancelled(&self) -> bool;
    /// A line for the run log.
    fn log(&self, message: RStr<'_>);
    /// A model loaded earlier under `key` (by any node of any plugin).
    fn cached_model(&self, key: RStr<'_>) -> ROption<ModelRef>;
    /// Keeps `model` under `key` for later nodes.
    #[sabi(last_prefix_field)]
    fn cache_model(&self, key: RStr<'_>, model: ModelRef);
}

/// The context a node runs in, as passed across the boundary.
#[repr(C)]
#[derive(StableAbi)]
pub struct NodeContext<'a> {
    /// The node's id in the graph (for messages).
    pub node_id: RStr<'a>,
    /// The device the node computes on.
    pub device: DeviceSpec,
    /// Derived from the node's cache key: same inputs, same seed.
    pub seed: u64,
    /// Where result nodes write files.
    pub out_dir: RStr<'a>,
    /// What the node may ask of the host (progress, cancellation, log, model cache).
    pub services: HostServices_TO<'a, abi_stable::sabi_types::RRef<'a, ()>>,
}

/// The node author's view of [`NodeContext`].
pub struct Ctx<'a, 'b> {
    /// The raw context that crossed the boundary.
    pub raw: &'a NodeContext<'b>,
}

impl Ctx<'_, '_> {
    /// The id of the node in its graph (for messages).
    pub fn node_id(&self) -> &str {
        self.raw.node_id.as_str()
    }
    /// The device to compute on.
    pub fn device(&self) -> tch::Device {
        self.raw.device.to_tch()
    }
    /// The node's seed, derived from its cache key: the same inputs give the same seed.
    pub fn seed(&self) -> u64 {
        self.raw.seed
    }
    /// A deterministic RNG for this node (same seed on every device).
    pub fn rng(&self) -> rand_chacha::ChaCha8Rng {
        rand_chacha::ChaCha8Rng::seed_from_u64(self.raw.seed)
    }
    /// The run's output folder; files a node writes go below it (see [`crate::files::output_param`]).
    pub fn out_dir(&self) -> &str {
        self.raw.out_dir.as_str()
    }
    /// Reports progress (`total` 0: unknown); the CLI and the editor show it.
    pub fn progress(&self, done: u64, total: u64, message: &str) {
        self.raw.services.progress(done, total, message.into());
    }
    /// A line for the run log.
    pub fn log(&self, message: &str) {
        self.raw.services.log(message.into());
    }
    /// `Err(Cancelled)` once the run is cancelled.
    pub fn check_cancelled(&self) -> Result<(), NodeError> {
        if self.raw.services.is_cancelled() {
            Err(NodeError::cancelled())
        } else {
            Ok(())
        }
    }
    /// The model cached under `key`, or loads it with `load` and caches it. Two nodes naming the same weights
    /// share one load (a race between two first loads may load twice; the last one is kept).
    pub fn shared_model(
        &self,
        key: &str,
        load: impl FnOnce() -> Result<ModelRef, NodeError>,
    ) -> Result<ModelRef, NodeError> {
        if let ROption::RSome(m) = self.raw.services.cached_model(key.into()) {
            return Ok(m);
        }
        let m = load()?;
        self.raw.services.cache_model(key.into(), m.clone());
        Ok(m)
    }
}

/// Standard normal samples from a seeded RNG, as an f32 tensor of `shape` on the CPU. Independent of device and
/// thread count, so a seed gives the same codes everywhere.
pub fn randn(rng: &mut impl rand::Rng, shape: &[i64]) -> tch::Tensor {
    let n: i64 = shape.iter().product();
    let data: Vec<f32> = (0..n).map(|_| rand_distr::Distribution::sample(&rand_distr::StandardNormal, rng)).collect();
    tch::Tensor::from_slice(&data).reshape(shape)
}
