//! Motion gating end to end (src/motion.rs through the real Pipeline, BlazeFace and the
//! classifier this machine runs, on replayed JPEG frames with per-frame sensor noise, replayed
//! at 30 fps so the forced refresh runs on the stream's clock): in a still scene the detector
//! runs far less than on schedule while both faces are reported on every frame; a face that
//! enters an empty scene is found on the frame it appears and is gone the frame after it leaves.

mod common;

use std::path::{Path, PathBuf};

use agegender::config::Config;
use agegender::pipeline::Pipeline;

const FPS: f32 = 30.0;

fn pipeline(stream: Vec<u8>, cfg: &Config, log: &Path) -> Pipeline {
    common::replay_loop(stream, FPS, cfg, log, false)
}

fn gated() -> Config {
    Config {
        motion_threshold: 0.002,
        detect_max_interval_s: 1.0,
        status_interval_s: 0.0,
        ..Config::default()
    }
}

#[test]
fn still_scene_skips_the_detector_but_reports_every_frame() {
    let faces = common::utk_faces(2, 7);
    let placed: Vec<(PathBuf, [u32; 4])> = vec![
        (faces[0].clone(), [60, 80, 220, 240]),
        (faces[1].clone(), [380, 200, 540, 360]),
    ];
    let (_, still) = common::face_frame(&placed, 640, 480);
    let n = 75u64; // 2.5 s at 30 fps
    let mut stream = Vec::new();
    for i in 0..n {
        stream.extend_from_slice(&common::noisy_jpeg(&still, 3, i + 1));
    }
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("still.jsonl");
    let cfg = Config {
        min_dwell_s: 0.5,
        ..gated()
    };
    let mut p = pipeline(stream, &cfg, &log);
    let frames = common::run_to_end(&mut p);
    assert_eq!(frames.len() as u64, n);
    // the end of the run: the two visitors' visits
    p.run().unwrap();
    let detected: Vec<usize> = (0..frames.len()).filter(|&i| frames[i].1).collect();
    // the first frame, then the forced refresh once a second (frames 30 and 60)
    assert_eq!(detected, vec![0, 30, 60], "detector runs in a still scene");
    assert!(
        frames.iter().all(|&(f, _)| f == 2),
        "both faces on every frame: {frames:?}"
    );
    let st = *p.status();
    assert_eq!(st.detections, 3);
    assert_eq!(st.detect_skipped, n - 3);
    assert_eq!(st.faces_total, 2 * n);
    // each visit lasts from the first frame to the last one the face was shown on, though
    // the detector saw it only three times
    let visits: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["type"] == "visit")
        .collect();
    assert_eq!(visits.len(), 2, "{visits:?}");
    for v in &visits {
        assert_eq!(v["first_frame"], 0, "{v}");
        assert_eq!(v["last_frame"], n - 1, "{v}");
        // `views` counts classified views: a still face whose labels are answered is classified
        // on first sight and again only after classify_refresh_s (3 s; this stream lasts 2.5 s);
        // one still abstaining (`?`, `U`) is classified at each of the three detections
        let unsure = v["age_bucket"] == "?" || v["gender"] == "U";
        assert_eq!(v["views"], if unsure { 3 } else { 1 }, "{v}");
        let dwell = (n - 1) as f64 / FPS as f64;
        assert!(
            (v["dwell_s"].as_f64().unwrap() - dwell).abs() < 0.01,
            "{v}: dwell {dwell}"
        );
    }

    // the same stream on schedule (gate off) runs the detector on every frame
    let log = tmp.path().join("every.jsonl");
    let mut stream = Vec::new();
    for i in 0..n {
        stream.extend_from_slice(&common::noisy_jpeg(&still, 3, i + 1));
    }
    let cfg = Config {
        motion_threshold: 0.0,
        ..gated()
    };
    let mut p = pipeline(stream, &cfg, &log);
    let frames = common::run_to_end(&mut p);
    assert!(frames.iter().all(|&(f, d)| f == 2 && d));
    assert_eq!(p.status().detect_skipped, 0);
}

#[test]
fn a_face_entering_is_found_at_once_and_gone_when_it_leaves() {
    let faces = common::utk_faces(1, 11);
    let (_, empty) = common::face_frame(&[], 640, 480);
    let (enter, leave, n) = (20u64, 45u64, 60u64);
    let mut boxes = Vec::new();
    let mut stream = Vec::new();
    for i in 0..n {
        let frame = if (enter..leave).contains(&i) {
            // walks in from the left, 4 px per frame
            let x = 40 + 4 * (i - enter) as u32;
            let b = [x, 120, x + 160, 280];
            boxes.push(Some(b));
            common::face_frame(&[(faces[0].clone(), b)], 640, 480).1
        } else {
            boxes.push(None);
            empty.clone()
        };
        stream.extend_from_slice(&common::noisy_jpeg(&frame, 3, i + 1));
    }
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("enter.jsonl");
    let mut p = pipeline(stream, &gated(), &log);
    let frames = common::run_to_end(&mut p);
    assert_eq!(frames.len() as u64, n);
    for (i, &(f, _)) in frames.iter().enumerate() {
        let want = usize::from(boxes[i].is_some());
        assert_eq!(f, want, "frame {i}: {f} faces reported, {want} in view");
    }
    // the empty scene before and after skips the detector (but for the refresh at 30 fps)
    let st = *p.status();
    assert!(
        st.detections <= (leave - enter) + 6,
        "detections: {} of {n} frames",
        st.detections
    );
    assert!(st.detect_skipped >= 30, "skipped: {}", st.detect_skipped);
    // every reported box is where the face is on that frame
    drop(p);
    for line in std::fs::read_to_string(&log).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["type"] != "face" {
            continue;
        }
        let i = v["frame"].as_u64().unwrap() as usize;
        let b = v["box"].as_array().unwrap();
        let got = [0, 1, 2, 3].map(|k| b[k].as_f64().unwrap() as f32);
        let want = common::to_f32_box(boxes[i].expect("a face line on a frame without a face"));
        assert!(
            common::box_iou(got, want) > 0.4,
            "frame {i}: box {got:?}, face at {want:?}"
        );
    }
}
