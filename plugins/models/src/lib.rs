//! Generator and Classifier nodes over TorchScript models with JSON sidecars (see README.md).

mod model;

use model::{load_classifier, load_generator, product, sample_codes, TorchModel, MAX_ELEMENTS};
use subspace_sdk::tch::{self, Kind, Tensor};
use subspace_sdk::*;

/// Runs `f` over `input` in batches of `batch` rows without gradients, with progress and cancellation.
fn batched(input: &Tensor, batch: i64, ctx: &Ctx<'_, '_>, what: &str, f: impl Fn(&Tensor) -> NodeResult<Tensor>) -> NodeResult<Tensor> {
    let n = input.size()[0];
    if n == 0 {
        // Tensor::cat of no parts would panic.
        return Err(NodeError::new(ErrorKind::InvalidInput, format!("{what}: the input has no rows")));
    }
    let _guard = tch::no_grad_guard();
    let mut parts = Vec::new();
    let mut done = 0;
    while done < n {
        ctx.check_cancelled()?;
        let len = batch.min(n - done);
        parts.push(f(&input.narrow(0, done, len))?);
        done += len;
        ctx.progress(done as u64, n as u64, what);
    }
    Ok(Tensor::cat(&parts, 0))
}

/// Smallest truncation accepted (besides 0, off): resampling draws about 1/P(|z| < t) times per entry.
const MIN_TRUNCATION: f64 = 0.05;

struct Generator;

impl Node for Generator {
    fn descriptor(&self) -> NodeDescriptor {
        NodeDescriptor::new(
            "subspace.generator",
            "1.0.0",
            "Generator",
            "Method: Models",
            "Loads a TorchScript generator and renders I = G(z): samples `count` codes from its latent \
             distribution, or renders the codes on its input.",
        )
        .input(PortSpec::new("codes", port::LATENTS, "codes to render instead of sampling (e.g. edited codes)").optional())
        .param(ParamSpec::path("model", "default/generator.pt", "TorchScript file; default/... is the shipped world; a .json sidecar sits beside it"))
        .param(ParamSpec::int("count", 64, 1, 10_000_000, "codes to sample when no codes are given"))
        .param(ParamSpec::int("seed", 0, 0, i64::MAX, "sampling seed"))
        .param(ParamSpec::float("truncation", 0.0, 0.0, 100.0, "resample code entries beyond this magnitude (0: off; else at least 0.05)"))
        .param(ParamSpec::int("batch", 256, 1, 65_536, "images per forward pass"))
        .param(ParamSpec::bool("render", true, "render images (off: only sample codes)"))
        .output(PortSpec::new("images", port::IMAGES, "rendered images, N x 3 x H x W in [0, 1]"))
        .output(PortSpec::new("codes", port::LATENTS, "the codes rendered, N x D"))
        .output(PortSpec::new("generator", port::GENERATOR, "the loaded generator, for nodes that render through it"))
    }

    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let path = model::resolve(&io.text("model")?).map_err(|e| e.at("model"))?;
        let truncation = io.float("truncation")?;
        if truncation > 0.0 && truncation < MIN_TRUNCATION {
            // Resampling until an entry falls below a tiny bound would run for hours.
            return Err(NodeError::param(
                "truncation",
                format!("truncation {truncation} is below {MIN_TRUNCATION} (0 turns it off)"),
            ));
        }
        let generator = load_generator(ctx, &path)?;
        let g = generator.torch();
        let dim = g.latent_dim;
        let side = g.sidecar.display();
        let render = io.bool("render")?;
        let (n, codes_port) = match io.get("codes") {
            Some(_) => (io.latents("codes")?.size()[0], true),
            None => (io.int("count")?, false),
        };
        let too_many = |what: String| {
            let why = format!("{what}, beyond the limit of {MAX_ELEMENTS} elements per tensor (docs/MODELS.md)");
            if codes_port { NodeError::input("codes", why) } else { NodeError::param("count", why) }
        };
        if product(&[n, dim], MAX_ELEMENTS).is_none() {
            return Err(too_many(format!("{n} codes of latent.dim {dim} ({side}) make {n} x {dim} elements")));
        }
        if render && product(&[n, g.image_elements()], MAX_ELEMENTS).is_none() {
            return Err(too_many(format!(
                "{n} images of output.channels x output.height x output.width = {} ({side}) make {n} x {} elements",
                g.image_elements(),
                g.image_elements()
            )));
        }
        let codes = if codes_port {
            let z = io.latents("codes")?;
            if z.size()[1] != dim {
                return Err(NodeError::input(
                    "codes",
                    format!("codes have dimension {} but generator {} expects {dim}", z.size()[1], path.display()),
                ));
            }
            z.to_kind(Kind::Float).to_device(ctx.device())
        } else {
            let mut rng: rand_chacha::ChaCha8Rng = rand::SeedableRng::seed_from_u64(io.int("seed")? as u64);
            sample_codes(&mut rng, n, dim, &g.distribution, truncation)?.to_device(ctx.device())
        };
        let images = if render {
            batched(&codes, io.int("batch")?, ctx, "rendering", |x| g.render(x))?
        } else {
            Tensor::zeros([codes.size()[0], 3, 1, 1], (Kind::Float, ctx.device()))
        };
        io.output("images", Value::Images(images.into()));
        io.output("codes", Value::Latents(codes.into()));
        io.output("generator", Value::Model(generator.into_ref()));
        Ok(())
    }
}

struct Classifier;

impl Node for Classifier {
    fn descriptor(&self) -> NodeDescriptor {
        NodeDescriptor::new(
            "subspace.classifier",
            "1.0.0",
            "Classifier",
            "Method: Models",
            "Loads a TorchScript attribute classifier and labels images: L = f(I) in [0, 1]^K, with its label schema.",
        )
        .input(PortSpec::new("images", port::IMAGES, "images in [0, 1]; resized to the classifier's input size"))
        .param(ParamSpec::path("model", "default/classifier-fit.pt", "TorchScript file; default/... is the shipped world; a .json sidecar sits beside it"))
        .param(ParamSpec::int("batch", 512, 1, 65_536, "images per forward pass"))
        .output(PortSpec::new("labels", port::LABELS, "label vectors N x K in [0, 1] with groups and class names"))
        .output(PortSpec::new("classifier", port::CLASSIFIER, "the loaded classifier, for nodes that label through it"))
    }

    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let path = model::resolve(&io.text("model")?).map_err(|e| e.at("model"))?;
        let classifier = load_classifier(ctx, &path)?;
        let f = classifier.torch();
        let images = io.images("images")?.to_device(ctx.device());
        let batch = io.int("batch")?;
        // Each batch is resized to the classifier's input size before the forward pass.
        if product(&[batch.min(images.size()[0]), f.image_elements()], MAX_ELEMENTS).is_none() {
            return Err(NodeError::param(
                "batch",
                format!(
                    "batch {batch} at the input size of {} ({} elements per image) is beyond the limit of \
                     {MAX_ELEMENTS} elements per tensor; lower batch",
                    f.sidecar.display(),
                    f.image_elements()
                ),
            ));
        }
        let probs = batched(&images, batch, ctx, "labelling", |x| {
            f.label(x).map_err(|e| if e.location.is_none() { e.at("images") } else { e })
        })?;
        let schema = f.schema.clone().expect("classifier has a schema");
        io.output("labels", Value::Labels(Labels { probs: probs.into(), schema }));
        io.output("classifier", Value::Model(classifier.into_ref()));
        Ok(())
    }
}

pub use model::resolve as resolve_model_path;
#[doc(hidden)]
pub use model::TorchModel as Model_;

export_plugin!(nodes: [Generator, Classifier]);

#[allow(dead_code)]
fn _assert_model_is_send(m: TorchModel) -> impl Send + Sync {
    m
}
