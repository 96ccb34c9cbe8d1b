//! Detect stage: real BlazeFace and YuNet ONNX models through tract on real JPEG frames with
//! UTKFace faces pasted at known boxes.
//!
//! BlazeFace comes from `scripts/fetch-detector` (models/detector/), YuNet from ../shared/models.

mod common;

use std::path::{Path, PathBuf};

use agegender::decode::Decoder;
use agegender::detect::blazeface::BlazeFace;
use agegender::detect::yunet::YuNet;
use agegender::detect::{iou, load_detector, nms, Detection, DetectorConfig, FaceDetector};
use agegender::heap::PoolAlloc;
use agegender::rgb::RgbImage;

// Counts allocations made by the current thread (tests run in parallel threads).
#[global_allocator]
static GLOBAL: PoolAlloc = PoolAlloc;

fn allocs() -> usize {
    PoolAlloc::count() as usize
}

fn cfg() -> DetectorConfig {
    DetectorConfig::default()
}

/// Three faces of different sizes at known boxes in a 640×480 JPEG frame, decoded.
fn three_face_frame() -> (RgbImage, Vec<[u32; 4]>) {
    let faces = common::utk_faces(3, 2024);
    let boxes = vec![
        [40, 50, 200, 210],
        [300, 120, 420, 240],
        [480, 300, 580, 400],
    ];
    let spec: Vec<(PathBuf, [u32; 4])> = faces.into_iter().zip(boxes.iter().copied()).collect();
    let (jpeg, _) = common::face_frame(&spec, 640, 480);
    let mut img = RgbImage::default();
    Decoder::new().decode_jpeg(&jpeg, &mut img).unwrap();
    (img, boxes)
}

fn empty_frame() -> RgbImage {
    let (jpeg, _) = common::face_frame(&[], 640, 480);
    let mut img = RgbImage::default();
    Decoder::new().decode_jpeg(&jpeg, &mut img).unwrap();
    img
}

fn check_finds_all(det: &mut dyn FaceDetector, name: &str) {
    let (img, boxes) = three_face_frame();
    let mut out = Vec::new();
    det.detect(&img, &mut out).unwrap();
    assert_eq!(out.len(), boxes.len(), "{name}: {out:?}");
    for b in &boxes {
        let want = common::to_f32_box(*b);
        let d = out
            .iter()
            .max_by(|x, y| iou(&x.bbox, &want).total_cmp(&iou(&y.bbox, &want)))
            .unwrap();
        let v = iou(&d.bbox, &want);
        assert!(v > 0.5, "{name}: best IoU {v} for {b:?}: {d:?}");
        assert!(d.score >= cfg().score_threshold && d.score <= 1.0);
        // Landmarks inside the box, in the right order: subject's right eye on the image's
        // left, eyes above the nose, nose above the mouth.
        let [re, le, nose, mouth] = d.landmarks;
        for p in d.landmarks {
            assert!(
                p[0] >= want[0] && p[0] <= want[2] && p[1] >= want[1] && p[1] <= want[3],
                "{name}: landmark {p:?} outside {want:?}"
            );
        }
        assert!(
            re[0] < le[0],
            "{name}: right eye {re:?} not left of left eye {le:?}"
        );
        assert!(
            re[1].max(le[1]) < nose[1],
            "{name}: eyes not above the nose"
        );
        assert!(nose[1] < mouth[1], "{name}: nose not above the mouth");
        assert!(
            nose[0] > re[0] && nose[0] < le[0],
            "{name}: nose not between the eyes"
        );
    }
}

fn check_no_faces(det: &mut dyn FaceDetector, name: &str) {
    let img = empty_frame();
    let mut out = Vec::new();
    det.detect(&img, &mut out).unwrap();
    assert!(
        out.is_empty(),
        "{name} found faces in a face-free frame: {out:?}"
    );
}

#[test]
fn blazeface_back_finds_pasted_faces_and_nothing_else() {
    let mut det = BlazeFace::load(&common::blazeface_model(false), cfg()).unwrap();
    assert_eq!(det.input_size(), 256);
    check_finds_all(&mut det, "blazeface-back-256");
    check_no_faces(&mut det, "blazeface-back-256");
}

#[test]
fn blazeface_cut_to_the_cameras_aspect_finds_what_the_square_input_finds() {
    // A 4:3 camera's frames go to a 256x192 input: the band a letterbox would pad is not
    // computed. Same faces, same places as the square input.
    let path = common::blazeface_model(false);
    let mut cut = BlazeFace::load_for_frames(&path, cfg(), Some((640, 480))).unwrap();
    assert_eq!((cut.input_size(), cut.input_height()), (256, 192));
    check_finds_all(&mut cut, "blazeface-back-256x192");
    check_no_faces(&mut cut, "blazeface-back-256x192");
    let mut square = BlazeFace::load(&path, cfg()).unwrap();
    let (img, _) = three_face_frame();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    cut.detect(&img, &mut a).unwrap();
    square.detect(&img, &mut b).unwrap();
    assert_eq!(a.len(), b.len());
    for d in &a {
        let best = b.iter().map(|e| iou(&d.bbox, &e.bbox)).fold(0.0, f32::max);
        assert!(
            best > 0.8,
            "{d:?} is not where the square input put it: {b:?}"
        );
    }
    // 16:9 frames: 256x160 (144 rounded up to the coarse grid's 32)
    let mut wide = BlazeFace::load_for_frames(&path, cfg(), Some((1280, 720))).unwrap();
    assert_eq!(wide.input_height(), 160);
    let mut out = Vec::new();
    wide.detect(&img, &mut out).unwrap();
    assert!(
        !out.is_empty(),
        "a 4:3 frame letterboxed into 256x160 still shows its faces"
    );
    // a portrait or unknown frame keeps the square input
    let tall = BlazeFace::load_for_frames(&path, cfg(), Some((480, 640))).unwrap();
    assert_eq!(tall.input_height(), 256);
}

#[test]
fn blazeface_front_finds_pasted_faces_and_nothing_else() {
    let mut det = BlazeFace::load(&common::blazeface_model(true), cfg()).unwrap();
    assert_eq!(det.input_size(), 128);
    check_finds_all(&mut det, "blazeface-front-128");
    check_no_faces(&mut det, "blazeface-front-128");
}

#[test]
fn yunet_static_and_dynamic_find_pasted_faces_and_nothing_else() {
    let mut det = YuNet::load(&common::shared_model("yunet_s_640_640.onnx"), None, cfg()).unwrap();
    assert_eq!(det.input_size(), (640, 640));
    check_finds_all(&mut det, "yunet-s-640");
    check_no_faces(&mut det, "yunet-s-640");

    let dynamic = common::shared_model("yunet_s_dynamic.onnx");
    let mut det = YuNet::load(&dynamic, Some((320, 256)), cfg()).unwrap();
    assert_eq!(det.input_size(), (320, 256));
    check_finds_all(&mut det, "yunet-s-320x256");
    let e = YuNet::load(&dynamic, Some((300, 256)), cfg())
        .err()
        .unwrap();
    assert!(e.to_string().contains("multiples of 32"), "{e}");
}

#[test]
fn load_detector_recognises_each_model() {
    for (p, want) in [
        (common::blazeface_model(false), 256),
        (common::blazeface_model(true), 128),
    ] {
        let mut det = load_detector(&p, cfg()).unwrap();
        check_finds_all(det.as_mut(), &format!("load_detector({})", p.display()));
        // The same file as a BlazeFace states its size.
        assert_eq!(BlazeFace::load(&p, cfg()).unwrap().input_size(), want);
    }
    let mut det = load_detector(&common::shared_model("yunet_s_640_640.onnx"), cfg()).unwrap();
    check_finds_all(det.as_mut(), "load_detector(yunet)");
}

#[test]
fn load_detector_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let check = |p: &Path, what: &str| {
        let e = format!("{:#}", load_detector(p, cfg()).err().expect("must fail"));
        assert!(e.contains(&p.display().to_string()), "{e}");
        assert!(e.contains(what), "expected '{what}' in: {e}");
    };
    check(&dir.path().join("missing.onnx"), "cannot open");
    let empty = dir.path().join("empty.onnx");
    std::fs::write(&empty, b"").unwrap();
    check(&empty, "empty");
    let text = dir.path().join("text.onnx");
    std::fs::write(&text, b"this is not a protobuf at all, just some text\n").unwrap();
    check(&text, "ONNX");
    let bytes = std::fs::read(common::blazeface_model(false)).unwrap();
    let cut = dir.path().join("cut.onnx");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    check(&cut, "ONNX");
    // A valid ONNX that is no face detector: the classifier.
    let clf = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/agegender_f32.onnx");
    if clf.is_file() {
        check(&clf, "not a recognised face detector");
    }
}

#[test]
fn thresholds_are_honoured() {
    let (img, boxes) = three_face_frame();
    let mut out = Vec::new();
    let strict = DetectorConfig {
        score_threshold: 0.99999,
        ..cfg()
    };
    let mut det = BlazeFace::load(&common::blazeface_model(false), strict).unwrap();
    det.detect(&img, &mut out).unwrap();
    assert!(out.len() < boxes.len(), "{out:?}");
    let one = DetectorConfig {
        max_faces: 1,
        ..cfg()
    };
    let mut det = YuNet::load(&common::shared_model("yunet_s_640_640.onnx"), None, one).unwrap();
    det.detect(&img, &mut out).unwrap();
    assert_eq!(out.len(), 1);
}

fn d(b: [f32; 4], s: f32) -> Detection {
    Detection {
        bbox: b,
        score: s,
        landmarks: [[0.0; 2]; 4],
    }
}

#[test]
fn nms_removes_overlaps_keeps_separate_faces_and_allocates_nothing() {
    let mut v = Vec::with_capacity(16);
    v.extend([
        d([100.0, 100.0, 200.0, 200.0], 0.80),
        d([105.0, 98.0, 204.0, 203.0], 0.95), // same face, better score
        d([300.0, 100.0, 400.0, 200.0], 0.70),
        d([350.0, 100.0, 450.0, 200.0], 0.90), // IoU 1/3 with the one above
        d([0.0, 0.0, 10.0, 10.0], 0.60),
    ]);
    let before = allocs();
    nms(&mut v, 0.3);
    assert_eq!(allocs(), before, "nms allocated");
    let scores: Vec<f32> = v.iter().map(|x| x.score).collect();
    assert_eq!(scores, vec![0.95, 0.90, 0.60]);

    // At a looser threshold the 1/3-overlapping pair both survive.
    let mut v = vec![
        d([300.0, 100.0, 400.0, 200.0], 0.70),
        d([350.0, 100.0, 450.0, 200.0], 0.90),
    ];
    nms(&mut v, 0.4);
    assert_eq!(v.len(), 2);
    assert_eq!(v[0].score, 0.90);

    let mut empty: Vec<Detection> = Vec::new();
    nms(&mut empty, 0.3);
    assert!(empty.is_empty());
}

#[test]
fn iou_is_symmetric_and_bounded() {
    let a = [10.0, 10.0, 50.0, 60.0];
    let b = [30.0, 20.0, 70.0, 90.0];
    assert!((iou(&a, &b) - iou(&b, &a)).abs() < 1e-7);
    assert!((iou(&a, &a) - 1.0).abs() < 1e-7);
    let inter = 20.0 * 40.0;
    let want = inter / (40.0 * 50.0 + 40.0 * 70.0 - inter);
    assert!((iou(&a, &b) - want).abs() < 1e-6);
    assert_eq!(iou(&a, &[100.0, 100.0, 120.0, 120.0]), 0.0);
}

/// Counts what one warm `detect` call allocates. Our side (letterboxing, decoding, NMS,
/// copying to `out`) allocates nothing; what remains is tract's per-node output tensors
/// (see src/detect/mod.rs). The counts are printed for the record and bounded so a
/// regression on our side (e.g. a per-candidate allocation) shows up.
#[test]
fn tract_allocations_per_detect_are_measured() {
    let (img, _) = three_face_frame();
    let empty = empty_frame();
    let mut out = Vec::with_capacity(16);
    let models: Vec<(&str, Box<dyn FaceDetector>)> = vec![
        (
            "blazeface-back-256",
            Box::new(BlazeFace::load(&common::blazeface_model(false), cfg()).unwrap()),
        ),
        (
            "blazeface-front-128",
            Box::new(BlazeFace::load(&common::blazeface_model(true), cfg()).unwrap()),
        ),
        (
            "yunet-s-640",
            Box::new(
                YuNet::load(&common::shared_model("yunet_s_640_640.onnx"), None, cfg()).unwrap(),
            ),
        ),
    ];
    for (name, mut det) in models {
        for _ in 0..2 {
            det.detect(&img, &mut out).unwrap();
        }
        let mut counts = Vec::new();
        for frame in [&img, &empty, &img] {
            let before = allocs();
            det.detect(frame, &mut out).unwrap();
            counts.push(allocs() - before);
        }
        println!("{name}: allocations per warm detect call (faces, none, faces): {counts:?}");
        // Same count with or without faces: nothing on our side depends on the content.
        assert_eq!(
            counts[0], counts[1],
            "{name}: allocations depend on the frame content"
        );
        assert_eq!(
            counts[0], counts[2],
            "{name}: allocations grow from run to run"
        );
        assert!(
            counts[0] < 1000,
            "{name}: {} allocations per run",
            counts[0]
        );
    }
}

/// The detection of `img` nearest its centre (within 30% of its side), if any.
fn central(dets: &[Detection], w: u32, h: u32) -> Option<Detection> {
    let (cx, cy, tol) = (w as f32 / 2.0, h as f32 / 2.0, 0.3 * w.max(h) as f32);
    dets.iter()
        .filter(|d| {
            ((d.bbox[0] + d.bbox[2]) / 2.0 - cx).abs() < tol
                && ((d.bbox[1] + d.bbox[3]) / 2.0 - cy).abs() < tol
        })
        .max_by(|a, b| a.score.total_cmp(&b.score))
        .copied()
}

/// Close-ups (a visitor leaning in): a UTKFace crop is a face that fills its picture. Seen with a
/// band of context (`detect_with_margin`), it is found as often as the same face pasted into a
/// larger frame, and its box lands where that face's box does; the plain detection misses more
/// and places its boxes worse.
#[test]
fn closeups_seen_with_context_are_found_and_placed_like_faces_with_surroundings() {
    let mut det = BlazeFace::load(&common::blazeface_model(false), cfg()).unwrap();
    let (mut found_plain, mut found_margin, mut iou_plain, mut iou_margin) = (0, 0, 0.0, 0.0);
    let faces = common::utk_test_faces(40, 16);
    let mut out = Vec::new();
    for path in &faces {
        let img = agegender::decode::load_image(path).unwrap();
        let (w, h) = (img.width, img.height);
        // The reference: the same face in the middle of a frame three times its size.
        let (jpeg, _) = common::face_frame(&[(path.clone(), [w, h, 2 * w, 2 * h])], 3 * w, 3 * h);
        let mut frame = RgbImage::default();
        Decoder::new().decode_jpeg(&jpeg, &mut frame).unwrap();
        det.detect(&frame, &mut out).unwrap();
        let Some(r) = central(&out, frame.width, frame.height) else {
            continue;
        };
        let (dx, dy) = (w as f32, h as f32);
        let reference = [
            r.bbox[0] - dx,
            r.bbox[1] - dy,
            r.bbox[2] - dx,
            r.bbox[3] - dy,
        ];

        det.detect(&img, &mut out).unwrap();
        if let Some(d) = central(&out, w, h) {
            found_plain += 1;
            iou_plain += iou(&d.bbox, &reference);
        }
        det.detect_with_margin(&img, 0.5, &mut out).unwrap();
        if let Some(d) = central(&out, w, h) {
            found_margin += 1;
            iou_margin += iou(&d.bbox, &reference);
        }
    }
    let n = faces.len() as f32;
    let (iou_plain, iou_margin) = (iou_plain / n, iou_margin / n);
    eprintln!(
        "close-ups of {n} faces: plain found {found_plain}, mean IoU with the reference {iou_plain:.3}; \
         with context found {found_margin}, mean IoU {iou_margin:.3}"
    );
    assert!(
        found_margin >= 39,
        "with context: {found_margin} of {n} found"
    );
    assert!(found_margin >= found_plain);
    assert!(
        iou_margin > iou_plain + 0.05 && iou_margin > 0.7,
        "mean IoU with the reference: with context {iou_margin:.3}, plain {iou_plain:.3}"
    );
}
