//! Still pictures (`agegender image`, a directory source): JPEG through the frame
//! [`Decoder`] (so a still and a camera frame with the same bytes are judged alike), PNG through
//! the image crate; upright (EXIF orientation), and refused from the header when larger than
//! [`MAX_JPEG_SIDE`](super::MAX_JPEG_SIDE) on a side.

use std::path::Path;

use image::metadata::Orientation;

use super::{DecodeError, Decoder};
use crate::rgb::RgbImage;

/// Load a still picture (JPEG or PNG) from disk as upright RGB. Every error starts with the
/// path and says what is wrong with the file: missing, a directory, empty, cut short, damaged,
/// too large (checked against [`MAX_JPEG_SIDE`](super::MAX_JPEG_SIDE) from the header, before the pixels are
/// allocated), or not a JPEG or PNG. JPEGs go through the frame decoder ([`Decoder`]), so a
/// still and a camera frame with the same bytes are judged alike.
pub fn load_image(path: &Path) -> anyhow::Result<RgbImage> {
    let mut out = RgbImage::default();
    load_image_into(path, &mut Decoder::new(), &mut out)?;
    Ok(out)
}

/// [`load_image`] into a reused image, with a reused decoder.
pub fn load_image_into(path: &Path, dec: &mut Decoder, out: &mut RgbImage) -> anyhow::Result<()> {
    let named = |what: String| anyhow::anyhow!("{}: {what}", path.display());
    if path.is_dir() {
        return Err(named("is a directory, not a picture".into()));
    }
    let bytes = std::fs::read(path).map_err(|e| named(format!("cannot read: {e}")))?;
    decode_still(&bytes, dec, out).map_err(|e| named(format!("{e:#}")))
}

/// A still picture's bytes (JPEG or PNG) as upright RGB: [`load_image_into`] without the file.
/// Errors say what is wrong with the bytes (the caller names where they came from).
pub fn decode_still(bytes: &[u8], dec: &mut Decoder, out: &mut RgbImage) -> anyhow::Result<()> {
    if bytes.is_empty() {
        anyhow::bail!("empty file (0 bytes), not a picture");
    }
    if bytes.starts_with(&[0xFF, 0xD8]) {
        Ok(dec.decode_still_jpeg(bytes, out)?)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        decode_png(bytes, out).map_err(|e| anyhow::anyhow!("PNG: {e}"))
    } else {
        let head: Vec<String> = bytes.iter().take(4).map(|b| format!("{b:02X}")).collect();
        anyhow::bail!(
            "not a JPEG or PNG picture (it starts with {})",
            head.join(" ")
        )
    }
}

/// A PNG of any bit depth and colour type as upright 8-bit RGB; the size is checked against
/// [`MAX_JPEG_SIDE`](super::MAX_JPEG_SIDE) from the header before the pixels are allocated.
fn decode_png(bytes: &[u8], out: &mut RgbImage) -> anyhow::Result<()> {
    use image::ImageDecoder;
    let mut reader =
        image::ImageReader::with_format(std::io::Cursor::new(bytes), image::ImageFormat::Png);
    // The default limits (no size limit, 512 MiB of allocations) stay as a backstop; our size
    // check below names the limit the user hit.
    reader.limits(image::Limits::default());
    let mut decoder = reader.into_decoder()?;
    let (w, h) = decoder.dimensions();
    if !crate::capture::frame_size_fits(w, h) {
        anyhow::bail!(DecodeError::TooLarge {
            w: w as usize,
            h: h as usize
        });
    }
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut picture = image::DynamicImage::from_decoder(decoder)?;
    picture.apply_orientation(orientation);
    let rgb = picture.into_rgb8();
    out.width = rgb.width();
    out.height = rgb.height();
    out.data = rgb.into_raw();
    Ok(())
}
