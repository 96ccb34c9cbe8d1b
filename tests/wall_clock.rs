//! The wall clock set while the kiosk runs (a board with no clock that survives power-off gets
//! the time from NTP minutes after it started, a jump of decades): tracks, dwell and counts
//! windows run on the loop's monotonic clock, and visits and counts are written on the wall
//! clock as it is when they are written. Both loops.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use agegender::capture::files::MjpegFileSource;
use agegender::capture::{CaptureError, Frame, FrameSource};
use agegender::config::Config;
use agegender::display::png::NullDisplay;
use agegender::pipeline::{self, LoopOptions, Perception, Pipeline};
use agegender::report::{unix_ms, FileSink, Reporter};
use serde_json::Value;

/// Ten years, in ms: what the clock moves by when it is set.
const STEP_MS: u64 = 10 * 365 * 24 * 3600 * 1000;

/// Replays frames as a camera with no clock of its own does (`fps` 0: no stream time), and
/// sets the wall clock forward once half of them are out.
struct SetsTheClock {
    inner: MjpegFileSource,
    calls: u32,
    step_at: u32,
    shift: &'static AtomicU64,
}

impl FrameSource for SetsTheClock {
    fn next_frame(&mut self) -> Result<Option<Frame<'_>>, CaptureError> {
        self.calls += 1;
        if self.calls == self.step_at {
            self.shift.store(STEP_MS, Ordering::SeqCst);
        }
        self.inner.next_frame()
    }
    fn frame_size(&self) -> (u32, u32) {
        self.inner.frame_size()
    }
    fn describe(&self) -> String {
        "a camera whose board sets its clock".into()
    }
}

static SHIFT_ONE: AtomicU64 = AtomicU64::new(0);
static SHIFT_TWO: AtomicU64 = AtomicU64::new(0);

#[test]
fn the_clock_set_mid_visit_moves_no_dwell_one_thread() {
    run(1, &SHIFT_ONE, || {
        unix_ms() + SHIFT_ONE.load(Ordering::SeqCst)
    });
}

#[test]
fn the_clock_set_mid_visit_moves_no_dwell_stage_parallel() {
    run(2, &SHIFT_TWO, || {
        unix_ms() + SHIFT_TWO.load(Ordering::SeqCst)
    });
}

fn run(workers: usize, shift: &'static AtomicU64, clock: fn() -> u64) {
    let faces = common::utk_faces(1, 7);
    let mut stream = Vec::new();
    for i in 0..40u32 {
        let (jpeg, _) = common::face_frame(
            &[(faces[0].clone(), [60 + i / 2, 40, 200 + i / 2, 180])],
            320,
            240,
        );
        stream.extend_from_slice(&jpeg);
    }
    let inner = MjpegFileSource::from_bytes(Path::new("cam.mjpeg"), stream, 0.0, false).unwrap();
    assert!(inner.stream_time(1).is_none(), "a source without a clock");
    let source = SetsTheClock {
        inner,
        calls: 0,
        step_at: 20, // the stage-parallel loop's capture thread reads a few frames ahead
        shift,
    };
    let cfg = Config {
        min_dwell_s: 0.0,
        counts_interval_s: 3600.0,
        ..Config::default()
    };
    let detector = pipeline::load_live_detector(&common::blazeface_model(false), &cfg).unwrap();
    let classifier = pipeline::load_classifier(&common::classifier_model()).unwrap();
    let perception = Perception::new(detector, classifier, cfg.max_faces);
    let more = perception.detect.forks(workers - 1).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("run.jsonl");
    let before = unix_ms();
    let mut p = Pipeline::new(
        Box::new(source),
        perception,
        Box::new(NullDisplay),
        Reporter::new(Box::new(FileSink::open(&log, u64::MAX).unwrap())),
        LoopOptions::from_config(&cfg),
    );
    p.set_wall_clock(clock);
    p.set_detect_workers(more);
    p.run().unwrap();
    let after = unix_ms();
    drop(p);

    let lines: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let of = |kind: &str| -> Vec<&Value> { lines.iter().filter(|l| l["type"] == kind).collect() };
    let face_ts: Vec<u64> = of("face")
        .iter()
        .map(|l| l["ts"].as_u64().unwrap())
        .collect();
    assert!(
        face_ts.first().is_some_and(|&t| t < before + STEP_MS)
            && face_ts.last().is_some_and(|&t| t >= before + STEP_MS),
        "the face lines straddle the clock being set: {face_ts:?}"
    );
    let visits = of("visit");
    assert_eq!(visits.len(), 1, "one person, one visit: {visits:?}");
    let v = visits[0];
    let (first, last) = (
        v["first_ts"].as_u64().unwrap(),
        v["last_ts"].as_u64().unwrap(),
    );
    let dwell_ms = (v["dwell_s"].as_f64().unwrap() * 1000.0).round() as u64;
    // The visit began before the clock was set; it is written on the clock as set, and lasted
    // as long as the run did, not ten years.
    // (dwell_s has two decimals: up to 5 ms of rounding; and the wall clock and the monotonic one
    // may drift apart by a millisecond or two over the run)
    assert!(
        dwell_ms <= after - before + 10,
        "dwell {dwell_ms} ms in a run of {} ms: the clock's step counted as time in view",
        after - before
    );
    assert!(
        first >= before + STEP_MS && last <= after + STEP_MS,
        "first_ts {first} / last_ts {last} are not on the clock as set ({} ..= {})",
        before + STEP_MS,
        after + STEP_MS
    );
    assert!(last.abs_diff(first + dwell_ms) <= 10, "{v}");
    let counts = of("counts");
    let c = counts.last().expect("a last counts line");
    assert!(
        c["from_ts"].as_u64().unwrap() >= before + STEP_MS,
        "the counts window's start is on the clock as set: {c}"
    );
}
