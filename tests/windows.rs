//! Track-guided detection (src/pipeline/frame_detector.rs `FrameDetector::detect_windows`, through the real
//! BlazeFace models on real JPEG frames of UTKFace faces): a window search with the 128×128
//! front model finds the face the whole-frame detector finds, at the same place, also when the
//! window runs off the frame; in the loop, a moving face is followed in windows between
//! whole-frame detections, a newcomer elsewhere brings the whole frame back at once, and with
//! `full_detect_interval_s = 0` every detection is of the whole frame.

mod common;

use std::path::{Path, PathBuf};

use agegender::config::Config;
use agegender::detect::blazeface::BlazeFace;
use agegender::detect::{Detection, DetectorConfig, FaceDetector, Window};
use agegender::pipeline::{Pipeline, WINDOW_MIN_SIDE, WINDOW_SCALE};

const FPS: f32 = 30.0;

fn front() -> BlazeFace {
    BlazeFace::load(&common::blazeface_model(true), DetectorConfig::default()).unwrap()
}

fn whole_frame(image: &agegender::rgb::RgbImage) -> Vec<Detection> {
    let mut back =
        BlazeFace::load(&common::blazeface_model(false), DetectorConfig::default()).unwrap();
    let mut out = Vec::new();
    back.detect(image, &mut out).unwrap();
    out
}

#[test]
fn a_window_finds_the_face_where_the_whole_frame_does() {
    let faces = common::utk_faces(3, 21);
    // one face in the middle, one against the right edge (its window runs off the frame)
    let placed: Vec<(PathBuf, [u32; 4])> = vec![
        (faces[0].clone(), [100, 150, 230, 280]),
        (faces[1].clone(), [520, 60, 640, 180]),
    ];
    let (_, frame) = common::face_frame(&placed, 640, 480);
    let full = whole_frame(&frame);
    assert_eq!(full.len(), 2, "the whole frame: {full:?}");
    let mut front = front();
    let mut found = Vec::new();
    for d in &full {
        let w = Window::around(d, WINDOW_SCALE, WINDOW_MIN_SIDE);
        front.detect_window(&frame, w, &mut found).unwrap();
        let best = found
            .iter()
            .map(|f| common::box_iou(f.bbox, d.bbox))
            .fold(0.0f32, f32::max);
        assert!(
            best >= 0.6,
            "window {w:?}: found {found:?}, best IoU {best} with {:?}",
            d.bbox
        );
        // the landmarks land on the same eyes (within a tenth of the face)
        let f = found
            .iter()
            .max_by(|a, b| {
                common::box_iou(a.bbox, d.bbox).total_cmp(&common::box_iou(b.bbox, d.bbox))
            })
            .unwrap();
        let side = d.bbox[2] - d.bbox[0];
        for k in 0..2 {
            let (a, b) = (f.landmarks[k], d.landmarks[k]);
            let dist = ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt();
            assert!(dist < 0.1 * side, "eye {k}: {a:?} against {b:?}");
        }
    }
    // a window on the background finds nothing
    let empty = Window {
        x0: 300.0,
        y0: 300.0,
        side: 150.0,
    };
    front.detect_window(&frame, empty, &mut found).unwrap();
    assert!(found.is_empty(), "{found:?}");
    // a window of no size is an error, not a panic
    let bad = Window {
        x0: 0.0,
        y0: 0.0,
        side: f32::NAN,
    };
    assert!(front.detect_window(&frame, bad, &mut found).is_err());
}

/// A loop over `stream` with the window detector when `windows`.
fn pipeline(stream: Vec<u8>, cfg: &Config, log: &Path, windows: bool) -> Pipeline {
    common::replay_loop(stream, FPS, cfg, log, windows)
}

/// Per frame: the faces reported.
fn run_all(p: &mut Pipeline) -> Vec<usize> {
    common::run_to_end(p)
        .into_iter()
        .map(|(faces, _)| faces)
        .collect()
}

#[test]
fn a_moving_face_is_followed_in_windows_and_a_newcomer_brings_the_whole_frame_back() {
    let faces = common::utk_faces(2, 5);
    // A walks right 3 px a frame for 2 s; B steps in on the other side at frame 40
    let n = 60u32;
    let arrives = 40u32;
    let mut stream = Vec::new();
    for i in 0..n {
        let mut placed = vec![(faces[0].clone(), [40 + 3 * i, 150, 180 + 3 * i, 290])];
        if i >= arrives {
            placed.push((faces[1].clone(), [470, 200, 610, 340]));
        }
        let (_, frame) = common::face_frame(&placed, 640, 480);
        stream.extend_from_slice(&common::noisy_jpeg(&frame, 3, i as u64 + 1));
    }
    // following off (tests/follow.rs has it): every due frame is detected
    let cfg = Config {
        detect_every: 1,
        follow_interval_s: 0.0,
        status_interval_s: 0.0,
        ..Config::default()
    };
    assert_eq!(cfg.full_detect_interval_s, 1.0, "the default");
    let tmp = tempfile::tempdir().unwrap();

    let mut p = pipeline(stream.clone(), &cfg, &tmp.path().join("w.jsonl"), true);
    let per_frame = run_all(&mut p);
    let st = *p.status();
    assert_eq!(per_frame.len() as u32, n);
    assert!(
        per_frame[..arrives as usize].iter().all(|&f| f == 1),
        "A on every frame before B: {per_frame:?}"
    );
    // B is found on the frame it appears (the motion gate sees change outside A's window) or
    // the next, and both are reported from then on
    assert!(
        per_frame[arrives as usize + 1..].iter().all(|&f| f == 2),
        "both after B came: {per_frame:?}"
    );
    // every frame moved, so each was detected; all but the first, B's arrival (and a few
    // around it) and the once-a-second refresh searched windows only
    assert_eq!(st.detections, n as u64, "{st:?}");
    assert!(
        st.window_detections >= n as u64 - 8,
        "window searches {} of {} detections",
        st.window_detections,
        st.detections
    );

    // with track-guided detection off, the same stream: whole frames only, the same faces
    let cfg_off = Config {
        full_detect_interval_s: 0.0,
        ..cfg
    };
    let mut p = pipeline(stream, &cfg_off, &tmp.path().join("f.jsonl"), true);
    let per_frame_off = run_all(&mut p);
    assert_eq!(p.status().window_detections, 0);
    assert_eq!(p.status().detections, n as u64);
    assert!(per_frame_off[..arrives as usize].iter().all(|&f| f == 1));
    assert!(per_frame_off[arrives as usize..].iter().all(|&f| f == 2));
}

#[test]
fn a_swaying_person_is_followed_in_windows_though_the_body_moves_too() {
    // a face on a striped body 2.6 faces wide down to the frame's bottom, swaying 2 px a frame
    // (the body moves outside the face's window: it is the person's own motion, not a newcomer)
    let faces = common::utk_faces(1, 9);
    let n = 64u32;
    let mut stream = Vec::new();
    for i in 0..n {
        let x = 200 + if i < 32 { 2 * i } else { 2 * (64 - i) };
        let (_, mut frame) =
            common::face_frame(&[(faces[0].clone(), [x, 100, x + 110, 210])], 640, 480);
        for y in 210..480u32 {
            for bx in x.saturating_sub(88)..(x + 198).min(640) {
                let stripe = if ((bx - x + 88) / 12 + y / 20) % 2 == 0 {
                    40
                } else {
                    200
                };
                let i = ((y * 640 + bx) * 3) as usize;
                frame.data[i..i + 3].copy_from_slice(&[stripe, stripe / 2, 90]);
            }
        }
        stream.extend_from_slice(&common::noisy_jpeg(&frame, 3, i as u64 + 1));
    }
    // following off (tests/follow.rs has it): every due frame is detected
    let cfg = Config {
        detect_every: 1,
        follow_interval_s: 0.0,
        status_interval_s: 0.0,
        ..Config::default()
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut p = pipeline(stream, &cfg, &tmp.path().join("s.jsonl"), true);
    let per_frame = run_all(&mut p);
    assert!(per_frame.iter().all(|&f| f == 1), "{per_frame:?}");
    let st = *p.status();
    // whole frames: the first, and the refresh once a second (frames 0 and 30, maybe a third)
    assert!(
        st.detections - st.window_detections <= 3,
        "{} whole-frame detections of {}",
        st.detections - st.window_detections,
        st.detections
    );
}
