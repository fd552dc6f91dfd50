//! Full-covariance Gaussians held through the lower Cholesky factor of each precision matrix,
//! Sigma_k^{-1} = L_k L_k^T: the Mahalanobis distance is |(z - mu_k) L_k|^2 (one matmul for all classes, cost
//! N K D^2 with no inverse per step), log det Sigma_k = -2 sum log diag(L_k), and every parameter value is a valid
//! covariance. The fitting loop trains this form; files and the edit code keep the diagonal + rank-D form of
//! [`Gaussians`], converted exactly both ways.

use crate::gauss::{group_log_posteriors, normalize, Gaussians, Normalization};
use subspace_sdk::tch::{self, Kind, Tensor};
use subspace_sdk::LabelSchema;

/// K full-covariance Gaussians in precision-Cholesky form.
pub struct FullGaussians {
    /// K x D means.
    pub mu: Tensor,
    /// K x D log of the factor's diagonal (kept positive this way).
    pub log_diag: Tensor,
    /// K x D x D; only the strictly lower triangle is used.
    pub lower: Tensor,
    /// While training, the factor the trained one is relative to (L = base T, T from `log_diag` and `lower`,
    /// starting at the identity): Adam's per-coordinate steps then act in whitened coordinates of each class.
    pub base: Option<Tensor>,
    /// K unnormalised log mixture weights.
    pub log_w: Tensor,
    /// The classes the components stand for.
    pub schema: LabelSchema,
    /// How likelihoods are compared with labels.
    pub norm: Normalization,
}

impl FullGaussians {
    /// From means (K x D) and covariances (K x D x D, symmetric positive definite; any float kind).
    pub fn from_moments(
        mu: &Tensor,
        cov: &Tensor,
        log_w: Tensor,
        schema: LabelSchema,
        norm: Normalization,
    ) -> FullGaussians {
        let _guard = tch::no_grad_guard();
        let cov = cov.to_kind(Kind::Double);
        // (C C^T)^{-1} from the covariance's own factor, then the precision's factor.
        let precision = cov.linalg_cholesky(false).cholesky_inverse(false);
        let precision = (&precision + precision.transpose(1, 2)) * 0.5;
        let l = precision.linalg_cholesky(false);
        FullGaussians {
            mu: mu.to_kind(Kind::Float),
            log_diag: l.diagonal(0, 1, 2).log().to_kind(Kind::Float),
            lower: l.tril(-1).to_kind(Kind::Float),
            base: None,
            log_w: log_w.to_kind(Kind::Float),
            schema,
            norm,
        }
    }

    /// The full form of stored Gaussians (any rank).
    pub fn from_gaussians(g: &Gaussians) -> FullGaussians {
        let cov = Tensor::stack(&(0..g.k()).map(|k| g.covariance(k).to_kind(Kind::Double)).collect::<Vec<_>>(), 0);
        FullGaussians::from_moments(&g.mu, &cov, g.log_w.shallow_clone(), g.schema.clone(), g.norm)
    }

    /// Latent dimension D.
    pub fn dim(&self) -> i64 {
        self.mu.size()[1]
    }

    /// The precision factors L_k, K x D x D lower triangular with a positive diagonal.
    pub fn factor(&self) -> Tensor {
        let t = self.lower.tril(-1) + self.log_diag.exp().diag_embed(0, 1, 2);
        match &self.base {
            Some(b) => b.matmul(&t),
            None => t,
        }
    }

    /// The same Gaussians with the factor relative to the current one (identity `T`), for training.
    pub fn relative(&self) -> FullGaussians {
        let _guard = tch::no_grad_guard();
        FullGaussians {
            mu: self.mu.detach().copy(),
            log_diag: self.log_diag.zeros_like(),
            lower: self.lower.zeros_like(),
            base: Some(self.factor().detach()),
            log_w: self.log_w.detach().copy(),
            schema: self.schema.clone(),
            norm: self.norm,
        }
    }

    /// Detached copies with the factor absolute again.
    pub fn absolute(&self) -> FullGaussians {
        let _guard = tch::no_grad_guard();
        let f = self.factor().detach();
        FullGaussians {
            mu: self.mu.detach().copy(),
            log_diag: f.diagonal(0, 1, 2).log(),
            lower: f.tril(-1),
            base: None,
            log_w: self.log_w.detach().copy(),
            schema: self.schema.clone(),
            norm: self.norm,
        }
    }

    /// Mahalanobis distances N x K and covariance log-determinants K.
    pub fn mahalanobis(&self, z: &Tensor) -> (Tensor, Tensor) {
        let l = self.factor();
        let (k, d) = (l.size()[0], l.size()[1]);
        // z L_k for every k in one matmul: D x (K D).
        let zl = z.matmul(&l.permute([1, 0, 2]).reshape([d, k * d])).view([-1, k, d]);
        let mul = self.mu.unsqueeze(1).bmm(&l).squeeze_dim(1); // K x D
        let quad = (zl - mul.unsqueeze(0)).square().sum_dim_intlist([2i64].as_slice(), false, Kind::Float);
        let log_diag = match &self.base {
            Some(b) => b.diagonal(0, 1, 2).log() + &self.log_diag,
            None => self.log_diag.shallow_clone(),
        };
        let logdet = log_diag.sum_dim_intlist([1i64].as_slice(), false, Kind::Float) * -2.0;
        (quad, logdet)
    }

    /// Normalized likelihoods N x K in [0, 1].
    pub fn normalized(&self, z: &Tensor) -> Tensor {
        let (quad, logdet) = self.mahalanobis(z);
        normalize(&quad, &logdet, &self.log_w, &self.schema, self.norm, self.dim())
    }

    /// Log posterior of every class within its group (N x K).
    pub fn log_group_posteriors(&self, z: &Tensor) -> Tensor {
        let (quad, logdet) = self.mahalanobis(z);
        group_log_posteriors(&quad, &logdet, &self.log_w, &self.schema)
    }

    /// Reparameterised samples: row i from component `comp[i]`, z = mu + L^{-T} e with `e` n x D standard normal
    /// (cov L^{-T} L^{-1} = Sigma), differentiable in the parameters.
    pub fn sample_with(&self, comp: &Tensor, e: &Tensor) -> Tensor {
        let lt = self.factor().index_select(0, comp).transpose(1, 2); // n x D x D, upper
        let x = lt.linalg_solve_triangular(&e.unsqueeze(2), true, true, false).squeeze_dim(2);
        self.mu.index_select(0, comp) + x
    }

    /// Covariances K x D x D (double).
    pub fn covariances(&self) -> Tensor {
        self.factor().detach().to_kind(Kind::Double).cholesky_inverse(false)
    }

    /// The same Gaussians as diagonal + rank D (what files and edits use), exactly: Sigma = s^2 I + V (lambda - s^2)
    /// V^T with s^2 half the smallest eigenvalue, so the Woodbury system downstream stays well conditioned.
    pub fn to_gaussians(&self) -> Gaussians {
        let _guard = tch::no_grad_guard();
        let cov = self.covariances();
        let cov = (&cov + cov.transpose(1, 2)) * 0.5;
        let (evals, evecs) = cov.linalg_eigh("L"); // ascending, K x D and K x D x D
        let s2 = evals.select(1, 0).clamp_min(1e-12) * 0.5; // K
        let u = evecs * (evals - s2.unsqueeze(1)).clamp_min(0.0).sqrt().unsqueeze(1);
        let d = self.dim();
        Gaussians {
            mu: self.mu.detach().copy(),
            log_sd: (s2.log() * 0.5).unsqueeze(1).expand([-1, d], false).contiguous().to_kind(Kind::Float),
            u: u.to_kind(Kind::Float),
            log_w: self.log_w.detach().copy(),
            schema: self.schema.clone(),
            norm: self.norm,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use subspace_sdk::{LabelGroup, LabelSchema};

    fn schema() -> LabelSchema {
        LabelSchema {
            groups: vec![LabelGroup { name: "g".into(), classes: vec!["a".into(), "b".into()].into() }].into(),
        }
    }

    fn spd(k: i64, d: i64) -> Tensor {
        let a = Tensor::randn([k, d, d], (Kind::Double, tch::Device::Cpu));
        a.matmul(&a.transpose(1, 2)) / d as f64 + Tensor::eye(d, (Kind::Double, tch::Device::Cpu)) * 0.1
    }

    #[test]
    fn precision_factor_matches_the_dense_density_and_converts_exactly() {
        tch::manual_seed(0);
        let (k, d) = (2, 6);
        let cov = spd(k, d);
        let mu = Tensor::randn([k, d], (Kind::Float, tch::Device::Cpu));
        let f = FullGaussians::from_moments(
            &mu,
            &cov,
            Tensor::zeros([k], (Kind::Float, tch::Device::Cpu)),
            schema(),
            Normalization::Group,
        );
        let z = Tensor::randn([9, d], (Kind::Float, tch::Device::Cpu));
        let (quad, logdet) = f.mahalanobis(&z);
        for c in 0..k {
            let x = (&z - mu.get(c)).to_kind(Kind::Double);
            let dense = (x.matmul(&cov.get(c).inverse()) * &x).sum_dim_intlist([1i64].as_slice(), false, Kind::Double);
            let dq = (dense - quad.select(1, c).to_kind(Kind::Double)).abs().max().double_value(&[]);
            assert!(dq < 1e-3, "quad differs by {dq}");
            let dl = (cov.get(c).logdet() - logdet.get(c).to_kind(Kind::Double)).abs().double_value(&[]);
            assert!(dl < 1e-3, "logdet differs by {dl}");
        }
        // Stored form and back: the same covariances and the same posteriors.
        let g = f.to_gaussians();
        assert_eq!(g.rank(), d);
        for c in 0..k {
            let diff = (g.covariance(c).to_kind(Kind::Double) - cov.get(c)).abs().max().double_value(&[]);
            assert!(diff < 1e-4, "stored covariance differs by {diff}");
        }
        let p = (g.normalized(&z) - f.normalized(&z)).abs().max().double_value(&[]);
        assert!(p < 1e-4, "posteriors differ by {p}");
        let rel = (f.relative().normalized(&z) - f.normalized(&z)).abs().max().double_value(&[]);
        assert!(rel < 1e-5, "relative form differs by {rel}");
        let back = FullGaussians::from_gaussians(&g);
        let diff = (back.factor() - f.factor()).abs().max().double_value(&[]);
        assert!(diff < 1e-3, "round trip differs by {diff}");
    }

    #[test]
    fn samples_have_the_component_covariance() {
        tch::manual_seed(1);
        let (k, d, n) = (2, 4, 40000);
        let cov = spd(k, d);
        let mu = Tensor::randn([k, d], (Kind::Float, tch::Device::Cpu));
        let f = FullGaussians::from_moments(
            &mu,
            &cov,
            Tensor::zeros([k], (Kind::Float, tch::Device::Cpu)),
            schema(),
            Normalization::Group,
        );
        let comp = Tensor::ones([n], (Kind::Int64, tch::Device::Cpu));
        let s = f.sample_with(&comp, &Tensor::randn([n, d], (Kind::Float, tch::Device::Cpu))).to_kind(Kind::Double);
        let x = &s - s.mean_dim([0i64].as_slice(), true, Kind::Double);
        let emp = x.transpose(0, 1).matmul(&x) / n as f64;
        let err = (emp - cov.get(1)).abs().max().double_value(&[]) / cov.get(1).abs().max().double_value(&[]);
        assert!(err < 0.05, "sample covariance off by {err} (relative)");
    }
}
