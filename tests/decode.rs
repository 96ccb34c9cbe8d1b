//! Decode stage on real JPEG frames built from shared faces, DHT-less MJPEG, YUYV, and bad input.

mod common;

use std::collections::BTreeMap;

use agegender::capture::{Frame, PixelFormat};
use agegender::decode::{load_image, strip_dht, DecodeError, Decoder, DEFAULT_DHT};
use agegender::heap::PoolAlloc;
use agegender::rgb::RgbImage;

// Counts allocations made by the current thread (tests run in parallel threads).
#[global_allocator]
static GLOBAL: PoolAlloc = PoolAlloc;

fn allocs() -> usize {
    PoolAlloc::count() as usize
}

fn frame(data: &[u8], format: PixelFormat, w: u32, h: u32) -> Frame<'_> {
    Frame {
        data,
        format,
        width: w,
        height: h,
        sequence: 0,
    }
}

fn test_frame() -> (Vec<u8>, RgbImage) {
    let faces = common::utk_faces(2, 11);
    common::face_frame(
        &[
            (faces[0].clone(), [40, 60, 200, 220]),
            (faces[1].clone(), [380, 100, 476, 196]),
        ],
        640,
        480,
    )
}

/// Parse every DHT segment before the first SOS into (class/id) -> (bits, values).
fn dht_tables(jpeg: &[u8]) -> BTreeMap<u8, Vec<u8>> {
    let mut tables = BTreeMap::new();
    let mut i = 2;
    loop {
        assert_eq!(jpeg[i], 0xFF);
        let marker = jpeg[i + 1];
        if marker == 0xDA {
            return tables;
        }
        let len = u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]) as usize;
        if marker == 0xC4 {
            let seg = &jpeg[i + 4..i + 2 + len];
            let mut j = 0;
            while j < seg.len() {
                let n: usize = seg[j + 1..j + 17].iter().map(|&b| b as usize).sum();
                tables.insert(seg[j], seg[j + 1..j + 17 + n].to_vec());
                j += 17 + n;
            }
        }
        i += 2 + len;
    }
}

#[test]
fn mjpeg_frame_decodes_to_the_encoded_pixels() {
    let (jpeg, original) = test_frame();
    let mut dec = Decoder::new();
    let mut out = RgbImage::new(640, 480);
    dec.decode(&frame(&jpeg, PixelFormat::Mjpeg, 640, 480), &mut out)
        .unwrap();
    assert_eq!((out.width, out.height), (640, 480));
    let d = common::mean_abs_diff(&out, &original);
    assert!(d < 3.0, "mean abs difference {d} after JPEG q90 round trip");
}

#[test]
fn default_dht_equals_the_annex_k_tables_an_encoder_writes() {
    // The image crate's encoder writes the standard Annex K tables; ours must be identical.
    let (jpeg, _) = test_frame();
    let written = dht_tables(&jpeg);
    let mut ours = DEFAULT_DHT.to_vec();
    ours.extend_from_slice(&[0xFF, 0xDA]);
    let mut with_soi = vec![0xFF, 0xD8];
    with_soi.extend_from_slice(&ours);
    let ours = dht_tables(&with_soi);
    assert_eq!(ours.len(), 4);
    assert_eq!(written, ours);
}

#[test]
fn jpeg_without_huffman_tables_decodes_like_the_original() {
    let (jpeg, _) = test_frame();
    let stripped = strip_dht(&jpeg).unwrap();
    assert!(dht_tables(&stripped).is_empty(), "DHT still present");
    let mut dec = Decoder::new();
    let mut a = RgbImage::default();
    let mut b = RgbImage::default();
    dec.decode_jpeg(&jpeg, &mut a).unwrap();
    dec.decode(&frame(&stripped, PixelFormat::Mjpeg, 640, 480), &mut b)
        .unwrap();
    assert_eq!(a.data, b.data, "DHT-less frame decoded differently");
}

#[test]
fn yuyv_frame_converts_to_rgb() {
    let (_, original) = test_frame();
    // Forward BT.601 limited range, 4:2:2 (chroma averaged over each pixel pair).
    let (w, h) = (original.width as usize, original.height as usize);
    let mut yuyv = vec![0u8; w * h * 2];
    for y in 0..h {
        for x in (0..w).step_by(2) {
            let p = |dx: usize| {
                let i = (y * w + x + dx) * 3;
                let (r, g, b) = (
                    original.data[i] as f32,
                    original.data[i + 1] as f32,
                    original.data[i + 2] as f32,
                );
                (
                    16.0 + 0.257 * r + 0.504 * g + 0.098 * b,
                    128.0 - 0.148 * r - 0.291 * g + 0.439 * b,
                    128.0 + 0.439 * r - 0.368 * g - 0.071 * b,
                )
            };
            let (y0, u0, v0) = p(0);
            let (y1, u1, v1) = p(1);
            let o = (y * w + x) * 2;
            yuyv[o] = y0.round() as u8;
            yuyv[o + 1] = ((u0 + u1) / 2.0).round() as u8;
            yuyv[o + 2] = y1.round() as u8;
            yuyv[o + 3] = ((v0 + v1) / 2.0).round() as u8;
        }
    }
    let mut dec = Decoder::new();
    let mut out = RgbImage::new(w as u32, h as u32);
    dec.decode(
        &frame(&yuyv, PixelFormat::Yuyv, w as u32, h as u32),
        &mut out,
    )
    .unwrap();
    let d = common::mean_abs_diff(&out, &original);
    assert!(d < 4.0, "mean abs difference {d} after YUYV round trip");
}

#[test]
fn rgb24_frame_is_copied_and_checked() {
    let (_, original) = test_frame();
    let mut dec = Decoder::new();
    let mut out = RgbImage::default();
    dec.decode(
        &frame(&original.data, PixelFormat::Rgb24, 640, 480),
        &mut out,
    )
    .unwrap();
    assert_eq!(out.data, original.data);
    let e = dec
        .decode(
            &frame(&original.data[1..], PixelFormat::Rgb24, 640, 480),
            &mut out,
        )
        .unwrap_err();
    assert!(matches!(e, DecodeError::RgbLength { .. }), "{e}");
}

#[test]
fn wrong_yuyv_length_is_named() {
    let mut dec = Decoder::new();
    let mut out = RgbImage::default();
    let data = vec![128u8; 640 * 480 * 2 - 7];
    let e = dec
        .decode(&frame(&data, PixelFormat::Yuyv, 640, 480), &mut out)
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("wrong YUYV length") && msg.contains("614393"),
        "{msg}"
    );
}

#[test]
fn truncated_jpeg_is_an_error() {
    let (jpeg, _) = test_frame();
    let mut dec = Decoder::new();
    let mut out = RgbImage::default();
    let cut = &jpeg[..jpeg.len() / 2];
    let e = dec
        .decode(&frame(cut, PixelFormat::Mjpeg, 640, 480), &mut out)
        .unwrap_err();
    assert!(e.to_string().contains("truncated JPEG"), "{e}");
}

#[test]
fn size_mismatch_and_garbage_are_errors() {
    let (jpeg, _) = test_frame();
    let mut dec = Decoder::new();
    let mut out = RgbImage::default();
    let e = dec
        .decode(&frame(&jpeg, PixelFormat::Mjpeg, 320, 240), &mut out)
        .unwrap_err();
    assert!(
        e.to_string().contains("640x480") && e.to_string().contains("320x240"),
        "{e}"
    );
    let e = dec
        .decode(
            &frame(b"hello world", PixelFormat::Mjpeg, 640, 480),
            &mut out,
        )
        .unwrap_err();
    assert!(e.to_string().contains("not a JPEG"), "{e}");
    // SOI + garbage + EOI: framing is fine, content is not.
    let mut junk = vec![0xFF, 0xD8];
    junk.extend((0..500u32).map(|i| (i * 37 % 251) as u8));
    junk.extend([0xFF, 0xD9]);
    let e = dec
        .decode(&frame(&junk, PixelFormat::Mjpeg, 640, 480), &mut out)
        .unwrap_err();
    assert!(e.to_string().contains("corrupt JPEG"), "{e}");
}

#[test]
fn damaged_jpegs_never_panic() {
    let (jpeg, _) = test_frame();
    let mut dec = Decoder::new();
    let mut out = RgbImage::default();
    let mut state = 99u64;
    for k in 0..60 {
        let mut bad = jpeg.clone();
        match k % 3 {
            0 => {
                let cut = (common::splitmix64(&mut state) as usize) % bad.len();
                bad.truncate(cut);
                bad.extend([0xFF, 0xD9]);
            }
            1 => {
                for _ in 0..8 {
                    let i = (common::splitmix64(&mut state) as usize) % bad.len();
                    bad[i] = common::splitmix64(&mut state) as u8;
                }
            }
            _ => {
                // Damage the headers (first 700 bytes hold DQT/SOF/DHT/SOS).
                let i = (common::splitmix64(&mut state) as usize) % 700;
                bad[i] ^= 0x5A;
            }
        }
        // Ok or Err are both acceptable; a panic fails the test.
        let _ = dec.decode(&frame(&bad, PixelFormat::Mjpeg, 640, 480), &mut out);
    }
    // The decoder still works afterwards.
    dec.decode(&frame(&jpeg, PixelFormat::Mjpeg, 640, 480), &mut out)
        .unwrap();
}

#[test]
fn yuyv_and_rgb_decoding_allocate_nothing_and_jpeg_allocations_are_bounded() {
    let (jpeg, original) = test_frame();
    let stripped = strip_dht(&jpeg).unwrap();
    let yuyv = vec![128u8; 640 * 480 * 2];
    let mut dec = Decoder::with_capacity(jpeg.len());
    let mut out = RgbImage::new(640, 480);
    // Warm up.
    dec.decode(&frame(&stripped, PixelFormat::Mjpeg, 640, 480), &mut out)
        .unwrap();

    let before = allocs();
    for _ in 0..5 {
        dec.decode(&frame(&yuyv, PixelFormat::Yuyv, 640, 480), &mut out)
            .unwrap();
        dec.decode(
            &frame(&original.data, PixelFormat::Rgb24, 640, 480),
            &mut out,
        )
        .unwrap();
    }
    assert_eq!(allocs() - before, 0, "YUYV/RGB24 decoding allocated");

    let before = allocs();
    for _ in 0..5 {
        dec.decode(&frame(&stripped, PixelFormat::Mjpeg, 640, 480), &mut out)
            .unwrap();
    }
    let per_frame = (allocs() - before) as f64 / 5.0;
    println!("zune-jpeg allocations per 640x480 MJPEG frame: {per_frame}");
    // zune-jpeg 0.4 builds its per-component buffers for every image: a small constant
    // number of allocations, nothing proportional to the frame count or our DHT scratch.
    assert!(per_frame <= 40.0, "{per_frame} allocations per JPEG frame");
}

#[test]
fn load_image_reads_jpeg_and_png_and_names_bad_paths() {
    let face = &common::utk_faces(1, 3)[0];
    let img = load_image(face).unwrap();
    assert_eq!((img.width, img.height), (200, 200));
    assert_eq!(img.data.len(), 200 * 200 * 3);

    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("face.png");
    image::RgbImage::from_raw(img.width, img.height, img.data.clone())
        .unwrap()
        .save(&png)
        .unwrap();
    assert_eq!(load_image(&png).unwrap().data, img.data);

    let missing = dir.path().join("nope.jpg");
    let e = format!("{:#}", load_image(&missing).unwrap_err());
    assert!(e.contains("nope.jpg"), "{e}");
    let junk = dir.path().join("junk.jpg");
    std::fs::write(&junk, b"not an image").unwrap();
    let e = format!("{:#}", load_image(&junk).unwrap_err());
    assert!(e.contains("junk.jpg"), "{e}");
}
