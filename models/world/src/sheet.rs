//! Contact sheets: grids of 64x64 tiles.

use image::{Rgb, RgbImage};

use crate::render::SIZE;

/// Lays out HWC RGB tiles (64x64) in a grid of `cols` columns with a 2-pixel white gutter, upscaled `scale` times.
pub fn grid(tiles: &[Vec<u8>], cols: usize, scale: u32) -> RgbImage {
    let cols = cols.max(1);
    let rows = tiles.len().div_ceil(cols);
    let gap = 2u32;
    let t = SIZE as u32 * scale;
    let w = cols as u32 * (t + gap) + gap;
    let h = rows as u32 * (t + gap) + gap;
    let mut img = RgbImage::from_pixel(w, h, Rgb([255, 255, 255]));
    for (i, tile) in tiles.iter().enumerate() {
        let (r, c) = ((i / cols) as u32, (i % cols) as u32);
        let (ox, oy) = (gap + c * (t + gap), gap + r * (t + gap));
        for y in 0..t {
            for x in 0..t {
                let (sx, sy) = ((x / scale) as usize, (y / scale) as usize);
                let o = (sy * SIZE + sx) * 3;
                img.put_pixel(ox + x, oy + y, Rgb([tile[o], tile[o + 1], tile[o + 2]]));
            }
        }
    }
    img
}

/// Encodes an image as PNG bytes.
pub fn png_bytes(img: &RgbImage) -> anyhow::Result<Vec<u8>> {
    let mut buf = std::io::Cursor::new(Vec::new());
    img.write_to(&mut buf, image::ImageFormat::Png)?;
    Ok(buf.into_inner())
}

/// Encodes one 64x64 HWC RGB tile as PNG bytes.
pub fn tile_png(tile: &[u8]) -> anyhow::Result<Vec<u8>> {
    let img = RgbImage::from_raw(SIZE as u32, SIZE as u32, tile.to_vec()).ok_or_else(|| anyhow::anyhow!("bad tile"))?;
    png_bytes(&img)
}
