//! Compare the face detectors on the same frames: BlazeFace (back 256, front 128) and YuNet-s.
//!
//!     cargo run --release --example detector_compare [-- FRAMES_PER_SIZE]
//!
//! Faces from ../shared/data/utkface are pasted at 40, 64, 96 and 160 px into 640×480 JPEG
//! frames (two faces per frame, random non-overlapping positions, fixed seed), decoded, and
//! run through each detector (single thread). A face counts as found when a detection
//! overlaps its box with IoU > 0.4. False positives are counted on face-free frames
//! (textured backgrounds with random shapes) and as unmatched detections on face frames.
//! Prints a markdown table. Needs scripts/fetch-detector and ../shared.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::time::Instant;

use agegender::decode::Decoder;
use agegender::detect::blazeface::BlazeFace;
use agegender::detect::yunet::YuNet;
use agegender::detect::{iou, Detection, DetectorConfig, FaceDetector};
use agegender::rgb::RgbImage;

const SIZES: [u32; 4] = [40, 64, 96, 160];
const W: u32 = 640;
const H: u32 = 480;

struct Frame {
    img: RgbImage,
    boxes: Vec<[f32; 4]>,
    size: Option<u32>,
}

fn face_frames(per_size: usize) -> Vec<Frame> {
    let mut state = 7u64;
    let mut faces = common::utk_faces(per_size * SIZES.len() * 2, 4242).into_iter();
    let mut dec = Decoder::new();
    let mut out = Vec::new();
    for &s in &SIZES {
        for _ in 0..per_size {
            let mut spec: Vec<(PathBuf, [u32; 4])> = Vec::new();
            while spec.len() < 2 {
                let x = (common::splitmix64(&mut state) % (W - s) as u64) as u32;
                let y = (common::splitmix64(&mut state) % (H - s) as u64) as u32;
                let b = [x, y, x + s, y + s];
                let margin = |a: &[u32; 4]| {
                    // keep a gap so the two faces never touch
                    let g = s / 2;
                    b[0] > a[2] + g || a[0] > b[2] + g || b[1] > a[3] + g || a[1] > b[3] + g
                };
                if spec.iter().all(|(_, a)| margin(a)) {
                    spec.push((faces.next().unwrap(), b));
                }
            }
            let (jpeg, _) = common::face_frame(&spec, W, H);
            let mut img = RgbImage::default();
            dec.decode_jpeg(&jpeg, &mut img).unwrap();
            let boxes = spec.iter().map(|(_, b)| common::to_f32_box(*b)).collect();
            out.push(Frame {
                img,
                boxes,
                size: Some(s),
            });
        }
    }
    out
}

/// Face-free frames: the textured background plus random rectangles, discs and stripes.
fn empty_frames(n: usize) -> Vec<Frame> {
    let mut state = 99u64;
    let mut dec = Decoder::new();
    (0..n)
        .map(|_| {
            let mut img = common::background(W, H);
            for _ in 0..12 {
                let r = |st: &mut u64, m: u32| (common::splitmix64(st) % m as u64) as i64;
                let (cx, cy) = (r(&mut state, W), r(&mut state, H));
                let (rw, rh) = (20 + r(&mut state, 160), 20 + r(&mut state, 160));
                let col = [
                    r(&mut state, 256) as u8,
                    r(&mut state, 256) as u8,
                    r(&mut state, 256) as u8,
                ];
                let disc = r(&mut state, 2) == 0;
                for y in (cy - rh).max(0)..(cy + rh).min(H as i64) {
                    for x in (cx - rw).max(0)..(cx + rw).min(W as i64) {
                        let (dx, dy) = ((x - cx) as f32 / rw as f32, (y - cy) as f32 / rh as f32);
                        if disc && dx * dx + dy * dy > 1.0 {
                            continue;
                        }
                        let i = ((y * W as i64 + x) * 3) as usize;
                        img.data[i..i + 3].copy_from_slice(&col);
                    }
                }
            }
            let jpeg = common::encode_jpeg(&img, 90);
            let mut out = RgbImage::default();
            dec.decode_jpeg(&jpeg, &mut out).unwrap();
            Frame {
                img: out,
                boxes: vec![],
                size: None,
            }
        })
        .collect()
}

struct Row {
    name: String,
    found: [(usize, usize); 4],
    fp_face_frames: usize,
    fp_empty: usize,
    empty_frames_with_fp: usize,
    n_empty: usize,
    ms: Vec<f64>,
}

fn measure(name: &str, det: &mut dyn FaceDetector, frames: &[Frame], empties: &[Frame]) -> Row {
    let mut out: Vec<Detection> = Vec::with_capacity(16);
    det.detect(&frames[0].img, &mut out).unwrap(); // warm up
    let mut row = Row {
        name: name.into(),
        found: [(0, 0); 4],
        fp_face_frames: 0,
        fp_empty: 0,
        empty_frames_with_fp: 0,
        n_empty: empties.len(),
        ms: vec![],
    };
    for f in frames.iter().chain(empties) {
        let t = Instant::now();
        det.detect(&f.img, &mut out).unwrap();
        row.ms.push(t.elapsed().as_secs_f64() * 1e3);
        let unmatched = out
            .iter()
            .filter(|d| f.boxes.iter().all(|b| iou(&d.bbox, b) <= 0.4))
            .count();
        match f.size {
            Some(s) => {
                let k = SIZES.iter().position(|&x| x == s).unwrap();
                for b in &f.boxes {
                    row.found[k].1 += 1;
                    if out.iter().any(|d| iou(&d.bbox, b) > 0.4) {
                        row.found[k].0 += 1;
                    }
                }
                row.fp_face_frames += unmatched;
            }
            None => {
                row.fp_empty += unmatched;
                row.empty_frames_with_fp += (unmatched > 0) as usize;
            }
        }
    }
    row
}

fn pct(a: usize, b: usize) -> String {
    format!("{:.0}%", 100.0 * a as f64 / b.max(1) as f64)
}

fn main() -> anyhow::Result<()> {
    let per_size: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(25);
    let cfg = DetectorConfig::default();
    let frames = face_frames(per_size);
    let empties = empty_frames(40);
    let shared = common::require_shared().join("models");

    let mut rows = Vec::new();
    {
        let mut d = BlazeFace::load(&common::blazeface_model(false), cfg)?;
        rows.push(measure("BlazeFace back 256×256", &mut d, &frames, &empties));
    }
    {
        let mut d = BlazeFace::load(&common::blazeface_model(true), cfg)?;
        rows.push(measure(
            "BlazeFace front 128×128",
            &mut d,
            &frames,
            &empties,
        ));
    }
    {
        let mut d = YuNet::load(&shared.join("yunet_s_dynamic.onnx"), Some((640, 480)), cfg)?;
        rows.push(measure("YuNet-s 640×480", &mut d, &frames, &empties));
    }
    {
        let mut d = YuNet::load(&shared.join("yunet_s_dynamic.onnx"), Some((320, 256)), cfg)?;
        rows.push(measure("YuNet-s 320×256", &mut d, &frames, &empties));
    }

    println!(
        "{} face frames ({} faces per size, 2 per frame) + {} face-free frames, 640×480, \
         score ≥ {}, NMS IoU {}, found = IoU > 0.4, 1 thread\n",
        frames.len(),
        per_size * 2,
        empties.len(),
        cfg.score_threshold,
        cfg.nms_iou
    );
    println!(
        "| detector | 40 px | 64 px | 96 px | 160 px | all | FP on face-free frames (frames with any) | unmatched on face frames | ms/frame median (p90) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for mut r in rows {
        r.ms.sort_by(|a, b| a.total_cmp(b));
        let med = r.ms[r.ms.len() / 2];
        let p90 = r.ms[r.ms.len() * 9 / 10];
        let (fa, ta) = r.found.iter().fold((0, 0), |(a, b), (x, y)| (a + x, b + y));
        println!(
            "| {} | {} | {} | {} | {} | {} | {} ({}/{}) | {} | {:.1} ({:.1}) |",
            r.name,
            pct(r.found[0].0, r.found[0].1),
            pct(r.found[1].0, r.found[1].1),
            pct(r.found[2].0, r.found[2].1),
            pct(r.found[3].0, r.found[3].1),
            pct(fa, ta),
            r.fp_empty,
            r.empty_frames_with_fp,
            r.n_empty,
            r.fp_face_frames,
            med,
            p90
        );
    }
    Ok(())
}
