//! Image grids: a batch of N x C x H x W images in [0, 1] laid out in rows and columns, as an RGB bitmap.

use image::{ImageEncoder, Rgb, RgbImage};
use subspace_sdk::edits::EditLayout;
use subspace_sdk::tch::{Device, Kind, Tensor};

/// The colour between and around the cells.
pub const PAD_COLOUR: Rgb<u8> = Rgb([255, 255, 255]);
/// Largest grid bitmap written, in pixels (about 300 MB of RGB).
pub const MAX_PIXELS: u64 = 100_000_000;

/// Images on the CPU as f32, N x C x H x W row-major, C = 1 or 3, every value finite.
#[derive(Debug, Clone)]
pub struct ImageBatch {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub data: Vec<f32>,
}

impl ImageBatch {
    /// Checks the shape, the channel count and the values.
    pub fn new(n: usize, c: usize, h: usize, w: usize, data: Vec<f32>) -> Result<Self, String> {
        if c != 1 && c != 3 {
            return Err(format!("images must have 1 or 3 channels, got {c} (shape [{n}, {c}, {h}, {w}])"));
        }
        if n == 0 || h == 0 || w == 0 {
            return Err(format!("images are empty (shape [{n}, {c}, {h}, {w}])"));
        }
        if data.len() != n * c * h * w {
            return Err(format!("{} values do not fill shape [{n}, {c}, {h}, {w}]", data.len()));
        }
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            let per = c * h * w;
            return Err(format!("image {} holds a NaN or infinite value ({})", i / per, data[i]));
        }
        Ok(ImageBatch { n, c, h, w, data })
    }

    /// Copies a 4-D float tensor (any device) to the CPU.
    pub fn from_tensor(t: &Tensor) -> Result<Self, String> {
        let size = t.size();
        if size.len() != 4 {
            return Err(format!("images must be 4-D (N x C x H x W), got shape {size:?}"));
        }
        if !t.is_floating_point() {
            return Err(format!("images must be floats in [0, 1], got {:?}", t.kind()));
        }
        let [n, c, h, w] = [size[0], size[1], size[2], size[3]].map(|d| d as usize);
        if c != 1 && c != 3 {
            return Err(format!("images must have 1 or 3 channels, got {c} (shape {size:?})"));
        }
        let cpu = t.detach().to_device(Device::Cpu).to_kind(Kind::Float).contiguous().reshape([-1]);
        let data = Vec::<f32>::try_from(&cpu).map_err(|e| format!("cannot read the images: {e}"))?;
        Self::new(n, c, h, w, data)
    }

    /// The 8-bit RGB colour of pixel (`y`, `x`) of image `i` (values clamped to [0, 1]).
    pub fn rgb(&self, i: usize, y: usize, x: usize) -> Rgb<u8> {
        let plane = self.h * self.w;
        let base = i * self.c * plane + y * self.w + x;
        let q = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
        if self.c == 1 {
            let g = q(self.data[base]);
            Rgb([g, g, g])
        } else {
            Rgb([q(self.data[base]), q(self.data[base + plane]), q(self.data[base + 2 * plane])])
        }
    }
}

/// How cells are spaced and scaled.
#[derive(Debug, Clone, Copy)]
pub struct GridStyle {
    /// Pixels between cells and around the grid.
    pub padding: u32,
    /// Nearest-neighbour upscale factor (at least 1).
    pub scale: u32,
}

/// Rows and columns for `n` images: `columns` 0 means ceil(sqrt(n)); never more columns than images.
pub fn grid_shape(n: usize, columns: usize) -> (usize, usize) {
    let cols = if columns == 0 { (n as f64).sqrt().ceil() as usize } else { columns }.clamp(1, n.max(1));
    (n.div_ceil(cols), cols)
}

/// Size in pixels of a grid of `rows` x `cols` cells of `h` x `w` images.
pub fn grid_size(rows: usize, cols: usize, h: usize, w: usize, style: GridStyle) -> (u64, u64) {
    let s = style.scale.max(1) as u64;
    let p = style.padding as u64;
    (cols as u64 * (w as u64 * s + p) + p, rows as u64 * (h as u64 * s + p) + p)
}

/// Lays `indices` (images of `batch`) out row by row on a `rows` x `cols` grid.
pub fn compose(
    batch: &ImageBatch,
    indices: &[usize],
    rows: usize,
    cols: usize,
    style: GridStyle,
) -> Result<RgbImage, String> {
    let (gw, gh) = grid_size(rows, cols, batch.h, batch.w, style);
    if gw * gh > MAX_PIXELS || gw > u32::MAX as u64 || gh > u32::MAX as u64 {
        return Err(format!("the grid would be {gw} x {gh} pixels, more than the {MAX_PIXELS} allowed"));
    }
    let s = style.scale.max(1) as usize;
    let p = style.padding as usize;
    let mut img = RgbImage::from_pixel(gw as u32, gh as u32, PAD_COLOUR);
    for (k, &i) in indices.iter().enumerate().take(rows * cols) {
        let (r, c) = (k / cols, k % cols);
        let x0 = p + c * (batch.w * s + p);
        let y0 = p + r * (batch.h * s + p);
        for y in 0..batch.h * s {
            for x in 0..batch.w * s {
                img.put_pixel((x0 + x) as u32, (y0 + y) as u32, batch.rgb(i, y / s, x / s));
            }
        }
    }
    Ok(img)
}

/// All images of `batch` on one grid.
pub fn grid(batch: &ImageBatch, columns: usize, style: GridStyle) -> Result<RgbImage, String> {
    let (rows, cols) = grid_shape(batch.n, columns);
    let indices: Vec<usize> = (0..batch.n).collect();
    compose(batch, &indices, rows, cols, style)
}

/// Checks `layout` against the `n` images it orders ([`EditLayout::check`]), and that its target names make
/// distinct, non-empty file names (each target gets its own file).
pub fn check_layout(layout: &EditLayout, n: usize) -> Result<(), String> {
    // `check` multiplies the counts: refuse a product that overflows before it is taken.
    let rows = [layout.samples, layout.steps].iter().try_fold(layout.targets.len() as i64, |a, &b| a.checked_mul(b));
    if rows.is_none() {
        return Err(format!("layout counts overflow: {} samples x {} steps", layout.samples, layout.steps));
    }
    layout.check(n as i64)?;
    let mut seen = std::collections::HashSet::new();
    for t in &layout.targets {
        if t.is_empty() {
            return Err("layout has an empty target name".into());
        }
        if !seen.insert(file_safe(t)) {
            return Err(format!("layout target {t:?} appears twice (or maps to the same file name as another)"));
        }
    }
    Ok(())
}

/// `name` with every character but letters, digits, `.`, `-` and `_` replaced by `_` (for file names).
pub fn file_safe(name: &str) -> String {
    name.chars().map(|c| if c.is_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' }).collect()
}

/// The grid of target `k` of a checked `layout`: rows = samples, columns = steps.
pub fn target_grid(batch: &ImageBatch, layout: &EditLayout, k: usize, style: GridStyle) -> Result<RgbImage, String> {
    let (samples, steps) = (layout.samples as usize, layout.steps as usize);
    let per = samples * steps;
    let indices: Vec<usize> = (k * per..(k + 1) * per).collect();
    compose(batch, &indices, samples, steps, style)
}

/// `left` and `right` next to each other, `gap` pixels apart, on the padding colour (tops aligned).
pub fn side_by_side(left: &RgbImage, right: &RgbImage, gap: u32) -> RgbImage {
    let (w, h) = (left.width() + gap + right.width(), left.height().max(right.height()));
    let mut img = RgbImage::from_pixel(w, h, PAD_COLOUR);
    for (x, y, p) in left.enumerate_pixels() {
        img.put_pixel(x, y, *p);
    }
    for (x, y, p) in right.enumerate_pixels() {
        img.put_pixel(left.width() + gap + x, y, *p);
    }
    img
}

/// PNG file bytes of `img`.
pub fn png_bytes(img: &RgbImage) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(img.as_raw(), img.width(), img.height(), image::ExtendedColorType::Rgb8)
        .map_err(|e| format!("PNG encoding failed: {e}"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` grey 3-channel images of `h` x `w` with value i/(n) for image i, except image `red`, pure red.
    fn batch(n: usize, h: usize, w: usize, red: Option<usize>) -> ImageBatch {
        let mut data = Vec::with_capacity(n * 3 * h * w);
        for i in 0..n {
            for ch in 0..3 {
                let v = match red {
                    Some(r) if r == i => {
                        if ch == 0 {
                            1.0
                        } else {
                            0.0
                        }
                    }
                    _ => i as f32 / n as f32,
                };
                data.extend(std::iter::repeat_n(v, h * w));
            }
        }
        ImageBatch::new(n, 3, h, w, data).unwrap()
    }

    const RED: Rgb<u8> = Rgb([255, 0, 0]);

    #[test]
    fn two_grids_side_by_side_keep_their_pixels_and_a_gap() {
        let style = GridStyle { padding: 0, scale: 1 };
        let left = grid(&batch(2, 2, 2, Some(1)), 2, style).unwrap(); // 4 x 2: grey, red
        let right = grid(&batch(1, 3, 3, Some(0)), 1, style).unwrap(); // 3 x 3: red
        let both = side_by_side(&left, &right, 5);
        assert_eq!((both.width(), both.height()), (4 + 5 + 3, 3));
        assert_eq!(*both.get_pixel(2, 0), RED);
        assert_eq!(*both.get_pixel(0, 0), Rgb([0, 0, 0]));
        assert_eq!(*both.get_pixel(6, 1), PAD_COLOUR);
        assert_eq!(*both.get_pixel(9, 2), RED);
        assert_eq!(*both.get_pixel(1, 2), PAD_COLOUR, "below the shorter grid is padding");
    }

    #[test]
    fn grid_shape_defaults_to_square() {
        assert_eq!(grid_shape(1, 0), (1, 1));
        assert_eq!(grid_shape(5, 0), (2, 3));
        assert_eq!(grid_shape(9, 0), (3, 3));
        assert_eq!(grid_shape(10, 0), (3, 4));
        assert_eq!(grid_shape(10, 5), (2, 5));
        assert_eq!(grid_shape(3, 8), (1, 3));
    }

    #[test]
    fn red_image_lands_in_its_cell() {
        // 6 images of 4 x 5, 3 columns, padding 2, scale 2: cells of 8 x 10 px.
        let b = batch(6, 4, 5, Some(4));
        let style = GridStyle { padding: 2, scale: 2 };
        let img = grid(&b, 3, style).unwrap();
        assert_eq!((img.width(), img.height()), (3 * (10 + 2) + 2, 2 * (8 + 2) + 2));
        // Image 4 is row 1, column 1: x from 2 + 12 = 14 to 23, y from 2 + 10 = 12 to 19.
        for y in 12..20 {
            for x in 14..24 {
                assert_eq!(*img.get_pixel(x, y), RED, "({x}, {y})");
            }
        }
        // Padding around it, and no red anywhere else.
        assert_eq!(*img.get_pixel(13, 15), PAD_COLOUR);
        assert_eq!(*img.get_pixel(24, 15), PAD_COLOUR);
        assert_eq!(*img.get_pixel(18, 11), PAD_COLOUR);
        let reds = img.pixels().filter(|p| **p == RED).count();
        assert_eq!(reds, 8 * 10);
        // Image 0 (value 0) is black at the top left cell.
        assert_eq!(*img.get_pixel(2, 2), Rgb([0, 0, 0]));
        // Image 5 (value 5/6) is grey at the bottom right cell.
        let g = (5.0f32 / 6.0 * 255.0).round() as u8;
        assert_eq!(*img.get_pixel(2 + 2 * 12, 12), Rgb([g, g, g]));
    }

    #[test]
    fn grey_images_become_rgb_and_values_are_clamped() {
        let b = ImageBatch::new(2, 1, 1, 2, vec![0.5, -3.0, 2.0, 1.0]).unwrap();
        let img = grid(&b, 0, GridStyle { padding: 0, scale: 1 }).unwrap();
        assert_eq!((img.width(), img.height()), (4, 1));
        assert_eq!(*img.get_pixel(0, 0), Rgb([128, 128, 128]));
        assert_eq!(*img.get_pixel(1, 0), Rgb([0, 0, 0]));
        assert_eq!(*img.get_pixel(2, 0), Rgb([255, 255, 255]));
    }

    #[test]
    fn bad_batches_are_rejected() {
        assert!(ImageBatch::new(1, 2, 1, 1, vec![0.0; 2]).unwrap_err().contains("1 or 3 channels, got 2"));
        assert!(ImageBatch::new(2, 1, 1, 1, vec![0.0, f32::NAN]).unwrap_err().contains("image 1 holds a NaN"));
        let t = Tensor::zeros([2, 3, 4], (Kind::Float, Device::Cpu));
        assert!(ImageBatch::from_tensor(&t).unwrap_err().contains("4-D"));
        let t = Tensor::zeros([2, 4, 4, 4], (Kind::Float, Device::Cpu));
        assert!(ImageBatch::from_tensor(&t).unwrap_err().contains("got 4"));
        let t = Tensor::ones([2, 3, 4, 5], (Kind::Float, Device::Cpu));
        let b = ImageBatch::from_tensor(&t).unwrap();
        assert_eq!((b.n, b.c, b.h, b.w, b.data.len()), (2, 3, 4, 5, 120));
    }

    fn layout(targets: &[&str], samples: i64, ratios: &[f64]) -> EditLayout {
        let targets = targets.iter().map(|t| t.to_string()).collect();
        EditLayout { targets, samples, steps: ratios.len() as i64, ratios: ratios.to_vec() }
    }

    #[test]
    fn layout_splits_per_target() {
        // 2 targets x 3 samples x 4 steps of 5 x 6 images; target 1, sample 2, step 1 is red.
        let red = 12 + 2 * 4 + 1;
        let b = batch(24, 5, 6, Some(red));
        let layout = layout(&["hair.black", "smile"], 3, &[0.0, 0.25, 0.5, 1.0]);
        check_layout(&layout, 24).unwrap();
        let style = GridStyle { padding: 1, scale: 1 };
        let grids: Vec<RgbImage> = (0..2).map(|k| target_grid(&b, &layout, k, style).unwrap()).collect();
        for img in &grids {
            // 4 columns of 6 px, 3 rows of 5 px, padding 1.
            assert_eq!((img.width(), img.height()), (4 * 7 + 1, 3 * 6 + 1));
        }
        assert_eq!(grids[0].pixels().filter(|p| **p == RED).count(), 0);
        // Row 2, column 1 of the second grid.
        assert_eq!(*grids[1].get_pixel(1 + 7, 1 + 2 * 6), RED);
        assert_eq!(grids[1].pixels().filter(|p| **p == RED).count(), 30);
    }

    #[test]
    fn layout_errors_say_what_is_wrong() {
        let e = check_layout(&layout(&["a", "b"], 3, &[0.0; 4]), 20).unwrap_err();
        assert!(e.contains("2 targets x 3 samples x 4 steps = 24 rows, but 20 came in"), "{e}");
        let short = EditLayout { ratios: vec![0.0], ..layout(&["a"], 1, &[0.0, 1.0]) };
        let e = check_layout(&short, 2).unwrap_err();
        assert!(e.contains("1 ratios for 2 steps"), "{e}");
        let e = check_layout(&layout(&["a"], 0, &[0.0, 1.0]), 0).unwrap_err();
        assert!(e.contains("samples >= 1"), "{e}");
        let e = check_layout(&layout(&["a", "a"], 1, &[0.0]), 2).unwrap_err();
        assert!(e.contains("twice"), "{e}");
        let e = check_layout(&layout(&["a b", "a/b"], 1, &[0.0]), 2).unwrap_err();
        assert!(e.contains("same file name"), "{e}");
        let e = check_layout(&EditLayout { samples: i64::MAX, ..layout(&["a"], 1, &[0.0, 1.0]) }, 2).unwrap_err();
        assert!(e.contains("overflow"), "{e}");
        let e = check_layout(&layout(&["a", ""], 1, &[0.0]), 2).unwrap_err();
        assert!(e.contains("empty target name"), "{e}");
    }

    #[test]
    fn png_round_trips() {
        let b = batch(3, 2, 2, Some(1));
        let img = grid(&b, 0, GridStyle { padding: 2, scale: 3 }).unwrap();
        let back = image::load_from_memory(&png_bytes(&img).unwrap()).unwrap().to_rgb8();
        assert_eq!(back, img);
    }

    #[test]
    fn file_safe_names() {
        assert_eq!(file_safe("hair.black"), "hair.black");
        assert_eq!(file_safe("a/b c"), "a_b_c");
    }
}
