//! Decode: camera frames (MJPEG, YUYV, RGB24) into a preallocated [`RgbImage`].
//!
//! - MJPEG/JPEG: zune-jpeg, decoding straight into the caller's buffer (`decode_into`). USB
//!   cameras often send MJPEG frames without Huffman tables (the AVI1 convention); when a frame
//!   has no DHT segment before its first SOS, the standard tables of ITU T.81 Annex K.3 are
//!   inserted before the SOS, in a scratch buffer owned by the [`Decoder`] and reused.
//! - YUYV (4:2:2 packed, BT.601 limited range as webcams send it): the `yuv` crate.
//! - RGB24: a checked copy.
//! - Still pictures ([`load_image`]): JPEG files through the same [`Decoder`] (plus EXIF
//!   orientation, data after the end-of-image marker ignored, a cut-off scan refused); PNG
//!   through the image crate. Both refuse a header over [`MAX_JPEG_SIDE`] before allocating.
//!
//! JPEG is decoded in zune-jpeg's strict mode: a marker inside the scan data or another
//! defect it can detect is an error, never a picture with invented rows. One defect it cannot
//! see: scan data cut short but followed by an end-of-image marker (it pads with zeros).
//!
//! Allocation: our own buffers (the output image, the DHT scratch) are reused and only grow.
//! zune-jpeg 0.4 itself allocates per decoded JPEG (its per-component row and coefficient
//! buffers and the upsampler scratch are created for each `JpegDecoder`); YUYV and RGB24
//! decoding allocate nothing. Measured: 4 allocations per 640x480 MJPEG frame (`tests/decode.rs`,
//! `yuyv_and_rgb_decoding_allocate_nothing_and_jpeg_allocations_are_bounded`).

use image::metadata::Orientation;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

use crate::capture::{Frame, PixelFormat};
use crate::rgb::RgbImage;

mod dht;
mod still;

pub use dht::{strip_dht, DEFAULT_DHT};
pub use still::{decode_still, load_image, load_image_into};

/// Largest picture side accepted, from a camera frame or a file (JPEG and PNG alike): checked
/// against the header before any pixel buffer is allocated, so a corrupt or hostile header
/// cannot ask for gigabytes (8192x8192 RGB is 192 MiB).
pub const MAX_JPEG_SIDE: usize = crate::capture::MAX_FRAME_SIDE as usize;

/// Why a frame could not be decoded. Every variant says what was wrong with the input.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("empty frame (0 bytes)")]
    Empty,
    #[error(
        "not a JPEG: the data does not start with the SOI marker FF D8 (starts with {0:02X?})"
    )]
    NotJpeg([u8; 2]),
    #[error("truncated JPEG: {len} bytes and no end-of-image marker (FF D9)")]
    TruncatedJpeg { len: usize },
    #[error("corrupt JPEG ({len} bytes): {reason}")]
    CorruptJpeg { len: usize, reason: String },
    #[error("JPEG is {got_w}x{got_h} but the frame was announced as {want_w}x{want_h}")]
    SizeMismatch {
        got_w: u32,
        got_h: u32,
        want_w: u32,
        want_h: u32,
    },
    #[error("picture is {w}x{h}, larger than the {MAX_JPEG_SIDE}-pixel limit on either side")]
    TooLarge { w: usize, h: usize },
    #[error("wrong YUYV length: {got} bytes for {w}x{h}, expected {expected} (2 bytes per pixel)")]
    YuyvLength {
        got: usize,
        expected: usize,
        w: u32,
        h: u32,
    },
    #[error("wrong RGB24 length: {got} bytes for {w}x{h}, expected {expected}")]
    RgbLength {
        got: usize,
        expected: usize,
        w: u32,
        h: u32,
    },
    #[error("invalid frame size {w}x{h}")]
    BadSize { w: u32, h: u32 },
    #[error("YUYV conversion failed for {w}x{h}: {reason}")]
    Yuyv { w: u32, h: u32, reason: String },
}

/// Decodes frames into a caller-owned [`RgbImage`]; keeps its scratch buffers between frames.
#[derive(Debug, Default)]
pub struct Decoder {
    /// JPEG with the standard Huffman tables inserted (only used for DHT-less frames).
    patched: Vec<u8>,
}

impl Decoder {
    pub fn new() -> Self {
        Decoder::default()
    }

    /// A decoder whose DHT scratch buffer is sized for JPEG frames up to `max_jpeg_bytes`.
    pub fn with_capacity(max_jpeg_bytes: usize) -> Self {
        Decoder {
            patched: Vec::with_capacity(max_jpeg_bytes + DEFAULT_DHT.len()),
        }
    }

    /// Decode `frame` into `out`, resizing `out` to the frame size (the buffer is reused and
    /// grows only if it must). For MJPEG the JPEG's own size must match the frame's.
    pub fn decode(&mut self, frame: &Frame<'_>, out: &mut RgbImage) -> Result<(), DecodeError> {
        let (w, h) = (frame.width, frame.height);
        match frame.format {
            PixelFormat::Mjpeg => self
                .decode_jpeg_sized(frame.data, Some((w, h)), out)
                .map(|_| ()),
            PixelFormat::Yuyv => decode_yuyv(frame.data, w, h, out),
            PixelFormat::Rgb24 => {
                let expected = w as usize * h as usize * 3;
                if w == 0 || h == 0 {
                    return Err(DecodeError::BadSize { w, h });
                }
                if frame.data.len() != expected {
                    return Err(DecodeError::RgbLength {
                        got: frame.data.len(),
                        expected,
                        w,
                        h,
                    });
                }
                out.resize(w, h);
                out.data.copy_from_slice(frame.data);
                Ok(())
            }
        }
    }

    /// Decode one complete JPEG of any size (up to [`MAX_JPEG_SIDE`]) into `out`.
    pub fn decode_jpeg(&mut self, data: &[u8], out: &mut RgbImage) -> Result<(), DecodeError> {
        self.decode_jpeg_sized(data, None, out).map(|_| ())
    }

    /// Decode a JPEG file's bytes (a still picture) into `out`, turned upright as its EXIF
    /// orientation says. The same checks as a camera frame, except that bytes after the
    /// end-of-image marker are ignored (phones and editors append data there) and an
    /// end-of-image marker must end the last scan: a file cut short is an error, not a
    /// picture whose missing rows the decoder filled in.
    pub fn decode_still_jpeg(
        &mut self,
        data: &[u8],
        out: &mut RgbImage,
    ) -> Result<(), DecodeError> {
        let data = match find_dht_and_sos(data) {
            Ok((_, sos)) => &data[..end_of_image(data, sos)?],
            // Not a JPEG, or damaged headers: decode_jpeg_sized names what is wrong.
            Err(_) => data,
        };
        let orientation = self.decode_jpeg_sized(data, None, out)?;
        apply_orientation(out, orientation);
        Ok(())
    }

    /// Decode `data` into `out`; returns the EXIF orientation it carries.
    fn decode_jpeg_sized(
        &mut self,
        data: &[u8],
        want: Option<(u32, u32)>,
        out: &mut RgbImage,
    ) -> Result<Orientation, DecodeError> {
        check_jpeg_framing(data)?;
        let corrupt = |reason: String| DecodeError::CorruptJpeg {
            len: data.len(),
            reason,
        };
        let bytes: &[u8] = match find_dht_and_sos(data).map_err(corrupt)? {
            (false, sos) => {
                self.patched.clear();
                self.patched.extend_from_slice(&data[..sos]);
                self.patched.extend_from_slice(&DEFAULT_DHT);
                self.patched.extend_from_slice(&data[sos..]);
                &self.patched
            }
            (true, _) => data,
        };
        // Strict: entropy-coded data that runs out before the last row, or a marker inside
        // it, is an error instead of rows filled with grey. zune-jpeg's own size limit is set
        // to the format's largest so that ours below gives the error (before any pixel buffer).
        let options = DecoderOptions::default()
            .jpeg_set_out_colorspace(ColorSpace::RGB)
            .set_strict_mode(true)
            .set_max_width(usize::from(u16::MAX))
            .set_max_height(usize::from(u16::MAX));
        let mut dec = JpegDecoder::new_with_options(bytes, options);
        dec.decode_headers().map_err(|e| corrupt(e.to_string()))?;
        let (jw, jh) = dec
            .dimensions()
            .ok_or_else(|| corrupt("no frame header".into()))?;
        // (at most u16::MAX each: the options above)
        if !crate::capture::frame_size_fits(jw as u32, jh as u32) {
            return Err(DecodeError::TooLarge { w: jw, h: jh });
        }
        let (jw, jh) = (jw as u32, jh as u32);
        if let Some((w, h)) = want {
            if (w, h) != (jw, jh) {
                return Err(DecodeError::SizeMismatch {
                    got_w: jw,
                    got_h: jh,
                    want_w: w,
                    want_h: h,
                });
            }
        }
        let orientation = dec
            .exif()
            .and_then(|e| Orientation::from_exif_chunk(e))
            .unwrap_or(Orientation::NoTransforms);
        out.resize(jw, jh);
        match dec.get_output_colorspace() {
            Some(ColorSpace::RGB) => dec
                .decode_into(&mut out.data)
                .map_err(|e| corrupt(e.to_string()))?,
            // zune-jpeg 0.4 keeps a greyscale JPEG grey: decode into the first third of the
            // buffer, then spread each sample over R, G and B from the back (no second buffer).
            Some(ColorSpace::Luma) => {
                let n = jw as usize * jh as usize;
                dec.decode_into(&mut out.data[..n])
                    .map_err(|e| corrupt(e.to_string()))?;
                for i in (0..n).rev() {
                    let v = out.data[i];
                    out.data[3 * i..3 * i + 3].fill(v);
                }
            }
            _ => {
                return Err(corrupt(format!(
                    "cannot convert colour space {:?} to RGB",
                    dec.get_input_colorspace()
                )))
            }
        }
        Ok(orientation)
    }
}

/// Where the JPEG whose first scan starts at `sos` ends: just after the end-of-image marker
/// that follows its last scan. Walks the entropy-coded data (where FF is followed only by 00,
/// a restart marker or fill) and the segments allowed between progressive scans, so an EOI
/// inside an embedded thumbnail or a later segment is not taken for the end. Errors: the data
/// stops first (truncated), or a marker that cannot follow a scan (damaged).
fn end_of_image(data: &[u8], sos: usize) -> Result<usize, DecodeError> {
    let truncated = || DecodeError::TruncatedJpeg { len: data.len() };
    let at = |i: usize| data.get(i).copied().ok_or_else(truncated);
    let mut i = sos;
    loop {
        // At a marker segment with a length (SOS, or one allowed between scans): skip it.
        let is_scan = at(i + 1)? == 0xDA;
        i += 2 + usize::from(u16::from_be_bytes([at(i + 2)?, at(i + 3)?]));
        if is_scan {
            // Entropy-coded data, up to the first marker that is not stuffing or a restart.
            while at(i)? != 0xFF || matches!(at(i + 1)?, 0x00 | 0xD0..=0xD7 | 0xFF) {
                i += if at(i)? == 0xFF && at(i + 1)? != 0xFF {
                    2
                } else {
                    1
                };
            }
        } else {
            while at(i)? == 0xFF && at(i + 1)? == 0xFF {
                i += 1; // fill bytes
            }
        }
        match (at(i)?, at(i + 1)?) {
            (0xFF, 0xD9) => return Ok(i + 2),
            // tables, restart interval, line count, application data, comments, next scan
            (0xFF, 0xC4 | 0xDA..=0xDD | 0xE0..=0xEF | 0xFE) => {}
            (b, m) => {
                return Err(DecodeError::CorruptJpeg {
                    len: data.len(),
                    reason: format!("{b:02X} {m:02X} at byte {i} where a scan should end"),
                })
            }
        }
    }
}

/// Turn `img` as an EXIF orientation says (a phone picture stored sideways comes out upright).
fn apply_orientation(img: &mut RgbImage, orientation: Orientation) {
    if orientation == Orientation::NoTransforms {
        return;
    }
    let (w, h) = (img.width, img.height);
    let Some(buf) = image::RgbImage::from_raw(w, h, std::mem::take(&mut img.data)) else {
        return; // cannot happen: `out.resize` made the buffer w x h x 3
    };
    let mut dynamic = image::DynamicImage::ImageRgb8(buf);
    dynamic.apply_orientation(orientation);
    let turned = dynamic.into_rgb8();
    img.width = turned.width();
    img.height = turned.height();
    img.data = turned.into_raw();
}

/// Start with SOI, end with EOI (trailing zero padding, which some cameras add, is allowed).
fn check_jpeg_framing(data: &[u8]) -> Result<(), DecodeError> {
    if data.is_empty() {
        return Err(DecodeError::Empty);
    }
    if data.len() < 2 || data[0] != 0xFF || data[1] != 0xD8 {
        let mut head = [0u8; 2];
        for (d, s) in head.iter_mut().zip(data) {
            *d = *s;
        }
        return Err(DecodeError::NotJpeg(head));
    }
    let end = data.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    if end < 4 || data[end - 2] != 0xFF || data[end - 1] != 0xD9 {
        return Err(DecodeError::TruncatedJpeg { len: data.len() });
    }
    Ok(())
}

/// Walk the marker segments from SOI to the first SOS. Returns (a DHT was seen, offset of SOS).
fn find_dht_and_sos(data: &[u8]) -> Result<(bool, usize), String> {
    let mut i = 2; // after SOI
    let mut has_dht = false;
    loop {
        if i < data.len() && data[i] != 0xFF {
            return Err(format!(
                "expected a marker at byte {i}, found {:#04x}",
                data[i]
            ));
        }
        // Skip fill bytes.
        while i + 1 < data.len() && data[i + 1] == 0xFF {
            i += 1;
        }
        if i + 1 >= data.len() {
            return Err("no start-of-scan marker (FF DA)".into());
        }
        let marker = data[i + 1];
        match marker {
            0xDA => return Ok((has_dht, i)),
            0xD9 => return Err("end of image before any scan".into()),
            0x01 | 0xD0..=0xD7 => {
                i += 2;
                continue;
            }
            0xC4 => has_dht = true,
            _ => {}
        }
        if i + 3 >= data.len() {
            return Err(format!("segment {marker:#04x} at byte {i} is cut off"));
        }
        let len = u16::from_be_bytes([data[i + 2], data[i + 3]]) as usize;
        if len < 2 {
            return Err(format!(
                "segment {marker:#04x} at byte {i} has length {len}"
            ));
        }
        // A frame header (SOF0..SOF15 but DHT, JPG and DAC).
        if matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
            let end = (i + 2 + len).min(data.len());
            check_sampling(&data[i + 4..end])?;
        }
        i += 2 + len;
    }
}

/// Refuse chroma sampling layouts that camera encoders never write and zune-jpeg 0.4 does not
/// handle (a component sampled more finely than, or not evenly against, the first one makes it
/// panic: zune-image issues 236 and 281, found again here by `fuzz/` target `jpeg_frames`).
/// Accepted: every component sampled 1×1 or as the first one (4:4:4, 4:2:2, 4:2:0, 4:4:0,
/// 4:1:1, greyscale). `sof` is the frame header after its length field.
fn check_sampling(sof: &[u8]) -> Result<(), String> {
    // precision, height (2), width (2), component count, then 3 bytes per component
    let Some(&n) = sof.get(5) else {
        return Err("frame header is cut off".into());
    };
    let comps = sof
        .get(6..6 + 3 * n as usize)
        .ok_or("frame header is cut off")?;
    let factors = |c: &[u8]| (c[1] >> 4, c[1] & 0x0F);
    let Some(first) = comps.chunks_exact(3).next().map(factors) else {
        return Ok(());
    };
    for (k, c) in comps.chunks_exact(3).enumerate() {
        let (h, v) = factors(c);
        if h == 0 || v == 0 || ((h, v) != (1, 1) && (h, v) != first) {
            return Err(format!(
                "unsupported sampling: component {} is sampled {h}x{v} against {}x{} for the \
                 first",
                k + 1,
                first.0,
                first.1
            ));
        }
    }
    Ok(())
}

/// YUYV (Y0 U Y1 V) to RGB, BT.601 limited range. Rows may be padded (length a multiple of
/// the height, at least the packed row size).
fn decode_yuyv(data: &[u8], w: u32, h: u32, out: &mut RgbImage) -> Result<(), DecodeError> {
    if w == 0 || h == 0 {
        return Err(DecodeError::BadSize { w, h });
    }
    let row = (w as usize).div_ceil(2) * 4;
    let expected = row * h as usize;
    let stride = if data.len() == expected {
        row
    } else if data.len() > expected && data.len() % h as usize == 0 {
        data.len() / h as usize
    } else {
        return Err(DecodeError::YuyvLength {
            got: data.len(),
            expected,
            w,
            h,
        });
    };
    out.resize(w, h);
    let packed = yuv::YuvPackedImage {
        yuy: data,
        yuy_stride: stride as u32,
        width: w,
        height: h,
    };
    yuv::yuyv422_to_rgb(
        &packed,
        &mut out.data,
        w * 3,
        yuv::YuvRange::Limited,
        yuv::YuvStandardMatrix::Bt601,
    )
    .map_err(|e| DecodeError::Yuyv {
        w,
        h,
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_dht_is_well_formed() {
        assert_eq!(&DEFAULT_DHT[..2], &[0xFF, 0xC4]);
        let len = u16::from_be_bytes([DEFAULT_DHT[2], DEFAULT_DHT[3]]) as usize;
        assert_eq!(len + 2, DEFAULT_DHT.len());
        assert_eq!(len, 418, "the classic MJPEG DHT segment length (0x01A2)");
    }

    #[test]
    fn framing_errors_name_the_problem() {
        let e = check_jpeg_framing(&[]).unwrap_err();
        assert!(matches!(e, DecodeError::Empty));
        let e = check_jpeg_framing(&[0x89, b'P', b'N', b'G']).unwrap_err();
        assert!(e.to_string().contains("not a JPEG"), "{e}");
        let e = check_jpeg_framing(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 16, 1]).unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
        assert!(check_jpeg_framing(&[0xFF, 0xD8, 0xFF, 0xD9, 0, 0]).is_ok());
    }
}
