//! Following (src/track/follow.rs, `follow_interval_s`), in the loop, through the real
//! BlazeFace models on real JPEG frames of UTKFace faces: between detections each tracked
//! face's box moves with its template, so moving faces are reported where they are on every
//! frame while most due detections are skipped; a newcomer, a face that leaves and a face the
//! template loses bring the detection back; with `follow_interval_s = 0` every due frame is
//! detected, as before.

mod common;

use std::path::{Path, PathBuf};

use agegender::config::Config;
use agegender::pipeline::Pipeline;

const FPS: f32 = 30.0;

/// The face lines of `log` per frame: boxes.
fn boxes(log: &Path, n: usize) -> Vec<Vec<[f32; 4]>> {
    let mut per_frame = vec![Vec::new(); n];
    for line in std::fs::read_to_string(log).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["type"] == "face" {
            per_frame[v["frame"].as_u64().unwrap() as usize].push(common::face_box(&v));
        }
    }
    per_frame
}

/// The shipped settings with a detection due every second frame, no status lines.
fn loop_config() -> Config {
    Config {
        detect_every: 2,
        status_interval_s: 0.0,
        ..Config::default()
    }
}

/// One frame of `faces[k]` pasted at each (k, box) of `placed`, as a noisy JPEG (frame `i`'s
/// noise), onto `stream`.
fn add_frame(stream: &mut Vec<u8>, faces: &[PathBuf], placed: &[(usize, [u32; 4])], i: u32) {
    let chips: Vec<(PathBuf, [u32; 4])> =
        placed.iter().map(|&(k, b)| (faces[k].clone(), b)).collect();
    let (_, frame) = common::face_frame(&chips, 640, 480);
    stream.extend_from_slice(&common::noisy_jpeg(&frame, 3, i as u64 + 1));
}

fn pipeline(stream: Vec<u8>, cfg: &Config, log: &Path) -> Pipeline {
    common::replay_loop(stream, FPS, cfg, log, true)
}

/// Three people: A walks right 3 px a frame, B walks down 2 px a frame, C sways 2 px a frame;
/// from `arrives` a fourth, D, stands on the right; from `leaves` A is gone.
/// Truth per frame: (person 0 = A .. 3 = D, pasted box).
type Truth = Vec<Vec<(usize, [u32; 4])>>;

/// A sway of 2 px a frame, 0 to 32 px and back every 32 frames.
fn sway(i: u32) -> u32 {
    let k = if (i / 16) % 2 == 0 {
        i % 16
    } else {
        16 - i % 16
    };
    k * 2
}

fn people(n: u32, arrives: u32, leaves: u32) -> (Vec<u8>, Truth) {
    let faces: Vec<PathBuf> = common::utk_faces(4, 31);
    let mut stream = Vec::new();
    let mut truth = Vec::new();
    for i in 0..n {
        let sway = sway(i);
        let mut placed = vec![
            (1, [250, 40 + 2 * i, 350, 140 + 2 * i]),
            (2, [60 + sway, 300, 170 + sway, 410]),
        ];
        if i < leaves {
            placed.push((0, [30 + 3 * i, 40, 140 + 3 * i, 150]));
        }
        if i >= arrives {
            placed.push((3, [480, 260, 600, 380]));
        }
        add_frame(&mut stream, &faces, &placed, i);
        truth.push(placed);
    }
    (stream, truth)
}

fn hit(a: [f32; 4], b: [u32; 4]) -> bool {
    common::box_iou(a, common::to_f32_box(b)) >= 0.5
}

/// The reported box that overlaps pasted face `t` best, if by IoU ≥ 0.5.
fn matching(got: &[[f32; 4]], t: [u32; 4]) -> Option<[f32; 4]> {
    got.iter().copied().filter(|&a| hit(a, t)).max_by(|&a, &b| {
        common::box_iou(a, common::to_f32_box(t))
            .total_cmp(&common::box_iou(b, common::to_f32_box(t)))
    })
}

fn people_at(truth: &[(usize, [u32; 4])], k: usize) -> Option<[u32; 4]> {
    truth.iter().find(|p| p.0 == k).map(|p| p.1)
}

fn centre(b: [f32; 4]) -> [f32; 2] {
    [(b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0]
}

/// Per frame: the pasted faces no reported box overlaps by IoU ≥ 0.5, and the reported boxes
/// that overlap no pasted face so.
fn misses_and_false(got: &[Vec<[f32; 4]>], truth: &Truth) -> (Vec<u32>, Vec<u32>) {
    let misses = truth
        .iter()
        .zip(got)
        .map(|(t, g)| t.iter().filter(|p| !g.iter().any(|&a| hit(a, p.1))).count() as u32)
        .collect();
    let false_boxes = truth
        .iter()
        .zip(got)
        .map(|(t, g)| {
            g.iter()
                .filter(|&&a| !t.iter().any(|p| hit(a, p.1)))
                .count() as u32
        })
        .collect();
    (misses, false_boxes)
}

#[test]
fn moving_faces_are_followed_between_fewer_detections_and_changes_bring_detection_back() {
    let (n, arrives, leaves) = (72u32, 30u32, 52u32);
    let (stream, truth) = people(n, arrives, leaves);
    let cfg = loop_config();
    assert_eq!(cfg.follow_interval_s, 0.25, "the default");
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("follow.jsonl");
    let mut p = pipeline(stream.clone(), &cfg, &log);
    let detected: Vec<bool> = common::run_to_end(&mut p).iter().map(|r| r.1).collect();
    let st = *p.status();
    drop(p);
    let got = boxes(&log, n as usize);
    let (misses, false_boxes) = misses_and_false(&got, &truth);
    // On a frame without a detection each box moved as its face did (within 2 px): the
    // follower moved it; it was not left where the last detection put it.
    let mut checked = 0;
    for f in 1..n as usize {
        if detected[f] {
            continue;
        }
        for k in 0..4 {
            let (Some(t0), Some(t1)) = (people_at(&truth[f - 1], k), people_at(&truth[f], k))
            else {
                continue;
            };
            let (Some(b0), Some(b1)) = (matching(&got[f - 1], t0), matching(&got[f], t1)) else {
                continue;
            };
            let (bx, by) = (centre(b1)[0] - centre(b0)[0], centre(b1)[1] - centre(b0)[1]);
            let (t0, t1) = (common::to_f32_box(t0), common::to_f32_box(t1));
            let (tx, ty) = (centre(t1)[0] - centre(t0)[0], centre(t1)[1] - centre(t0)[1]);
            assert!(
                (bx - tx).abs() <= 2.0 && (by - ty).abs() <= 2.0,
                "frame {f}, face {k}: the box moved ({bx}, {by}), the face ({tx}, {ty})"
            );
            checked += 1;
        }
    }
    assert!(checked >= n, "{checked} moves between detections checked");
    // Every face where it is on every frame (the boxes move with the faces between
    // detections), except D on the frame it steps in (found by the next due detection) and
    // the frame after; A's box is gone by the frame after it left.
    let tolerated = |f: usize| f == arrives as usize || f == arrives as usize + 1;
    for f in 0..n as usize {
        if f == 0 || tolerated(f) {
            continue;
        }
        assert_eq!(
            misses[f], 0,
            "frame {f}: faces {:?}, boxes {:?}",
            truth[f], got[f]
        );
    }
    for f in 0..n as usize {
        if f == leaves as usize {
            continue;
        }
        assert_eq!(
            false_boxes[f], 0,
            "frame {f}: faces {:?}, boxes {:?}",
            truth[f], got[f]
        );
    }
    // Half the frames are due (detect_every 2); following skipped most of those detections.
    assert_eq!(
        st.detections + st.followed + st.detect_skipped,
        n as u64 / 2,
        "{st:?}"
    );
    assert!(
        st.followed >= st.detections,
        "followed {} due frames, detected {}",
        st.followed,
        st.detections
    );

    // Following off: every due frame is detected, and the faces are found as well.
    let off = Config {
        follow_interval_s: 0.0,
        ..cfg
    };
    let log_off = tmp.path().join("off.jsonl");
    let mut p = pipeline(stream, &off, &log_off);
    common::run_to_end(&mut p);
    let st_off = *p.status();
    assert_eq!(st_off.followed, 0);
    assert_eq!(st_off.detections, n as u64 / 2, "{st_off:?}");
    assert!(
        st.detections * 2 <= st_off.detections,
        "following detected {} times, without it {}",
        st.detections,
        st_off.detections
    );
}

#[test]
fn the_stage_parallel_loop_follows_too() {
    let (n, arrives, leaves) = (48u32, 100u32, 100u32);
    let (stream, truth) = people(n, arrives, leaves);
    let cfg = loop_config();
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("par.jsonl");
    let mut p = common::replay_loop_with(stream, (FPS, common::Pace::Unpaced), &cfg, &log, true, 2);
    let st = p.run().unwrap();
    drop(p);
    let got = boxes(&log, n as usize);
    let (misses, false_boxes) = misses_and_false(&got, &truth);
    assert_eq!(misses[1..].iter().sum::<u32>(), 0, "{misses:?}");
    assert_eq!(false_boxes.iter().sum::<u32>(), 0, "{false_boxes:?}");
    assert!(st.followed > 0, "{st:?}");
}

/// A brisk walker, 28 px a frame (0.3 of their face's box, about 0.45 of the detected face:
/// beyond a third of it), crosses the frame past a person standing still: followed between
/// detections too (its template search reaches two thirds of the face a frame), and the change
/// it leaves where the last detection saw it is its own, not a newcomer's. Before, every due
/// frame of the walk was detected (the walker was "not sure" at the edge of a search of a third
/// of the face), and the whole frame (its old place changed away from its box).
#[test]
fn a_brisk_walker_is_followed_too() {
    let n = 18u32;
    let faces: Vec<PathBuf> = common::utk_faces(2, 7);
    let mut stream = Vec::new();
    let mut truth: Truth = Vec::new();
    for i in 0..n {
        let placed = vec![
            (0, [40 + 28 * i, 200, 130 + 28 * i, 290]),
            (1, [470, 40, 570, 140]),
        ];
        add_frame(&mut stream, &faces, &placed, i);
        truth.push(placed);
    }
    let cfg = loop_config();
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("walker.jsonl");
    let mut p = pipeline(stream, &cfg, &log);
    common::run_to_end(&mut p);
    let st = *p.status();
    drop(p);
    let got = boxes(&log, n as usize);
    let (misses, false_boxes) = misses_and_false(&got, &truth);
    assert_eq!(misses.iter().sum::<u32>(), 0, "{misses:?}, boxes {got:?}");
    assert_eq!(
        false_boxes.iter().sum::<u32>(),
        0,
        "{false_boxes:?}, boxes {got:?}"
    );
    // 9 due frames: the first detects; after that one in four (every 0.25 s: the 8th frame)
    assert!(st.followed >= 4, "{st:?}");
    assert!(st.detections <= 4, "{st:?}");
    // and the change the walker left behind is its own: the detections after the first
    // search windows around the two people, not the whole frame for a newcomer
    assert_eq!(st.window_detections, st.detections - 1, "{st:?}");
}

/// A face that is gone (it left, or turned away) is looked for by the next due detection and
/// once more (`MISSED_LOOKS`: a detector's one-frame miss), and then counts as gone: the due
/// frames after are followed again, every 0.25 s a refresh, instead of each being detected until
/// `max_missed` detections have missed it. Its track still ends (the refreshes keep missing it),
/// and its visit line comes while the stream goes on.
#[test]
fn a_face_that_left_is_looked_for_twice_then_left_to_the_refreshes() {
    let (n, leaves) = (120u32, 40u32);
    let faces: Vec<PathBuf> = common::utk_faces(2, 31);
    let mut stream = Vec::new();
    let mut truth: Truth = Vec::new();
    for i in 0..n {
        let sway = sway(i);
        let mut placed = vec![(1, [320 + sway, 200, 430 + sway, 310])];
        if i < leaves {
            placed.push((0, [60, 60, 170, 170]));
        }
        add_frame(&mut stream, &faces, &placed, i);
        truth.push(placed);
    }
    let cfg = loop_config();
    assert_eq!(cfg.max_missed, 5, "the default");
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("left.jsonl");
    let mut p = pipeline(stream, &cfg, &log);
    let detected: Vec<bool> = common::run_to_end(&mut p).iter().map(|r| r.1).collect();
    drop(p);
    let got = boxes(&log, n as usize);
    let (misses, false_boxes) = misses_and_false(&got, &truth);
    assert_eq!(misses[1..].iter().sum::<u32>(), 0, "{misses:?}");
    assert_eq!(false_boxes.iter().sum::<u32>(), 0, "{false_boxes:?}");
    // the 6 due frames after A left (0.4 s): two detections look for it, and at most one
    // 0.25 s refresh comes among them (before, every due frame was detected until max_missed
    // ended A's track: all 6)
    let looked: Vec<usize> = (leaves as usize..leaves as usize + 12)
        .filter(|&f| detected[f])
        .collect();
    assert!(
        looked.len() >= 2 && looked.len() <= 3,
        "frames detected after A left at {leaves}: {looked:?}"
    );
    // A's visit ended while the stream went on: its line comes before the last face line
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let visit = lines
        .iter()
        .position(|v| v["type"] == "visit" && v["last_frame"].as_u64() < Some(leaves as u64))
        .unwrap_or_else(|| panic!("no visit line for A: {text}"));
    let last_face = lines.iter().rposition(|v| v["type"] == "face").unwrap();
    assert!(
        visit < last_face,
        "A's visit line came at the end of the run"
    );
}

/// `agegender bench` replays on the stream's own clock (--clock-fps, default 30): following's
/// 0.25 s is 8 frames of the stream however fast the bench runs, so the moving people are
/// detected on at least one frame in eight (on the loop's own clock a run at hundreds of frames
/// a second fits most of its frames into one 0.25 s, and hardly detects at all).
#[test]
fn the_bench_keeps_the_streams_clock() {
    let n = 48u32;
    let (stream, _) = people(n, 100, 100);
    let tmp = tempfile::tempdir().unwrap();
    let clip = tmp.path().join("people.mjpeg");
    std::fs::write(&clip, stream).unwrap();
    let out = common::agegender_command()
        .args([
            "bench",
            "--source",
            clip.to_str().unwrap(),
            "--json",
            "--bounce",
        ])
        .args(["--frames", "96", "--warmup", "0", "--detect-every", "2"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let per_frame = v["detections_per_frame"].as_f64().unwrap();
    assert!(
        per_frame >= 1.0 / 8.0,
        "{per_frame} detections a frame: {v}"
    );
}
