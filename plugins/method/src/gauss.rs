//! The math of the method, free of node code: a group of Gaussians (one per semantic class) with covariance
//! Sigma_k = diag(sd_k^2) + U_k U_k^T, their normalized likelihoods, reparameterised sampling, initialisation from
//! label-weighted moments, and the ROC AUC used to judge a fit.

use subspace_sdk::declare::{Choice, ParamValue};
use subspace_sdk::tch::{self, Kind, Tensor};
use subspace_sdk::{Bundle, LabelSchema, NodeError, Value};

subspace_sdk::choice! {
    /// How a likelihood is brought into [0, 1] so that it can be compared with a label.
    pub enum Normalization {
        /// The posterior of class k among its attribute group's components: w_k N_k(z) / sum_j w_j N_j(z).
        /// Terms shared by the classes (the chi-square bulk of the other dimensions) cancel, so it stays sharp and
        /// trainable at any latent dimension. Default.
        Group = "group",
        /// The paper-faithful reading: density over peak density, with the Mahalanobis distance scaled by 1/d so it
        /// does not vanish at large d: exp(-m / (2 d)).
        Peak = "peak",
    }
}

/// K Gaussians in a D-dimensional latent space, with mixture log-weights and the label schema they stand for.
pub struct Gaussians {
    /// K x D means.
    pub mu: Tensor,
    /// K x D log standard deviations of the diagonal part.
    pub log_sd: Tensor,
    /// K x D x R low-rank factors (R may be 0).
    pub u: Tensor,
    /// K unnormalised log mixture weights.
    pub log_w: Tensor,
    /// The classes the components stand for, one per component.
    pub schema: LabelSchema,
    /// How likelihoods are compared with labels.
    pub norm: Normalization,
}

fn einsum(eq: &str, ts: &[&Tensor]) -> Tensor {
    Tensor::einsum(eq, ts, None::<&[i64]>)
}

/// Label-weighted means (K x D) and covariances (K x D x D, with a small ridge), returned in double precision;
/// refuses labels that disagree with the codes or the schema, or leave a class without samples.
pub fn weighted_moments(z: &Tensor, labels: &Tensor, schema: &LabelSchema) -> Result<(Tensor, Tensor), NodeError> {
    let (n, d) = (z.size()[0], z.size()[1]);
    let k = labels.size()[1];
    if labels.size()[0] != n {
        return Err(NodeError::input("labels", format!("{} label rows for {n} codes", labels.size()[0])));
    }
    if schema.len() as i64 != k {
        return Err(NodeError::input("labels", format!("labels have {k} columns, their schema {}", schema.len())));
    }
    let _guard = tch::no_grad_guard();
    check_class_mass(labels, schema, n)?;
    let mass = labels.to_kind(Kind::Double).sum_dim_intlist([0i64].as_slice(), false, Kind::Double); // K
                                                                                                     // Second moments of all classes as one matrix product per chunk of codes, (w_k z)^T z for every k at once,
                                                                                                     // in single precision about the overall mean (codes near the origin lose nothing), summed in double.
    let centre = z.to_kind(Kind::Double).mean_dim([0i64].as_slice(), true, Kind::Double);
    let zc = (z.to_kind(Kind::Double) - &centre).to_kind(Kind::Float);
    let wf = labels.to_kind(Kind::Float);
    let chunk = (1i64 << 24) / (k * d).max(1); // N x K x D floats per chunk: 64 MiB
    let mut second = Tensor::zeros([k * d, d], (Kind::Double, z.device()));
    let mut first = Tensor::zeros([k, d], (Kind::Double, z.device()));
    for s in (0..n).step_by(chunk.max(1) as usize) {
        let len = chunk.max(1).min(n - s);
        let (zb, wb) = (zc.narrow(0, s, len), wf.narrow(0, s, len));
        let weighted = (wb.unsqueeze(2) * zb.unsqueeze(1)).view([len, k * d]); // N x (K D)
        second += weighted.transpose(0, 1).matmul(&zb).to_kind(Kind::Double);
        first += wb.transpose(0, 1).matmul(&zb).to_kind(Kind::Double);
    }
    let mean_c = first / mass.unsqueeze(1); // K x D, about the centre
    let second = second.view([k, d, d]) / mass.view([k, 1, 1]);
    let cov = second - mean_c.unsqueeze(2) * mean_c.unsqueeze(1);
    let cov = (&cov + cov.transpose(1, 2)) * 0.5 + Tensor::eye(d, (Kind::Double, z.device())) * 1e-4;
    Ok(((mean_c + centre), cov))
}

/// The least label mass (sum of a class's probabilities over the codes fitted) a class needs: its moments are
/// weighted means, undefined below one code's worth.
pub const MIN_CLASS_MASS: f64 = 1.0;

/// How much of the labels a class holds.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassMass {
    /// `group.class`.
    pub name: String,
    /// Sum of its probabilities over the codes.
    pub mass: f64,
    /// Codes whose most likely class within the group is this one.
    pub argmax: i64,
}

/// The label mass and argmax count of every class of `labels` (N x K, columns as in `schema`).
pub fn class_masses(labels: &Tensor, schema: &LabelSchema) -> Vec<ClassMass> {
    let _guard = tch::no_grad_guard();
    let labels = labels.to_device(tch::Device::Cpu).to_kind(Kind::Double);
    let mass: Vec<f64> =
        Vec::try_from(labels.sum_dim_intlist([0i64].as_slice(), false, Kind::Double)).unwrap_or_default();
    let mut argmax = vec![0i64; schema.len()];
    for gi in 0..schema.groups.len() {
        let r = schema.group_range(gi);
        let top = labels.narrow(1, r.start as i64, r.len() as i64).argmax(1, false);
        let counts: Vec<i64> = Vec::try_from(top.bincount::<Tensor>(None, r.len() as i64)).unwrap_or_default();
        for (c, n) in counts.into_iter().enumerate().take(r.len()) {
            argmax[r.start + c] = n;
        }
    }
    let names = schema.class_names();
    names.into_iter().enumerate().map(|(k, name)| ClassMass { name, mass: mass[k], argmax: argmax[k] }).collect()
}

/// Refuses labels where a class holds less than [`MIN_CLASS_MASS`] over the codes fitted (`labels`, the fitting
/// part of `total` codes), saying per class whether it is never predicted (no code has it as its group's most
/// likely class: more codes will not help) or only rare (about how many more codes would reach the mass).
pub fn check_class_mass(labels: &Tensor, schema: &LabelSchema, total: i64) -> Result<(), NodeError> {
    let fitted = labels.size()[0];
    let masses = class_masses(labels, schema);
    let short: Vec<&ClassMass> = masses.iter().filter(|m| !(m.mass >= MIN_CLASS_MASS)).collect();
    if short.is_empty() {
        return Ok(());
    }
    let of = if total > fitted { format!("the {fitted} codes fitted (of {total})") } else { format!("{fitted} codes") };
    let mut never = Vec::new();
    let mut rare = Vec::new();
    for m in short {
        let seen = format!("{} (label mass {:.3}, most likely class of {} codes)", m.name, m.mass, m.argmax);
        // Never the most likely class, and under 1% of the codes' label mass: a few more codes would not show it.
        // (A handful of codes can miss a class that is merely rare.)
        if m.argmax == 0 && m.mass < 0.01 * fitted as f64 {
            never.push(seen);
        } else {
            // The mass grows with the number of codes: about total / mass codes reach the minimum.
            let needed = (total.max(fitted) as f64 * MIN_CLASS_MASS / m.mass.max(f64::MIN_POSITIVE)).ceil();
            let more = (needed - total.max(fitted) as f64).max(1.0);
            rare.push(format!("{seen}: sample about {more:.0} more codes"));
        }
    }
    let mut parts = Vec::new();
    if !never.is_empty() {
        parts.push(format!(
            "the classifier never predicts {} over {of}: more codes will not help; check the classifier and its \
             sidecar (class order, output kind), or drop the class",
            never.join(", ")
        ));
    }
    if !rare.is_empty() {
        parts.push(format!(
            "too rare over {of} to fit (a class needs a label mass of at least {MIN_CLASS_MASS}): {}",
            rare.join("; ")
        ));
    }
    Err(NodeError::input("labels", parts.join("; ")))
}

/// Log posteriors within each attribute group from Mahalanobis distances (N x K), covariance log-determinants (K)
/// and log weights (K); the Gaussian's normalising constant is shared by the classes and cancels.
pub fn group_log_posteriors(quad: &Tensor, logdet: &Tensor, log_w: &Tensor, schema: &LabelSchema) -> Tensor {
    let lp = (quad + logdet.unsqueeze(0)) * -0.5 + log_w.unsqueeze(0);
    // Each group's log-sum-exp at once: its columns gathered into a G x C block padded with -inf (a few
    // operations whatever the number of groups; this runs at every fitting step).
    let sizes: Vec<usize> = schema.groups.iter().map(|g| g.classes.len()).collect();
    let (g, c) = (sizes.len() as i64, sizes.iter().copied().max().unwrap_or(1) as i64);
    let (mut cols, mut pad, mut group_of) = (Vec::new(), Vec::new(), Vec::new());
    let mut start = 0i64;
    for (gi, &n) in sizes.iter().enumerate() {
        for j in 0..c {
            cols.push(start + j.min(n as i64 - 1));
            pad.push(j >= n as i64);
        }
        group_of.extend(std::iter::repeat_n(gi as i64, n));
        start += n as i64;
    }
    let device = lp.device();
    let cols = Tensor::from_slice(&cols).to_device(device);
    let pad = Tensor::from_slice(&pad).to_device(device).view([1, g, c]);
    let block = lp.index_select(1, &cols).view([-1, g, c]).masked_fill(&pad, f64::NEG_INFINITY);
    let lse = block.logsumexp([2i64].as_slice(), false); // N x G
    lp - lse.index_select(1, &Tensor::from_slice(&group_of).to_device(device))
}

/// Normalized likelihoods N x K in [0, 1] from Mahalanobis distances and log-determinants.
pub fn normalize(
    quad: &Tensor,
    logdet: &Tensor,
    log_w: &Tensor,
    schema: &LabelSchema,
    norm: Normalization,
    d: i64,
) -> Tensor {
    match norm {
        Normalization::Peak => (quad * (-0.5 / d as f64)).exp(),
        Normalization::Group => group_log_posteriors(quad, logdet, log_w, schema).exp(),
    }
}

impl Gaussians {
    /// Number of components K.
    pub fn k(&self) -> i64 {
        self.mu.size()[0]
    }
    /// Latent dimension D.
    pub fn dim(&self) -> i64 {
        self.mu.size()[1]
    }
    /// Rank R of the low-rank factors.
    pub fn rank(&self) -> i64 {
        self.u.size()[2]
    }

    /// Initialises each class's Gaussian from the label-weighted mean and covariance of the codes. `rank` 0 gives
    /// a diagonal covariance, `rank` >= D a full one; in between the top `rank` principal directions plus an
    /// isotropic residual (probabilistic PCA).
    pub fn init(
        z: &Tensor,
        labels: &Tensor,
        schema: LabelSchema,
        rank: i64,
        norm: Normalization,
    ) -> Result<Self, NodeError> {
        let d = z.size()[1];
        let k = labels.size()[1];
        let rank = rank.clamp(0, d);
        let (mu, covs) = weighted_moments(z, labels, &schema)?;
        let mut mus = Vec::new();
        let mut log_sds = Vec::new();
        let mut us = Vec::new();
        for c in 0..k {
            let cov = covs.get(c);
            let (u, var) = if rank == 0 {
                (Tensor::zeros([d, 0], (Kind::Double, z.device())), cov.diagonal(0, 0, 1))
            } else {
                let (evals, evecs) = cov.linalg_eigh("L"); // ascending
                let top = evals.narrow(0, d - rank, rank);
                let resid = if rank < d {
                    evals.narrow(0, 0, d - rank).mean(Kind::Double)
                } else {
                    evals.mean(Kind::Double) * 0.05
                };
                let u = evecs.narrow(1, d - rank, rank) * (top - &resid).clamp_min(0.0).sqrt().unsqueeze(0);
                (u, resid.expand([d], false).contiguous())
            };
            mus.push(mu.get(c));
            log_sds.push(var.clamp_min(1e-4).log() * 0.5);
            us.push(u);
        }
        // The isotropic/diagonal residual is shared by the classes of a group: estimated per class, its noise
        // alone separates classes in high dimension (sum over d of x^2 (1/s_k^2 - 1/s_j^2)).
        let log_sd = Tensor::stack(&log_sds, 0);
        let tied: Vec<Tensor> = (0..schema.groups.len())
            .map(|g| {
                let r = schema.group_range(g);
                let mean =
                    log_sd.narrow(0, r.start as i64, r.len() as i64).mean_dim([0i64].as_slice(), true, Kind::Double);
                mean.expand([r.len() as i64, d], false)
            })
            .collect();
        let log_sd = Tensor::cat(&tied, 0);
        Ok(Gaussians {
            mu: Tensor::stack(&mus, 0).to_kind(Kind::Float),
            log_sd: log_sd.to_kind(Kind::Float),
            u: Tensor::stack(&us, 0).to_kind(Kind::Float),
            log_w: Tensor::zeros([k], (Kind::Float, z.device())),
            schema,
            norm,
        })
    }

    /// Mahalanobis distances N x K and log-determinants K, by the Woodbury identity (cost N K D R).
    pub fn mahalanobis(&self, z: &Tensor) -> (Tensor, Tensor) {
        let x = z.unsqueeze(1) - self.mu.unsqueeze(0); // N x K x D
        let inv_var = (&self.log_sd * -2.0).exp(); // K x D
        let y = &x * inv_var.unsqueeze(0);
        let mut quad = (&x * &y).sum_dim_intlist([2i64].as_slice(), false, Kind::Float);
        let mut logdet = self.log_sd.sum_dim_intlist([1i64].as_slice(), false, Kind::Float) * 2.0;
        let r = self.rank();
        if r > 0 {
            let m =
                einsum("kdr,kd,kds->krs", &[&self.u, &inv_var, &self.u]) + Tensor::eye(r, (Kind::Float, z.device()));
            let l = m.linalg_cholesky(false);
            let t = einsum("nkd,kdr->nkr", &[&y, &self.u]);
            let m_inv = l.cholesky_inverse(false);
            quad -= einsum("nkr,krs,nks->nk", &[&t, &m_inv, &t]);
            logdet += l.diagonal(0, 1, 2).log().sum_dim_intlist([1i64].as_slice(), false, Kind::Float) * 2.0;
        }
        (quad, logdet)
    }

    /// log N(z; mu_k, Sigma_k), N x K.
    pub fn log_density(&self, z: &Tensor) -> Tensor {
        let (quad, logdet) = self.mahalanobis(z);
        let d = self.dim() as f64;
        (quad + logdet.unsqueeze(0) + d * (2.0 * std::f64::consts::PI).ln()) * -0.5
    }

    /// Normalized likelihoods N x K in [0, 1].
    pub fn normalized(&self, z: &Tensor) -> Tensor {
        let (quad, logdet) = self.mahalanobis(z);
        normalize(&quad, &logdet, &self.log_w, &self.schema, self.norm, self.dim())
    }

    /// Log posterior of every class within its group (N x K), whatever the normalization.
    pub fn log_group_posteriors(&self, z: &Tensor) -> Tensor {
        let (quad, logdet) = self.mahalanobis(z);
        group_log_posteriors(&quad, &logdet, &self.log_w, &self.schema)
    }

    /// Reparameterised samples: row i from component `comp[i]`, z = mu + sd * e1 + U e2 (differentiable in the
    /// parameters). `e1` is n x D, `e2` n x R standard normal noise.
    pub fn sample_with(&self, comp: &Tensor, e1: &Tensor, e2: &Tensor) -> Tensor {
        let mu = self.mu.index_select(0, comp);
        let sd = self.log_sd.index_select(0, comp).exp();
        let mut z = mu + sd * e1;
        if self.rank() > 0 {
            let u = self.u.index_select(0, comp); // n x D x R
            z += u.matmul(&e2.unsqueeze(2)).squeeze_dim(2);
        }
        z
    }

    /// Full covariance of component `k` (D x D).
    pub fn covariance(&self, k: i64) -> Tensor {
        let u = self.u.get(k);
        (self.log_sd.get(k) * 2.0).exp().diag_embed(0, 0, 1) + u.matmul(&u.transpose(0, 1))
    }

    /// Detached copies (for saving, or after fitting).
    pub fn detach(&self) -> Gaussians {
        Gaussians {
            mu: self.mu.detach().copy(),
            log_sd: self.log_sd.detach().copy(),
            u: self.u.detach().copy(),
            log_w: self.log_w.detach().copy(),
            schema: self.schema.clone(),
            norm: self.norm,
        }
    }

    /// The same Gaussians on `device`.
    pub fn to_device(&self, device: tch::Device) -> Gaussians {
        Gaussians {
            mu: self.mu.to_device(device),
            log_sd: self.log_sd.to_device(device),
            u: self.u.to_device(device),
            log_w: self.log_w.to_device(device),
            schema: self.schema.clone(),
            norm: self.norm,
        }
    }

    /// As a bundle of kind `kind` (gaussians or mixture) with `extra` merged into its metadata.
    pub fn to_bundle(&self, kind: &str, extra: serde_json::Value) -> Bundle {
        let mut meta = serde_json::json!({
            "format": "subspace.fit/1",
            "kind": kind,
            "classes": self.schema.class_names(),
            "schema": self.schema,
            "normalization": self.norm.name(),
            "latent_dim": self.dim(),
            "rank": self.rank(),
        });
        if let (Some(m), Some(e)) = (meta.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                m.insert(k.clone(), v.clone());
            }
        }
        let d = self.detach();
        Bundle::new(kind, &meta).with("mu", d.mu).with("log_sd", d.log_sd).with("u", d.u).with("log_w", d.log_w)
    }

    /// The Gaussians of bundle `b` arriving on input `port`, checked (see [`Gaussians::from_bundle_checked`]).
    pub fn from_bundle(b: &Bundle, port: &str) -> Result<Gaussians, NodeError> {
        Self::from_bundle_checked(b).map_err(|m| NodeError::input(port, format!("{} bundle: {m}", b.kind)))
    }

    /// The Gaussians of bundle `b`, refused unless every tensor is there, floating-point and finite, their shapes
    /// agree with each other, with the label schema and with the metadata's `latent_dim` and `rank` when given.
    /// A loaded file can hold anything; refused here, it cannot fail later in another node. Messages name the
    /// tensor.
    pub fn from_bundle_checked(b: &Bundle) -> Result<Gaussians, String> {
        let meta = b.meta_json();
        let get = |name: &str| -> Result<Tensor, String> {
            let t = b.get(name).ok_or_else(|| format!("no tensor '{name}'"))?;
            if !t.is_floating_point() {
                return Err(format!("tensor '{name}' has dtype {:?}; a fit holds floating-point tensors", t.kind()));
            }
            Ok(t)
        };
        let schema: LabelSchema =
            serde_json::from_value(meta["schema"].clone()).map_err(|e| format!("no valid label schema: {e}"))?;
        let norm = meta["normalization"].as_str().unwrap_or("group");
        let norm = Normalization::from_param("normalization", &Value::Text(norm.into()))
            .map_err(|e| format!("normalization {}", e.message))?;
        let g = Gaussians { mu: get("mu")?, log_sd: get("log_sd")?, u: get("u")?, log_w: get("log_w")?, schema, norm };
        if g.mu.dim() != 2 || g.mu.size()[0] < 1 || g.mu.size()[1] < 1 {
            return Err(format!("tensor 'mu' must be K x D with K, D >= 1, found {:?}", g.mu.size()));
        }
        let (k, d) = (g.mu.size()[0], g.mu.size()[1]);
        let agree = g.log_sd.size() == [k, d] && g.u.dim() == 3 && g.u.size()[..2] == [k, d] && g.log_w.size() == [k];
        if !agree || g.schema.len() as i64 != k {
            let (s, u, w, c) = (g.log_sd.size(), g.u.size(), g.log_w.size(), g.schema.len());
            return Err(format!(
                "tensors disagree: mu {:?}, log_sd {s:?}, u {u:?}, log_w {w:?}, {c} classes in the schema",
                g.mu.size()
            ));
        }
        for (key, found) in [("latent_dim", d), ("rank", g.u.size()[2])] {
            if let Some(said) = meta.get(key).and_then(|v| v.as_i64()) {
                if said != found {
                    let (mu, u) = (g.mu.size(), g.u.size());
                    return Err(format!("metadata gives {key} {said}, the tensors {found} (mu {mu:?}, u {u:?})"));
                }
            }
        }
        // Every value finite: NaN or inf means, an infinite log_sd (zero or infinite spread) or a -inf log weight
        // (a component that can never win) break the inverses and posteriors downstream.
        for (name, t) in [("mu", &g.mu), ("log_sd", &g.log_sd), ("u", &g.u), ("log_w", &g.log_w)] {
            let bad = t.numel() as i64 - t.isfinite().sum(Kind::Int64).int64_value(&[]);
            if bad > 0 {
                return Err(format!("tensor '{name}' has {bad} value(s) that are NaN or infinite"));
            }
        }
        // One dtype for the math (fits are float32; a file may hold float64 or half).
        let f = |t: &Tensor| t.to_kind(Kind::Float);
        Ok(Gaussians { mu: f(&g.mu), log_sd: f(&g.log_sd), u: f(&g.u), log_w: f(&g.log_w), ..g })
    }
}

pub use subspace_sdk::stats::roc_auc;

/// Per-class AUC of the normalized likelihoods against hard labels (argmax within each group).
pub fn class_aucs(g: &Gaussians, z: &Tensor, labels: &Tensor) -> Vec<Option<f64>> {
    let scores = tch::no_grad(|| g.normalized(z));
    class_aucs_of(&scores, labels, &g.schema)
}

/// Per-class AUC of `scores` (N x K, higher = more likely the class) against hard labels (argmax within each
/// group of `labels`).
pub fn class_aucs_of(scores: &Tensor, labels: &Tensor, schema: &LabelSchema) -> Vec<Option<f64>> {
    let scores = scores.to_kind(Kind::Double).to_device(tch::Device::Cpu);
    let labels = labels.to_device(tch::Device::Cpu);
    let mut out = Vec::new();
    for (gi, group) in schema.groups.iter().enumerate() {
        let r = schema.group_range(gi);
        let hard = labels.narrow(1, r.start as i64, r.len() as i64).argmax(1, false);
        let hard: Vec<i64> = Vec::try_from(&hard).unwrap_or_default();
        for c in 0..group.classes.len() {
            let s: Vec<f64> = Vec::try_from(scores.select(1, (r.start + c) as i64)).unwrap_or_default();
            let pos: Vec<bool> = hard.iter().map(|&h| h == c as i64).collect();
            out.push(roc_auc(&s, &pos));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use subspace_sdk::{LabelGroup, LabelSchema};

    fn binary(name: &str) -> LabelGroup {
        LabelGroup { name: name.into(), classes: vec!["no".into(), "yes".into()].into() }
    }

    #[test]
    fn class_mass_tells_a_class_never_predicted_from_a_rare_one() {
        let schema = LabelSchema { groups: vec![binary("red"), binary("blue")].into() };
        // 100 codes: red.yes has 0.004 each (never the most likely); blue.yes 0.9 on 1 code, else 0.001.
        let mut rows = Vec::new();
        for i in 0..100 {
            let blue = if i == 0 { 0.9 } else { 0.001 };
            rows.extend_from_slice(&[0.996f32, 0.004, 1.0 - blue, blue]);
        }
        let l = Tensor::from_slice(&rows).view([100, 4]);
        let m = class_masses(&l, &schema);
        assert_eq!(m[1].name, "red.yes");
        assert!((m[1].mass - 0.4).abs() < 1e-6 && m[1].argmax == 0, "{:?}", m[1]);
        assert!((m[3].mass - 0.999).abs() < 1e-6 && m[3].argmax == 1, "{:?}", m[3]);
        assert_eq!(m[0].argmax, 100);
        let e = check_class_mass(&l, &schema, 125).unwrap_err();
        assert_eq!(e.location.as_ref().map(|l| l.as_str()).into_option(), Some("labels"));
        let msg = e.message.as_str();
        assert!(msg.contains("never predicts red.yes (label mass 0.400, most likely class of 0 codes)"), "{msg}");
        assert!(msg.contains("more codes will not help"), "{msg}");
        assert!(msg.contains("the 100 codes fitted (of 125)"), "{msg}");
        // blue.yes: 0.999 over 125 codes' worth needs 125 / 0.999 = 125.1 codes, so 1 more.
        assert!(
            msg.contains("blue.yes (label mass 0.999, most likely class of 1 codes): sample about 1 more"),
            "{msg}"
        );
        assert!(!msg.contains("red.no") && !msg.contains("blue.no"), "{msg}");
        // Mass 0.6 over 100 codes: ceil(100 / 0.6) = 167 codes, 67 more.
        let one = LabelSchema { groups: vec![binary("blue")].into() };
        let mut rows = vec![0.4f32, 0.6];
        rows.extend(std::iter::repeat_n([1.0f32, 0.0], 99).flatten());
        let e = check_class_mass(&Tensor::from_slice(&rows).view([100, 2]), &one, 100).unwrap_err();
        assert!(e.message.contains("sample about 67 more codes") && !e.message.contains("never"), "{}", e.message);
        let even = Tensor::full([100, 2], 0.5, (Kind::Float, tch::Device::Cpu));
        assert!(check_class_mass(&even, &one, 100).is_ok());
    }

    #[test]
    fn weighted_moments_match_the_per_class_computation() {
        tch::manual_seed(3);
        let schema = LabelSchema {
            groups: vec![LabelGroup { name: "g".into(), classes: vec!["a".into(), "b".into(), "c".into()].into() }]
                .into(),
        };
        // Codes away from the origin: the single-precision sums are taken about their mean.
        let z = Tensor::randn([9000, 40], (Kind::Float, tch::Device::Cpu)) * 0.5 + 3.0;
        let w = Tensor::rand([9000, 3], (Kind::Float, tch::Device::Cpu)).softmax(1, Kind::Float);
        let (mu, cov) = weighted_moments(&z, &w, &schema).unwrap();
        let (zd, wd) = (z.to_kind(Kind::Double), w.to_kind(Kind::Double));
        for c in 0..3 {
            let wc = wd.select(1, c);
            let m =
                (&zd * wc.unsqueeze(1)).sum_dim_intlist([0i64].as_slice(), false, Kind::Double) / wc.sum(Kind::Double);
            let x = &zd - &m;
            let want = (&x * wc.unsqueeze(1)).transpose(0, 1).matmul(&x) / wc.sum(Kind::Double);
            let dm = (mu.get(c) - &m).abs().max().double_value(&[]);
            let dc = (cov.get(c) - want).abs().max().double_value(&[]);
            assert!(dm < 1e-5 && dc < 2e-4, "class {c}: mean off by {dm}, covariance by {dc}");
        }
    }

    #[test]
    fn woodbury_matches_the_dense_computation() {
        tch::manual_seed(0);
        let schema = LabelSchema {
            groups: vec![LabelGroup { name: "g".into(), classes: vec!["a".into(), "b".into()].into() }].into(),
        };
        let g = Gaussians {
            mu: Tensor::randn([2, 5], (Kind::Float, tch::Device::Cpu)),
            log_sd: Tensor::randn([2, 5], (Kind::Float, tch::Device::Cpu)) * 0.3,
            u: Tensor::randn([2, 5, 2], (Kind::Float, tch::Device::Cpu)),
            log_w: Tensor::zeros([2], (Kind::Float, tch::Device::Cpu)),
            schema,
            norm: Normalization::Group,
        };
        let z = Tensor::randn([7, 5], (Kind::Float, tch::Device::Cpu));
        let (quad, logdet) = g.mahalanobis(&z);
        for k in 0..2 {
            let cov = g.covariance(k);
            let x = &z - g.mu.get(k);
            let dense = (x.matmul(&cov.inverse()) * &x).sum_dim_intlist([1i64].as_slice(), false, Kind::Float);
            let diff = (dense - quad.select(1, k)).abs().max().double_value(&[]);
            assert!(diff < 1e-3, "quad differs by {diff}");
            let ld = (cov.logdet() - logdet.get(k)).abs().double_value(&[]);
            assert!(ld < 1e-3, "logdet differs by {ld}");
        }
        let p = g.normalized(&z);
        let sums = p.sum_dim_intlist([1i64].as_slice(), false, Kind::Float);
        assert!((sums - 1.0).abs().max().double_value(&[]) < 1e-5);
    }
}

/// A synthetic world for tests: z ~ N(0, I_d), attribute groups whose class probabilities are a softmax of
/// random linear functions of z (sharpened by `scale`). Returns codes, soft labels and the schema.
#[doc(hidden)]
pub fn synthetic_world(
    n: i64,
    d: i64,
    groups: &[usize],
    scale: f64,
    seed: i64,
) -> (Tensor, Tensor, subspace_sdk::LabelSchema) {
    use subspace_sdk::{LabelGroup, LabelSchema};
    tch::manual_seed(seed);
    let opts = (Kind::Float, tch::Device::Cpu);
    let z = Tensor::randn([n, d], opts);
    let mut parts = Vec::new();
    let mut schema = Vec::new();
    for (gi, &c) in groups.iter().enumerate() {
        let w = Tensor::randn([d, c as i64], opts) / (d as f64).sqrt();
        parts.push((z.matmul(&w) * scale).softmax(1, Kind::Float));
        schema.push(LabelGroup {
            name: format!("g{gi}").into(),
            classes: (0..c).map(|i| format!("c{i}").into()).collect(),
        });
    }
    (z, Tensor::cat(&parts, 1), LabelSchema { groups: schema.into() })
}

#[cfg(test)]
mod fit_tests {
    use super::*;
    use crate::fit::{fit, FitOptions, Model};

    fn fitted(d: i64, norm: Normalization, rank: i64, steps: i64) -> (f64, f64, f64) {
        let (z, l, schema) = synthetic_world(6000, d, &[4, 2, 3], 4.0, 1);
        let (zf, lf) = (z.narrow(0, 0, 5000), l.narrow(0, 0, 5000));
        let (zv, lv) = (z.narrow(0, 5000, 1000), l.narrow(0, 5000, 1000));
        let init = Model::of(&Gaussians::init(&zf, &lf, schema, rank, norm).unwrap());
        let (g, curves, _) = fit(&init, &zf, &lf, &FitOptions::new(steps, 0.01, 1024), None, None, "test").unwrap();
        let aucs: Vec<f64> = class_aucs(&g.to_gaussians(), &zv, &lv).into_iter().flatten().collect();
        let min = aucs.iter().cloned().fold(1.0, f64::min);
        (min, curves.first("label mse").unwrap(), curves.last("label mse").unwrap())
    }

    #[test]
    fn group_normalized_fit_predicts_held_out_labels_at_d64_and_d512() {
        // 5,000 codes pin the class means less well in 512 dimensions, hence the lower floor there.
        for (d, floor) in [(64, 0.9), (512, 0.85)] {
            let (min_auc, first, last) = fitted(d, Normalization::Group, 4, 60);
            eprintln!("d = {d}: min held-out AUC {min_auc:.4}, label mse {first:.4} -> {last:.4}");
            assert!(min_auc >= floor, "d = {d}: min held-out AUC {min_auc}");
            assert!(last <= first, "d = {d}: loss rose from {first} to {last}");
        }
    }

    #[test]
    fn peak_normalization_keeps_usable_gradients_at_d512() {
        let (z, l, schema) = synthetic_world(2000, 512, &[2, 2], 4.0, 2);
        let g = Gaussians::init(&z, &l, schema, 4, Normalization::Peak).unwrap();
        let mu = g.mu.set_requires_grad(true);
        let g = Gaussians { mu: mu.shallow_clone(), ..g };
        let p = g.normalized(&z);
        let (lo, hi) = (p.min().double_value(&[]), p.max().double_value(&[]));
        assert!(lo > 1e-6 && hi < 1.0, "normalized likelihood collapsed to [{lo}, {hi}]");
        p.mse_loss(&l, tch::Reduction::Mean).backward();
        let grad = mu.grad().abs().mean(Kind::Float).double_value(&[]);
        assert!(grad > 1e-7, "vanishing gradient: {grad}");
        let (_, first, last) = fitted(512, Normalization::Peak, 4, 60);
        assert!(last < first * 0.95, "peak fit did not learn at d = 512: {first} -> {last}");
    }
}
