//! The stage-parallel frame loop (src/pipeline/parallel.rs) against the one-thread loop, with
//! the real models over replayed JPEG streams: the same faces, tracks and labels, lines in
//! frame order, windows searched on tracks a detection behind, and back-pressure: a camera's
//! frames are dropped at capture (counted) instead of queued, a file's are waited for.

mod common;

use std::path::Path;

use agegender::config::Config;
use common::Pace;
use serde_json::Value;

/// `n` frames of 640×480 with three faces walking (one right, one down, one diagonally).
fn walking_stream(n: u32) -> Vec<u8> {
    let faces = common::utk_faces(3, 23);
    let mut stream = Vec::new();
    for i in 0..n {
        let a = [30 + 6 * i, 40, 150 + 6 * i, 160];
        let b = [470, 60 + 4 * i, 590, 180 + 4 * i];
        let c = [230 + 3 * i, 250 + 2 * i, 330 + 3 * i, 350 + 2 * i];
        let (jpeg, _) = common::face_frame(
            &[
                (faces[0].clone(), a),
                (faces[1].clone(), b),
                (faces[2].clone(), c),
            ],
            640,
            480,
        );
        stream.extend_from_slice(&jpeg);
    }
    stream
}

fn lines(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// What a face line says about the face (not when it was written or how long it took).
fn face_key(l: &Value) -> String {
    format!(
        "frame {} track {} box {} gender {} {} age {} {}",
        l["frame"], l["track_id"], l["box"], l["gender"], l["gender_p"], l["age"], l["age_bucket"]
    )
}

/// Replay `stream` at `fps` (as `pace` says) through a loop with `workers`; the report's lines.
fn run(
    stream: Vec<u8>,
    (fps, pace): (f32, Pace),
    cfg: &Config,
    windows: bool,
    workers: usize,
) -> Vec<Value> {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("run.jsonl");
    let mut p = common::replay_loop_with(stream, (fps, pace), cfg, &log, windows, workers);
    let status = p.run().unwrap();
    assert_eq!(status.workers as usize, workers);
    drop(p);
    lines(&log)
}

fn faces(lines: &[Value]) -> Vec<&Value> {
    lines.iter().filter(|l| l["type"] == "face").collect()
}

fn last_status(lines: &[Value]) -> &Value {
    lines.iter().rev().find(|l| l["type"] == "status").unwrap()
}

/// Face lines per frame of an `n`-frame run.
fn faces_per_frame(lines: &[Value], n: u64) -> Vec<u32> {
    let mut per_frame = vec![0u32; n as usize];
    for l in faces(lines) {
        per_frame[l["frame"].as_u64().unwrap() as usize] += 1;
    }
    per_frame
}

/// The three walking faces missed over the run's frames (a frame with fewer than three lines).
fn missed(per_frame: &[u32]) -> u32 {
    per_frame.iter().map(|&c| 3u32.saturating_sub(c)).sum()
}

/// The whole-frame detector on every frame, nothing gated: every frame that reaches the loop is
/// detected, so the status line's `detections` counts the frames that went through.
fn detect_every_frame() -> Config {
    Config {
        detect_every: 1,
        motion_threshold: 0.0,
        full_detect_interval_s: 0.0,
        status_interval_s: 0.0,
        ..Config::default()
    }
}

#[test]
fn parallel_loop_reports_what_the_one_thread_loop_reports() {
    // whole-frame detections only, on every due frame (following skips detections by what
    // the tracks say when a frame is planned, a detection or two behind in the parallel loop):
    // what each frame's detection sees does not depend on which worker ran it or when, so both
    // loops must agree line for line
    let cfg = Config {
        detect_every: 2,
        full_detect_interval_s: 0.0,
        follow_interval_s: 0.0,
        status_interval_s: 0.0,
        ..Config::default()
    };
    let one = run(walking_stream(24), (30.0, Pace::Unpaced), &cfg, false, 1);
    let par = run(walking_stream(24), (30.0, Pace::Unpaced), &cfg, false, 3);
    let (f1, fp) = (faces(&one), faces(&par));
    assert!(f1.len() >= 3 * 22, "the faces were found: {}", f1.len());
    let k1: Vec<String> = f1.iter().map(|l| face_key(l)).collect();
    let kp: Vec<String> = fp.iter().map(|l| face_key(l)).collect();
    assert_eq!(k1, kp, "face lines differ between 1 and 3 workers");
    let (s1, sp) = (last_status(&one), last_status(&par));
    for key in [
        "frames",
        "detections",
        "detect_skipped",
        "classifier_calls",
        "faces_total",
    ] {
        assert_eq!(s1[key], sp[key], "status {key}");
    }
    assert_eq!(
        sp["busy_dropped"], 0,
        "an unpaced replay waits, it drops nothing"
    );
    assert_eq!(sp["camera"], "ended");
    // the visits (tracks that ended with the run) are the same too
    let visits = |ls: &[Value]| -> Vec<String> {
        ls.iter()
            .filter(|l| l["type"] == "visit")
            .map(|l| format!("{} {} {}", l["track_id"], l["first_frame"], l["last_frame"]))
            .collect()
    };
    assert_eq!(visits(&one), visits(&par));
}

#[test]
fn parallel_windows_follow_walking_faces() {
    // track-guided detection on: with detections in flight the windows are placed by older
    // tracks and widened (LAG_SCALE); every face must still be followed in every frame
    // (following off: every due frame is detected, windows or the whole frame)
    let cfg = Config {
        detect_every: 1,
        follow_interval_s: 0.0,
        status_interval_s: 0.0,
        ..Config::default()
    };
    let n = 36;
    let par = run(walking_stream(n), (30.0, Pace::Unpaced), &cfg, true, 2);
    let status = last_status(&par);
    assert!(
        status["window_detections"].as_u64().unwrap() >= 10,
        "windows were searched: {status}"
    );
    let per_frame = faces_per_frame(&par, n as u64);
    let missing = missed(&per_frame);
    assert!(
        missing <= 2,
        "faces missed over {n} frames of 3 walking faces: {missing} ({per_frame:?})"
    );
    assert!(
        per_frame.iter().all(|&c| c <= 3),
        "no false boxes: {per_frame:?}"
    );
    let tracks: std::collections::BTreeSet<u64> = faces(&par)
        .iter()
        .map(|l| l["track_id"].as_u64().unwrap())
        .collect();
    assert_eq!(tracks.len(), 3, "one track per face: {tracks:?}");
}

#[test]
fn a_busy_loop_drops_frames_at_capture_and_counts_them() {
    // a replay paced at 2,000 fps as a camera is a camera far faster than detection on every
    // frame (a whole-frame detection costs more than the decoding the capture thread does):
    // frames that find no free slot are dropped before decoding and counted, the rest go
    // through in order
    let cfg = detect_every_frame();
    let n = 60u64;
    let par = run(
        walking_stream(n as u32),
        (2000.0, Pace::Camera),
        &cfg,
        false,
        2,
    );
    let status = last_status(&par);
    let busy = status["busy_dropped"].as_u64().unwrap();
    assert_eq!(
        status["frames"], n,
        "every frame the source gave was taken: {status}"
    );
    assert!(busy > 0, "frames were dropped at capture: {status}");
    assert_eq!(
        status["dropped_frames"], 0,
        "the source itself skipped none"
    );
    let processed = n - busy;
    assert_eq!(status["detections"], processed, "{status}");
    let frames: Vec<u64> = faces(&par)
        .iter()
        .map(|l| l["frame"].as_u64().unwrap())
        .collect();
    assert!(frames.windows(2).all(|w| w[0] <= w[1]), "in frame order");
    // a dropped frame keeps its number: face lines number the source's frames
    let distinct: std::collections::BTreeSet<u64> = frames.iter().copied().collect();
    assert!(
        distinct.len() as u64 <= processed && *frames.last().unwrap() < n,
        "{} frames with faces, {processed} went through, last {}",
        distinct.len(),
        frames.last().unwrap()
    );
}

#[test]
fn a_file_replayed_faster_than_the_loop_loses_no_frame() {
    // the same replay, paced at 2,000 fps but as a file: the loop is slower than the clip on
    // any machine, and the capture thread waits for a free slot instead of dropping, so every
    // frame is detected and reported, in order, only later than the clip's clock
    let cfg = detect_every_frame();
    let n = 60u64;
    let par = run(
        walking_stream(n as u32),
        (2000.0, Pace::Paced),
        &cfg,
        false,
        2,
    );
    let status = last_status(&par);
    assert_eq!(
        status["busy_dropped"], 0,
        "a file is never dropped from: {status}"
    );
    assert_eq!(status["frames"], n, "{status}");
    assert_eq!(
        status["detections"], n,
        "every frame was detected: {status}"
    );
    let per_frame = faces_per_frame(&par, n);
    let missing = missed(&per_frame);
    assert!(
        missing <= 2,
        "faces missed over {n} frames of 3 walking faces: {missing} ({per_frame:?})"
    );
}

#[test]
fn a_clip_replayed_on_a_machine_too_slow_for_it_is_reported_whole() {
    // a 30 fps clip on a machine whose classifier takes 200 ms a face (six frame times; an
    // AVX2-only x86 took 300 ms with the int8 file): every frame of the clip is still reported
    // with its faces, in order, and the source dropped none; only the wall time grows
    let cfg = Config {
        detect_every: 2,
        status_interval_s: 0.0,
        classify_budget: 4,
        ..Config::default()
    };
    let n = 30u64;
    let slow = Pace::SlowClassifier(std::time::Duration::from_millis(200));
    let par = run(walking_stream(n as u32), (30.0, slow), &cfg, false, 2);
    let status = last_status(&par);
    assert_eq!(status["busy_dropped"], 0, "{status}");
    assert_eq!(status["dropped_frames"], 0, "{status}");
    assert_eq!(status["frames"], n, "{status}");
    assert!(
        status["classifier_calls"].as_u64().unwrap() >= 3,
        "the slow classifier ran: {status}"
    );
    let per_frame = faces_per_frame(&par, n);
    let missing = missed(&per_frame);
    assert!(
        per_frame.iter().all(|&c| c > 0) && missing <= 2,
        "frames of the clip went unreported: {per_frame:?}"
    );
    let frames: Vec<u64> = faces(&par)
        .iter()
        .map(|l| l["frame"].as_u64().unwrap())
        .collect();
    assert!(frames.windows(2).all(|w| w[0] <= w[1]), "in frame order");
}
