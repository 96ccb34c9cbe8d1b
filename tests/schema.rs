//! Every JSON line the program writes validates against `src/report.schema.json`, including
//! the status lines of a run with faults (a timeout, a corrupt frame, a lost and resumed
//! camera); and the schema is strict enough to reject malformed lines.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use agegender::capture::files::MjpegFileSource;
use agegender::capture::{CaptureError, Frame, FrameSource, PixelFormat};
use agegender::config::Config;
use agegender::display::png::NullDisplay;
use agegender::pipeline::{self, LoopOptions, Perception, Pipeline};
use agegender::report::{FileSink, Reporter};
use serde_json::{json, Value};

fn validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src/report.schema.json"),
    )
    .unwrap();
    let schema: Value = serde_json::from_str(&text).expect("the schema is JSON");
    jsonschema::validator_for(&schema).expect("the schema is a valid JSON Schema")
}

fn assert_valid(v: &jsonschema::Validator, line: &Value) {
    let errors: Vec<String> = v
        .iter_errors(line)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "{line} does not match the schema: {errors:?}"
    );
}

/// Replays an inner source but, at scripted calls, times out, hands out a corrupt frame, or
/// disconnects (and reconnects when asked).
struct FaultySource {
    inner: MjpegFileSource,
    calls: u32,
    corrupt: Vec<u8>,
    reconnects: u32,
}

impl FrameSource for FaultySource {
    fn next_frame(&mut self) -> Result<Option<Frame<'_>>, CaptureError> {
        self.calls += 1;
        match self.calls {
            3 => Err(CaptureError::Timeout(Duration::from_millis(100))),
            5 => Ok(Some(Frame {
                data: &self.corrupt,
                format: PixelFormat::Mjpeg,
                width: 320,
                height: 240,
                sequence: 3,
            })),
            8 => Err(CaptureError::Disconnected(
                "No such device (os error 19)".into(),
            )),
            _ => self.inner.next_frame(),
        }
    }
    fn frame_size(&self) -> (u32, u32) {
        self.inner.frame_size()
    }
    fn describe(&self) -> String {
        "faulty test source".into()
    }
    fn reconnect(&mut self) -> anyhow::Result<()> {
        self.reconnects += 1;
        Ok(())
    }
}

#[test]
fn run_lines_with_faults_match_the_schema() {
    run_with_faults(1);
}

/// The same faults through the stage-parallel loop (two detector workers): the capture
/// thread meets them, the ordering thread reports them in the same order.
#[test]
fn parallel_run_lines_with_faults_match_the_schema() {
    run_with_faults(2);
}

fn run_with_faults(workers: usize) {
    let faces = common::utk_faces(2, 5);
    let mut stream = Vec::new();
    for i in 0..12u32 {
        let a = [20 + 8 * i, 30, 140 + 8 * i, 150];
        let (jpeg, _) = common::face_frame(
            &[
                (faces[0].clone(), a),
                (faces[1].clone(), [200, 100, 300, 200]),
            ],
            320,
            240,
        );
        stream.extend_from_slice(&jpeg);
    }
    let inner = MjpegFileSource::from_bytes(Path::new("s.mjpeg"), stream, 0.0, false).unwrap();
    let mut corrupt = common::encode_jpeg(&common::background(320, 240), 90);
    let n = corrupt.len();
    corrupt[n / 2..n - 2].iter_mut().for_each(|b| *b = 0xFF); // entropy data destroyed
    corrupt.truncate(n * 3 / 4); // and cut short
    let source = FaultySource {
        inner,
        calls: 0,
        corrupt,
        reconnects: 0,
    };

    let cfg = Config {
        status_interval_s: 0.0,
        status_every_frames: 4,
        ..Config::default()
    };
    let detector = pipeline::load_live_detector(&common::blazeface_model(false), &cfg).unwrap();
    let classifier = pipeline::load_classifier(&common::classifier_model()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("run.jsonl");
    let perception = Perception::new(detector, classifier, cfg.max_faces);
    let more = perception.detect.forks(workers - 1).unwrap();
    let mut p = Pipeline::new(
        Box::new(source),
        perception,
        Box::new(NullDisplay),
        Reporter::new(Box::new(FileSink::open(&log, u64::MAX).unwrap())),
        LoopOptions::from_config(&cfg),
    );
    p.set_detect_workers(more);
    let last = p.run().unwrap();
    drop(p);
    assert_eq!(last.workers as usize, workers);
    // 12 good frames + the corrupt one; one timeout; one loss.
    assert_eq!(last.frames, 13);
    assert_eq!(last.decode_errors, 1);
    assert_eq!(last.capture_timeouts, 1);
    assert_eq!(last.capture_errors, 1);

    let v = validator();
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for l in &lines {
        assert_valid(&v, l);
    }
    let faces = lines.iter().filter(|l| l["type"] == "face").count();
    assert!(faces >= 20, "face lines: {faces}");
    let cameras: Vec<&str> = lines
        .iter()
        .filter(|l| l["type"] == "status")
        .map(|l| l["camera"].as_str().unwrap())
        .collect();
    let lost = cameras
        .iter()
        .position(|c| *c == "lost")
        .expect("a status line says the camera was lost");
    assert_eq!(cameras[lost + 1], "resumed", "{cameras:?}");
    assert_eq!(*cameras.last().unwrap(), "ended");
    let final_status = lines.iter().rev().find(|l| l["type"] == "status").unwrap();
    assert_eq!(final_status["decode_errors"], 1);
    assert_eq!(final_status["frames"], 13);
    assert_eq!(final_status["workers"], workers);
    // serial lines leave in frame order, each frame's faces once
    let frames: Vec<u64> = lines
        .iter()
        .filter(|l| l["type"] == "face")
        .map(|l| l["frame"].as_u64().unwrap())
        .collect();
    assert!(
        frames.windows(2).all(|w| w[0] <= w[1]),
        "face lines out of frame order: {frames:?}"
    );
}

/// `agegender image` on a picture with `n` (2 or 3) test faces pasted at fixed boxes, with the
/// committed models and `extra` flags; must exit 0. The face lines, parsed.
fn image_lines(n: usize, extra: &[&str]) -> Vec<Value> {
    let tmp = tempfile::tempdir().unwrap();
    let faces = common::utk_faces(n, 9);
    let placed: Vec<(PathBuf, [u32; 4])> = faces
        .into_iter()
        .zip([[20, 20, 150, 150], [220, 40, 380, 200], [420, 60, 560, 200]])
        .collect();
    let (jpeg, _) = common::face_frame(&placed, 600, 260);
    let input = tmp.path().join("faces.jpg");
    std::fs::write(&input, jpeg).unwrap();
    let out = common::agegender_command()
        .arg("image")
        .arg(&input)
        .arg("--out")
        .arg(tmp.path())
        .arg("--model")
        .arg(common::classifier_model())
        .arg("--detector")
        .arg(common::blazeface_model(false))
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn image_lines_match_the_schema() {
    let v = validator();
    let lines = image_lines(3, &[]);
    for l in &lines {
        assert_valid(&v, l);
    }
    assert_eq!(lines.len(), 3, "{lines:?}");
}

#[test]
fn schema_rejects_malformed_lines() {
    let v = validator();
    let good = json!({
        "schema": "agegender/face/v1", "type": "face", "ts": 1_700_000_000_000u64, "frame": 3,
        "track_id": 2, "box": [1, 2, 30, 40], "score": 0.91, "gender": "F", "gender_p": 0.93,
        "age": 27.1, "age_bucket": "25-32", "bucket_p": 0.6, "latency_ms": 12.5
    });
    assert_valid(&v, &good);
    let bad = |k: &str, val: Value| {
        let mut b = good.clone();
        b[k] = val;
        b
    };
    for (what, line) in [
        ("gender X", bad("gender", json!("X"))),
        ("bucket", bad("age_bucket", json!("21-24"))),
        ("box of 3", bad("box", json!([1, 2, 3]))),
        ("schema version", bad("schema", json!("agegender/face/v2"))),
        ("extra field", bad("extra", json!(1))),
        ("p > 1", bad("bucket_p", json!(1.5))),
    ] {
        assert!(!v.is_valid(&line), "{what} accepted: {line}");
    }
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("latency_ms");
    assert!(!v.is_valid(&missing), "missing latency_ms accepted");
    assert!(!v.is_valid(&json!({"schema": "agegender/status/v1", "type": "status", "ts": 1})));
}

/// The status line's `model_form` and `model_form_why`, as the binary writes them.
#[test]
fn status_line_with_the_model_form_matches_the_schema() {
    let v = validator();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("status.jsonl");
    let mut reporter = Reporter::new(Box::new(FileSink::open(&log, u64::MAX).unwrap()));
    let status = agegender::report::Status {
        frames: 10,
        model_form: "f16",
        model_form_why: "auto: arm64 with fp16 arithmetic",
        ..Default::default()
    };
    reporter.status(1_700_000_000_000, &status).unwrap();
    reporter.flush().unwrap();
    drop(reporter);
    let line: Value = serde_json::from_str(std::fs::read_to_string(&log).unwrap().trim()).unwrap();
    assert_eq!(line["model_form"], "f16");
    assert_valid(&v, &line);
    let mut bad = line.clone();
    bad["model_form"] = json!("fp8");
    assert!(!v.is_valid(&bad), "unknown form accepted");
}

/// `agegender image` with both thresholds at 1: every face is reported `"U"` with bucket `"?"`
/// (a still has no track: each face's own calibrated probabilities decide), and the lines
/// validate; at 0.5 and 0 none is.
#[test]
fn image_abstains_below_the_thresholds() {
    let v = validator();
    let run = |g: &str, b: &str| -> Vec<Value> {
        let lines = image_lines(2, &["--gender-min-p", g, "--bucket-min-p", b]);
        assert_eq!(lines.len(), 2, "{lines:?}");
        lines
    };
    for l in run("1", "1") {
        assert_valid(&v, &l);
        assert!(l["gender_p"].as_f64().unwrap() < 1.0, "{l}");
        assert_eq!((&l["gender"], &l["age_bucket"]), (&json!("U"), &json!("?")));
    }
    for l in run("0.5", "0") {
        assert_valid(&v, &l);
        assert!(l["gender"] == "M" || l["gender"] == "F", "{l}");
        assert_ne!(l["age_bucket"], "?");
    }
}

/// A face the model is not sure of: `"gender":"U"` and `"age_bucket":"?"`, as the reporter
/// writes them after abstention, validate; other letters still do not.
#[test]
fn an_unsure_face_line_matches_the_schema() {
    use agegender::classify::{Abstention, Attributes, Gender};
    use agegender::track::TrackedFace;
    let v = validator();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("faces.jsonl");
    let mut reporter = Reporter::new(Box::new(FileSink::open(&log, u64::MAX).unwrap()));
    let face = |p_female: f32, bucket_p: f32| TrackedFace {
        id: 7,
        detection: agegender::detect::Detection {
            bbox: [10.0, 20.0, 90.0, 110.0],
            score: 0.8,
            landmarks: [[0.0; 2]; 4],
        },
        attributes: Abstention {
            gender_min_p: 0.8,
            bucket_min_p: 0.5,
        }
        .apply(Attributes {
            gender: if p_female >= 0.5 {
                Gender::Female
            } else {
                Gender::Male
            },
            gender_p: p_female.max(1.0 - p_female),
            p_female,
            age: 8.4,
            bucket: 2,
            bucket_p,
            bucket_known: true,
        }),
        hits: 1,
    };
    reporter
        .face(1_700_000_000_000, 1, &face(0.35, 0.3), 9.0, None)
        .unwrap();
    reporter
        .face(1_700_000_000_000, 1, &face(0.9, 0.6), 9.0, None)
        .unwrap();
    reporter.flush().unwrap();
    drop(reporter);
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["gender"], "U", "{text}");
    assert_eq!(lines[0]["age_bucket"], "?", "{text}");
    assert_eq!(lines[0]["gender_p"].as_f64(), Some(0.65));
    assert_eq!(lines[1]["gender"], "F", "{text}");
    assert_eq!(lines[1]["age_bucket"], "8-12", "{text}");
    for l in &lines {
        assert_valid(&v, l);
    }
    let mut bad = lines[0].clone();
    bad["gender"] = json!("X");
    assert!(!v.is_valid(&bad), "gender X accepted");
}

/// `agegender run` over a replayed `.mjpeg` whose ground truth is known, at a set rate (20 fps:
/// the file's own clock, frame n at start + n / 20 s): face A in frames 4..=23, face B in
/// frames 10..=33, face C only in frames 26..=28 (0.1 s, under the 0.5 s minimum dwell), 36
/// frames. One visit each for A (ended when unseen for `max_missed` frames) and B (still in
/// view when the file ends), none for C; their frames and dwell times are the truth's; counts
/// lines every second of the file's time add up to those visits. Every line validates.
#[test]
fn visits_and_counts_of_a_replayed_stream_match_the_truth_and_the_schema() {
    const FPS: f64 = 20.0;
    let (a_frames, b_frames, c_frames) = (4..=23u64, 10..=33u64, 26..=28u64);
    let faces = common::utk_faces(3, 5);
    let (a_box, b_box, c_box) = ([10, 40, 130, 160], [180, 60, 300, 180], [100, 10, 190, 100]);
    let tmp = tempfile::tempdir().unwrap();
    let mut stream = Vec::new();
    for i in 0..36u64 {
        let mut placed = Vec::new();
        if a_frames.contains(&i) {
            placed.push((faces[0].clone(), a_box));
        }
        if b_frames.contains(&i) {
            placed.push((faces[1].clone(), b_box));
        }
        if c_frames.contains(&i) {
            placed.push((faces[2].clone(), c_box));
        }
        stream.extend_from_slice(&common::face_frame(&placed, 320, 240).0);
    }
    let clip = tmp.path().join("clip.mjpeg");
    std::fs::write(&clip, stream).unwrap();
    let out = common::agegender_command()
        .arg("run")
        .arg("--source")
        .arg(&clip)
        .args(["--fps", "20", "--serial", "-", "--min-dwell", "0.5"])
        // detection on every frame: a view per frame is the truth below (with motion gating a
        // still face is viewed less often; its visit: tests/motion.rs)
        .args(["--motion-threshold", "0"])
        .args(["--counts-interval", "1", "--max-missed", "5", "--model"])
        .arg(common::classifier_model())
        .arg("--detector")
        .arg(common::blazeface_model(false))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let v = validator();
    for l in &lines {
        assert_valid(&v, l);
    }
    // The track id each face's lines carry, from where its box is.
    let id_at = |b: [u32; 4]| -> u64 {
        let ids: std::collections::BTreeSet<u64> = lines
            .iter()
            .filter(|l| l["type"] == "face")
            .filter(|l| {
                let bb: Vec<f32> = (0..4)
                    .map(|k| l["box"][k].as_f64().unwrap() as f32)
                    .collect();
                common::box_iou([bb[0], bb[1], bb[2], bb[3]], common::to_f32_box(b)) > 0.5
            })
            .map(|l| l["track_id"].as_u64().unwrap())
            .collect();
        assert_eq!(ids.len(), 1, "one track for the face at {b:?}: {ids:?}");
        ids.into_iter().next().unwrap()
    };
    let (a_id, b_id, c_id) = (id_at(a_box), id_at(b_box), id_at(c_box));
    for l in lines
        .iter()
        .filter(|l| l["type"] == "visit" || l["type"] == "counts")
    {
        eprintln!("{l}");
    }
    let visits: Vec<&Value> = lines.iter().filter(|l| l["type"] == "visit").collect();
    assert_eq!(visits.len(), 2, "{visits:?}");
    assert!(
        visits.iter().all(|l| l["track_id"] != c_id),
        "C is no visit"
    );
    let frame_of = |l: &Value| l["frame"].as_u64().unwrap();
    for (id, truth) in [(a_id, &a_frames), (b_id, &b_frames)] {
        let visit = visits
            .iter()
            .find(|l| l["track_id"] == id)
            .unwrap_or_else(|| panic!("no visit for track {id}: {visits:?}"));
        assert_eq!(
            visit["first_frame"].as_u64(),
            Some(*truth.start()),
            "{visit}"
        );
        assert_eq!(visit["last_frame"].as_u64(), Some(*truth.end()), "{visit}");
        // Classified views, not detection frames: a track is classified on first sight, then
        // only when a view is worth it, at most `classify_budget` (4) times within the 3 s
        // refresh (src/track/); the face is seen on every one of its frames.
        let views = visit["views"].as_u64().unwrap();
        assert!(
            (1..=4).contains(&views),
            "views {views} of {} detection frames: {visit}",
            truth.end() - truth.start() + 1
        );
        let dwell = (truth.end() - truth.start()) as f64 / FPS;
        assert!(
            (visit["dwell_s"].as_f64().unwrap() - dwell).abs() < 0.006,
            "dwell {visit} vs {dwell}"
        );
        let (t0, t1) = (
            visit["first_ts"].as_u64().unwrap(),
            visit["last_ts"].as_u64().unwrap(),
        );
        assert!(t1 - t0 == (dwell * 1000.0).round() as u64, "{visit}");
        // the face lines of that track: same frames, and the visit's labels are theirs
        let own: Vec<&Value> = lines
            .iter()
            .filter(|l| l["type"] == "face" && l["track_id"] == id)
            .collect();
        assert_eq!(own.len() as u64, truth.end() - truth.start() + 1);
        assert_eq!(frame_of(own[0]), *truth.start());
        let mean_age =
            own.iter().map(|l| l["age"].as_f64().unwrap()).sum::<f64>() / own.len() as f64;
        // face lines carry the smoothed age; the visit the mean of the raw ones: close
        assert!(
            (visit["age"].as_f64().unwrap() - mean_age).abs() < 8.0,
            "{visit} vs mean face-line age {mean_age}"
        );
    }
    // A ended while B was still in view (found when A was unseen for 6 detection frames).
    let a_visit_at = lines
        .iter()
        .position(|l| l["type"] == "visit" && l["track_id"] == a_id)
        .unwrap();
    let b_visit_at = lines
        .iter()
        .position(|l| l["type"] == "visit" && l["track_id"] == b_id)
        .unwrap();
    assert!(a_visit_at < b_visit_at);
    let next_face = lines[a_visit_at..]
        .iter()
        .find(|l| l["type"] == "face")
        .map(frame_of);
    assert_eq!(
        next_face,
        Some(a_frames.end() + 7),
        "A's visit written at frame 29"
    );

    let counts: Vec<&Value> = lines.iter().filter(|l| l["type"] == "counts").collect();
    // 36 frames at 20 fps: windows [0, 1 s) and the rest, closed at the end
    assert_eq!(counts.len(), 2, "{counts:?}");
    let total: u64 = counts.iter().map(|c| c["visits"].as_u64().unwrap()).sum();
    assert_eq!(total, 2);
    for c in &counts {
        let cells: u64 = ["M", "F", "U"]
            .iter()
            .flat_map(|g| c["by_gender_age"][g].as_object().unwrap().values())
            .map(|n| n.as_u64().unwrap())
            .sum();
        assert_eq!(cells, c["visits"].as_u64().unwrap(), "{c}");
    }
    assert_eq!(counts[0]["visits"], 0);
    assert_eq!(counts[0]["mean_dwell_s"], Value::Null);
    assert_eq!(
        counts[0]["in_view"], 2,
        "A and B in view at 1 s: {}",
        counts[0]
    );
    let last = counts[1];
    let mean = ((a_frames.end() - a_frames.start()) + (b_frames.end() - b_frames.start())) as f64
        / FPS
        / 2.0;
    assert!(
        (last["mean_dwell_s"].as_f64().unwrap() - mean).abs() < 0.006,
        "{last}"
    );
    for visit in &visits {
        let g = visit["gender"].as_str().unwrap();
        let b = visit["age_bucket"].as_str().unwrap();
        assert!(last["by_gender_age"][g][b].as_u64().unwrap() >= 1, "{last}");
    }
    assert_eq!(
        last["ts"].as_u64().unwrap() - counts[0]["ts"].as_u64().unwrap(),
        (35.0 - FPS) as u64 * 1000 / FPS as u64,
        "windows on the file's clock: {counts:?}"
    );
}

#[test]
fn schema_rejects_malformed_visit_and_counts_lines() {
    let v = validator();
    let visit = json!({
        "schema": "agegender/visit/v1", "type": "visit", "ts": 1_700_000_003_000u64,
        "track_id": 4, "first_ts": 1_700_000_000_000u64, "last_ts": 1_700_000_002_500u64,
        "first_frame": 3, "last_frame": 53, "dwell_s": 2.5, "views": 51, "gender": "F",
        "gender_p": 0.91, "age": 29.5, "age_bucket": "25-32", "bucket_p": 0.55, "confidence": 0.5
    });
    assert_valid(&v, &visit);
    let row = json!({"0-2": 0, "4-6": 0, "8-12": 0, "15-20": 0, "25-32": 1, "38-43": 0,
                     "48-53": 0, "60+": 0, "?": 0});
    let counts = json!({
        "schema": "agegender/counts/v1", "type": "counts", "ts": 1_700_000_060_000u64,
        "from_ts": 1_700_000_000_000u64, "visits": 1, "in_view": 0, "mean_dwell_s": 2.5,
        "by_gender_age": {"M": row, "F": row, "U": row}
    });
    assert_valid(&v, &counts);
    let mut no_visits = counts.clone();
    no_visits["mean_dwell_s"] = Value::Null;
    assert_valid(&v, &no_visits);
    let with = |base: &Value, k: &str, val: Value| {
        let mut b = base.clone();
        b[k] = val;
        b
    };
    for (what, line) in [
        ("visit of 0 views", with(&visit, "views", json!(0))),
        ("negative dwell", with(&visit, "dwell_s", json!(-1))),
        ("visit bucket", with(&visit, "age_bucket", json!("21-24"))),
        (
            "visit schema v2",
            with(&visit, "schema", json!("agegender/visit/v2")),
        ),
        ("confidence > 1", with(&visit, "confidence", json!(1.2))),
        ("extra field", with(&visit, "x", json!(1))),
        (
            "counts schema",
            with(&counts, "schema", json!("agegender/visit/v1")),
        ),
        (
            "counts gender X",
            with(
                &counts,
                "by_gender_age",
                json!({"M": row, "F": row, "X": row}),
            ),
        ),
        ("counts negative", with(&counts, "visits", json!(-1))),
    ] {
        assert!(!v.is_valid(&line), "{what} accepted: {line}");
    }
    let mut short_row = row.clone();
    short_row.as_object_mut().unwrap().remove("?");
    let line = with(
        &counts,
        "by_gender_age",
        json!({"M": row, "F": short_row, "U": row}),
    );
    assert!(!v.is_valid(&line), "a missing cell accepted");
}
