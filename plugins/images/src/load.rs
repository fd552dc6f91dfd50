//! Reading pictures from files: a file or a folder of PNG/JPEG pictures (sorted by name), each decoded, checked,
//! centre-cropped to the target aspect and resized to the generator's image size, as floats in [0, 1]. Every
//! refusal names the file. Reads only the files it is pointed at; writes nothing.

use image::{imageops, DynamicImage, ImageFormat};
use std::path::{Path, PathBuf};
use subspace_sdk::prelude::*;

/// File name endings read as pictures from a folder (case-insensitive); other files (labels, notes) are skipped.
pub const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// Pictures a folder may hold before loading refuses it (each becomes a tensor in memory).
pub const MAX_PICTURES: usize = 100_000;

/// The size pictures are brought to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// 1 (grey) or 3 (RGB).
    pub channels: i64,
    pub height: u32,
    pub width: u32,
}

/// The pictures `path` names: the file itself, or the PNG/JPEG files of the folder (not its subfolders, not
/// hidden files), sorted by file name.
///
/// # Errors
/// The path does not exist or cannot be read, or the folder holds no pictures (or too many).
pub fn list(path: &Path) -> Result<Vec<PathBuf>, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("{shown} does not exist"),
        _ => format!("cannot read {shown}: {e}"),
    })?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries = std::fs::read_dir(path).map_err(|e| format!("cannot read folder {shown}: {e}"))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot read folder {shown}: {e}"))?;
        let name = entry.file_name().to_string_lossy().to_string();
        let ext = Path::new(&name).extension().map(|e| e.to_string_lossy().to_lowercase()).unwrap_or_default();
        if name.starts_with('.') || !EXTENSIONS.contains(&ext.as_str()) {
            continue;
        }
        // Follows links, as opening the file will.
        if entry.path().is_file() {
            files.push(entry.path());
        }
    }
    if files.is_empty() {
        return Err(format!("folder {shown} holds no PNG or JPEG pictures (files ending in .png, .jpg or .jpeg)"));
    }
    if files.len() > MAX_PICTURES {
        return Err(format!("folder {shown} holds {} pictures, more than {MAX_PICTURES}", files.len()));
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}

/// Decodes a PNG or JPEG picture, told apart by its first bytes (not its name).
///
/// # Errors
/// Not a PNG or JPEG, or undecodable; the message names `path`.
pub fn decode(path: &Path, bytes: &[u8]) -> Result<DynamicImage, String> {
    let shown = path.display();
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        image::load_from_memory_with_format(bytes, ImageFormat::Png)
            .map_err(|e| format!("{shown} is not a readable PNG picture: {e}"))
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        decode_jpeg(bytes).map_err(|e| format!("{shown} is not a readable JPEG picture: {e}"))
    } else {
        let what = if bytes.is_empty() { "an empty file" } else { "neither PNG nor JPEG (by its first bytes)" };
        Err(format!("{shown} is not a picture: {what}"))
    }
}

/// A JPEG as 8-bit RGB (grey and CMYK pictures are converted by the decoder).
fn decode_jpeg(bytes: &[u8]) -> Result<DynamicImage, String> {
    use zune_core::{bytestream::ZCursor, colorspace::ColorSpace, options::DecoderOptions};
    let options = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::RGB);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    let pixels = decoder.decode().map_err(|e| format!("{e:?}"))?;
    let info = decoder.info().ok_or("the decoder gave no picture size")?;
    let (w, h) = (u32::from(info.width), u32::from(info.height));
    let rgb = image::RgbImage::from_raw(w, h, pixels)
        .ok_or_else(|| format!("the decoder gave the wrong number of bytes for {w} x {h} RGB"))?;
    Ok(DynamicImage::ImageRgb8(rgb))
}

/// `img` checked (no transparency), centre-cropped to the aspect of `shape` and resized to it, as a
/// `channels x height x width` float tensor in [0, 1].
///
/// # Errors
/// The picture is empty or has transparent pixels; the message names `path`.
pub fn prepare(path: &Path, img: &DynamicImage, shape: Shape) -> Result<Tensor, String> {
    let shown = path.display();
    let (w, h) = (img.width(), img.height());
    if w == 0 || h == 0 {
        return Err(format!("{shown} is empty ({w} x {h} pixels)"));
    }
    if img.color().has_alpha() && img.to_rgba16().pixels().any(|p| p.0[3] != u16::MAX) {
        return Err(format!(
            "{shown} has transparent pixels (an alpha channel that is not opaque everywhere); the generator draws \
             opaque pictures: flatten it onto a background first"
        ));
    }
    // The largest centred window of the target aspect, then one resize (Catmull-Rom; its support widens when
    // shrinking, so downscaling does not alias).
    let (tw, th) = (u64::from(shape.width), u64::from(shape.height));
    let (cw, ch) = if u64::from(w) * th > u64::from(h) * tw {
        (((u64::from(h) * tw) / th).max(1) as u32, h)
    } else {
        (w, ((u64::from(w) * th) / tw).max(1) as u32)
    };
    let cropped = img.crop_imm((w - cw) / 2, (h - ch) / 2, cw, ch);
    let resized = if (cw, ch) == (shape.width, shape.height) {
        cropped
    } else {
        cropped.resize_exact(shape.width, shape.height, imageops::FilterType::CatmullRom)
    };
    let (data, c) = match shape.channels {
        1 => (resized.to_luma8().into_raw(), 1),
        _ => (resized.to_rgb8().into_raw(), 3),
    };
    let t = Tensor::from_slice(&data).reshape([i64::from(shape.height), i64::from(shape.width), c]);
    Ok(t.permute([2, 0, 1]).to_kind(Kind::Float) / 255.0)
}

/// Reads, checks and prepares one picture file.
///
/// # Errors
/// As [`decode`] and [`prepare`], or the file cannot be read.
pub fn read(path: &Path, shape: Shape) -> Result<Tensor, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    prepare(path, &decode(path, &bytes)?, shape)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("subspace-images-load-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    const RGB: Shape = Shape { channels: 3, height: 8, width: 8 };

    /// A `w x h` RGB picture whose left half is red and right half blue.
    fn halves(w: u32, h: u32) -> image::RgbImage {
        image::RgbImage::from_fn(w, h, |x, _| if x < w / 2 { image::Rgb([255, 0, 0]) } else { image::Rgb([0, 0, 255]) })
    }

    #[test]
    fn folders_list_pictures_sorted_and_skip_other_files() {
        let d = scratch("list");
        for f in ["b.png", "a.JPG", "c.jpeg", "labels.csv", ".hidden.png", "notes.txt"] {
            std::fs::write(d.join(f), b"x").unwrap();
        }
        std::fs::create_dir(d.join("sub.png")).unwrap();
        let names: Vec<String> =
            list(&d).unwrap().iter().map(|p| p.file_name().unwrap().to_string_lossy().into()).collect();
        assert_eq!(names, ["a.JPG", "b.png", "c.jpeg"]);
        assert_eq!(list(&d.join("labels.csv")).unwrap(), vec![d.join("labels.csv")]);
        let e = list(&d.join("missing")).unwrap_err();
        assert!(e.contains("missing") && e.contains("does not exist"), "{e}");
        let empty = d.join("empty");
        std::fs::create_dir(&empty).unwrap();
        let e = list(&empty).unwrap_err();
        assert!(e.contains("empty") && e.contains("holds no PNG or JPEG"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn png_and_jpeg_are_cropped_to_the_centre_and_resized() {
        let d = scratch("decode");
        // 32 x 16: the centred 16 x 16 window is half red, half blue; a 2 x 2 result keeps that split.
        let png = d.join("wide.png");
        halves(32, 16).save(&png).unwrap();
        let t = read(&png, Shape { channels: 3, height: 2, width: 2 }).unwrap();
        assert_eq!(t.size(), [3, 2, 2]);
        let px = |c: i64, x: i64| t.double_value(&[c, 0, x]);
        assert!(px(0, 0) > 0.9 && px(2, 0) < 0.1, "left is red");
        assert!(px(0, 1) < 0.1 && px(2, 1) > 0.9, "right is blue");

        // A tall picture keeps its middle rows: top third white, middle red, bottom white.
        let tall = image::RgbImage::from_fn(6, 18, |_, y| {
            if (6..12).contains(&y) {
                image::Rgb([255, 0, 0])
            } else {
                image::Rgb([255, 255, 255])
            }
        });
        let p = d.join("tall.png");
        tall.save(&p).unwrap();
        let t = read(&p, Shape { channels: 3, height: 3, width: 3 }).unwrap();
        assert!(t.narrow(0, 1, 2).max().double_value(&[]) < 0.05, "only red is left: {t}");

        let jpg = d.join("photo.jpg");
        let pic = halves(40, 40);
        let enc = jpeg_encoder::Encoder::new_file(&jpg, 95).unwrap();
        enc.encode(pic.as_raw(), 40, 40, jpeg_encoder::ColorType::Rgb).unwrap();
        let t = read(&jpg, RGB).unwrap();
        assert_eq!(t.size(), [3, 8, 8]);
        assert!(t.double_value(&[0, 4, 0]) > 0.85 && t.double_value(&[2, 4, 7]) > 0.85);
        // Grey output for a one-channel generator.
        assert_eq!(read(&jpg, Shape { channels: 1, ..RGB }).unwrap().size(), [1, 8, 8]);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn bad_files_are_refused_naming_them() {
        let d = scratch("bad");
        let text = d.join("notes.png");
        std::fs::write(&text, b"just some text").unwrap();
        let e = read(&text, RGB).unwrap_err();
        assert!(e.contains("notes.png") && e.contains("not a picture"), "{e}");
        let empty = d.join("empty.jpg");
        std::fs::write(&empty, b"").unwrap();
        assert!(read(&empty, RGB).unwrap_err().contains("empty.jpg is not a picture: an empty file"));

        // A PNG cut short.
        let mut bytes = Vec::new();
        halves(16, 16).write_to(&mut std::io::Cursor::new(&mut bytes), ImageFormat::Png).unwrap();
        let cut = d.join("cut.png");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let e = read(&cut, RGB).unwrap_err();
        assert!(e.contains("cut.png is not a readable PNG"), "{e}");
        let cut = d.join("cut.jpg");
        std::fs::write(&cut, [0xFF, 0xD8, 0xFF, 0xE0, 0, 16]).unwrap();
        assert!(read(&cut, RGB).unwrap_err().contains("cut.jpg is not a readable JPEG"));

        // Transparency is refused; an alpha channel that is opaque everywhere is fine.
        let mut rgba = image::RgbaImage::from_pixel(4, 4, image::Rgba([10, 20, 30, 255]));
        let opaque = d.join("opaque.png");
        rgba.save(&opaque).unwrap();
        assert!(read(&opaque, RGB).is_ok());
        rgba.put_pixel(1, 1, image::Rgba([0, 0, 0, 0]));
        let see_through = d.join("see-through.png");
        rgba.save(&see_through).unwrap();
        let e = read(&see_through, RGB).unwrap_err();
        assert!(e.contains("see-through.png has transparent pixels"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
