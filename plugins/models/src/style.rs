//! StyleGAN-style generators: a mapping method (z -> w) and a synthesis method (ws -> images) named in the
//! sidecar's `style` block, the average w that truncation pulls toward, and the latent space (z, W, W+) a
//! generator handle renders from.

use crate::model::{check_arguments, product, torch_reason, ArgumentMeta, Arguments, Inner, MAX_SAMPLE_ELEMENTS};
use serde::Deserialize;
use std::path::Path;
use subspace_sdk::kinds::Space;
use subspace_sdk::tch::{self, Kind, Tensor};
use subspace_sdk::NodeError;

/// Codes mapped at load to estimate the average w when the sidecar gives none.
const W_AVG_SAMPLES: i64 = 4096;

/// The sidecar's `style` block.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct StyleMeta {
    /// Method taking z (shaped as `latent.shape`) then `mapping_arguments`; returns N x w_dim or N x num_ws x w_dim.
    mapping: String,
    #[serde(default)]
    mapping_arguments: Vec<ArgumentMeta>,
    /// Method taking ws (N x num_ws x w_dim) then `synthesis_arguments`; returns images as `output` describes.
    synthesis: String,
    #[serde(default)]
    synthesis_arguments: Vec<ArgumentMeta>,
    w_dim: i64,
    num_ws: i64,
    /// A list of w_dim numbers, or the name of a parameter or of a method without arguments that returns it.
    #[serde(default)]
    w_avg: Option<serde_json::Value>,
    /// Style affine weights (each with a w_dim axis) whose rows SeFa factorises together; read through the info.
    #[serde(default)]
    affine: Vec<String>,
}

/// Where the average w comes from, before the module is loaded.
#[derive(Debug, Clone)]
enum AverageSource {
    Values(Vec<f32>),
    Named(String),
    Estimated,
}

/// A checked `style` block; `w_avg` is filled in once the module has been probed.
pub struct Style {
    pub mapping: String,
    mapping_args: Arguments,
    pub synthesis: String,
    synthesis_args: Arguments,
    pub w_dim: i64,
    pub num_ws: i64,
    pub affine: Vec<String>,
    source: AverageSource,
    /// The average w (w_dim numbers; a tensor is not Sync, and this is small).
    pub w_avg: Option<Vec<f32>>,
    /// How `w_avg` was found, for the model's info.
    pub w_avg_from: String,
}

/// The latent space a generator handle takes codes in, and its truncation toward the average w.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct View {
    pub space: Space,
    /// StyleGAN's psi: w = w_avg + psi (w - w_avg). Applied when z codes are mapped (sampling W/W+ codes, and
    /// rendering z codes); 1 leaves w alone.
    pub psi: f64,
}

impl Default for View {
    fn default() -> Self {
        View { space: Space::Z, psi: 1.0 }
    }
}

fn space_name(s: Space) -> &'static str {
    match s {
        Space::Z => "z",
        Space::W => "W",
        Space::WPlus => "W+",
    }
}

/// Checks a `style` block before the module is loaded.
pub fn check_style(side: &Path, meta: &StyleMeta) -> Result<Style, NodeError> {
    let bad = |why: String| Err(NodeError::model(format!("{}: {why}", side.display())));
    for (key, name) in [("style.mapping", &meta.mapping), ("style.synthesis", &meta.synthesis)] {
        if name.trim().is_empty() {
            return bad(format!("{key} is empty; name the module's method"));
        }
    }
    for (key, v) in [("style.w_dim", meta.w_dim), ("style.num_ws", meta.num_ws)] {
        if !(1..=MAX_SAMPLE_ELEMENTS).contains(&v) {
            return bad(format!("{key} is {v}; it must be 1 to {MAX_SAMPLE_ELEMENTS}"));
        }
    }
    if product(&[meta.w_dim, meta.num_ws], MAX_SAMPLE_ELEMENTS).is_none() {
        return bad(format!(
            "style.num_ws x style.w_dim = {} x {} is beyond the limit of {MAX_SAMPLE_ELEMENTS} elements per code",
            meta.num_ws, meta.w_dim
        ));
    }
    let source = match &meta.w_avg {
        None => AverageSource::Estimated,
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => AverageSource::Named(s.clone()),
        Some(serde_json::Value::Array(list)) => {
            let values: Option<Vec<f32>> =
                list.iter().map(|v| v.as_f64().filter(|x| x.is_finite()).map(|x| x as f32)).collect();
            match values {
                Some(v) if v.len() as i64 == meta.w_dim => AverageSource::Values(v),
                _ => {
                    return bad(format!(
                        "style.w_avg lists {} entries; it must be style.w_dim = {} finite numbers",
                        list.len(),
                        meta.w_dim
                    ))
                }
            }
        }
        Some(other) => {
            return bad(format!(
                "style.w_avg is {other}; give w_dim numbers or the name of a parameter or method of the module"
            ))
        }
    };
    Ok(Style {
        mapping: meta.mapping.clone(),
        mapping_args: check_arguments(side, "style.mapping_arguments", &meta.mapping_arguments)?,
        synthesis: meta.synthesis.clone(),
        synthesis_args: check_arguments(side, "style.synthesis_arguments", &meta.synthesis_arguments)?,
        w_dim: meta.w_dim,
        num_ws: meta.num_ws,
        affine: meta.affine.clone(),
        source,
        w_avg: None,
        w_avg_from: String::new(),
    })
}

/// Why a call of a style method failed, naming the sidecar fields that set it up.
fn method_failure(side: &str, key: &str, method: &str, takes: &str, e: &tch::TchError) -> NodeError {
    let reason = torch_reason(e);
    let why = if reason.contains("is not defined") || reason.contains("has no method") {
        format!(
            "the module has no method '{method}' ({key}); export it (@torch.jit.export, or torch.jit.trace_module with \
             an entry for it)"
        )
    } else {
        format!("{key} '{method}' does not take {takes}")
    };
    NodeError::model(format!("{side}: {why} ({reason})"))
}

impl Inner {
    /// The style block; an internal error when the generator has none (callers check first).
    fn style_block(&self) -> Result<&Style, NodeError> {
        self.style.as_ref().ok_or_else(|| NodeError::internal("a style method called on a plain generator"))
    }

    /// The width of one code in `space`, or why the generator has no such space.
    pub fn code_dim(&self, space: Space) -> Result<i64, String> {
        match (space, &self.style) {
            (Space::Z, _) => Ok(self.latent_dim),
            (Space::W, Some(s)) => Ok(s.w_dim),
            (Space::WPlus, Some(s)) => Ok(s.num_ws * s.w_dim),
            (_, None) => Err(format!(
                "generator {} has no {} space: its sidecar {} has no style block naming a mapping and a synthesis \
                 method (docs/MODELS.md)",
                self.path.display(),
                space_name(space),
                self.sidecar.display()
            )),
        }
    }

    /// Why codes of shape `size` do not fit `space`, naming the spaces whose width they have.
    pub fn dim_mismatch(&self, size: &[i64], space: Space) -> String {
        let want = self.code_dim(space).unwrap_or(0);
        let got = if size.len() == 2 { size[1] } else { -1 };
        let fits: Vec<&str> = [Space::Z, Space::W, Space::WPlus]
            .into_iter()
            .filter(|s| *s != space && self.code_dim(*s) == Ok(got))
            .map(space_name)
            .collect();
        let hint = if fits.is_empty() {
            String::new()
        } else {
            format!("; {got} is the width of its {} codes: give the codes' space to the Generator", fits.join(" and "))
        };
        let shape = if size.len() == 2 { format!("dimension {got}") } else { format!("shape {size:?}") };
        format!(
            "codes have {shape} but generator {} in space {} expects {want}{hint}",
            self.path.display(),
            space_name(space)
        )
    }

    /// w = mapping(z), N x w_dim (of N x num_ws x w_dim, the first w). Differentiable in z.
    pub fn map(&self, z: &Tensor) -> Result<Tensor, NodeError> {
        let s = self.style_block()?;
        let side = self.sidecar.display().to_string();
        let n = z.size()[0];
        let shape: Vec<i64> = std::iter::once(n).chain(self.latent_shape.iter().copied()).collect();
        let takes = format!("z shaped {shape:?} (latent.dim, latent.shape) and style.mapping_arguments");
        let out = self
            .call(&s.mapping, z.view(shape.as_slice()), &s.mapping_args)
            .map_err(|e| method_failure(&side, "style.mapping", &s.mapping, &takes, &e))?;
        let size = out.size();
        match size.as_slice() {
            [m, d] if *m == n && *d == s.w_dim => Ok(out),
            [m, l, d] if *m == n && *l == s.num_ws && *d == s.w_dim => Ok(out.select(1, 0)),
            _ => Err(NodeError::model(format!(
                "{side}: for {n} codes style.mapping '{}' returns shape {size:?}, not [{n}, {w}] or [{n}, {l}, {w}] \
                 (style.num_ws {l}, style.w_dim {w})",
                s.mapping,
                w = s.w_dim,
                l = s.num_ws
            ))),
        }
    }

    /// w pulled toward the average w by `psi`.
    pub fn truncate(&self, w: &Tensor, psi: f64) -> Result<Tensor, NodeError> {
        if psi == 1.0 {
            return Ok(w.shallow_clone());
        }
        let avg = self.style_block()?.w_avg.as_ref().ok_or_else(|| NodeError::internal("w_avg not resolved"))?;
        let avg = Tensor::from_slice(avg).to_device(w.device()).to_kind(w.kind()).unsqueeze(0);
        Ok(&avg + (w - &avg) * psi)
    }

    /// The module's images for ws (N x num_ws x w_dim).
    pub fn synthesise(&self, ws: &Tensor) -> Result<Tensor, NodeError> {
        let s = self.style_block()?;
        let side = self.sidecar.display().to_string();
        let takes = format!(
            "ws shaped [N, {}, {}] (style.num_ws, style.w_dim) and style.synthesis_arguments",
            s.num_ws, s.w_dim
        );
        self.call(&s.synthesis, ws.shallow_clone(), &s.synthesis_args)
            .map_err(|e| method_failure(&side, "style.synthesis", &s.synthesis, &takes, &e))
    }

    /// Codes in `view.space` (N x code_dim) from z codes: z itself, or its truncated w (broadcast to every layer
    /// and flattened for W+).
    pub fn codes_from_z(&self, z: &Tensor, view: View) -> Result<Tensor, NodeError> {
        if view.space == Space::Z {
            return Ok(z.shallow_clone());
        }
        let s = self.style_block()?;
        let w = self.truncate(&self.map(z)?, view.psi)?;
        Ok(match view.space {
            Space::WPlus => w.unsqueeze(1).expand([-1, s.num_ws, -1], false).reshape([-1, s.num_ws * s.w_dim]),
            _ => w,
        })
    }

    /// The module's raw images for codes in `view.space` through mapping and synthesis.
    pub fn synthesise_codes(&self, codes: &Tensor, view: View) -> Result<Tensor, NodeError> {
        let s = self.style_block()?;
        let ws = match view.space {
            Space::Z => self.truncate(&self.map(codes)?, view.psi)?.unsqueeze(1).expand([-1, s.num_ws, -1], false),
            Space::W => codes.unsqueeze(1).expand([-1, s.num_ws, -1], false),
            Space::WPlus => codes.view([-1, s.num_ws, s.w_dim]),
        };
        self.synthesise(&ws.contiguous())
    }

    /// Finds the average w: the sidecar's numbers, a parameter or method of the module, or the mean of mapped
    /// codes. Runs after the probe, so mapping is known to work.
    pub fn resolve_w_avg(&mut self) -> Result<(), NodeError> {
        let side = self.sidecar.display().to_string();
        let Some(s) = &self.style else { return Ok(()) };
        let (w_dim, device) = (s.w_dim, self.device);
        let (avg, from) = match s.source.clone() {
            AverageSource::Values(v) => (Tensor::from_slice(&v).to_device(device), "style.w_avg (numbers)".to_string()),
            AverageSource::Named(name) => {
                let param = self.module.named_parameters().ok().and_then(|l| l.into_iter().find(|(n, _)| *n == name));
                match param {
                    Some((_, t)) => (t.detach(), format!("parameter {name}")),
                    None => {
                        let none: [tch::IValue; 0] = [];
                        match self.module.method_is(&name, &none) {
                            Ok(tch::IValue::Tensor(t)) => (t.detach(), format!("method {name}()")),
                            Ok(_) => {
                                return Err(NodeError::model(format!(
                                    "{side}: style.w_avg: method '{name}' does not return a tensor"
                                )))
                            }
                            Err(e) => {
                                return Err(NodeError::model(format!(
                                    "{side}: style.w_avg '{name}' is neither a parameter of the module nor a method \
                                     without arguments ({})",
                                    torch_reason(&e)
                                )))
                            }
                        }
                    }
                }
            }
            AverageSource::Estimated => {
                let _guard = tch::no_grad_guard();
                let mut rng: rand_chacha::ChaCha8Rng = rand::SeedableRng::seed_from_u64(0x5a11);
                let z = crate::model::sample_codes(&mut rng, W_AVG_SAMPLES, self.latent_dim, &self.distribution, 0.0)?
                    .to_device(device);
                let mut sum = Tensor::zeros([w_dim], (Kind::Double, device));
                for part in z.split(512, 0) {
                    sum +=
                        self.map(&part)?.to_kind(Kind::Double).sum_dim_intlist([0i64].as_slice(), false, Kind::Double);
                }
                (sum / W_AVG_SAMPLES as f64, format!("mean of {W_AVG_SAMPLES} mapped codes (no style.w_avg)"))
            }
        };
        let avg = avg.to_device(device).to_kind(Kind::Float);
        // Official StyleGAN keeps [w_dim]; a [1, w_dim] or [num_ws, w_dim] copy is accepted as its first row.
        let avg = match avg.size().as_slice() {
            [d] if *d == w_dim => avg,
            [_, d] if *d == w_dim => avg.select(0, 0),
            other => {
                return Err(NodeError::model(format!(
                    "{side}: style.w_avg ({from}) has shape {other:?}, not [{w_dim}] (style.w_dim)"
                )))
            }
        };
        if avg.isfinite().all().int64_value(&[]) == 0 {
            return Err(NodeError::model(format!("{side}: style.w_avg ({from}) holds NaN or infinite values")));
        }
        let avg = Vec::<f32>::try_from(&avg.to_device(tch::Device::Cpu))
            .map_err(|e| NodeError::internal(format!("reading w_avg: {e}")))?;
        if let Some(s) = self.style.as_mut() {
            s.w_avg = Some(avg);
            s.w_avg_from = from;
        }
        Ok(())
    }
}

/// Checks at load that every `style.affine` name is a parameter with a w_dim axis among its first two.
pub fn check_affine(side: &Path, style: &Style, params: &[(String, Tensor)]) -> Result<(), NodeError> {
    for (i, name) in style.affine.iter().enumerate() {
        let Some((_, t)) = params.iter().find(|(n, _)| n == name) else {
            let some: Vec<&str> = params.iter().take(8).map(|(n, _)| n.as_str()).collect();
            let more = if params.len() > 8 { ", ..." } else { "" };
            return Err(NodeError::model(format!(
                "{}: style.affine[{i}] '{name}' is not a parameter of the module (its parameters: [{}{more}])",
                side.display(),
                some.join(", ")
            )));
        };
        let size = t.size();
        if size.len() < 2 || !size[..2].contains(&style.w_dim) {
            return Err(NodeError::model(format!(
                "{}: style.affine[{i}] '{name}' has shape {size:?}; a style affine weight has style.w_dim = {} \
                 columns",
                side.display(),
                style.w_dim
            )));
        }
    }
    Ok(())
}
