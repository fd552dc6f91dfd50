//! The renderer: determinism, label schema, and that each label is visible where it should be.

use subspace_world::render::{
    self, pixel, sample, Attributes, FRAME_RGB, GROUP_OFFSETS, HAIR_RGB, NUM_CLASSES, SCHEMA, SIZE, SKIN_RGB,
};

fn at(img: &[u8; render::IMAGE_BYTES], p: (f32, f32)) -> [u8; 3] {
    let x = (p.0.floor() as usize).min(SIZE - 1);
    let y = (p.1.floor() as usize).min(SIZE - 1);
    pixel(img, x, y)
}

fn dist(a: [u8; 3], b: [u8; 3]) -> f32 {
    a.iter().zip(b).map(|(&x, y)| (x as f32 - y as f32).powi(2)).sum::<f32>().sqrt()
}

/// Index of the palette entry nearest to a colour.
fn nearest(c: [u8; 3], palette: &[[u8; 3]]) -> usize {
    (0..palette.len()).min_by(|&i, &j| dist(c, palette[i]).total_cmp(&dist(c, palette[j]))).unwrap()
}

#[test]
fn same_seed_same_bytes_and_different_seeds_differ() {
    for seed in [0u64, 1, 42, u64::MAX] {
        let (a1, i1) = render::render(seed);
        let (a2, i2) = render::render(seed);
        assert_eq!(a1, a2);
        assert!(i1 == i2, "seed {seed} is not deterministic");
    }
    let imgs: Vec<_> = (0..50u64).map(|s| render::render(s).1).collect();
    for i in 0..imgs.len() {
        for j in i + 1..imgs.len() {
            assert!(imgs[i] != imgs[j], "seeds {i} and {j} render the same image");
        }
    }
}

#[test]
fn class_vector_is_one_hot_per_group_in_schema_order() {
    assert_eq!(SCHEMA.iter().map(|(_, c)| c.len()).sum::<usize>(), NUM_CLASSES);
    let names: Vec<&str> = SCHEMA.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["hair", "smile", "bangs", "glasses", "skin"]);
    assert_eq!(SCHEMA[0].1, ["black", "brown", "blond", "red"]);
    assert_eq!(SCHEMA[4].1, ["light", "medium", "dark"]);
    let a = Attributes { hair: 2, smile: true, bangs: false, glasses: true, skin: 1 };
    let v = a.to_class_vector();
    let expected = [0., 0., 1., 0., 0., 1., 1., 0., 0., 1., 0., 1., 0.];
    assert_eq!(v, expected);
    for seed in 0..200u64 {
        let (a, _) = sample(seed);
        let v = a.to_class_vector();
        for (g, (_, classes)) in SCHEMA.iter().enumerate() {
            let slice = &v[GROUP_OFFSETS[g]..GROUP_OFFSETS[g] + classes.len()];
            assert_eq!(slice.iter().sum::<f32>(), 1.0);
            assert_eq!(slice[a.classes()[g]], 1.0);
        }
    }
}

#[test]
fn attributes_are_uniform_and_independent_enough() {
    let n = 6000;
    let mut counts = [[0usize; 4]; 5];
    let mut joint = [[0usize; 2]; 2]; // smile x glasses
    for seed in 0..n as u64 {
        let (a, _) = sample(seed);
        for (g, c) in a.classes().iter().enumerate() {
            counts[g][*c] += 1;
        }
        joint[a.smile as usize][a.glasses as usize] += 1;
    }
    for (g, (_, classes)) in SCHEMA.iter().enumerate() {
        for (c, &count) in counts[g].iter().enumerate().take(classes.len()) {
            let f = count as f64 / n as f64;
            assert!((f - 1.0 / classes.len() as f64).abs() < 0.03, "group {g} class {c}: {f}");
        }
    }
    for row in joint {
        for v in row {
            assert!((v as f64 / n as f64 - 0.25).abs() < 0.03);
        }
    }
}

#[test]
fn labels_are_visible_where_they_should_be() {
    for seed in 0..300u64 {
        let (a, l) = sample(seed);
        let (a2, img) = render::render(seed);
        assert_eq!(a, a2);
        let hair = HAIR_RGB[a.hair as usize];
        let skin = SKIN_RGB[a.skin as usize];

        // Hair colour: above the face, inside the hair cap.
        let c = at(&img, l.hair_top());
        assert_eq!(nearest(c, &HAIR_RGB), a.hair as usize, "seed {seed}: hair pixel {c:?} for {a:?}");
        assert!(dist(c, hair) < 40.0, "seed {seed}: hair pixel {c:?} vs {hair:?}");

        // Skin tone: a cheek.
        let c = at(&img, l.cheek());
        assert_eq!(nearest(c, &SKIN_RGB), a.skin as usize, "seed {seed}: cheek {c:?} for {a:?}");
        assert!(dist(c, skin) < 30.0, "seed {seed}: cheek {c:?} vs {skin:?}");

        // Bangs: the forehead is hair with bangs, skin without.
        let c = at(&img, l.forehead());
        if a.bangs {
            assert!(dist(c, hair) < 40.0, "seed {seed}: forehead {c:?} should be hair {hair:?}");
        } else {
            assert!(dist(c, skin) < 40.0, "seed {seed}: forehead {c:?} should be skin {skin:?}");
        }

        // Glasses: a dark frame pixel left of the left eye, skin otherwise.
        let c = at(&img, l.left_frame());
        if a.glasses {
            assert!(c.iter().all(|&v| v < 100), "seed {seed}: frame pixel {c:?} should be dark");
            assert!(dist(c, FRAME_RGB) < dist(c, skin), "seed {seed}: frame pixel {c:?}");
        } else {
            assert!(dist(c, skin) < 40.0, "seed {seed}: no glasses but {c:?} vs skin {skin:?}");
        }

        // Smile: below the mouth line is the open mouth's dark red with a smile, skin without.
        let c = at(&img, (l.mouth().0, l.mouth_y + 2.5 * l.scale));
        if a.smile {
            assert!(c[0] > 90 && c[1] < 60 && c[2] < 70, "seed {seed}: open mouth {c:?}");
        } else {
            assert!(dist(c, skin) < 40.0, "seed {seed}: closed mouth area {c:?} vs skin {skin:?}");
        }
    }
}
