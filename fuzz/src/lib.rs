//! The fuzz targets' checks, one function per target. `fuzz_targets/*.rs` hand them
//! libFuzzer's inputs; the main test suite (`tests/fuzz_corpus.rs`) replays the committed
//! corpora through the same functions on every `cargo test`.

use agegender::capture::files::MjpegFileSource;
use agegender::capture::{Frame, FrameSource, PixelFormat};
use agegender::config::Config;
use agegender::decode::Decoder;
use agegender::detect::blazeface::BlazeFaceDecoder;
use agegender::detect::yunet::YuNetDecoder;
use agegender::detect::{Detection, DetectorConfig};
use agegender::rgb::RgbImage;
use std::path::Path;

/// MJPEG streams and JPEG frames: arbitrary bytes are split into frames the way a `.mjpeg`
/// replay is, and each frame (and the whole input as one JPEG) is decoded as a camera frame;
/// the whole input is also decoded as a still picture's file.
/// Must never panic; a decoded image must have the announced size.
pub fn jpeg_frames(data: &[u8]) {
    let mut decoder = Decoder::new();
    let mut out = RgbImage::new(1, 1);

    // The whole input as one JPEG of any size.
    if decoder.decode_jpeg(data, &mut out).is_ok() {
        assert_eq!(out.data.len(), out.width as usize * out.height as usize * 3);
    }

    // The whole input as a still picture's file (`agegender image`): the end-of-image walk
    // over progressive scans and trailing data, and the EXIF orientation turn.
    if decoder.decode_still_jpeg(data, &mut out).is_ok() {
        assert_eq!(out.data.len(), out.width as usize * out.height as usize * 3);
    }

    // The input as an MJPEG stream: the size every buffer is made from fits the decoder
    // (what `Pipeline::new` allocates), and every frame found is decoded at its announced size.
    if let Ok(mut source) =
        MjpegFileSource::from_bytes(Path::new("fuzz.mjpeg"), data.to_vec(), 0.0, false)
    {
        let (w, h) = source.frame_size();
        assert!(
            agegender::capture::frame_size_fits(w, h),
            "buffers sized {w}x{h}"
        );
        for _ in 0..source.frame_count() {
            let Ok(Some(frame)) = source.next_frame() else {
                break;
            };
            let (w, h) = (frame.width, frame.height);
            if decoder.decode(&frame, &mut out).is_ok() {
                assert_eq!((out.width, out.height), (w, h));
            }
        }
    }
}

/// Still pictures (`agegender image`, a directory source): any bytes as a JPEG or PNG file (the
/// corpus holds PNGs of every colour type and bit depth, and JPEGs). An error, or an upright RGB
/// image within the size limit. Never a panic.
pub fn stills(data: &[u8]) {
    let mut decoder = Decoder::new();
    let mut out = RgbImage::new(1, 1);
    if agegender::decode::decode_still(data, &mut decoder, &mut out).is_ok() {
        assert!(agegender::capture::frame_size_fits(out.width, out.height));
        assert_eq!(out.data.len(), out.width as usize * out.height as usize * 3);
    }
}

/// Broker URLs and topic parts (the `mqtt`, `mqtt_topic_prefix` and `mqtt_client_id` keys):
/// an error or a value whose parts are what the publisher may use. Never a panic.
pub fn mqtt_settings(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(url) = agegender::mqtt::BrokerUrl::parse(text) {
        assert!(!url.host.is_empty() && url.port > 0, "{url:?}");
        // what it prints parses back to itself
        assert_eq!(
            agegender::mqtt::BrokerUrl::parse(&url.to_string()),
            Ok(url.clone())
        );
    }
    for levels in [false, true] {
        if agegender::mqtt::check_topic_part(text, levels).is_ok() {
            assert!(!text.is_empty() && text.len() <= agegender::mqtt::MAX_TOPIC_PART);
            assert!(!text.contains(['+', '#']) && !text.chars().any(char::is_control));
            assert!(!text
                .split('/')
                .any(|l| l.starts_with('$') || (levels && l.is_empty())));
        }
    }
}

/// Raw camera frames (YUYV, RGB24, and MJPEG with a claimed size) whose announced size and
/// byte count disagree in every way: an error or a correctly sized image, never a panic.
pub fn raw_frames(data: &[u8]) {
    if data.len() < 5 {
        return;
    }
    // Header: format, width, height (small, so that matching lengths are reachable).
    let format = match data[0] % 3 {
        0 => PixelFormat::Yuyv,
        1 => PixelFormat::Rgb24,
        _ => PixelFormat::Mjpeg,
    };
    let width = u16::from_le_bytes([data[1], data[2]]) as u32 % 4096;
    let height = u16::from_le_bytes([data[3], data[4]]) as u32 % 4096;
    let frame = Frame {
        data: &data[5..],
        format,
        width,
        height,
        sequence: 0,
    };
    let mut decoder = Decoder::new();
    let mut out = RgbImage::new(2, 2);
    if decoder.decode(&frame, &mut out).is_ok() {
        assert_eq!((out.width, out.height), (width, height));
        assert_eq!(out.data.len(), width as usize * height as usize * 3);
    }
}

/// The config parser: arbitrary text is an error naming the file, or a config that passes
/// its own validation. Never a panic.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::from_toml_str(text, "fuzz.toml") {
        Ok(cfg) => assert!(cfg.validate().is_ok()),
        Err(e) => assert!(
            e.to_string().contains("fuzz.toml"),
            "error without the file: {e}"
        ),
    }
}

/// Detector output decoding (BlazeFace and YuNet) on arbitrary tensors: any lengths, NaN,
/// infinities, huge values, any frame size. Either an error, or at most `max_faces`
/// detections with finite, non-empty boxes and scores above the threshold.
pub fn detector_outputs(data: &[u8]) {
    if data.len() < 6 {
        return;
    }
    let (head, body) = data.split_at(6);
    let cfg = DetectorConfig {
        score_threshold: 0.5,
        nms_iou: 0.3,
        max_faces: 4,
    };
    let frame_w = u16::from_le_bytes([head[1], head[2]]) as u32;
    let frame_h = u16::from_le_bytes([head[3], head[4]]) as u32;
    // The values: the body as f32s, repeated to fill the tensors the model would give (so
    // that short inputs still reach the decoding), or cut short when head[5] says so.
    let values: Vec<f32> = body
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let fill = |n: usize| -> Vec<f32> {
        if values.is_empty() {
            return vec![0.0; n];
        }
        let n = if head[5] & 0x80 != 0 {
            n - (head[5] as usize & 0x7f).min(n)
        } else {
            n
        };
        values.iter().copied().cycle().take(n).collect()
    };
    let mut out: Vec<Detection> = Vec::new();
    let result = if head[0] & 1 == 0 {
        let size = if head[0] & 2 == 0 { 128 } else { 256 };
        let tensors = [fill(512), fill(384), fill(512 * 16), fill(384 * 16)];
        let slices: Vec<&[f32]> = tensors.iter().map(|t| t.as_slice()).collect();
        let n = 1 + (head[0] as usize >> 2) % 4; // 1..=4 outputs given
        BlazeFaceDecoder::new(size, cfg).decode(&slices[..n], frame_w, frame_h, &mut out)
    } else {
        let (w, h) = (
            32 * (1 + (head[0] as usize >> 1) % 8),
            32 * (1 + (head[0] as usize >> 4) % 8),
        );
        let mut tensors = Vec::new();
        for s in [8, 16, 32] {
            let n = (w / s) * (h / s);
            tensors.extend([fill(n), fill(n), fill(4 * n), fill(10 * n)]);
        }
        let slices: Vec<&[f32]> = tensors.iter().map(|t| t.as_slice()).collect();
        YuNetDecoder::new(w, h, cfg).decode(&slices, frame_w, frame_h, &mut out)
    };
    if result.is_ok() {
        assert!(out.len() <= cfg.max_faces);
        for d in &out {
            assert!(
                d.bbox
                    .iter()
                    .chain(d.landmarks.iter().flatten())
                    .all(|v| v.is_finite()),
                "{d:?}"
            );
            assert!(d.bbox[2] > d.bbox[0] && d.bbox[3] > d.bbox[1], "{d:?}");
            assert!(d.score >= cfg.score_threshold && d.score <= 1.0, "{d:?}");
        }
    } else {
        assert!(out.is_empty());
    }
}
