//! A classifier of realistic size for the `gmm-heavy` section: ResNet-18 (He et al. 2015, torchvision's layout) at
//! 128 x 128 px with random weights, traced to TorchScript with a sidecar that maps the default world's 64 px
//! pictures into it (`input.resize`) and its columns to the default world's label schema. Built at run time, so
//! nothing large is committed: its cost, not its accuracy, is what the section measures.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use tch::nn::{self, ModuleT};
use tch::{CModule, Device, Kind, Tensor};

/// Input size of the fixture (the "ResNet-18 at 128 px").
pub const SIZE: i64 = 128;

fn conv(p: nn::Path, c_in: i64, c_out: i64, k: i64, padding: i64, stride: i64) -> nn::Conv2D {
    nn::conv2d(p, c_in, c_out, k, nn::ConvConfig { stride, padding, bias: false, ..Default::default() })
}

fn block(p: nn::Path, c_in: i64, c_out: i64, stride: i64) -> nn::FuncT<'static> {
    let (c1, b1) =
        (conv(&p / "conv1", c_in, c_out, 3, 1, stride), nn::batch_norm2d(&p / "bn1", c_out, Default::default()));
    let (c2, b2) = (conv(&p / "conv2", c_out, c_out, 3, 1, 1), nn::batch_norm2d(&p / "bn2", c_out, Default::default()));
    let down = (stride != 1 || c_in != c_out).then(|| {
        (
            conv(&p / "downsample" / "0", c_in, c_out, 1, 0, stride),
            nn::batch_norm2d(&p / "downsample" / "1", c_out, Default::default()),
        )
    });
    nn::func_t(move |x, train| {
        let y = x.apply(&c1).apply_t(&b1, train).relu().apply(&c2).apply_t(&b2, train);
        let skip = match &down {
            Some((c, b)) => x.apply(c).apply_t(b, train),
            None => x.shallow_clone(),
        };
        (skip + y).relu()
    })
}

/// ResNet-18 with `classes` outputs. Unlike `tch::vision::resnet`, the head flattens with `flatten` (traced as an
/// operation), not a view of the traced batch size, so the saved module takes any batch.
fn resnet18(p: &nn::Path, classes: i64) -> nn::FuncT<'static> {
    let stem = conv(p / "conv1", 3, 64, 7, 3, 2);
    let bn = nn::batch_norm2d(p / "bn1", 64, Default::default());
    let mut layers = Vec::new();
    for (i, (c_in, c_out, stride)) in [(64, 64, 1), (64, 128, 2), (128, 256, 2), (256, 512, 2)].into_iter().enumerate()
    {
        let lp = p / format!("layer{}", i + 1);
        layers.push(block(&lp / "0", c_in, c_out, stride));
        layers.push(block(&lp / "1", c_out, c_out, 1));
    }
    let fc = nn::linear(p / "fc", 512, classes, Default::default());
    nn::func_t(move |x, train| {
        let mut y = x.apply(&stem).apply_t(&bn, train).relu().max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        for l in &layers {
            y = y.apply_t(l, train);
        }
        y.adaptive_avg_pool2d([1, 1]).flatten(1, -1).apply(&fc)
    })
}

/// Writes `resnet18-128.pt` and its sidecar into `dir` (random weights, seed 0) with the groups of the classifier
/// sidecar `schema_from` (the default world's fit classifier); returns the model's path and its parameter count.
pub fn write(dir: &Path, schema_from: &Path) -> Result<(PathBuf, i64)> {
    let sidecar: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(schema_from).with_context(|| format!("reading {}", schema_from.display()))?,
    )?;
    let groups = sidecar["groups"].clone();
    let classes: i64 = groups
        .as_array()
        .context("the classifier sidecar has no groups")?
        .iter()
        .map(|g| g["classes"].as_array().map_or(0, |c| c.len() as i64))
        .sum();
    std::fs::create_dir_all(dir)?;
    tch::manual_seed(0);
    let mut vs = nn::VarStore::new(Device::Cpu);
    let net = resnet18(&vs.root(), classes);
    let params: i64 = vs.trainable_variables().iter().map(|t| t.numel() as i64).sum();
    // Weights without gradients: the tracer stores them as constants of the module.
    vs.freeze();
    let example = Tensor::rand([2, 3, SIZE, SIZE], (Kind::Float, Device::Cpu));
    let mut traced = tch::no_grad(|| {
        CModule::create_by_tracing("ResNet18", "forward", &[example], &mut |x| vec![net.forward_t(&x[0], false)])
    })?;
    let path = dir.join("resnet18-128.pt");
    traced.set_eval();
    traced.save(&path)?;
    let side = serde_json::json!({
        "format": "subspace.classifier/1",
        "name": "resnet18-128-random",
        "input": {"channels": 3, "height": SIZE, "width": SIZE, "range": [0.0, 1.0],
                  "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "resize": "bilinear"},
        "output": "logits",
        "groups": groups,
        "description": "ResNet-18 with random weights (subspace-bench's fixture): its cost, not its labels, is measured",
    });
    std::fs::write(dir.join("resnet18-128.json"), serde_json::to_string_pretty(&side)?)?;
    Ok((path, params))
}
