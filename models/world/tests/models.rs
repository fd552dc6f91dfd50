//! The committed models in models/default: they load, their metadata matches, shapes and ranges are right, they are
//! differentiable with respect to their inputs, and they are trained (a small-sample version of the gates).

use std::path::PathBuf;

use subspace_world::gates::{self, Models};
use subspace_world::meta::{self, ClassifierMeta, GeneratorMeta};
use subspace_world::nets::{self, LATENT_DIM};
use subspace_world::render::{GROUP_OFFSETS, SCHEMA};
use subspace_world::train::{self, TAG_GATES};
use tch::{Device, Kind, Tensor};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../default")
}

#[test]
fn generator_loads_with_metadata_shapes_range_and_gradient() {
    let m: GeneratorMeta = meta::read_json(&dir().join("generator.json")).unwrap();
    assert_eq!(m.format, "subspace.generator/1");
    assert_eq!(m.name, "default-faces");
    assert_eq!((m.latent.dim, m.latent.distribution.as_str()), (64, "normal"));
    assert_eq!((m.output.channels, m.output.height, m.output.width), (3, 64, 64));
    assert_eq!(m.output.range, [-1.0, 1.0]);
    assert!(m.training.steps > 0);

    let g = gates::load_module(&dir().join("generator.pt")).unwrap();
    let params = g.named_parameters().unwrap();
    let first = params.iter().find(|(n, _)| *n == m.first_layer).expect("first_layer among named_parameters");
    assert_eq!(first.1.size(), [4096, 64]);

    tch::manual_seed(0);
    for n in [1i64, 7] {
        let z = Tensor::randn([n, LATENT_DIM], (Kind::Float, Device::Cpu));
        let x = tch::no_grad(|| g.forward_ts(&[&z])).unwrap();
        assert_eq!(x.size(), [n, 3, 64, 64]);
        assert!(x.min().double_value(&[]) >= -1.0 && x.max().double_value(&[]) <= 1.0);
    }
    // Same z, same image, whatever the batch around it.
    let z = Tensor::randn([4, LATENT_DIM], (Kind::Float, Device::Cpu));
    let all = tch::no_grad(|| g.forward_ts(&[&z])).unwrap();
    let one = tch::no_grad(|| g.forward_ts(&[&z.narrow(0, 2, 1)])).unwrap();
    assert!((all.narrow(0, 2, 1) - one).abs().max().double_value(&[]) < 1e-5);
    // Differentiable with respect to z.
    let z = Tensor::randn([2, LATENT_DIM], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let x = g.forward_ts(&[&z]).unwrap();
    x.mean(Kind::Float).backward();
    assert!(z.grad().abs().sum(Kind::Float).double_value(&[]) > 0.0);
}

#[test]
fn classifiers_load_with_metadata_and_give_probabilities_per_group() {
    for role in ["fit", "eval"] {
        let m: ClassifierMeta = meta::read_json(&dir().join(format!("classifier-{role}.json"))).unwrap();
        assert_eq!(m.format, "subspace.classifier/1");
        assert_eq!(m.name, format!("default-faces-{role}"));
        assert_eq!(m.output, "probabilities");
        assert_eq!(m.input.range, [0.0, 1.0]);
        assert_eq!(m.training.role, role);
        assert_eq!(m.groups, meta::schema_groups());
        assert_eq!(m.groups.len(), SCHEMA.len());

        let c = gates::load_module(&dir().join(format!("classifier-{role}.pt"))).unwrap();
        for n in [1i64, 5] {
            let x = Tensor::rand([n, 3, 64, 64], (Kind::Float, Device::Cpu));
            let p = tch::no_grad(|| c.forward_ts(&[&x])).unwrap();
            assert_eq!(p.size(), [n, 13]);
            assert!(p.min().double_value(&[]) >= 0.0 && p.max().double_value(&[]) <= 1.0);
            for (g, (_, classes)) in SCHEMA.iter().enumerate() {
                let s = p.narrow(1, GROUP_OFFSETS[g] as i64, classes.len() as i64).sum_dim_intlist(
                    [1i64].as_slice(),
                    false,
                    Kind::Float,
                );
                assert!((s - 1.0).abs().max().double_value(&[]) < 1e-5, "{role}: group {g} does not sum to 1");
            }
        }
        let x = Tensor::rand([2, 3, 64, 64], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let p = c.forward_ts(&[&x]).unwrap();
        p.narrow(1, 0, 1).sum(Kind::Float).backward();
        assert!(x.grad().abs().sum(Kind::Float).double_value(&[]) > 0.0, "{role}: no gradient to the input");
    }
}

#[test]
fn small_sample_gates() {
    let models = Models::load(&dir()).unwrap();
    // Classifiers read fresh renders.
    for (name, m) in [("fit", &models.fit), ("eval", &models.eval)] {
        let acc =
            train::accuracy_on_renders(|x| Ok(m.forward_ts(&[x])?), train::seed_stream(99, TAG_GATES), 200).unwrap();
        for (g, a) in acc.iter().enumerate() {
            assert!(*a >= 0.9, "{name} classifier: accuracy {a} on group {}", SCHEMA[g].0);
        }
    }
    // Generated faces cover every class of every group and are mostly read confidently.
    tch::manual_seed(11);
    let z = Tensor::randn([500, LATENT_DIM], (Kind::Float, Device::Cpu));
    let x = models.generate_unit(&z).unwrap();
    let pf = tch::no_grad(|| models.fit.forward_ts(&[&x])).unwrap();
    let pe = tch::no_grad(|| models.eval.forward_ts(&[&x])).unwrap();
    for g in gates::generated_gates(&pf, &pe) {
        assert!(g.every_class, "group {}: frequencies {:?}", g.group, g.frequencies);
        assert!(g.confident >= 0.7, "group {}: confident {}", g.group, g.confident);
        assert!(g.tvd <= 0.2, "group {}: tvd {}", g.group, g.tvd);
        assert!(g.agreement >= 0.75, "group {}: agreement {}", g.group, g.agreement);
    }
    let _ = nets::group_max(&pf);
}
