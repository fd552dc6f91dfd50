//! Deterministic procedural renderer of 64x64 RGB cartoon faces.
//!
//! Every image is a pure function of a `u64` seed: the seed drives a ChaCha8 generator that first draws the five
//! labelled attributes (independently and uniformly) and then the unlabelled nuisance (face position and size, eye
//! spacing, background shade). The scene is painted back to front at 2x resolution and box-filtered down to 64x64.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Image side in pixels.
pub const SIZE: usize = 64;
/// Bytes of one RGB image, row-major, channel last.
pub const IMAGE_BYTES: usize = SIZE * SIZE * 3;
/// Supersampling factor per axis.
const SS: usize = 2;

/// The label schema: attribute groups and their classes, in the order of [`Attributes::to_class_vector`].
pub const SCHEMA: [(&str, &[&str]); 5] = [
    ("hair", &["black", "brown", "blond", "red"]),
    ("smile", &["no", "yes"]),
    ("bangs", &["no", "yes"]),
    ("glasses", &["no", "yes"]),
    ("skin", &["light", "medium", "dark"]),
];
/// Total number of classes over all groups.
pub const NUM_CLASSES: usize = 13;
/// Offset of each group's first class in the class vector.
pub const GROUP_OFFSETS: [usize; 5] = [0, 4, 6, 8, 10];

/// Hair palette, indexed by hair class.
pub const HAIR_RGB: [[u8; 3]; 4] = [[28, 26, 30], [125, 72, 32], [240, 206, 96], [214, 58, 28]];
/// Skin palette, indexed by skin class.
pub const SKIN_RGB: [[u8; 3]; 3] = [[252, 224, 200], [206, 150, 104], [104, 68, 52]];
/// Colour of the glasses frames.
pub const FRAME_RGB: [u8; 3] = [16, 16, 20];
const EYE_WHITE: [u8; 3] = [250, 250, 250];
const PUPIL: [u8; 3] = [34, 30, 44];
const MOUTH_LINE: [u8; 3] = [70, 14, 22];
const MOUTH_OPEN: [u8; 3] = [128, 20, 36];
const TEETH: [u8; 3] = [255, 255, 255];
const LENS: [u8; 3] = [170, 210, 240];
const SHIRT: [u8; 3] = [64, 84, 124];

/// The labelled attributes of one face (each field is a class index into [`SCHEMA`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attributes {
    /// 0 black, 1 brown, 2 blond, 3 red.
    pub hair: u8,
    pub smile: bool,
    pub bangs: bool,
    pub glasses: bool,
    /// 0 light, 1 medium, 2 dark.
    pub skin: u8,
}

impl Attributes {
    /// Class index per group, in schema order.
    pub fn classes(&self) -> [usize; 5] {
        [self.hair as usize, self.smile as usize, self.bangs as usize, self.glasses as usize, self.skin as usize]
    }

    /// The 13-dimensional vector with one 1.0 per group (one-hot per group, schema order).
    pub fn to_class_vector(&self) -> [f32; NUM_CLASSES] {
        let mut v = [0.0; NUM_CLASSES];
        for (g, c) in self.classes().iter().enumerate() {
            v[GROUP_OFFSETS[g] + c] = 1.0;
        }
        v
    }

    /// Class names per group, in schema order.
    pub fn class_names(&self) -> [&'static str; 5] {
        let c = self.classes();
        [SCHEMA[0].1[c[0]], SCHEMA[1].1[c[1]], SCHEMA[2].1[c[2]], SCHEMA[3].1[c[3]], SCHEMA[4].1[c[4]]]
    }
}

/// Unlabelled nuisance and the derived geometry of one face, in 64-pixel coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Layout {
    /// Face centre.
    pub cx: f32,
    pub cy: f32,
    /// Face half-width and half-height.
    pub rx: f32,
    pub ry: f32,
    /// Overall scale (1.0 is nominal).
    pub scale: f32,
    /// Horizontal distance from the face centre to each eye.
    pub eye_dx: f32,
    /// Eye row.
    pub eye_y: f32,
    /// Mouth row.
    pub mouth_y: f32,
    /// Background shade in [0, 1] (scaled into a light blue-grey).
    pub background: f32,
}

impl Layout {
    /// Where the forehead sits: between the top hairline and the bangs' lower edge, above the eyes.
    pub fn forehead(&self) -> (f32, f32) {
        (self.cx, self.cy - 0.40 * self.ry)
    }
    /// A point inside the hair that is never covered by the face (above the face, inside the hair cap).
    pub fn hair_top(&self) -> (f32, f32) {
        (self.cx, self.cy - self.ry - 1.5 * self.scale)
    }
    /// A point on the left glasses frame (the ring left of the left eye).
    pub fn left_frame(&self) -> (f32, f32) {
        (self.cx - self.eye_dx - 5.0 * self.scale, self.eye_y)
    }
    /// A cheek point: bare skin whatever the attributes.
    pub fn cheek(&self) -> (f32, f32) {
        (self.cx + 0.55 * self.rx, self.cy + 0.30 * self.ry)
    }
    /// The middle of the mouth.
    pub fn mouth(&self) -> (f32, f32) {
        (self.cx, self.mouth_y + 1.5 * self.scale)
    }
}

/// Draws the attributes and the layout of a seed (no pixels).
pub fn sample(seed: u64) -> (Attributes, Layout) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let attrs = Attributes {
        hair: rng.gen_range(0..4u8),
        smile: rng.gen_bool(0.5),
        bangs: rng.gen_bool(0.5),
        glasses: rng.gen_bool(0.5),
        skin: rng.gen_range(0..3u8),
    };
    let scale: f32 = rng.gen_range(0.90..1.05);
    let cx = 32.0 + rng.gen_range(-3.0..3.0f32);
    let cy = 33.0 + rng.gen_range(-2.5..2.5f32);
    let rx = 19.0 * scale;
    let ry = 23.0 * scale;
    let eye_dx = rng.gen_range(6.9..9.0f32) * scale;
    let background = rng.gen_range(0.0..1.0f32);
    let layout = Layout { cx, cy, rx, ry, scale, eye_dx, eye_y: cy - 0.06 * ry, mouth_y: cy + 0.44 * ry, background };
    (attrs, layout)
}

/// Renders the face of a seed: its attributes and the RGB bytes (row-major, channel last).
pub fn render(seed: u64) -> (Attributes, [u8; IMAGE_BYTES]) {
    let (attrs, layout) = sample(seed);
    let mut out = [0u8; IMAGE_BYTES];
    paint(&attrs, &layout, &mut out);
    (attrs, out)
}

/// Renders into a caller's buffer (avoids a 12 KiB copy in bulk use).
pub fn render_into(seed: u64, out: &mut [u8; IMAGE_BYTES]) -> Attributes {
    let (attrs, layout) = sample(seed);
    paint(&attrs, &layout, out);
    attrs
}

/// The colour of the scene at a point (64-pixel coordinates), painted front to back: the first layer that covers
/// the point decides, except the lens tint, which blends over what lies behind it.
fn shade(a: &Attributes, l: &Layout, x: f32, y: f32) -> [f32; 3] {
    let s = l.scale;
    let hair = rgb(HAIR_RGB[a.hair as usize]);
    let skin = rgb(SKIN_RGB[a.skin as usize]);
    let fdx = (x - l.cx) / l.rx;
    let fdy = (y - l.cy) / l.ry;
    let in_face = fdx * fdx + fdy * fdy <= 1.0;

    // Glasses: thick dark rings round the eyes, a bridge between them and arms to the face edge.
    let mut lens = false;
    if a.glasses {
        let (r_in, r_out) = (4.1 * s, 6.0 * s);
        for ex in [l.cx - l.eye_dx, l.cx + l.eye_dx] {
            let d = ((x - ex).powi(2) + (y - l.eye_y).powi(2)).sqrt();
            if d >= r_in && d <= r_out {
                return rgb(FRAME_RGB);
            }
            if d < r_in {
                lens = true;
            }
        }
        let band = (y - l.eye_y + 0.6 * s).abs() <= 0.9 * s;
        let between = (x - l.cx).abs() <= l.eye_dx - r_in;
        let outside = (x - l.cx).abs() >= l.eye_dx + r_in && in_face;
        if band && (between || outside) {
            return rgb(FRAME_RGB);
        }
    }
    let base = shade_face(a, l, x, y, hair, skin, in_face);
    if lens {
        let t = rgb(LENS);
        return [0.65 * base[0] + 0.35 * t[0], 0.65 * base[1] + 0.35 * t[1], 0.65 * base[2] + 0.35 * t[2]];
    }
    base
}

fn shade_face(a: &Attributes, l: &Layout, x: f32, y: f32, hair: [f32; 3], skin: [f32; 3], in_face: bool) -> [f32; 3] {
    let s = l.scale;
    let ux = (x - l.cx) / l.rx; // -1..1 across the face

    // Eyes: white almond with a dark pupil.
    for ex in [l.cx - l.eye_dx, l.cx + l.eye_dx] {
        let dx = (x - ex) / (3.3 * s);
        let dy = (y - l.eye_y) / (2.5 * s);
        if dx * dx + dy * dy <= 1.0 {
            let p = ((x - ex).powi(2) + (y - l.eye_y).powi(2)).sqrt();
            return if p <= 1.7 * s { rgb(PUPIL) } else { rgb(EYE_WHITE) };
        }
    }

    // Mouth: a wide open grin (teeth on top) or a thick straight closed mouth.
    if a.smile {
        let my = l.mouth_y - 1.5 * s;
        let dx = (x - l.cx) / (8.5 * s);
        let dy = (y - my) / (7.0 * s);
        if y >= my && dx * dx + dy * dy <= 1.0 {
            return if y <= my + 2.0 * s { rgb(TEETH) } else { rgb(MOUTH_OPEN) };
        }
    } else if (x - l.cx).abs() <= 6.5 * s && (y - l.mouth_y).abs() <= 1.5 * s {
        return rgb(MOUTH_LINE);
    }

    // Nose: a small darker patch of skin.
    {
        let dx = (x - l.cx) / (1.7 * s);
        let dy = (y - (l.cy + 0.20 * l.ry)) / (1.3 * s);
        if dx * dx + dy * dy <= 1.0 {
            return scale_rgb(skin, 0.78);
        }
    }

    if in_face {
        // Bangs: a fringe down to just above the eyes, with a zigzag lower edge outlined darker.
        if a.bangs {
            let period = 3.2 * s;
            let phase = ((x - l.cx) / period).rem_euclid(1.0);
            let tooth = (2.0 * phase - 1.0).abs(); // 0 at a tip, 1 between tips
            let edge = l.cy - 0.27 * l.ry + 1.8 * s * (1.0 - tooth);
            if y <= edge - 0.9 * s {
                return hair;
            }
            if y <= edge {
                return scale_rgb(hair, 0.55);
            }
        }
        // Top hairline, always: hair covers the crown of the face ellipse.
        let hairline = l.cy - 0.72 * l.ry + 0.22 * l.ry * ux * ux;
        if y <= hairline {
            return hair;
        }
        return skin;
    }

    // Hair behind the head: a larger ellipse, down to about ear level.
    {
        let dx = (x - l.cx) / (l.rx + 4.2 * s);
        let dy = (y - (l.cy - 2.0 * s)) / (l.ry + 3.2 * s);
        if dx * dx + dy * dy <= 1.0 && y <= l.cy + 0.30 * l.ry {
            return hair;
        }
    }

    // Neck and shoulders.
    if (x - l.cx).abs() <= 6.5 * s && y >= l.cy + 0.5 * l.ry {
        return scale_rgb(skin, 0.84);
    }
    {
        let dx = (x - l.cx) / (27.0 * s);
        let dy = (y - (l.cy + l.ry + 14.0 * s)) / (12.0 * s);
        if dx * dx + dy * dy <= 1.0 {
            return rgb(SHIRT);
        }
    }

    // Plain background: a light blue-grey whose brightness is the nuisance shade.
    let v = 150.0 + 85.0 * l.background;
    [0.78 * v, 0.87 * v, 0.97 * v]
}

fn paint(a: &Attributes, l: &Layout, out: &mut [u8; IMAGE_BYTES]) {
    let inv = 1.0 / SS as f32;
    let norm = 1.0 / (SS * SS) as f32;
    for py in 0..SIZE {
        for px in 0..SIZE {
            let mut acc = [0.0f32; 3];
            for sy in 0..SS {
                for sx in 0..SS {
                    let x = px as f32 + (sx as f32 + 0.5) * inv;
                    let y = py as f32 + (sy as f32 + 0.5) * inv;
                    let c = shade(a, l, x, y);
                    acc[0] += c[0];
                    acc[1] += c[1];
                    acc[2] += c[2];
                }
            }
            let o = (py * SIZE + px) * 3;
            for k in 0..3 {
                out[o + k] = (acc[k] * norm).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
}

fn rgb(c: [u8; 3]) -> [f32; 3] {
    [c[0] as f32, c[1] as f32, c[2] as f32]
}

fn scale_rgb(c: [f32; 3], f: f32) -> [f32; 3] {
    [c[0] * f, c[1] * f, c[2] * f]
}

/// The pixel at integer coordinates of a rendered image.
pub fn pixel(img: &[u8; IMAGE_BYTES], x: usize, y: usize) -> [u8; 3] {
    let o = (y * SIZE + x) * 3;
    [img[o], img[o + 1], img[o + 2]]
}
