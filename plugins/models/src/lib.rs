//! Generator and Classifier nodes over TorchScript models with JSON sidecars (see README.md).

mod model;
mod style;

use model::{load_classifier, load_generator, product, sample_codes, MAX_ELEMENTS};
use style::View;
use subspace_sdk::kinds::Space;
use subspace_sdk::prelude::*;
use subspace_sdk::tch;
use subspace_sdk::ErrorKind;

/// Runs `f` over `input` in batches of `batch` rows without gradients, with progress and cancellation.
fn batched(
    input: &Tensor,
    batch: i64,
    ctx: &Ctx<'_, '_>,
    what: &str,
    f: impl Fn(&Tensor) -> NodeResult<Tensor>,
) -> NodeResult<Tensor> {
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

const MODELS: &str = "Method: Models";

/// Loads a generator and renders sampled or given codes.
struct GeneratorNode {
    codes: Optional<Latents>,
    model: Param<String>,
    count: Param<i64>,
    seed: Param<i64>,
    truncation: Param<f64>,
    space: Param<Space>,
    psi: Param<f64>,
    batch: Param<i64>,
    render: Param<bool>,
    images: Output<Images>,
    codes_out: Output<Latents>,
    generator: Output<Generator>,
}

impl Declared for GeneratorNode {
    const INFO: NodeInfo = NodeInfo {
        id: "subspace.generator",
        // 1.1: `space` (z, W, W+ of StyleGAN-style generators) and `psi`.
        version: "1.1.0",
        name: "Generator",
        category: MODELS,
        doc: "Loads a TorchScript generator and renders I = G(z): samples `count` codes from its latent \
              distribution, or renders the codes on its input. A StyleGAN-style generator (a style block in its \
              sidecar) works in z, W or W+ (`space`): sampled codes are mapped to w and truncated toward the \
              average w by psi, and the codes and the generator it outputs are in that space.",
    };
    fn declare(d: &mut Declare) -> Self {
        d.cacheable();
        GeneratorNode {
            codes: d.optional("codes", "codes to render instead of sampling (e.g. edited codes)"),
            model: d.input_path(
                "model",
                "default/generator.pt",
                "TorchScript file; default/... is the shipped world; a .json sidecar sits beside it",
            ),
            count: d.int("count", 64, 1..=10_000_000, "codes to sample when no codes are given"),
            seed: d.int("seed", 0, 0..=i64::MAX, "sampling seed"),
            truncation: d.float(
                "truncation",
                0.0,
                0.0..=100.0,
                "resample code entries beyond this magnitude (0: off; else at least 0.05)",
            ),
            space: d.space(
                Space::Z,
                "the space of the codes sampled, rendered and output: z, or W / W+ (one w per synthesis layer) of a \
                 generator whose sidecar has a style block",
            ),
            psi: d.float(
                "psi",
                1.0,
                0.0..=1.0,
                "truncation toward the average w (StyleGAN's psi; 1: off): w_avg + psi (w - w_avg) whenever z is \
                 mapped to w (W/W+ codes when sampled, z codes when rendered); style generators only",
            ),
            batch: d.int("batch", 256, 1..=65_536, "images per forward pass"),
            render: d.bool("render", true, "render images (off: only sample codes)"),
            images: d.output("images", "rendered images, N x 3 x H x W in [0, 1]"),
            codes_out: d
                .output("codes", "the codes rendered, N x D (z: latent.dim, W: w_dim, W+: num_ws x w_dim flattened)"),
            generator: d.output("generator", "the loaded generator, for nodes that render through it"),
        }
    }

    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let path = model::resolve(&io.read(&self.model)?).map_err(|e| e.at(self.model.name()))?;
        let truncation = io.read(&self.truncation)?;
        if truncation > 0.0 && truncation < MIN_TRUNCATION {
            // Resampling until an entry falls below a tiny bound would run for hours.
            let why = format!("truncation {truncation} is below {MIN_TRUNCATION} (0 turns it off)");
            return Err(NodeError::param(self.truncation.name(), why));
        }
        let (space, psi) = (io.read(&self.space)?, io.read(&self.psi)?);
        // The handle renders codes of `space`; psi enters it only where it maps z (codes in W/W+ are rendered as
        // they are, already truncated when they were sampled).
        let view = View { space, psi: if space == Space::Z { psi } else { 1.0 } };
        let generator = load_generator(ctx, &path, view)?;
        let g = generator.torch();
        let dim = g.code_dim(space).map_err(|why| NodeError::param(self.space.name(), why))?;
        if g.style.is_none() && psi != 1.0 {
            let why = format!(
                "psi {psi} truncates toward the average w, and generator {} has no W space (no style block in {})",
                path.display(),
                g.sidecar.display()
            );
            return Err(NodeError::param(self.psi.name(), why));
        }
        let side = g.sidecar.display();
        let render = io.read(&self.render)?;
        let given = io.read(&self.codes)?.map(|Latents(z)| z);
        let n = match &given {
            Some(z) => z.size()[0],
            None => io.read(&self.count)?,
        };
        let too_many = |what: String| {
            let why = format!("{what}, beyond the limit of {MAX_ELEMENTS} elements per tensor (docs/MODELS.md)");
            match given {
                Some(_) => NodeError::input(self.codes.name(), why),
                None => NodeError::param(self.count.name(), why),
            }
        };
        for (width, what) in [(dim, "codes of this space"), (g.latent_dim, "z codes of latent.dim")] {
            if product(&[n, width], MAX_ELEMENTS).is_none() {
                return Err(too_many(format!("{n} {what} {width} ({side}) make {n} x {width} elements")));
            }
        }
        if render && product(&[n, g.image_elements()], MAX_ELEMENTS).is_none() {
            let per = g.image_elements();
            let shape = "output.channels x output.height x output.width";
            return Err(too_many(format!("{n} images of {shape} = {per} ({side}) make {n} x {per} elements")));
        }
        let codes = match &given {
            Some(z) => {
                if z.size()[1] != dim {
                    return Err(NodeError::input(self.codes.name(), g.dim_mismatch(&z.size(), space)));
                }
                z.to_kind(Kind::Float).to_device(ctx.device())
            }
            None => {
                let mut rng: rand_chacha::ChaCha8Rng = rand::SeedableRng::seed_from_u64(io.read(&self.seed)? as u64);
                let z = sample_codes(&mut rng, n, g.latent_dim, &g.distribution, truncation)?.to_device(ctx.device());
                match space {
                    Space::Z => z,
                    _ => {
                        batched(&z, io.read(&self.batch)?, ctx, "mapping", |z| g.codes_from_z(z, View { space, psi }))?
                    }
                }
            }
        };
        let images = if render {
            batched(&codes, io.read(&self.batch)?, ctx, "rendering", |x| generator.render(x))?
        } else {
            Tensor::zeros([codes.size()[0], 3, 1, 1], (Kind::Float, ctx.device()))
        };
        io.write(&self.images, Images(images));
        io.write(&self.codes_out, Latents(codes));
        io.write(&self.generator, Generator(generator.into_ref()));
        Ok(())
    }
}

/// Loads an attribute classifier and labels images.
struct ClassifierNode {
    images: Input<Images>,
    model: Param<String>,
    batch: Param<i64>,
    labels: Output<Labels>,
    classifier: Output<Classifier>,
}

impl Declared for ClassifierNode {
    const INFO: NodeInfo = NodeInfo {
        id: "subspace.classifier",
        version: "1.0.0",
        name: "Classifier",
        category: MODELS,
        doc: "Loads a TorchScript attribute classifier and labels images: L = f(I) in [0, 1]^K, with its label \
              schema.",
    };
    fn declare(d: &mut Declare) -> Self {
        d.cacheable();
        ClassifierNode {
            images: d.input("images", "images in [0, 1]; resized to the classifier's input size"),
            model: d.input_path(
                "model",
                "default/classifier-fit.pt",
                "TorchScript file; default/... is the shipped world; a .json sidecar sits beside it",
            ),
            batch: d.int("batch", 512, 1..=65_536, "images per forward pass"),
            labels: d.output("labels", "label vectors N x K in [0, 1] with groups and class names"),
            classifier: d.output("classifier", "the loaded classifier, for nodes that label through it"),
        }
    }

    fn run(&self, io: &mut NodeIo<'_>, ctx: &Ctx<'_, '_>) -> NodeResult<()> {
        let path = model::resolve(&io.read(&self.model)?).map_err(|e| e.at(self.model.name()))?;
        let classifier = load_classifier(ctx, &path)?;
        let f = classifier.torch();
        let Images(images) = io.read(&self.images)?;
        let images = images.to_device(ctx.device());
        let batch = io.read(&self.batch)?;
        // Each batch is resized to the classifier's input size before the forward pass.
        if product(&[batch.min(images.size()[0]), f.image_elements()], MAX_ELEMENTS).is_none() {
            let why = format!(
                "batch {batch} at the input size of {} ({} elements per image) is beyond the limit of \
                 {MAX_ELEMENTS} elements per tensor; lower batch",
                f.sidecar.display(),
                f.image_elements()
            );
            return Err(NodeError::param(self.batch.name(), why));
        }
        let port = self.images.name();
        let probs = batched(&images, batch, ctx, "labelling", |x| {
            f.label(x).map_err(|e| if e.location.is_none() { e.at(port) } else { e })
        })?;
        let schema = f.schema.clone().ok_or_else(|| NodeError::internal("a loaded classifier has no label schema"))?;
        io.write(&self.labels, Labels { probs: probs.into(), schema });
        io.write(&self.classifier, Classifier(classifier.into_ref()));
        Ok(())
    }
}

subspace_sdk::export_plugin!(GeneratorNode, ClassifierNode);
