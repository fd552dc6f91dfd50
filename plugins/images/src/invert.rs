//! Inversion: latent codes whose render matches given pictures, found by Adam on the codes (no encoder). The loss
//! per picture is the pixel MSE, plus optionally the squared change of a classifier's outputs (a feature loss: the
//! render should read as the picture does) and a prior term that keeps codes typical of the latent distribution.
//! Several starts per picture run side by side and the best one is kept. The space searched is z (the prior is
//! the generator's latent distribution) or StyleGAN's W / W+ (codes around the average w; W+ is one w per layer,
//! flattened, so the loop sees N x D codes either way). The generator and classifier are passed as functions, so
//! the loop is tested on small analytic models and runs on any model handle.

use subspace_sdk::context::randn;
use subspace_sdk::prelude::*;

subspace_sdk::choice! {
    /// Where the codes start.
    pub enum Init {
        /// The first start at the mean of the latent distribution (zero in z, the average w in W/W+), any others
        /// drawn from it.
        Mean = "mean",
        /// Every start drawn from the latent distribution.
        Random = "random",
    }
}

/// The distribution of the codes searched: the generator's z prior, or codes around StyleGAN's average w.
#[derive(Debug)]
pub enum Prior {
    /// N(0, I): typical codes have |z|^2 close to D.
    Normal,
    /// U(-1, 1) per entry: codes stay in the box.
    Uniform,
    /// W or W+: mapped codes around `mean` (the average w, 1 x D: tiled over the layers in W+), with `spread` the
    /// root mean squared distance of a mapped code's entries from it (StyleGAN2's projector's w_std), when known:
    /// typical codes have |w - mean|^2 close to D spread^2.
    Around { mean: Tensor, spread: Option<f64> },
}

impl Prior {
    /// The prior named `name` in a generator's metadata.
    pub fn parse(name: &str) -> Option<Prior> {
        match name {
            "normal" => Some(Prior::Normal),
            "uniform" => Some(Prior::Uniform),
            _ => None,
        }
    }
    /// The distribution's mean as one code, 1 x `dim`, on `device`.
    fn mean(&self, dim: i64, device: Device) -> Tensor {
        match self {
            Prior::Around { mean, .. } => mean.to_kind(Kind::Float).to_device(device).reshape([1, dim]),
            _ => Tensor::zeros([1, dim], (Kind::Float, device)),
        }
    }
    /// Per code: how far it is from typical. Normal: (|z|^2 / D - 1)^2, zero on the shell where N(0, I) puts
    /// nearly all its mass; uniform: the mean squared excess beyond the box; around the average w the same shell
    /// in units of the spread, (|w - mean|^2 / (D spread^2) - 1)^2 (no term while the spread is unknown: a pull
    /// toward the mean without a scale would bias every picture's code by an arbitrary amount).
    fn penalty(&self, z: &Tensor) -> Tensor {
        let dim = z.size()[1] as f64;
        match self {
            Prior::Normal => (z.square().sum_dim_intlist([1i64].as_slice(), false, Kind::Float) / dim - 1.0).square(),
            Prior::Uniform => (z.abs() - 1.0).relu().square().mean_dim([1i64].as_slice(), false, Kind::Float),
            Prior::Around { mean, spread: Some(spread) } => {
                let far =
                    (z - mean.to_device(z.device())).square().sum_dim_intlist([1i64].as_slice(), false, Kind::Float);
                (far / (dim * spread * spread) - 1.0).square()
            }
            Prior::Around { spread: None, .. } => z.zeros_like().sum_dim_intlist([1i64].as_slice(), false, Kind::Float),
        }
    }
}

/// The space searched: its width, its distribution, and codes drawn from it for random starts.
#[derive(Debug)]
pub struct Latent {
    /// The width of one code (z: latent.dim; W: w_dim; W+: num_ws x w_dim).
    pub dim: i64,
    pub prior: Prior,
    /// Codes of the space (rows) that random starts are picked from; without them z starts are drawn from the
    /// prior, and W/W+ has no random starts (drawing w needs the generator's mapping).
    pub samples: Option<Tensor>,
}

impl Latent {
    /// `n x dim` start codes on the CPU. Without samples, z codes are drawn whether or not `needed`, so a seed
    /// gives the same starts as it always did; otherwise rows are drawn only when `needed` (else the mean).
    fn starts(&self, rng: &mut impl rand::Rng, n: i64, needed: bool) -> NodeResult<Tensor> {
        let cpu = Device::Cpu;
        match (&self.samples, &self.prior) {
            (Some(s), _) if needed => {
                let rows = s.size()[0];
                let pick: Vec<i64> = (0..n).map(|_| rng.gen_range(0..rows)).collect();
                Ok(s.to_device(cpu).to_kind(Kind::Float).index_select(0, &Tensor::from_slice(&pick)))
            }
            (None, Prior::Normal) => Ok(randn(rng, &[n, self.dim])),
            (None, Prior::Uniform) => {
                let data: Vec<f32> = (0..n * self.dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
                Ok(Tensor::from_slice(&data).reshape([n, self.dim]))
            }
            (None, Prior::Around { .. }) if needed => Err(NodeError::input(
                "samples",
                "random starts in W/W+ are picked from sampled codes (the handle cannot map z to w): link codes \
                 sampled by a Generator of the same space (render off) to samples, or use init mean with 1 start",
            )),
            _ => Ok(self.prior.mean(self.dim, cpu).repeat([n, 1])),
        }
    }
}

/// How the search runs.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Adam steps.
    pub steps: i64,
    /// Peak Adam learning rate (ramped up over the first 5% of the steps and down over the last 25%, as
    /// StyleGAN2's projector does).
    pub lr: f64,
    /// Starts per picture.
    pub starts: i64,
    pub init: Init,
    /// Weight of the classifier feature loss (0: off).
    pub feature: f64,
    /// Weight of the prior term (0: off).
    pub prior: f64,
    /// Pictures optimised together (each with its starts).
    pub batch: i64,
}

/// What the search found, per picture.
pub struct Found {
    /// Best code per picture, N x D.
    pub codes: Tensor,
    /// Their renders, N x C x H x W.
    pub renders: Tensor,
    /// RMS pixel error of each render against its picture.
    pub rms: Vec<f64>,
    /// RMS pixel error of the mean code's render (z = 0, or the average w) against each picture: the error of not
    /// inverting.
    pub rms_at_mean: Vec<f64>,
    /// Which start won, per picture.
    pub start: Vec<i64>,
    /// The final loss of the winning start, per picture.
    pub loss: Vec<f64>,
}

/// A model as the loop sees it: a batch in, a batch out, differentiable.
pub type ModelFn<'a> = &'a dyn Fn(&Tensor) -> NodeResult<Tensor>;

/// What the loop needs from its caller: models as functions, progress and cancellation.
pub struct Hooks<'a> {
    /// Codes to pictures in [0, 1] (differentiable).
    pub render: ModelFn<'a>,
    /// Pictures to classifier outputs (differentiable), for the feature loss.
    pub classify: Option<ModelFn<'a>>,
    /// (done, total) after each step.
    pub progress: &'a dyn Fn(u64, u64),
    /// An error once the run is cancelled.
    pub cancelled: &'a dyn Fn() -> NodeResult<()>,
}

/// The learning-rate factor at step `i` (from 0) of `steps`: StyleGAN2's projector schedule (linear ramp-up over
/// the first 5%, cosine ramp-down over the last 25%), never zero.
fn schedule(i: i64, steps: i64) -> f64 {
    let steps = steps.max(1) as f64;
    let down = ((steps - i as f64) / (0.25 * steps)).min(1.0);
    let down = 0.5 - 0.5 * (down * std::f64::consts::PI).cos();
    down * ((i + 1) as f64 / (0.05 * steps)).min(1.0)
}

/// Per-row mean of a batch, N x ... -> N.
fn row_mean(x: &Tensor) -> Tensor {
    x.flatten(1, -1).mean_dim([1i64].as_slice(), false, Kind::Float)
}

/// Finds codes for `pictures` (N x C x H x W in [0, 1], on the device to compute on) in the space `latent`.
///
/// # Errors
/// The models fail, the render's shape differs from the pictures', random starts in W/W+ have no samples to be
/// picked from, or the run is cancelled.
pub fn invert(
    pictures: &Tensor,
    latent: &Latent,
    opts: Options,
    rng: &mut impl rand::Rng,
    hooks: &Hooks<'_>,
) -> NodeResult<Found> {
    let device = pictures.device();
    let n = pictures.size()[0];
    let s = opts.starts.max(1);
    let batch = opts.batch.max(1);
    let chunks = (n + batch - 1) / batch;
    let total = (chunks * opts.steps.max(1)) as u64;
    let mut found: Vec<Found> = Vec::new();
    for c in 0..chunks {
        let first = c * batch;
        let m = batch.min(n - first);
        let target = pictures.narrow(0, first, m).repeat_interleave_self_int(s, 0, None);
        let mut z0 = latent.starts(rng, m * s, opts.init == Init::Random || s > 1)?;
        if opts.init == Init::Mean {
            // Start 0 of every picture at the mean.
            let first_starts = Tensor::arange_start_step(0, m * s, s, (Kind::Int64, Device::Cpu));
            z0 = z0.index_copy(0, &first_starts, &latent.prior.mean(latent.dim, Device::Cpu).repeat([m, 1]));
        }
        let z0 = z0.to_device(device);
        let done = (c * opts.steps) as u64;
        let chunk = search(&target, z0, &latent.prior, opts, hooks, |i| (hooks.progress)(done + i, total))?;
        found.push(best_per_picture(chunk, m, s));
    }
    let at_mean = {
        let _guard = subspace_sdk::tch::no_grad_guard();
        let r = (hooks.render)(&latent.prior.mean(latent.dim, device))?.to_device(device);
        row_mean(&(pictures - r).square()).sqrt()
    };
    let cat = |f: fn(&Found) -> &Tensor| Tensor::cat(&found.iter().map(f).collect::<Vec<_>>(), 0);
    let mut out = Found {
        codes: cat(|f| &f.codes),
        renders: cat(|f| &f.renders),
        rms: found.iter().flat_map(|f| f.rms.clone()).collect(),
        rms_at_mean: Vec::<f64>::try_from(at_mean.to_device(Device::Cpu)).map_err(NodeError::from)?,
        start: found.iter().flat_map(|f| f.start.clone()).collect(),
        loss: found.iter().flat_map(|f| f.loss.clone()).collect(),
    };
    out.codes = out.codes.to_device(device);
    (hooks.progress)(total, total);
    Ok(out)
}

/// The result of one chunk: every start's code, render, pixel MSE and loss.
struct Chunk {
    z: Tensor,
    renders: Tensor,
    mse: Tensor,
    loss: Tensor,
}

/// Adam on the codes `z` (one row per picture start) against `target` (the pictures, each repeated per start).
fn search(
    target: &Tensor,
    z: Tensor,
    prior: &Prior,
    opts: Options,
    hooks: &Hooks<'_>,
    progress: impl Fn(u64),
) -> NodeResult<Chunk> {
    let (b1, b2, eps): (f64, f64, f64) = (0.9, 0.999, 1e-8);
    let target_features = match hooks.classify {
        Some(f) if opts.feature > 0.0 => {
            let _guard = subspace_sdk::tch::no_grad_guard();
            Some(f(target)?.to_device(target.device()).detach())
        }
        _ => None,
    };
    // Per row: pixel MSE, weighted feature and prior terms.
    let losses = |z: &Tensor| -> NodeResult<(Tensor, Tensor, Tensor)> {
        let r = (hooks.render)(z)?.to_device(target.device());
        if r.size() != target.size() {
            return Err(NodeError::input(
                "generator",
                format!("renders of shape {:?} do not match the pictures' {:?}", r.size(), target.size()),
            ));
        }
        let mse = row_mean(&(&r - target).square());
        let mut terms = vec![mse.shallow_clone()];
        if let (Some(f), Some(t)) = (hooks.classify, &target_features) {
            terms.push(opts.feature * row_mean(&(f(&r)?.to_device(target.device()) - t).square()));
        }
        if opts.prior > 0.0 {
            terms.push(opts.prior * prior.penalty(z));
        }
        let loss = Tensor::stack(&terms, 0).sum_dim_intlist([0i64].as_slice(), false, Kind::Float);
        Ok((r, mse, loss))
    };
    let mut z = z.detach();
    let mut m = z.zeros_like();
    let mut v = z.zeros_like();
    for i in 0..opts.steps {
        (hooks.cancelled)()?;
        let x = z.detach().set_requires_grad(true);
        let (_, _, loss) = losses(&x)?;
        let grad =
            Tensor::f_run_backward(&[&loss.sum(Kind::Float)], &[&x], false, false).map_err(NodeError::from)?.remove(0);
        let _guard = subspace_sdk::tch::no_grad_guard();
        let t = (i + 1) as f64;
        m = b1 * &m + (1.0 - b1) * &grad;
        v = b2 * &v + (1.0 - b2) * grad.square();
        let step =
            opts.lr * schedule(i, opts.steps) * (&m / (1.0 - b1.powf(t))) / ((&v / (1.0 - b2.powf(t))).sqrt() + eps);
        z = (&z - step).detach();
        progress(i as u64 + 1);
    }
    let _guard = subspace_sdk::tch::no_grad_guard();
    let (renders, mse, loss) = losses(&z)?;
    Ok(Chunk { z, renders: renders.detach(), mse: mse.detach(), loss: loss.detach() })
}

/// The start with the lowest loss for each of `m` pictures (`s` starts each, rows picture-major).
fn best_per_picture(c: Chunk, m: i64, s: i64) -> Found {
    let best = c.loss.reshape([m, s]).argmin(1, false);
    let rows = Tensor::arange(m, (Kind::Int64, best.device())) * s + &best;
    let pick = |t: &Tensor| t.index_select(0, &rows.to_device(t.device()));
    let to_vec = |t: &Tensor| Vec::<f64>::try_from(t.to_device(Device::Cpu).to_kind(Kind::Double)).unwrap_or_default();
    Found {
        codes: pick(&c.z),
        renders: pick(&c.renders),
        rms: to_vec(&pick(&c.mse).sqrt()),
        rms_at_mean: Vec::new(),
        start: Vec::<i64>::try_from(best.to_device(Device::Cpu)).unwrap_or_default(),
        loss: to_vec(&pick(&c.loss)),
    }
}

/// Mean, median, 5th and 95th percentiles and a 95% interval of the mean (normal approximation) of `xs`.
pub fn summary(xs: &[f64]) -> serde_json::Value {
    let n = xs.len();
    if n == 0 {
        return serde_json::json!({"count": 0});
    }
    let mut sorted = xs.to_vec();
    sorted.sort_by(f64::total_cmp);
    let q = |p: f64| sorted[((p * (n - 1) as f64).round() as usize).min(n - 1)];
    let mean = xs.iter().sum::<f64>() / n as f64;
    let sd = if n > 1 { (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt() } else { 0.0 };
    let half = 1.96 * sd / (n as f64).sqrt();
    serde_json::json!({
        "count": n, "mean": mean, "median": q(0.5), "p05": q(0.05), "p95": q(0.95), "min": sorted[0],
        "max": sorted[n - 1], "mean_ci95": [mean - half, mean + half],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use std::cell::Cell;

    /// A small smooth generator: sigmoid(A z) as 1 x 4 x 4 pictures, with a fixed random A.
    fn toy(dim: i64) -> impl Fn(&Tensor) -> NodeResult<Tensor> {
        let mut rng = subspace_sdk::rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let a = randn(&mut rng, &[dim, 16]) * 0.5;
        move |z: &Tensor| Ok(z.matmul(&a).sigmoid().reshape([-1, 1, 4, 4]))
    }

    fn normal(dim: i64) -> Latent {
        Latent { dim, prior: Prior::Normal, samples: None }
    }

    fn opts() -> Options {
        Options { steps: 300, lr: 0.1, starts: 1, init: Init::Mean, feature: 0.0, prior: 0.0, batch: 8 }
    }

    #[test]
    fn inversion_recovers_pictures_the_generator_drew() {
        let g = toy(4);
        let mut rng = subspace_sdk::rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let truth = randn(&mut rng, &[5, 4]);
        let pictures = g(&truth).unwrap();
        let calls = Cell::new(0u64);
        let hooks = Hooks {
            render: &g,
            classify: None,
            progress: &|done, total| {
                assert!(done <= total);
                calls.set(done)
            },
            cancelled: &|| Ok(()),
        };
        // Two chunks (batch 3 of 5 pictures) and three starts each.
        let o = Options { batch: 3, starts: 3, ..opts() };
        let found = invert(&pictures, &normal(4), o, &mut rng, &hooks).unwrap();
        assert_eq!(found.codes.size(), [5, 4]);
        assert_eq!(found.renders.size(), [5, 1, 4, 4]);
        assert_eq!(calls.get(), 600, "progress reaches the total");
        for i in 0..5 {
            assert!(
                found.rms[i] < 0.01 && found.rms_at_mean[i] > 0.05,
                "{i}: {} vs {}",
                found.rms[i],
                found.rms_at_mean[i]
            );
        }
        // The renders are the codes' renders, and the code is the truth (A has full rank 4 <= 16).
        assert!(g(&found.codes).unwrap().allclose(&found.renders, 1e-5, 1e-6, false));
        let err = (&found.codes - &truth).abs().max().double_value(&[]);
        assert!(err < 0.1, "codes off by {err}");
    }

    #[test]
    fn the_best_start_is_kept_and_the_prior_pulls_toward_typical_codes() {
        let g = toy(4);
        let hooks = Hooks { render: &g, classify: None, progress: &|_, _| {}, cancelled: &|| Ok(()) };
        let mut rng = subspace_sdk::rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let pictures = g(&(randn(&mut rng, &[2, 4]) * 2.0)).unwrap();
        let o = Options { starts: 4, init: Init::Random, steps: 20, ..opts() };
        let c = search(
            &pictures.repeat_interleave_self_int(4, 0, None),
            normal(4).starts(&mut rng, 8, true).unwrap(),
            &Prior::Normal,
            o,
            &hooks,
            |_| {},
        )
        .unwrap();
        let losses = Vec::<f64>::try_from(c.loss.to_kind(Kind::Double)).unwrap();
        let found = best_per_picture(c, 2, 4);
        for p in 0..2 {
            let best = (0..4).map(|k| losses[p * 4 + k]).fold(f64::INFINITY, f64::min);
            assert_eq!(found.loss[p], best);
            assert_eq!(losses[p * 4 + found.start[p] as usize], best);
        }
        // A flat picture no code draws exactly: a strong prior keeps |z|^2 / D near 1, none lets it wander.
        let flat = Tensor::full([1, 1, 4, 4], 0.99, (Kind::Float, Device::Cpu));
        let mut norm = |prior: f64| {
            let o = Options { prior, steps: 400, ..opts() };
            let f = invert(&flat, &normal(4), o, &mut rng, &hooks).unwrap();
            f.codes.square().sum(Kind::Float).double_value(&[]) / 4.0
        };
        let (free, held) = (norm(0.0), norm(10.0));
        assert!((held - 1.0).abs() < (free - 1.0).abs() && (held - 1.0).abs() < 0.5, "{free} vs {held}");
    }

    #[test]
    fn the_feature_loss_and_cancellation_reach_the_loop() {
        let g = toy(4);
        let mut rng = subspace_sdk::rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let pictures = g(&randn(&mut rng, &[2, 4])).unwrap();
        let used = Cell::new(0);
        let classify = |x: &Tensor| {
            used.set(used.get() + 1);
            Ok(x.mean_dim([2i64, 3].as_slice(), false, Kind::Float))
        };
        let hooks = Hooks { render: &g, classify: Some(&classify), progress: &|_, _| {}, cancelled: &|| Ok(()) };
        let o = Options { feature: 1.0, steps: 5, ..opts() };
        invert(&pictures, &normal(4), o, &mut rng, &hooks).unwrap();
        // Once for the targets, once per step, once at the end.
        assert_eq!(used.get(), 7);
        let stop = Hooks { cancelled: &|| Err(NodeError::cancelled()), ..hooks };
        let e = invert(&pictures, &normal(4), o, &mut rng, &stop).err().unwrap();
        assert_eq!(e.kind, subspace_sdk::ErrorKind::Cancelled);
    }

    #[test]
    fn around_the_average_w_starts_at_it_picks_random_starts_from_samples_and_pulls_toward_it() {
        let g = toy(4);
        let hooks = Hooks { render: &g, classify: None, progress: &|_, _| {}, cancelled: &|| Ok(()) };
        let mut rng = subspace_sdk::rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let avg = Tensor::from_slice(&[0.5f32, -0.5, 0.25, 1.0]).reshape([1, 4]);
        let around = |samples: Option<Tensor>| Latent {
            dim: 4,
            prior: Prior::Around { mean: avg.shallow_clone(), spread: Some(0.5) },
            samples,
        };
        let truth = &avg + randn(&mut rng, &[3, 4]) * 0.5;
        let pictures = g(&truth).unwrap();
        // No steps: the codes are the average w, and the error of not inverting is its render's.
        let o = Options { steps: 0, ..opts() };
        let f = invert(&pictures, &around(None), o, &mut rng, &hooks).unwrap();
        assert!(f.codes.allclose(&avg.expand([3, 4], false), 1e-6, 1e-6, false));
        assert!(f.rms.iter().zip(&f.rms_at_mean).all(|(a, b)| (a - b).abs() < 1e-6), "{:?}", f.rms);
        // Searched, the truth is found from there.
        let f = invert(&pictures, &around(None), opts(), &mut rng, &hooks).unwrap();
        let err = (&f.codes - &truth).abs().max().double_value(&[]);
        assert!(err < 0.1 && f.rms.iter().zip(&f.rms_at_mean).all(|(a, b)| a * 10.0 < *b), "{err} {:?}", f.rms);
        // Random starts need codes to pick from; given, they are rows of them.
        let o = Options { init: Init::Random, steps: 0, ..opts() };
        let e = invert(&pictures, &around(None), o, &mut rng, &hooks).err().unwrap();
        assert!(e.message.contains("link codes sampled by a Generator"), "{}", e.message);
        let samples = Tensor::from_slice(&[9.0f32, 9.0, 9.0, 9.0, -9.0, -9.0, -9.0, -9.0]).reshape([2, 4]);
        let f = invert(&pictures, &around(Some(samples)), o, &mut rng, &hooks).unwrap();
        let row = Vec::<f32>::try_from(f.codes.abs().flatten(0, -1)).unwrap();
        assert!(row.iter().all(|x| *x == 9.0), "{row:?}");
        // The prior term: zero on the shell at the typical distance from the average w (here |w - avg|^2 = D
        // spread^2 = 1), growing off it; none without a spread.
        let p = around(None).prior.penalty(&Tensor::cat(&[&avg + 0.5, &avg + 1.0, avg.shallow_clone()], 0));
        let p = Vec::<f64>::try_from(p.to_kind(Kind::Double)).unwrap();
        assert!(p[0].abs() < 1e-6 && (p[1] - 9.0).abs() < 1e-5 && (p[2] - 1.0).abs() < 1e-6, "{p:?}");
        let none = Latent { dim: 4, prior: Prior::Around { mean: avg.shallow_clone(), spread: None }, samples: None };
        assert_eq!(none.prior.penalty(&(&avg + 1.0)).double_value(&[0]), 0.0);
    }

    #[test]
    fn summaries_and_schedule() {
        let s = summary(&[1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!((s["mean"].as_f64(), s["median"].as_f64(), s["count"].as_u64()), (Some(3.0), Some(3.0), Some(5)));
        let ci = s["mean_ci95"].as_array().unwrap();
        assert!(ci[0].as_f64().unwrap() < 3.0 && ci[1].as_f64().unwrap() > 3.0);
        assert!(schedule(0, 100) > 0.1 && schedule(0, 100) < 0.5);
        assert_eq!(schedule(50, 100), 1.0);
        assert!(schedule(99, 100) > 0.0 && schedule(99, 100) < 0.05);
        assert_eq!(schedule(0, 1), 1.0);
        let u = Prior::Uniform.penalty(&Tensor::from_slice(&[0.5f32, -2.0]).reshape([1, 2]));
        assert!((u.double_value(&[0]) - 0.5).abs() < 1e-6);
    }
}
