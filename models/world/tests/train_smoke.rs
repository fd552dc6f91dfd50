//! A few tiny training iterations of each model, exported and reloaded, so the training code stays alive.

use subspace_world::gates;
use subspace_world::nets::Role;
use subspace_world::train::{self, ClassifierConfig, GanConfig};
use tch::{Device, Kind, Tensor};

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("subspace-world-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn generator_training_smoke() {
    let out = tmp("gan");
    let mut cfg = GanConfig::new(5, 5.0, &out);
    cfg.steps = Some(2);
    cfg.batch = 16; // a multiple of pack (4) x minibatch-stddev group (4)
    cfg.work = out.join("work");
    cfg.checkpoint_every = 1;
    cfg.calibration = 256;
    cfg.render_threads = 2;
    cfg.snapshot_every = Some(2);
    let r = train::train_generator(&cfg).unwrap();
    assert_eq!(r.steps, 2);
    assert!(r.d_loss.is_finite() && r.g_loss.is_finite());
    assert!(out.join("generator.json").exists() && out.join("work/sheet-000002.png").exists());
    assert!(out.join("work/snapshots/g_ema-000002.safetensors").exists());
    let g = gates::load_module(&out.join("generator.pt")).unwrap();
    let x = tch::no_grad(|| g.forward_ts(&[Tensor::randn([3, 64], (Kind::Float, Device::Cpu))])).unwrap();
    assert_eq!(x.size(), [3, 3, 64, 64]);
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn classifier_training_smoke() {
    let out = tmp("clf");
    for role in [Role::Fit, Role::Eval] {
        let mut cfg = ClassifierConfig::new(role, 3, &out);
        cfg.steps = 3;
        cfg.batch = 8;
        cfg.validation = 40;
        let r = train::train_classifier(&cfg).unwrap();
        assert_eq!(r.steps, 3);
        let c = gates::load_module(&out.join(format!("classifier-{}.pt", role.name()))).unwrap();
        let p = tch::no_grad(|| c.forward_ts(&[Tensor::rand([2, 3, 64, 64], (Kind::Float, Device::Cpu))])).unwrap();
        assert_eq!(p.size(), [2, 13]);
    }
    std::fs::remove_dir_all(&out).ok();
}
