//! Training of the generator (hinge-loss GAN on renders) and of the two classifiers, and their export.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{nn, nn::OptimizerConfig, CModule, Device, Kind, Tensor};

use crate::meta::{
    self, ClassifierMeta, ClassifierTraining, GeneratorMeta, GeneratorTraining, ImageSpec, Latent, CLASSIFIER_FORMAT,
    GENERATOR_FORMAT,
};
use crate::nets::{self, BnMode, Classifier, Discriminator, Generator, Role, FIRST_LAYER, LATENT_DIM, MBSTD_GROUP};
use crate::render::{self, IMAGE_BYTES, SIZE};
use crate::sheet;

/// Stream of render seeds for a training run: a ChaCha8 sequence keyed by the run seed and a purpose tag.
pub fn seed_stream(seed: u64, tag: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ tag.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Purpose tags of the seed streams (distinct streams never share renders in practice).
pub const TAG_GAN_DATA: u64 = 1;
pub const TAG_CLASSIFIER_DATA: u64 = 2;
pub const TAG_CLASSIFIER_VALID: u64 = 3;
pub const TAG_GATES: u64 = 4;
pub const TAG_AUGMENT: u64 = 5;

// ---------------------------------------------------------------------------------------------------------------
// Generator

#[derive(Debug, Clone)]
pub struct GanConfig {
    pub seed: u64,
    /// Wall-clock budget; training stops at the first of `minutes` and `steps`.
    pub minutes: f64,
    pub steps: Option<u64>,
    pub batch: i64,
    pub lr: f64,
    /// When set, the learning rate stays at `lr` for the first half of the run and then falls linearly to this
    /// value at its end (the run's end is `steps` when given, otherwise the wall-clock budget).
    pub lr_final: Option<f64>,
    pub ema_decay: f64,
    pub out: PathBuf,
    /// Checkpoints and progress sheets.
    pub work: PathBuf,
    pub log_every: u64,
    pub checkpoint_every: u64,
    /// Write generator.pt / generator.json into `out` at the end.
    pub export: bool,
    /// Continue from the checkpoint in `work` (weights and step count; optimiser moments restart).
    pub resume: bool,
    /// Latents used to calibrate the batch-norm statistics at export.
    pub calibration: i64,
    /// PacGAN packing of the discriminator (images judged together).
    pub pack: i64,
    /// On resume: start a new discriminator (e.g. after changing `pack`) instead of loading it.
    pub fresh_discriminator: bool,
    /// On resume: restart the weight average from the current generator.
    pub reset_ema: bool,
    /// Where the networks train (the export is always traced on the CPU).
    pub device: Device,
    /// Threads rendering training batches (1 keeps the CPU runs' exact data order; a GPU needs several).
    pub render_threads: usize,
    /// Keep a copy of the weight average every N steps (a multiple of `checkpoint_every`) in `work/snapshots`.
    pub snapshot_every: Option<u64>,
}

impl GanConfig {
    pub fn new(seed: u64, minutes: f64, out: &Path) -> GanConfig {
        GanConfig {
            seed,
            minutes,
            steps: None,
            batch: 64,
            lr: 2e-4,
            lr_final: None,
            ema_decay: 0.999,
            out: out.to_path_buf(),
            work: PathBuf::from("target/world-work").join(format!("gan-{seed}")),
            log_every: 25,
            checkpoint_every: 250,
            export: true,
            resume: false,
            calibration: 4096,
            pack: 4,
            fresh_discriminator: false,
            reset_ema: false,
            device: Device::Cpu,
            render_threads: 1,
            snapshot_every: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct GanReport {
    pub steps: u64,
    pub minutes: f64,
    pub d_loss: f64,
    pub g_loss: f64,
    pub generator_params: i64,
    pub discriminator_params: i64,
}

/// Background threads rendering batches of training images, received in a fixed order: thread i renders batches
/// i, i + threads, ... from its own seed stream (with one thread, the stream `rng` itself).
struct Renderer {
    queues: Vec<std::sync::mpsc::Receiver<Vec<u8>>>,
    next: usize,
}

impl Renderer {
    fn spawn(seed: u64, tag: u64, batch: usize, threads: usize) -> Renderer {
        let queues = (0..threads.max(1))
            .map(|i| {
                let mut rng = if i == 0 { seed_stream(seed, tag) } else { seed_stream(seed, tag + 0x100 * i as u64) };
                let (tx, rx) = sync_channel::<Vec<u8>>(3);
                std::thread::spawn(move || {
                    let mut img = [0u8; IMAGE_BYTES];
                    loop {
                        let mut bytes = vec![0u8; batch * IMAGE_BYTES];
                        for i in 0..batch {
                            render::render_into(rng.gen(), &mut img);
                            bytes[i * IMAGE_BYTES..(i + 1) * IMAGE_BYTES].copy_from_slice(&img);
                        }
                        if tx.send(bytes).is_err() {
                            break;
                        }
                    }
                });
                rx
            })
            .collect();
        Renderer { queues, next: 0 }
    }

    fn recv(&mut self) -> Result<Vec<u8>> {
        let bytes = self.queues[self.next].recv().context("renderer thread stopped")?;
        self.next = (self.next + 1) % self.queues.len();
        Ok(bytes)
    }
}

pub fn train_generator(cfg: &GanConfig) -> Result<GanReport> {
    tch::manual_seed(cfg.seed as i64);
    let dev = cfg.device;
    let mut g_vs = nn::VarStore::new(dev);
    let g = Generator::new(&g_vs.root());
    let mut ema_vs = nn::VarStore::new(dev);
    let g_ema = Generator::new(&ema_vs.root());
    nets::copy_vars(&ema_vs, &g_vs);
    let mut d_vs = nn::VarStore::new(dev);
    ensure!(cfg.batch % (cfg.pack * MBSTD_GROUP) == 0, "batch must be a multiple of pack x {MBSTD_GROUP}");
    let mut d = Discriminator::new(&d_vs.root(), cfg.pack);
    if let Some(n) = cfg.snapshot_every {
        ensure!(
            n > 0 && n % cfg.checkpoint_every == 0,
            "snapshot_every {n} must be a multiple of {}",
            cfg.checkpoint_every
        );
    }
    let (mut step, mut prior_minutes) = (0u64, 0.0f64);
    if cfg.resume {
        g_vs.load(cfg.work.join("g.safetensors"))?;
        ema_vs.load(cfg.work.join("g_ema.safetensors"))?;
        if cfg.fresh_discriminator {
            println!("resuming with a new discriminator (pack {})", cfg.pack);
        } else {
            d_vs.load(cfg.work.join("d.safetensors"))?;
        }
        if cfg.reset_ema {
            nets::copy_vars(&ema_vs, &g_vs);
        }
        let state: serde_json::Value = meta::read_json(&cfg.work.join("state.json"))?;
        step = state["step"].as_u64().context("state.json: step")?;
        prior_minutes = state["minutes"].as_f64().context("state.json: minutes")?;
        println!("resuming at step {step} after {prior_minutes:.1} min");
    }
    let adam = nn::Adam { beta1: 0.0, beta2: 0.99, wd: 0.0, eps: 1e-8, amsgrad: false };
    let mut opt_g = adam.build(&g_vs, cfg.lr)?;
    let mut opt_d = adam.build(&d_vs, cfg.lr)?;
    let (gp, dp) = (nets::param_count(&g_vs), nets::param_count(&d_vs));
    println!("generator: {gp} parameters; discriminator: {dp} parameters; batch {}", cfg.batch);

    std::fs::create_dir_all(&cfg.work).with_context(|| format!("creating {}", cfg.work.display()))?;
    std::fs::create_dir_all(&cfg.out).with_context(|| format!("creating {}", cfg.out.display()))?;
    let fixed_z = Tensor::randn([64, LATENT_DIM], (Kind::Float, dev));
    let mut data = Renderer::spawn(cfg.seed ^ step, TAG_GAN_DATA, cfg.batch as usize, cfg.render_threads);
    let mut losses = String::from("step,seconds,d_loss,g_loss,d_real,d_fake\n");
    if cfg.resume {
        losses = std::fs::read_to_string(cfg.out.join("generator-losses.csv")).unwrap_or(losses);
    }

    let start = Instant::now();
    let budget = cfg.minutes * 60.0;
    let steps_at_start = step;
    let (mut d_acc, mut g_acc, mut n_acc) = (0.0, 0.0, 0.0);
    let (mut last_d, mut last_g) = (f64::NAN, f64::NAN);
    loop {
        if let Some(max) = cfg.steps {
            if step >= max {
                break;
            }
        }
        if start.elapsed().as_secs_f64() >= budget {
            break;
        }
        if let Some(lr_final) = cfg.lr_final {
            let progress = match cfg.steps {
                Some(max) => (step - steps_at_start) as f64 / (max - steps_at_start).max(1) as f64,
                None => start.elapsed().as_secs_f64() / budget,
            };
            let lr = cfg.lr + (lr_final - cfg.lr) * ((progress - 0.5) * 2.0).clamp(0.0, 1.0);
            opt_g.set_lr(lr);
            opt_d.set_lr(lr);
        }
        let bytes = data.recv()?;
        let real = nets::bytes_to_unit(&bytes, cfg.batch).to_device(dev) * 2.0 - 1.0;

        // Discriminator step (real and fake in one batch, so one power iteration per step). The same fakes, with
        // their graph, then serve the generator step, as in the reference DCGAN loop.
        let z = Tensor::randn([cfg.batch, LATENT_DIM], (Kind::Float, dev));
        let fake = g.forward(&z, BnMode::Train);
        let scores = d.forward(&Tensor::cat(&[&real, &fake.detach()], 0));
        let packs = cfg.batch / cfg.pack;
        let (s_real, s_fake) = (scores.narrow(0, 0, packs), scores.narrow(0, packs, packs));
        let d_loss = (-&s_real + 1.0).relu().mean(Kind::Float) + (&s_fake + 1.0).relu().mean(Kind::Float);
        opt_d.backward_step(&d_loss);

        // Generator step.
        let g_loss = -d.forward(&fake).mean(Kind::Float);
        opt_g.backward_step(&g_loss);
        let decay = cfg.ema_decay.min((1.0 + step as f64) / (10.0 + step as f64));
        nets::ema_update(&ema_vs, &g_vs, decay);

        step += 1;
        let (dl, gl) = (d_loss.double_value(&[]), g_loss.double_value(&[]));
        d_acc += dl;
        g_acc += gl;
        n_acc += 1.0;
        if step % 10 == 0 {
            let (mr, mf) = (s_real.mean(Kind::Float).double_value(&[]), s_fake.mean(Kind::Float).double_value(&[]));
            let secs = prior_minutes * 60.0 + start.elapsed().as_secs_f64();
            losses += &format!("{step},{secs:.1},{dl:.4},{gl:.4},{mr:.4},{mf:.4}\n");
        }
        if step % cfg.log_every == 0 || step == 1 {
            let secs = start.elapsed().as_secs_f64();
            let total_min = prior_minutes + secs / 60.0;
            last_d = d_acc / n_acc;
            last_g = g_acc / n_acc;
            println!(
                "step {step:>6}  {total_min:>6.1} min  {:.2} s/step  d_loss {last_d:.4}  g_loss {last_g:.4}",
                secs / (step - steps_at_start).max(1) as f64
            );
            std::io::stdout().flush().ok();
            (d_acc, g_acc, n_acc) = (0.0, 0.0, 0.0);
        }
        if step % cfg.checkpoint_every == 0 {
            let minutes = prior_minutes + start.elapsed().as_secs_f64() / 60.0;
            checkpoint(cfg, &g_vs, &ema_vs, &d_vs, &g_ema, &fixed_z, step, minutes)?;
            meta::write_atomic(&cfg.out.join("generator-losses.csv"), losses.as_bytes())?;
            if cfg.snapshot_every.is_some_and(|n| step % n == 0) {
                // A copy of the weight average only: exporting here would reseed the RNG and change the run.
                let dir = cfg.work.join("snapshots");
                std::fs::create_dir_all(&dir)?;
                std::fs::copy(cfg.work.join("g_ema.safetensors"), dir.join(format!("g_ema-{step:06}.safetensors")))?;
            }
        }
    }
    if n_acc > 0.0 {
        last_d = d_acc / n_acc;
        last_g = g_acc / n_acc;
    }
    let minutes = prior_minutes + start.elapsed().as_secs_f64() / 60.0;
    println!("trained {step} steps in {minutes:.1} min");
    checkpoint(cfg, &g_vs, &ema_vs, &d_vs, &g_ema, &fixed_z, step, minutes)?;
    meta::write_atomic(&cfg.out.join("generator-losses.csv"), losses.as_bytes())?;

    if cfg.export {
        let details = serde_json::json!({
            "batch": cfg.batch, "lr": cfg.lr, "lr_final": cfg.lr_final, "betas": [0.0, 0.99], "loss": "hinge",
            "discriminator": "spectral norm (1 power iteration per step), leaky ReLU 0.2, minibatch stddev (groups of 4)",
            "pack": cfg.pack, "fresh_discriminator_on_resume": cfg.fresh_discriminator, "reset_ema_on_resume": cfg.reset_ema,
            "generator": "fc 64->4096, 4x transposed conv 4x4/2 (256,128,64,32,3), batch norm (folded into the weights at export) + ReLU, tanh",
            "ema_decay": cfg.ema_decay, "exported": "EMA of the generator weights",
            "generator_params": gp, "discriminator_params": dp,
            "final_d_loss": last_d, "final_g_loss": last_g,
            "resumed": cfg.resume, "device": format!("{dev:?}"),
        });
        // Traced on the CPU from the checkpoint just written, so the module loads anywhere whatever the device.
        let ckpt = cfg.work.join("g_ema.safetensors");
        export_generator_checkpoint(&ckpt, &cfg.out, cfg.seed, step, minutes, cfg.calibration, Some(details))?;
    }
    Ok(GanReport {
        steps: step,
        minutes,
        d_loss: last_d,
        g_loss: last_g,
        generator_params: gp,
        discriminator_params: dp,
    })
}

#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename the same eight values
fn checkpoint(
    cfg: &GanConfig,
    g_vs: &nn::VarStore,
    ema_vs: &nn::VarStore,
    d_vs: &nn::VarStore,
    g_ema: &Generator,
    fixed_z: &Tensor,
    step: u64,
    minutes: f64,
) -> Result<()> {
    meta::write_json(&cfg.work.join("state.json"), &serde_json::json!({ "step": step, "minutes": minutes }))?;
    g_vs.save(cfg.work.join("g.safetensors"))?;
    ema_vs.save(cfg.work.join("g_ema.safetensors"))?;
    d_vs.save(cfg.work.join("d.safetensors"))?;
    g_ema.calibrate(&Tensor::randn([512, LATENT_DIM], (Kind::Float, fixed_z.device())));
    let imgs = tch::no_grad(|| (g_ema.forward(fixed_z, BnMode::Eval) + 1.0) / 2.0);
    let tiles = nets::unit_to_bytes(&imgs);
    let grid = sheet::grid(&tiles, 8, 1);
    let path = cfg.work.join(format!("sheet-{step:06}.png"));
    grid.save(&path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Exports the weight average saved at `ckpt` (e.g. `target/world-work/gan-1/g_ema.safetensors`) as generator.pt
/// (TorchScript, parameters named as in the VarStore) and generator.json, traced on the CPU whatever device trained
/// it, and checks the saved module against the Rust forward pass.
pub fn export_generator_checkpoint(
    ckpt: &Path,
    out: &Path,
    seed: u64,
    steps: u64,
    minutes: f64,
    calibration: i64,
    details: Option<serde_json::Value>,
) -> Result<()> {
    let mut vs = nn::VarStore::new(Device::Cpu);
    let g = Generator::new(&vs.root());
    vs.load(ckpt).with_context(|| format!("loading {}", ckpt.display()))?;
    std::fs::create_dir_all(out)?;
    let pt = out.join("generator.pt");
    let tmp = out.join(".generator.pt.tmp");
    // Batch-norm statistics from one large batch of the latent distribution, then folded into the weights.
    tch::manual_seed(seed.wrapping_add(0xCA11) as i64);
    g.calibrate(&Tensor::randn([calibration, LATENT_DIM], (Kind::Float, Device::Cpu)));
    nets::save_generator(&g, &tmp)?;
    // Check: same output as the Rust model, any batch size, and the first layer is where the metadata says.
    let m = CModule::load(&tmp)?;
    let z = Tensor::randn([5, LATENT_DIM], (Kind::Float, Device::Cpu));
    let a = tch::no_grad(|| g.forward(&z, BnMode::Eval));
    let b = tch::no_grad(|| m.forward_ts(&[&z]))?;
    let diff = (a - &b).abs().max().double_value(&[]);
    ensure!(diff < 1e-4, "TorchScript generator differs from the Rust one by {diff}");
    let names: Vec<String> = m.named_parameters()?.into_iter().map(|(n, _)| n).collect();
    ensure!(names.iter().any(|n| n == FIRST_LAYER), "no {FIRST_LAYER} among {names:?}");
    std::fs::rename(&tmp, &pt)?;
    let meta = GeneratorMeta {
        format: GENERATOR_FORMAT.into(),
        name: "default-faces".into(),
        latent: Latent { dim: LATENT_DIM as usize, distribution: "normal".into() },
        output: ImageSpec { channels: 3, height: SIZE, width: SIZE, range: [-1.0, 1.0] },
        first_layer: FIRST_LAYER.into(),
        training: GeneratorTraining { seed, steps, minutes: (minutes * 10.0).round() / 10.0, details },
    };
    meta::write_json(&out.join("generator.json"), &meta)?;
    println!("wrote {} and generator.json (max |TorchScript - Rust| = {diff:.2e})", pt.display());
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// Classifiers

#[derive(Debug, Clone)]
pub struct ClassifierConfig {
    pub role: Role,
    pub seed: u64,
    pub minutes: f64,
    pub steps: u64,
    pub batch: i64,
    pub lr: f64,
    pub out: PathBuf,
    pub export: bool,
    /// Fresh renders for the validation accuracy printed and recorded at the end.
    pub validation: usize,
}

impl ClassifierConfig {
    pub fn new(role: Role, seed: u64, out: &Path) -> ClassifierConfig {
        ClassifierConfig {
            role,
            seed,
            minutes: 8.0,
            steps: if role == Role::Fit { 700 } else { 1000 },
            batch: 64,
            lr: 1e-3,
            out: out.to_path_buf(),
            export: true,
            validation: 1000,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ClassifierReport {
    pub steps: u64,
    pub minutes: f64,
    /// Accuracy per group on fresh renders (validation stream of the run seed).
    pub accuracy: Vec<f64>,
}

/// Augmentation so that the classifier also reads GAN images: contrast/brightness jitter, a small per-channel colour
/// shift, a Gaussian blur of random strength on most of the batch, small shifts, pixel noise. `x` is
/// N x 3 x 64 x 64 in [0, 1].
pub fn augment(x: &Tensor, rng: &mut ChaCha8Rng) -> Tensor {
    let n = x.size()[0];
    let opts = (Kind::Float, x.device());
    let contrast = Tensor::rand([n, 1, 1, 1], opts) * 0.3 + 0.85;
    let bright = (Tensor::rand([n, 1, 1, 1], opts) - 0.5) * 0.12;
    let tint = (Tensor::rand([n, 3, 1, 1], opts) - 0.5) * 0.08;
    let mut y = (x - 0.5) * contrast + 0.5 + bright + tint;
    // 5x5 Gaussian blur, sigma drawn per batch, on a random 70% of the batch.
    let sigma: f64 = rng.gen_range(0.5..1.5);
    let taps: Vec<f32> = (-2..=2).map(|i: i32| (-(i * i) as f64 / (2.0 * sigma * sigma)).exp() as f32).collect();
    let k1 = Tensor::from_slice(&taps);
    let k1 = &k1 / k1.sum(Kind::Float);
    let k2 = k1.unsqueeze(1).matmul(&k1.unsqueeze(0)).view([1, 1, 5, 5]).repeat([3, 1, 1, 1]);
    let blurred = y.reflection_pad2d([2, 2, 2, 2]).conv2d(&k2, None::<Tensor>, [1, 1], [0, 0], [1, 1], 3);
    let mask = Tensor::rand([n, 1, 1, 1], opts).lt(0.7);
    y = blurred.where_self(&mask, &y);
    let (dy, dx): (i64, i64) = (rng.gen_range(-2..=2), rng.gen_range(-2..=2));
    y = y.roll([dy, dx], [2, 3]);
    let sd = Tensor::rand([n, 1, 1, 1], opts) * 0.07;
    y = &y + y.randn_like() * sd;
    y.clamp(0.0, 1.0)
}

/// Accuracy per group of a probability function on `count` fresh renders from a seed stream.
pub fn accuracy_on_renders<F: Fn(&Tensor) -> Result<Tensor>>(
    probs: F,
    mut seeds: ChaCha8Rng,
    count: usize,
) -> Result<Vec<f64>> {
    let mut correct = [0i64; 5];
    let mut done = 0usize;
    while done < count {
        let b = (count - done).min(250);
        let batch: Vec<u64> = (0..b).map(|_| seeds.gen()).collect();
        let (x, labels) = nets::render_batch(&batch);
        let p = tch::no_grad(|| probs(&x))?;
        let pred = nets::group_argmax(&p);
        let eq = pred.eq_tensor(&labels).to_kind(Kind::Int64).sum_dim_intlist([0i64].as_slice(), false, Kind::Int64);
        let eq: Vec<i64> = Vec::<i64>::try_from(eq)?;
        for g in 0..5 {
            correct[g] += eq[g];
        }
        done += b;
    }
    Ok(correct.iter().map(|&c| c as f64 / count as f64).collect())
}

pub fn train_classifier(cfg: &ClassifierConfig) -> Result<ClassifierReport> {
    // The eval classifier gets its own seed stream even when called with the same seed.
    let seed = cfg.seed ^ if cfg.role == Role::Eval { 0xE7A1_0000_0000 } else { 0 };
    tch::manual_seed(seed as i64);
    let mut vs = nn::VarStore::new(Device::Cpu);
    let clf = Classifier::new(&vs.root(), cfg.role);
    let mut opt = nn::Adam::default().build(&vs, cfg.lr)?;
    println!("classifier {}: {} parameters, {}", cfg.role.name(), nets::param_count(&vs), cfg.role.architecture());
    let mut seeds = seed_stream(seed, TAG_CLASSIFIER_DATA);
    let mut aug_rng = seed_stream(seed, TAG_AUGMENT);
    let start = Instant::now();
    let mut step = 0u64;
    let mut loss_acc = 0.0;
    while step < cfg.steps && start.elapsed().as_secs_f64() < cfg.minutes * 60.0 {
        // Cosine learning-rate decay over the planned steps.
        let t = step as f64 / cfg.steps as f64;
        opt.set_lr(cfg.lr * (0.05 + 0.95 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())));
        let batch: Vec<u64> = (0..cfg.batch).map(|_| seeds.gen()).collect();
        let (x, labels) = nets::render_batch(&batch);
        let x = augment(&x, &mut aug_rng);
        let loss = nets::group_cross_entropy(&clf.logits(&x, true), &labels);
        opt.backward_step(&loss);
        loss_acc += loss.double_value(&[]);
        step += 1;
        if step.is_multiple_of(100) {
            println!("step {step:>5}  {:>5.1} min  loss {:.4}", start.elapsed().as_secs_f64() / 60.0, loss_acc / 100.0);
            std::io::stdout().flush().ok();
            loss_acc = 0.0;
        }
    }
    let minutes = start.elapsed().as_secs_f64() / 60.0;
    vs.freeze();
    let accuracy = accuracy_on_renders(
        |x| Ok(clf.probabilities(x, false)),
        seed_stream(seed, TAG_CLASSIFIER_VALID),
        cfg.validation,
    )?;
    println!(
        "trained {step} steps in {minutes:.1} min; accuracy per group on {} fresh renders: {accuracy:.3?}",
        cfg.validation
    );
    if cfg.export {
        export_classifier(&clf, cfg, step, minutes, &accuracy)?;
    }
    Ok(ClassifierReport { steps: step, minutes, accuracy })
}

fn export_classifier(
    clf: &Classifier,
    cfg: &ClassifierConfig,
    steps: u64,
    minutes: f64,
    accuracy: &[f64],
) -> Result<()> {
    std::fs::create_dir_all(&cfg.out)?;
    let role = cfg.role.name();
    let pt = cfg.out.join(format!("classifier-{role}.pt"));
    let tmp = cfg.out.join(format!(".classifier-{role}.pt.tmp"));
    let example = Tensor::rand([2, 3, SIZE as i64, SIZE as i64], (Kind::Float, Device::Cpu));
    let mut closure = |inputs: &[Tensor]| vec![clf.probabilities(&inputs[0], false)];
    let m = CModule::create_by_tracing("Classifier", "forward", &[example], &mut closure)?;
    m.save(&tmp)?;
    let m = CModule::load(&tmp)?;
    let x = Tensor::rand([5, 3, SIZE as i64, SIZE as i64], (Kind::Float, Device::Cpu));
    let a = tch::no_grad(|| clf.probabilities(&x, false));
    let b = tch::no_grad(|| m.forward_ts(&[&x]))?;
    let diff = (a - b).abs().max().double_value(&[]);
    ensure!(diff < 1e-4, "TorchScript classifier differs from the Rust one by {diff}");
    std::fs::rename(&tmp, &pt)?;
    let groups = meta::schema_groups();
    let acc: serde_json::Map<String, serde_json::Value> = groups
        .iter()
        .zip(accuracy)
        .map(|(g, a)| (g.name.clone(), serde_json::json!((a * 1e4).round() / 1e4)))
        .collect();
    let meta = ClassifierMeta {
        format: CLASSIFIER_FORMAT.into(),
        name: format!("default-faces-{role}"),
        input: ImageSpec { channels: 3, height: SIZE, width: SIZE, range: [0.0, 1.0] },
        output: "probabilities".into(),
        groups,
        training: ClassifierTraining {
            role: role.into(),
            seed: cfg.seed,
            steps,
            minutes: (minutes * 10.0).round() / 10.0,
            architecture: cfg.role.architecture().into(),
            details: Some(serde_json::json!({
                "batch": cfg.batch, "lr": cfg.lr, "optimizer": "Adam, cosine decay",
                "augmentation": "contrast/brightness jitter, per-channel shift up to 0.04, 5x5 Gaussian blur (sigma 0.5-1.5) on 70%, shifts up to 2 px, pixel noise up to 0.07",
                "validation_accuracy": acc, "validation_renders": cfg.validation,
            })),
        },
    };
    meta::write_json(&cfg.out.join(format!("classifier-{role}.json")), &meta)?;
    println!("wrote {} and classifier-{role}.json", pt.display());
    Ok(())
}
