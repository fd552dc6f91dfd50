//! Quality gates of the default world: classifier accuracy on renders, and what the fit classifier sees in the
//! generator's samples (confidence, class coverage, class balance, agreement with the eval classifier).

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tch::{CModule, Device, Kind, Tensor};

use crate::meta::{self, ClassifierMeta, GeneratorMeta};
use crate::nets;
use crate::render::SCHEMA;
use crate::train::{self, TAG_GATES};

/// Targets.
pub const MIN_ACCURACY: f64 = 0.97;
pub const MIN_CONFIDENT: f64 = 0.90;
pub const CONFIDENCE: f64 = 0.8;
pub const MAX_TVD: f64 = 0.10;
pub const MIN_AGREEMENT: f64 = 0.90;

/// The three TorchScript models and their metadata.
pub struct Models {
    pub generator: CModule,
    pub generator_meta: GeneratorMeta,
    pub fit: CModule,
    pub fit_meta: ClassifierMeta,
    pub eval: CModule,
    pub eval_meta: ClassifierMeta,
    /// Where the modules run (the gates' codes are drawn there too).
    pub device: Device,
}

pub fn load_module(path: &Path) -> Result<CModule> {
    load_module_on(path, Device::Cpu)
}

pub fn load_module_on(path: &Path, device: Device) -> Result<CModule> {
    let mut m = CModule::load_on_device(path, device).with_context(|| format!("loading {}", path.display()))?;
    m.set_eval();
    Ok(m)
}

impl Models {
    pub fn load(dir: &Path) -> Result<Models> {
        Models::load_on(dir, Device::Cpu)
    }

    pub fn load_on(dir: &Path, device: Device) -> Result<Models> {
        Ok(Models {
            generator: load_module_on(&dir.join("generator.pt"), device)?,
            generator_meta: meta::read_json(&dir.join("generator.json"))?,
            fit: load_module_on(&dir.join("classifier-fit.pt"), device)?,
            fit_meta: meta::read_json(&dir.join("classifier-fit.json"))?,
            eval: load_module_on(&dir.join("classifier-eval.pt"), device)?,
            eval_meta: meta::read_json(&dir.join("classifier-eval.json"))?,
            device,
        })
    }

    /// z (N x 64) -> images in [0, 1].
    pub fn generate_unit(&self, z: &Tensor) -> Result<Tensor> {
        let x = tch::no_grad(|| self.generator.forward_ts(&[z]))?;
        Ok(((x + 1.0) / 2.0).clamp(0.0, 1.0))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassifierGate {
    pub name: String,
    pub renders: usize,
    /// Accuracy per group, schema order.
    pub accuracy: Vec<f64>,
    pub pass: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupGate {
    pub group: String,
    pub classes: Vec<String>,
    /// Fraction of samples where the fit classifier's max class probability in this group is >= 0.8.
    pub confident: f64,
    /// Frequency of each class (fit classifier's argmax) among the samples.
    pub frequencies: Vec<f64>,
    pub every_class: bool,
    /// Total variation distance between `frequencies` and the renderer's uniform class distribution.
    pub tvd: f64,
    /// Fraction of samples where the fit and eval classifiers pick the same class.
    pub agreement: f64,
    pub pass: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GateReport {
    pub classifiers: Vec<ClassifierGate>,
    pub samples: usize,
    pub generated: Vec<GroupGate>,
    pub targets: serde_json::Value,
    pub pass: bool,
}

pub fn measure(models: &Models, samples: usize, renders: usize, seed: u64) -> Result<GateReport> {
    let mut classifiers = Vec::new();
    for (name, m) in [("fit", &models.fit), ("eval", &models.eval)] {
        let acc = train::accuracy_on_renders(
            |x| Ok(m.forward_ts(&[x.to_device(models.device)])?.to_device(Device::Cpu)),
            train::seed_stream(seed, TAG_GATES),
            renders,
        )?;
        let pass = acc.iter().all(|&a| a >= MIN_ACCURACY);
        classifiers.push(ClassifierGate { name: name.into(), renders, accuracy: acc, pass });
    }

    tch::manual_seed(seed as i64);
    let mut fit_all = Vec::new();
    let mut eval_all = Vec::new();
    let mut done = 0;
    while done < samples {
        let b = (samples - done).min(500) as i64;
        let z = Tensor::randn([b, nets::LATENT_DIM], (Kind::Float, models.device));
        let x = models.generate_unit(&z)?;
        fit_all.push(tch::no_grad(|| models.fit.forward_ts(&[&x]))?);
        eval_all.push(tch::no_grad(|| models.eval.forward_ts(&[&x]))?);
        done += b as usize;
    }
    let pf = Tensor::cat(&fit_all, 0);
    let pe = Tensor::cat(&eval_all, 0);
    let generated = generated_gates(&pf, &pe);
    let pass = classifiers.iter().all(|c| c.pass) && generated.iter().all(|g| g.pass);
    Ok(GateReport {
        classifiers,
        samples,
        generated,
        targets: serde_json::json!({
            "classifier_accuracy": MIN_ACCURACY, "confident_fraction": MIN_CONFIDENT, "confidence": CONFIDENCE,
            "max_tvd": MAX_TVD, "agreement": MIN_AGREEMENT,
        }),
        pass,
    })
}

/// Per-group gates from the fit and eval probabilities (N x 13 each) of generated samples.
pub fn generated_gates(pf: &Tensor, pe: &Tensor) -> Vec<GroupGate> {
    let n = pf.size()[0] as f64;
    let af = nets::group_argmax(pf);
    let ae = nets::group_argmax(pe);
    let mf = nets::group_max(pf);
    let mut out = Vec::new();
    for (g, (name, classes)) in SCHEMA.iter().enumerate() {
        let k = classes.len();
        let confident = mf.select(1, g as i64).ge(CONFIDENCE).to_kind(Kind::Float).mean(Kind::Float).double_value(&[]);
        let col = af.select(1, g as i64);
        let frequencies: Vec<f64> =
            (0..k).map(|c| col.eq(c as i64).to_kind(Kind::Float).sum(Kind::Float).double_value(&[]) / n).collect();
        let every_class = frequencies.iter().all(|&f| f > 0.0);
        let tvd = 0.5 * frequencies.iter().map(|f| (f - 1.0 / k as f64).abs()).sum::<f64>();
        let agreement = col.eq_tensor(&ae.select(1, g as i64)).to_kind(Kind::Float).mean(Kind::Float).double_value(&[]);
        let pass = confident >= MIN_CONFIDENT && every_class && tvd <= MAX_TVD && agreement >= MIN_AGREEMENT;
        out.push(GroupGate {
            group: name.to_string(),
            classes: classes.iter().map(|c| c.to_string()).collect(),
            confident,
            frequencies,
            every_class,
            tvd,
            agreement,
            pass,
        });
    }
    out
}

fn mark(pass: bool) -> &'static str {
    if pass {
        "ok"
    } else {
        "FAIL"
    }
}

/// A plain-text table of a report.
pub fn table(r: &GateReport) -> String {
    let mut s = String::new();
    s += &format!("Classifier accuracy on fresh renders (target >= {:.0}%)\n", MIN_ACCURACY * 100.0);
    s += &format!("{:<10}", "classifier");
    for (name, _) in SCHEMA.iter() {
        s += &format!("{name:>9}");
    }
    s += "\n";
    for c in &r.classifiers {
        s += &format!("{:<10}", c.name);
        for a in &c.accuracy {
            s += &format!("{:>8.2}%", a * 100.0);
        }
        s += &format!("  {} ({} renders)\n", mark(c.pass), c.renders);
    }
    s += &format!(
        "\nGenerated samples: {} (confident: max prob >= {CONFIDENCE}, target >= {:.0}%; TVD to uniform <= {MAX_TVD}; \
         fit/eval agreement >= {:.0}%)\n",
        r.samples,
        MIN_CONFIDENT * 100.0,
        MIN_AGREEMENT * 100.0
    );
    s += &format!(
        "{:<8}{:>11}{:>8}{:>11}  {:<50}{}\n",
        "group", "confident", "TVD", "agreement", "class frequencies", ""
    );
    for g in &r.generated {
        let freqs: Vec<String> =
            g.classes.iter().zip(&g.frequencies).map(|(c, f)| format!("{c} {:.1}%", f * 100.0)).collect();
        s += &format!(
            "{:<8}{:>10.2}%{:>8.3}{:>10.2}%  {:<50}{}\n",
            g.group,
            g.confident * 100.0,
            g.tvd,
            g.agreement * 100.0,
            freqs.join(", "),
            mark(g.pass)
        );
    }
    s += &format!("\nall gates: {}\n", if r.pass { "PASS" } else { "FAIL" });
    s
}
