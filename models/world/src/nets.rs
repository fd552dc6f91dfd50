//! The networks: the generator (with its TorchScript twin), the spectrally normalised discriminator, and the two
//! classifier architectures; plus the tensor plumbing between renders and models.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CString};
use std::path::Path;

use anyhow::{bail, Result};
use tch::{nn, Device, Kind, Tensor};

use crate::render::{self, GROUP_OFFSETS, IMAGE_BYTES, NUM_CLASSES, SCHEMA, SIZE};

/// Latent dimension of the generator.
pub const LATENT_DIM: i64 = 64;
/// Channels of the generator's 4x4 seed map.
const G_BASE: i64 = 256;
/// Channel widths of the generator's upsampling stages (4 -> 8 -> 16 -> 32 -> 64).
const G_WIDTHS: [i64; 5] = [256, 128, 64, 32, 3];
/// Channel widths of the discriminator (64 -> 32 -> 16 -> 8 -> 4).
const D_WIDTHS: [i64; 5] = [3, 32, 64, 128, 256];
/// Name of the generator's first-layer weight (its latent projection), for SeFa.
pub const FIRST_LAYER: &str = "fc.weight";

// ---------------------------------------------------------------------------------------------------------------
// Tensors from renders

/// Renders of `seeds` as a float tensor N x 3 x 64 x 64 in [0, 1], plus the class index per group (N x 5, int64).
pub fn render_batch(seeds: &[u64]) -> (Tensor, Tensor) {
    let mut bytes = vec![0u8; seeds.len() * IMAGE_BYTES];
    let mut labels = Vec::with_capacity(seeds.len() * 5);
    let mut img = [0u8; IMAGE_BYTES];
    for (i, &s) in seeds.iter().enumerate() {
        let a = render::render_into(s, &mut img);
        bytes[i * IMAGE_BYTES..(i + 1) * IMAGE_BYTES].copy_from_slice(&img);
        labels.extend(a.classes().iter().map(|&c| c as i64));
    }
    let n = seeds.len() as i64;
    (bytes_to_unit(&bytes, n), Tensor::from_slice(&labels).view([n, 5]))
}

/// Raw HWC RGB bytes of n images -> N x 3 x 64 x 64 float in [0, 1].
pub fn bytes_to_unit(bytes: &[u8], n: i64) -> Tensor {
    let s = SIZE as i64;
    Tensor::from_slice(bytes).view([n, s, s, 3]).permute([0, 3, 1, 2]).to_kind(Kind::Float).contiguous() / 255.0
}

/// N x 3 x H x W float in [0, 1] -> one HWC RGB byte vector per image.
pub fn unit_to_bytes(images: &Tensor) -> Vec<Vec<u8>> {
    let n = images.size()[0];
    let hwc = (images.to_device(Device::Cpu).clamp(0.0, 1.0) * 255.0)
        .round()
        .to_kind(Kind::Uint8)
        .permute([0, 2, 3, 1])
        .contiguous();
    let flat: Vec<u8> = Vec::<u8>::try_from(hwc.view([-1])).expect("u8 tensor");
    let per = flat.len() / n.max(1) as usize;
    flat.chunks(per).map(|c| c.to_vec()).collect()
}

// ---------------------------------------------------------------------------------------------------------------
// Generator

/// How the generator's batch norms normalise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BnMode {
    /// Batch statistics; running statistics updated with momentum 0.1 (training).
    Train,
    /// Batch statistics; running statistics set to this batch's exactly (calibration on a large batch).
    Calibrate,
    /// Running statistics (what the exported module computes).
    Eval,
}

/// DCGAN-style generator: z (N x 64) -> fc -> 256 x 4 x 4 -> four (transposed conv 4x4 stride 2) stages -> tanh,
/// batch norm + ReLU between stages. Batch norm is used while training only: at export the running statistics are
/// calibrated on a large batch and folded into the preceding layer's weights, so the saved module is a plain
/// linear/transposed-conv/ReLU stack whose output for an image never depends on the rest of its batch.
pub struct Generator {
    fc: nn::Linear,
    ups: Vec<nn::ConvTranspose2D>,
    /// (weight, bias, running_mean, running_var) after fc and after each of the first three stages.
    bns: Vec<(Tensor, Tensor, Tensor, Tensor)>,
}

const BN_EPS: f64 = 1e-5;

impl Generator {
    pub fn new(p: &nn::Path) -> Generator {
        let fc = nn::linear(p / "fc", LATENT_DIM, G_BASE * 16, Default::default());
        let cfg = nn::ConvTransposeConfig { stride: 2, padding: 1, ..Default::default() };
        let ups = (0..4)
            .map(|i| nn::conv_transpose2d(p / format!("up{}", i + 1), G_WIDTHS[i], G_WIDTHS[i + 1], 4, cfg))
            .collect();
        let bns = (0..4)
            .map(|i| {
                let q = p / format!("bn{i}");
                let c = G_WIDTHS[i];
                (
                    q.var("weight", &[c], nn::Init::Const(1.0)),
                    q.var("bias", &[c], nn::Init::Const(0.0)),
                    q.zeros_no_train("running_mean", &[c]),
                    q.ones_no_train("running_var", &[c]),
                )
            })
            .collect();
        Generator { fc, ups, bns }
    }

    fn bn(&self, i: usize, x: &Tensor, mode: BnMode) -> Tensor {
        let (w, b, rm, rv) = &self.bns[i];
        let (training, momentum) = match mode {
            BnMode::Train => (true, 0.1),
            BnMode::Calibrate => (true, 1.0),
            BnMode::Eval => (false, 0.0),
        };
        x.batch_norm(Some(w), Some(b), Some(rm), Some(rv), training, momentum, BN_EPS, false)
    }

    /// z (N x 64) -> images N x 3 x 64 x 64 in [-1, 1].
    pub fn forward(&self, z: &Tensor, mode: BnMode) -> Tensor {
        let mut x = z.apply(&self.fc).view([-1, G_BASE, 4, 4]);
        x = self.bn(0, &x, mode).relu();
        for (i, up) in self.ups.iter().enumerate() {
            x = x.apply(up);
            if i + 1 < self.ups.len() {
                x = self.bn(i + 1, &x, mode).relu();
            }
        }
        x.tanh()
    }

    /// Sets the running statistics from one large batch of latents (exact, not a moving average).
    pub fn calibrate(&self, z: &Tensor) {
        tch::no_grad(|| {
            let _ = self.forward(z, BnMode::Calibrate);
        });
    }

    /// The eval-mode generator as plain layers: batch norms folded into fc and up1..up3. Names as in the VarStore
    /// (`fc.weight`, `fc.bias`, `up1.weight`, ...).
    pub fn folded_parameters(&self) -> Vec<(String, Tensor)> {
        tch::no_grad(|| {
            let scale_shift = |i: usize| {
                let (w, b, rm, rv) = &self.bns[i];
                let a = w / (rv + BN_EPS).sqrt();
                let c = b - rm * &a;
                (a, c)
            };
            let mut out = Vec::new();
            let (a, c) = scale_shift(0);
            let a16 = a.repeat_interleave_self_int(16, Some(0), None::<i64>);
            let c16 = c.repeat_interleave_self_int(16, Some(0), None::<i64>);
            let fb = self.fc.bs.as_ref().expect("fc bias");
            out.push(("fc.weight".to_string(), &self.fc.ws * a16.unsqueeze(1)));
            out.push(("fc.bias".to_string(), fb * &a16 + &c16));
            for (i, up) in self.ups.iter().enumerate() {
                let ub = up.bs.as_ref().expect("conv bias");
                let (w, b) = if i + 1 < self.ups.len() {
                    let (a, c) = scale_shift(i + 1);
                    (&up.ws * a.view([1, -1, 1, 1]), ub * &a + &c)
                } else {
                    (up.ws.shallow_clone(), ub.shallow_clone())
                };
                out.push((format!("up{}.weight", i + 1), w.contiguous()));
                out.push((format!("up{}.bias", i + 1), b.contiguous()));
            }
            out
        })
    }
}

/// TorchScript source of the folded generator ([`Generator::forward`] in eval mode, batch norms folded).
pub fn generator_script() -> String {
    let mut s = String::from("def forward(self, z):\n");
    s += "    x = torch.linear(z, self.fc.weight, self.fc.bias)\n";
    s += &format!("    x = torch.relu(x.view([-1, {G_BASE}, 4, 4]))\n");
    for i in 1..=4 {
        s += &format!(
            "    x = torch.conv_transpose2d(x, self.up{i}.weight, self.up{i}.bias, [2, 2], [1, 1], [0, 0], 1, [1, 1])\n"
        );
        if i < 4 {
            s += "    x = torch.relu(x)\n";
        }
    }
    s += "    return torch.tanh(x)\n";
    s
}

extern "C" {
    fn subspace_world_script_module(
        class_name: *const c_char,
        source: *const c_char,
        n: c_int,
        names: *const *const c_char,
        params: *const *mut c_void,
        path: *const c_char,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
}

/// Saves a TorchScript module with `params` registered under their names (one dot = one submodule) and `source`
/// compiled as its methods. The parameters are copied and do not require grad.
pub fn save_script_module(class_name: &str, source: &str, params: &[(String, Tensor)], path: &Path) -> Result<()> {
    let class = CString::new(class_name)?;
    let src = CString::new(source)?;
    let path_c = CString::new(path.to_string_lossy().as_bytes())?;
    let names: Vec<CString> = params.iter().map(|(n, _)| CString::new(n.as_str())).collect::<Result<_, _>>()?;
    let name_ptrs: Vec<*const c_char> = names.iter().map(|n| n.as_ptr()).collect();
    let mut tensors: Vec<Tensor> =
        params.iter().map(|(_, t)| t.detach().to_device(Device::Cpu).to_kind(Kind::Float)).collect();
    let tensor_ptrs: Vec<*mut c_void> = tensors.iter_mut().map(|t| t.as_mut_ptr() as *mut c_void).collect();
    let mut err = vec![0 as c_char; 4096];
    // SAFETY: every pointer points into a buffer alive until the call returns (names, tensors, paths, `err`, whose
    // length is passed), and the C++ side only reads them and writes at most `err.len()` bytes into `err`.
    let rc = unsafe {
        subspace_world_script_module(
            class.as_ptr(),
            src.as_ptr(),
            params.len() as c_int,
            name_ptrs.as_ptr(),
            tensor_ptrs.as_ptr(),
            path_c.as_ptr(),
            err.as_mut_ptr(),
            err.len(),
        )
    };
    drop(tensors);
    if rc != 0 {
        // SAFETY: the C++ side writes a NUL-terminated message into `err` (zeroed, so always terminated).
        let msg = unsafe { std::ffi::CStr::from_ptr(err.as_ptr()) }.to_string_lossy().into_owned();
        bail!("building TorchScript module {class_name}: {msg}");
    }
    Ok(())
}

/// Saves the generator as TorchScript (batch norms folded; see [`Generator::folded_parameters`]). Calibrate first.
pub fn save_generator(g: &Generator, path: &Path) -> Result<()> {
    save_script_module("Generator", &generator_script(), &g.folded_parameters(), path)
}

// ---------------------------------------------------------------------------------------------------------------
// Discriminator

/// Spectrally normalised conv discriminator (power iteration kept per layer), leaky ReLU, a minibatch-standard-
/// deviation feature at 4x4 (over consecutive groups of 4 samples, so it never mixes the real and the fake halves of
/// a batch; batches must be multiples of 4), linear head.
pub struct Discriminator {
    /// Samples judged together (PacGAN packing: `pack` consecutive images stacked along channels).
    pack: i64,
    convs: Vec<(Tensor, Tensor)>,
    head: (Tensor, Tensor),
    us: Vec<Tensor>,
}

fn l2_normalize(t: &Tensor) -> Tensor {
    t / (t.norm() + 1e-12)
}

/// W / sigma(W), sigma estimated by one power iteration step from the persistent `u` (updated in place).
fn spectral_norm(w: &Tensor, u: &mut Tensor, update: bool) -> Tensor {
    let out = w.size()[0];
    let wm = w.view([out, -1]);
    let (u2, v) = tch::no_grad(|| {
        let v = l2_normalize(&wm.detach().tr().mv(u));
        let u2 = l2_normalize(&wm.detach().mv(&v));
        (u2, v)
    });
    if update {
        tch::no_grad(|| {
            u.copy_(&u2);
        });
    }
    let sigma = u2.dot(&wm.mv(&v));
    w / sigma
}

/// Group size of the discriminator's minibatch-standard-deviation feature.
pub const MBSTD_GROUP: i64 = 4;

/// Appends one channel: the mean over features of the standard deviation across each group of `g` consecutive
/// samples (ProGAN's minibatch stddev), so the discriminator can see a lack of variety.
fn minibatch_std(h: &Tensor, g: i64) -> Tensor {
    let s = h.size();
    let (b, c, hh, ww) = (s[0], s[1], s[2], s[3]);
    let g = g.min(b);
    let y = h.reshape([b / g, g, c, hh, ww]);
    let sd = (y.var_dim([1i64].as_slice(), false, false) + 1e-8).sqrt(); // b/g x c x h x w
    let f = sd.mean_dim([1i64, 2, 3].as_slice(), false, Kind::Float); // b/g
    let f = f.repeat_interleave_self_int(g, Some(0), None::<i64>).view([b, 1, 1, 1]).expand([b, 1, hh, ww], false);
    Tensor::cat(&[h, &f], 1)
}

impl Discriminator {
    /// `pack` consecutive images are judged together (1 = plain discriminator); batches must be multiples of it.
    pub fn new(p: &nn::Path, pack: i64) -> Discriminator {
        let dev = p.device();
        let mut convs = Vec::new();
        let mut us = Vec::new();
        for i in 0..4 {
            let (cin, cout) = (if i == 0 { D_WIDTHS[0] * pack } else { D_WIDTHS[i] }, D_WIDTHS[i + 1]);
            let q = p / format!("conv{}", i + 1);
            let w = q.var("weight", &[cout, cin, 4, 4], nn::Init::Randn { mean: 0.0, stdev: 0.02 });
            let b = q.var("bias", &[cout], nn::Init::Const(0.0));
            convs.push((w, b));
            us.push(l2_normalize(&Tensor::randn([cout], (Kind::Float, dev))));
        }
        let q = p / "head";
        let hw = q.var("weight", &[1, (D_WIDTHS[4] + 1) * 16], nn::Init::Randn { mean: 0.0, stdev: 0.02 });
        let hb = q.var("bias", &[1], nn::Init::Const(0.0));
        us.push(l2_normalize(&Tensor::randn([1], (Kind::Float, dev))));
        Discriminator { pack, convs, head: (hw, hb), us }
    }

    /// Images N x 3 x 64 x 64 in [-1, 1] -> scores N / pack (one per pack of consecutive images).
    pub fn forward(&mut self, x: &Tensor) -> Tensor {
        let s = x.size();
        let mut h = x.reshape([-1, s[1] * self.pack, s[2], s[3]]);
        for (i, (w, b)) in self.convs.iter().enumerate() {
            let wn = spectral_norm(w, &mut self.us[i], true);
            let c = h.conv2d(&wn, Some(b), [2, 2], [1, 1], [1, 1], 1);
            h = c.maximum(&(&c * 0.2)); // leaky ReLU, slope 0.2
        }
        let h = minibatch_std(&h, MBSTD_GROUP).reshape([-1, (D_WIDTHS[4] + 1) * 16]);
        let hw = spectral_norm(&self.head.0, &mut self.us[4], true);
        h.linear(&hw, Some(&self.head.1)).view([-1])
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Classifiers

/// Which of the two independent classifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Used to fit the subspaces.
    Fit,
    /// Used only to score edits: another architecture, another seed.
    Eval,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Fit => "fit",
            Role::Eval => "eval",
        }
    }
    pub fn architecture(self) -> &'static str {
        match self {
            Role::Fit => {
                "conv4x4/2+batchnorm+relu, 3x[conv3x3+batchnorm+relu+avgpool2] (32,48,96,128) -> linear 2048->13"
            }
            Role::Eval => "conv5x5/2 + 3x[conv3x3/2] leaky-relu (24,48,96,128) -> linear 2048->128 -> linear 128->13",
        }
    }
}

/// A classifier: images N x 3 x 64 x 64 in [0, 1] -> logits N x 13.
pub enum Classifier {
    Fit { convs: Vec<nn::Conv2D>, bns: Vec<nn::BatchNorm>, head: nn::Linear },
    Eval { convs: Vec<nn::Conv2D>, fc: nn::Linear, head: nn::Linear },
}

impl Classifier {
    pub fn new(p: &nn::Path, role: Role) -> Classifier {
        match role {
            Role::Fit => {
                // The first layer halves the resolution: full-resolution layers made labelling 3x slower than
                // rendering, and labelling runs on every sampled code and in GMMFit's render-relabel term.
                let widths = [3, 32, 48, 96, 128];
                let convs = (0..4)
                    .map(|i| {
                        let (k, stride) = if i == 0 { (4, 2) } else { (3, 1) };
                        let cfg = nn::ConvConfig { stride, padding: 1, ..Default::default() };
                        nn::conv2d(p / format!("conv{}", i + 1), widths[i], widths[i + 1], k, cfg)
                    })
                    .collect();
                let bns = (0..4)
                    .map(|i| nn::batch_norm2d(p / format!("bn{}", i + 1), widths[i + 1], Default::default()))
                    .collect();
                let head = nn::linear(p / "head", 128 * 16, NUM_CLASSES as i64, Default::default());
                Classifier::Fit { convs, bns, head }
            }
            Role::Eval => {
                let widths = [3, 24, 48, 96, 128];
                let convs = (0..4)
                    .map(|i| {
                        let (k, pad) = if i == 0 { (5, 2) } else { (3, 1) };
                        let cfg = nn::ConvConfig { stride: 2, padding: pad, ..Default::default() };
                        nn::conv2d(p / format!("conv{}", i + 1), widths[i], widths[i + 1], k, cfg)
                    })
                    .collect();
                let fc = nn::linear(p / "fc", 128 * 16, 128, Default::default());
                let head = nn::linear(p / "head", 128, NUM_CLASSES as i64, Default::default());
                Classifier::Eval { convs, fc, head }
            }
        }
    }

    pub fn logits(&self, x: &Tensor, train: bool) -> Tensor {
        match self {
            Classifier::Fit { convs, bns, head } => {
                let mut h = x.shallow_clone();
                for (i, (c, bn)) in convs.iter().zip(bns).enumerate() {
                    h = h.apply(c).apply_t(bn, train).relu();
                    if i > 0 {
                        h = h.avg_pool2d_default(2);
                    }
                }
                h.reshape([-1, 128 * 16]).apply(head)
            }
            Classifier::Eval { convs, fc, head } => {
                let mut h = x.shallow_clone();
                for c in convs {
                    h = h.apply(c).leaky_relu();
                }
                h.reshape([-1, 128 * 16]).apply(fc).leaky_relu().dropout(0.2, train).apply(head)
            }
        }
    }

    /// Per-group softmax of the logits, concatenated in schema order: N x 13 probabilities.
    pub fn probabilities(&self, x: &Tensor, train: bool) -> Tensor {
        group_softmax(&self.logits(x, train))
    }
}

/// Softmax within each attribute group of an N x 13 logit (or score) tensor.
pub fn group_softmax(logits: &Tensor) -> Tensor {
    let parts: Vec<Tensor> = SCHEMA
        .iter()
        .enumerate()
        .map(|(g, (_, classes))| {
            logits.narrow(1, GROUP_OFFSETS[g] as i64, classes.len() as i64).softmax(1, Kind::Float)
        })
        .collect();
    Tensor::cat(&parts, 1)
}

/// Sum over groups of the cross-entropy of the group's logits against its class index (labels N x 5).
pub fn group_cross_entropy(logits: &Tensor, labels: &Tensor) -> Tensor {
    let mut total = Tensor::from(0.0f32).to_device(logits.device());
    for (g, (_, classes)) in SCHEMA.iter().enumerate() {
        let l = logits.narrow(1, GROUP_OFFSETS[g] as i64, classes.len() as i64);
        total += l.cross_entropy_for_logits(&labels.select(1, g as i64));
    }
    total
}

/// Argmax class per group of N x 13 probabilities -> N x 5 int64.
pub fn group_argmax(probs: &Tensor) -> Tensor {
    let parts: Vec<Tensor> = SCHEMA
        .iter()
        .enumerate()
        .map(|(g, (_, classes))| probs.narrow(1, GROUP_OFFSETS[g] as i64, classes.len() as i64).argmax(1, true))
        .collect();
    Tensor::cat(&parts, 1)
}

/// Max class probability per group: N x 5.
pub fn group_max(probs: &Tensor) -> Tensor {
    let parts: Vec<Tensor> = SCHEMA
        .iter()
        .enumerate()
        .map(|(g, (_, classes))| probs.narrow(1, GROUP_OFFSETS[g] as i64, classes.len() as i64).amax([1i64], true))
        .collect();
    Tensor::cat(&parts, 1)
}

/// Sorted copy of a VarStore's variables.
pub fn sorted_variables(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Total number of scalar parameters in a VarStore.
pub fn param_count(vs: &nn::VarStore) -> i64 {
    vs.trainable_variables().iter().map(|t| t.numel() as i64).sum()
}

/// Copies the variables of `src` into `dst` (same structure).
pub fn copy_vars(dst: &nn::VarStore, src: &nn::VarStore) {
    let s: HashMap<String, Tensor> = src.variables();
    tch::no_grad(|| {
        for (name, mut t) in dst.variables() {
            t.copy_(&s[&name]);
        }
    });
}

/// dst <- decay * dst + (1 - decay) * src, for every variable.
pub fn ema_update(dst: &nn::VarStore, src: &nn::VarStore, decay: f64) {
    let s: HashMap<String, Tensor> = src.variables();
    tch::no_grad(|| {
        for (name, mut t) in dst.variables() {
            let upd = &t * decay + &s[&name] * (1.0 - decay);
            t.copy_(&upd);
        }
    });
}
