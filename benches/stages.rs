//! Micro-benchmarks of the frame's hot stages, with allocations per iteration.
//!
//!     cargo bench --bench stages                 # all
//!     cargo bench --bench stages -- classify     # one group
//!
//! Each stage runs on real inputs: a 640×480 JPEG with two UTKFace faces at known boxes
//! (`../shared`; see tests/common), BlazeFace back-256 (`scripts/fetch-detector`) and the
//! committed classifiers. Comparisons in the same run, so ratios hold on any machine:
//! - `decode`: our zune-jpeg decoder into a reused frame vs the `image` crate's decoder
//!   (a fresh image per frame, as a simple program would do);
//! - `classify`: the int8 and the f32 classifier through tract.
//!
//! divan's allocation profiler wraps the binary's pool allocator (`agegender::heap`), pooling
//! on as in the binary: the `alloc` columns count the requests the stage makes per iteration
//! (tract's included), not what reaches the system allocator.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};

use agegender::align::{align_into, INPUT_SIZE};
use agegender::bench::DiscardSink;
use agegender::classify::Attributes;
use agegender::config::Config;
use agegender::decode::Decoder;
use agegender::detect::Detection;
use agegender::display::png::annotate_into;
use agegender::heap::PoolAlloc;
use agegender::pipeline;
use agegender::report::Reporter;
use agegender::rgb::RgbImage;
use agegender::track::{TrackedFace, Tracker};
use divan::{black_box, AllocProfiler, Bencher};

#[global_allocator]
static ALLOC: AllocProfiler<PoolAlloc> = AllocProfiler::new(PoolAlloc);

fn main() {
    agegender::heap::start_pooling();
    divan::main();
}

const W: u32 = 640;
const H: u32 = 480;

/// A 640×480 JPEG with two faces, and the same frame decoded.
fn frame() -> (Vec<u8>, RgbImage) {
    let faces = common::utk_faces(2, 11);
    let (jpeg, _) = common::face_frame(
        &[
            (faces[0].clone(), [60, 60, 220, 220]),
            (faces[1].clone(), [380, 180, 540, 340]),
        ],
        W,
        H,
    );
    let mut img = RgbImage::new(W, H);
    Decoder::new().decode_jpeg(&jpeg, &mut img).unwrap();
    (jpeg, img)
}

fn detections(img: &RgbImage) -> Vec<Detection> {
    let cfg = Config::default();
    let mut det = pipeline::load_detector(&common::blazeface_model(false), &cfg).unwrap();
    let mut out = Vec::with_capacity(cfg.max_faces);
    det.detect(img, &mut out).unwrap();
    assert_eq!(out.len(), 2, "the detector should find both faces");
    out
}

fn model(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models")
        .join(name)
}

mod decode {
    use super::*;

    #[divan::bench]
    fn zune_into_reused_frame(b: Bencher) {
        let (jpeg, _) = frame();
        let mut dec = Decoder::new();
        let mut out = RgbImage::new(W, H);
        b.bench_local(|| dec.decode_jpeg(black_box(&jpeg), &mut out).unwrap());
    }

    #[divan::bench]
    fn image_crate_fresh_image(b: Bencher) {
        let (jpeg, _) = frame();
        b.bench_local(|| {
            image::load_from_memory_with_format(black_box(&jpeg), image::ImageFormat::Jpeg)
                .unwrap()
                .into_rgb8()
        });
    }
}

#[divan::bench]
fn detect_blazeface_256(b: Bencher) {
    let (_, img) = frame();
    let mut det =
        pipeline::load_detector(&common::blazeface_model(false), &Config::default()).unwrap();
    let mut out = Vec::with_capacity(8);
    b.bench_local(|| det.detect(black_box(&img), &mut out).unwrap());
}

#[divan::bench]
fn align_one_face(b: Bencher) {
    let (_, img) = frame();
    let det = detections(&img);
    let mut out = vec![0f32; 3 * INPUT_SIZE * INPUT_SIZE];
    b.bench_local(|| align_into(black_box(&img), &det[0].landmarks, INPUT_SIZE, &mut out).unwrap());
}

#[divan::bench(args = ["agegender_int8.onnx", "agegender_f32.onnx"])]
fn classify(b: Bencher, name: &str) {
    let (_, img) = frame();
    let det = detections(&img);
    let mut face = vec![0f32; 3 * INPUT_SIZE * INPUT_SIZE];
    align_into(&img, &det[0].landmarks, INPUT_SIZE, &mut face).unwrap();
    let mut c = pipeline::load_classifier(&model(name)).unwrap();
    b.bench_local(|| c.classify(black_box(&face)).unwrap());
}

/// Two detections with labels, as the tracker and the drawing get them.
fn labelled() -> (Vec<Detection>, Vec<Attributes>) {
    let (_, img) = frame();
    let det = detections(&img);
    let mut c = pipeline::load_classifier(&model("agegender_int8.onnx")).unwrap();
    let mut face = vec![0f32; 3 * INPUT_SIZE * INPUT_SIZE];
    let attrs = det
        .iter()
        .map(|d| {
            align_into(&img, &d.landmarks, INPUT_SIZE, &mut face).unwrap();
            c.classify(&face).unwrap()
        })
        .collect();
    (det, attrs)
}

#[divan::bench]
fn track_two_faces(b: Bencher) {
    let (det, attrs) = labelled();
    let mut t = Tracker::new(Config::default().tracker());
    b.bench_local(|| t.update(black_box(&det), &attrs).len());
}

fn tracked() -> (RgbImage, Vec<TrackedFace>) {
    let (_, img) = frame();
    let (det, attrs) = labelled();
    let mut t = Tracker::new(Config::default().tracker());
    let faces = t.update(&det, &attrs).to_vec();
    (img, faces)
}

#[divan::bench]
fn draw_overlay_two_faces(b: Bencher) {
    let (img, faces) = tracked();
    let mut canvas = RgbImage::new(W, H);
    b.bench_local(|| annotate_into(black_box(&img), &faces, &mut canvas));
}

#[divan::bench]
fn report_two_face_lines(b: Bencher) {
    let (_, faces) = tracked();
    let mut r = Reporter::new(Box::new(DiscardSink::default()));
    b.bench_local(|| {
        for f in &faces {
            r.face(1, 2, black_box(f), 3.0, None).unwrap();
        }
        r.flush().unwrap();
    });
}
