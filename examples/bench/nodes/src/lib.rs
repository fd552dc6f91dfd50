//! Nodes the benchmark (`subspace-bench`) loads beside the product plugins, so that it measures the method's nodes
//! through the plugin ABI like every other client: a synthetic world of codes and labels (no generator has 512
//! dimensions), and a pass-through that gives a fit downstream a new cache key, so the same fit runs again on the
//! same codes. Not installed with the product plugins; touches no files.

use subspace_sdk::prelude::*;
use subspace_sdk::{tch, LabelGroup, Labels};

const CAT: &str = "Benchmark";

struct SyntheticWorld {
    count: Param<i64>,
    dim: Param<i64>,
    groups: Param<String>,
    scale: Param<f64>,
    seed: Param<i64>,
    codes: Output<Latents>,
    labels: Output<Labels>,
}

impl Declared for SyntheticWorld {
    const INFO: NodeInfo = NodeInfo {
        id: "bench.synthetic_world",
        version: "1.0.0",
        name: "SyntheticWorld",
        category: CAT,
        doc: "Codes z ~ N(0, I_d) and attribute groups whose class probabilities are a softmax of random linear \
              functions of z, sharpened by `scale` (the world of the method's unit tests, same seed sequence).",
    };
    fn declare(d: &mut Declare) -> Self {
        SyntheticWorld {
            count: d.int("count", 1000, 2..=10_000_000, "codes"),
            dim: d.int("dim", 64, 1..=65_536, "code dimension"),
            groups: d.text("groups", "4,2,2,2,3", "classes per attribute group, comma-separated"),
            scale: d.float("scale", 4.0, 0.0..=1000.0, "sharpness of the class probabilities"),
            seed: d.int("seed", 1, 0..=i64::MAX, "libtorch seed"),
            codes: d.output("codes", "N x D codes"),
            labels: d.output("labels", "their class probabilities, groups g0, g1, ... of classes c0, c1, ..."),
        }
    }
    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let (n, d) = (io.read(&self.count)?, io.read(&self.dim)?);
        let groups: Vec<i64> = io
            .read(&self.groups)?
            .split(',')
            .map(|s| s.trim().parse::<i64>().ok().filter(|&c| c >= 2))
            .collect::<Option<_>>()
            .ok_or_else(|| NodeError::param("groups", "expected class counts >= 2, comma-separated"))?;
        let scale = io.read(&self.scale)?;
        tch::manual_seed(io.read(&self.seed)?);
        let opts = (Kind::Float, Device::Cpu);
        let z = Tensor::randn([n, d], opts);
        let mut parts = Vec::new();
        let mut schema = Vec::new();
        for (gi, &c) in groups.iter().enumerate() {
            let w = Tensor::randn([d, c], opts) / (d as f64).sqrt();
            parts.push((z.matmul(&w) * scale).softmax(1, Kind::Float));
            let classes = (0..c).map(|i| format!("c{i}").into()).collect();
            schema.push(LabelGroup { name: format!("g{gi}").into(), classes });
        }
        let device = ctx.device();
        let probs = Tensor::cat(&parts, 1).to_device(device);
        io.write(&self.codes, Latents(z.to_device(device)));
        io.write(&self.labels, Labels { probs: probs.into(), schema: LabelSchema { groups: schema.into() } });
        Ok(())
    }
}

struct Round {
    codes: Input<Latents>,
    labels: Input<Labels>,
    _round: Param<i64>,
    codes_out: Output<Latents>,
    labels_out: Output<Labels>,
}

impl Declared for Round {
    const INFO: NodeInfo = NodeInfo {
        id: "bench.round",
        version: "1.0.0",
        name: "Round",
        category: CAT,
        doc: "Passes codes and labels on unchanged (the same tensors); `round` only changes the cache key of what \
              follows, so a fit downstream runs again on the same data.",
    };
    fn declare(d: &mut Declare) -> Self {
        Round {
            codes: d.input("codes", "codes"),
            labels: d.input("labels", "labels"),
            _round: d.int("round", 0, 0..=i64::MAX, "a number that only changes the cache key"),
            codes_out: d.output("codes", "the same codes"),
            labels_out: d.output("labels", "the same labels"),
        }
    }
    fn run(&self, io: &mut NodeIo<'_>, _: &Ctx<'_, '_>) -> NodeResult<()> {
        let (codes, labels) = (io.read(&self.codes)?, io.read(&self.labels)?);
        io.write(&self.codes_out, codes);
        io.write(&self.labels_out, labels);
        Ok(())
    }
}

subspace_sdk::export_plugin!(SyntheticWorld, Round);
