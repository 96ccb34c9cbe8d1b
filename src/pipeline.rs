//! The frame loop: capture → decode → motion gate → detect (every k-th frame, when the scene
//! changed: `src/motion.rs`) → match to tracks → align → classify (only the faces whose track
//! wants a view: [`crate::track::Tracker::wants_view`]) → track (fuse the views) → display →
//! report (and, from the tracks that end, visits and counts: `src/visits.rs`), over buffers
//! sized once at start-up from the configuration (frame size,
//! max faces). After warm-up a step allocates nothing in our own stages; see `tests/alloc.rs`
//! for the per-stage count (stages are marked through [`Pipeline::step_probed`]).
//!
//! [`Pipeline::step`] runs one frame through every stage on the calling thread (the one-thread
//! loop, `workers = 1`); with detector workers ([`Pipeline::set_detect_workers`]),
//! [`Pipeline::run`] runs the same stages on their own threads (`src/pipeline/parallel.rs`).
//!
//! Faults: a capture timeout is counted and the loop goes on; a lost camera is reported in a
//! status line (`"camera":"lost"`), reconnected with backoff from 0.5 s to 8 s, and reported
//! again (`"resumed"`); a frame that cannot be decoded is skipped and counted; a detector or
//! classifier error skips the frame and is counted; a display error is logged once.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::align::{align_into, INPUT_SIZE};
use crate::capture::files::{DirSource, MjpegFileSource};
use crate::capture::{CaptureError, FrameSource};
use crate::classify::Attributes;
use crate::config::Config;
use crate::decode::Decoder;
use crate::detect::blazeface::BlazeFace;
use crate::detect::{Detection, FaceDetector, Window};
use crate::display::png::{NullDisplay, PngDisplay};
use crate::display::Display;
use crate::motion::{MotionConfig, MotionGate};
use crate::report::{unix_ms, CameraState, FileSink, Reporter, Sink, Status, StdoutSink};
use crate::rgb::RgbImage;
use crate::service::Heartbeat;
use crate::track::{TrackedFace, Tracker, TrackerConfig, View};
use crate::visits::{VisitConfig, Visits};

mod parallel;
pub use parallel::LAG_SCALE;

/// The classifier seam: one aligned face (planar CHW f32, `3 × INPUT_SIZE²`) in, labels out.
pub trait FaceClassifier {
    fn classify(&mut self, chw_input: &[f32]) -> anyhow::Result<Attributes>;
}

/// The stages of one frame, as marked by [`Pipeline::step_probed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    Capture,
    Decode,
    /// The motion gate's measure (src/motion.rs), on frames due for detection.
    Motion,
    Detect,
    Align,
    Classify,
    Track,
    Display,
    Report,
    /// End of the step (not a stage).
    Done,
}

impl Stage {
    pub const ALL: [Stage; 9] = [
        Stage::Capture,
        Stage::Decode,
        Stage::Motion,
        Stage::Detect,
        Stage::Align,
        Stage::Classify,
        Stage::Track,
        Stage::Display,
        Stage::Report,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Stage::Capture => "capture",
            Stage::Decode => "decode",
            Stage::Motion => "motion",
            Stage::Detect => "detect",
            Stage::Align => "align",
            Stage::Classify => "classify",
            Stage::Track => "track",
            Stage::Display => "display",
            Stage::Report => "report",
            Stage::Done => "done",
        }
    }
}

/// The detect stage: the whole-frame detector with its close-up pass, and track-guided
/// detection's window detector, with their output buffers. One per thread that detects: the
/// one-thread loop's [`Perception`] holds one, each detector worker of the stage-parallel loop
/// (`src/pipeline/parallel.rs`) its own.
pub struct FrameDetector {
    pub detector: Box<dyn FaceDetector>,
    /// Context band for close-ups ([`FaceDetector::detect_with_margin`]); 0: off.
    closeup_margin: f32,
    /// The detections of the pass with context (preallocated).
    closeups: Vec<Detection>,
    /// Track-guided detection's window detector and its output (preallocated); `None`: off.
    window_detector: Option<(BlazeFace, Vec<Detection>)>,
}

/// Detection + alignment + classification of one image, over buffers sized for `max_faces`.
/// Shared by the live loop and `agegender image`.
pub struct Perception {
    pub detect: FrameDetector,
    pub classifier: Box<dyn FaceClassifier>,
    max_faces: usize,
    /// Raw detector output (the detector may return more than `max_faces`).
    detections: Vec<Detection>,
    /// The faces that were classified, best score first, at most `max_faces`.
    kept: Vec<Detection>,
    attrs: Vec<Attributes>,
    /// One aligned face, planar CHW.
    tensor: Vec<f32>,
    /// Faces whose landmarks could not be aligned (degenerate), skipped.
    pub align_failures: u64,
    /// Per kept detection of [`Perception::run_tracked`]: its classified view, if it got one.
    views: Vec<Option<View>>,
    /// Classifier runs so far.
    pub classifier_calls: u64,
    /// Whether a window of the latest detection lost its face.
    pub window_lost: bool,
    /// [`Perception::set_detections`]: with `search_limited`, the ids of the tracks a window
    /// search was placed around (by tracks older than the tracker's); see
    /// [`Tracker::searched_only`]. Used up by the next [`Perception::track`].
    searched: Vec<u64>,
    search_limited: bool,
}

/// A window search looks at a square this many times the tracked face's side, centred on it:
/// the face fills 40% of the window, as in the front camera's pictures the 128×128 model was
/// made for, and may move 0.75 of its side between two detections and stay inside.
pub const WINDOW_SCALE: f32 = 2.5;
/// The smallest window (frame pixels): a small face is searched at no more than 2× enlarged.
pub const WINDOW_MIN_SIDE: f32 = 64.0;
/// Window searches per frame at most. Each costs about a quarter of a whole-frame detection on
/// the Cortex-A72 (scripts/bench/arm-cost: 36.6 M against 156.2 M instructions for the 4:3 cut
/// input), so four windows cost what the whole frame does there, and more on the x86 machine
/// measured (docs/performance.md, "Track-guided detection"): a fourth tracked face brings the whole frame
/// back. (Four windows find the 4-face replay stream's faces as well: scripts/bench/motion.py
/// against the pasted faces, 100.0% with no false box.)
pub const MAX_WINDOWS: usize = 3;

/// The part of a `frame_h`-tall frame a tracked face's person moves in: the face's search
/// window widened to [`PERSON_WIDTH`] face sides, down to the frame's bottom (the body below
/// the head). Motion there is the tracked person's own; motion elsewhere may be a newcomer.
/// `lag`: detections still in flight since `face` was seen (the stage-parallel loop's; 0 in
/// the one-thread loop): the box grows by [`LAG_SCALE`] face sides for each, as the window does.
pub fn person_box(face: &Detection, frame_h: u32, lag: usize) -> [f32; 4] {
    let grow = LAG_SCALE * lag as f32;
    let w = Window::around(face, WINDOW_SCALE + grow, WINDOW_MIN_SIDE).bbox();
    let side = face.face_side();
    let cx = (face.bbox[0] + face.bbox[2]) / 2.0;
    let half = (PERSON_WIDTH + grow) * side / 2.0;
    [
        w[0].min(cx - half),
        w[1],
        w[2].max(cx + half),
        w[3].max(frame_h as f32),
    ]
}

/// A person's width in face sides (shoulders), for [`person_box`].
pub const PERSON_WIDTH: f32 = 3.0;

/// Frames the status line's latency percentiles are taken over (the latest ones).
pub const LATENCY_WINDOW: usize = 256;

/// Two boxes of two detector passes overlapping more than this are the same face.
const SAME_FACE_IOU: f32 = 0.3;

/// A face this large (box side ≥ this fraction of the frame's shorter side) is a close-up.
pub const CLOSEUP_SIDE: f32 = 0.5;
/// A face at least this large that touches the frame's edge is one too (running off it).
pub const CLOSEUP_EDGE_SIDE: f32 = 0.2;

/// Whether `d` fills a `w`×`h` frame or runs off its edge: the detector, trained on faces with
/// surroundings, places such faces' boxes and landmarks badly, or misses them.
pub fn is_closeup(d: &Detection, w: u32, h: u32) -> bool {
    let (w, h) = (w as f32, h as f32);
    let side = d.face_side();
    let short = w.min(h);
    let edge = d.bbox[0] <= 1.0 || d.bbox[1] <= 1.0 || d.bbox[2] >= w - 1.0 || d.bbox[3] >= h - 1.0;
    side >= CLOSEUP_SIDE * short || (edge && side >= CLOSEUP_EDGE_SIDE * short)
}

impl FrameDetector {
    pub fn new(detector: Box<dyn FaceDetector>) -> Self {
        FrameDetector {
            detector,
            closeup_margin: crate::config::DEFAULT_CLOSEUP_MARGIN,
            // Detectors emit at most a few hundred candidates before NMS.
            closeups: Vec::with_capacity(256),
            window_detector: None,
        }
    }

    /// The same detect stage for another thread (a detector worker): the models' plans
    /// shared, its own states and buffers.
    pub fn fork(&self) -> anyhow::Result<FrameDetector> {
        Ok(FrameDetector {
            detector: self.detector.fork()?,
            closeup_margin: self.closeup_margin,
            closeups: Vec::with_capacity(self.closeups.capacity()),
            window_detector: match &self.window_detector {
                Some((w, found)) => Some((w.fork_window()?, Vec::with_capacity(found.capacity()))),
                None => None,
            },
        })
    }

    /// `n` forks ([`FrameDetector::fork`]): the detectors of `n` more detector workers.
    pub fn forks(&self, n: usize) -> anyhow::Result<Vec<FrameDetector>> {
        (0..n).map(|_| self.fork()).collect()
    }

    /// Track-guided detection's window detector (a BlazeFace model; the 128×128 front one is
    /// the cheap one): [`FrameDetector::detect_windows`] searches around tracked faces with it.
    pub fn set_window_detector(&mut self, detector: BlazeFace) {
        self.window_detector = Some((detector, Vec::with_capacity(crate::detect::MAX_CANDIDATES)));
    }

    pub fn has_window_detector(&self) -> bool {
        self.window_detector.is_some()
    }

    /// The context band for close-ups (`closeup_margin`; 0 turns the second pass off).
    pub fn set_closeup_margin(&mut self, margin: f32) {
        self.closeup_margin = margin;
    }

    /// Detect into `out` only in a window around each of `faces` ([`Window::around`], `scale`
    /// times the face): per window the found face that overlaps the tracked box most, and none
    /// if none overlaps it. Returns whether a window lost its face. No allocation.
    pub fn detect_windows(
        &mut self,
        image: &RgbImage,
        faces: &[TrackedFace],
        scale: f32,
        out: &mut Vec<Detection>,
    ) -> anyhow::Result<bool> {
        out.clear();
        let mut lost = false;
        let Some((detector, found)) = self.window_detector.as_mut() else {
            anyhow::bail!("window search without a window detector");
        };
        for f in faces {
            let tracked = f.detection.bbox;
            detector.detect_window(
                image,
                Window::around(&f.detection, scale, WINDOW_MIN_SIDE),
                found,
            )?;
            let best = found
                .iter()
                .map(|d| (crate::detect::iou(&d.bbox, &tracked), d))
                .filter(|(o, _)| *o > 0.0)
                .max_by(|a, b| a.0.total_cmp(&b.0));
            match best {
                Some((_, d)) => out.push(*d),
                None => lost = true,
            }
        }
        // two windows that found the same face give it once
        crate::detect::nms(out, SAME_FACE_IOU);
        Ok(lost)
    }

    /// Detect into `out`; when a face found is a close-up ([`is_closeup`]), or nothing was
    /// found in a still picture (`still`), detect again with a band of context around the
    /// frame. A close-up found by both passes is taken from the pass with context (better
    /// placed box and landmarks), any other face from the plain pass (it sees small faces at
    /// full resolution); faces only one pass found are kept. No allocation.
    pub fn detect(
        &mut self,
        image: &RgbImage,
        still: bool,
        out: &mut Vec<Detection>,
    ) -> anyhow::Result<()> {
        self.detector.detect(image, out)?;
        let (w, h) = (image.width, image.height);
        let wanted = self.closeup_margin > 0.0
            && ((still && out.is_empty()) || out.iter().any(|d| is_closeup(d, w, h)));
        if !wanted {
            return Ok(());
        }
        self.detector
            .detect_with_margin(image, self.closeup_margin, &mut self.closeups)?;
        let closeups = &mut self.closeups;
        out.retain(|d| {
            let twin = closeups
                .iter()
                .position(|c| crate::detect::iou(&d.bbox, &c.bbox) > SAME_FACE_IOU);
            match twin {
                // Both passes found it: a close-up from the pass with context, else this one.
                Some(_) if is_closeup(d, w, h) => false,
                Some(i) => {
                    closeups.swap_remove(i);
                    true
                }
                None => true,
            }
        });
        out.extend_from_slice(&self.closeups);
        Ok(())
    }
}

impl Perception {
    pub fn new(
        detector: Box<dyn FaceDetector>,
        classifier: Box<dyn FaceClassifier>,
        max_faces: usize,
    ) -> Self {
        Perception::with_detect(FrameDetector::new(detector), classifier, max_faces)
    }

    /// [`Perception::new`] with a detect stage already set up (window detector, close-ups).
    pub fn with_detect(
        detect: FrameDetector,
        classifier: Box<dyn FaceClassifier>,
        max_faces: usize,
    ) -> Self {
        let max_faces = max_faces.max(1);
        Perception {
            detect,
            classifier,
            max_faces,
            // Detectors emit at most a few hundred candidates before NMS; after NMS this
            // is generous. It only grows if a detector returns more.
            detections: Vec::with_capacity(256),
            kept: Vec::with_capacity(max_faces),
            attrs: Vec::with_capacity(max_faces),
            tensor: vec![0.0; 3 * INPUT_SIZE * INPUT_SIZE],
            align_failures: 0,
            views: Vec::with_capacity(max_faces),
            classifier_calls: 0,
            window_lost: false,
            searched: Vec::with_capacity(max_faces.max(MAX_WINDOWS)),
            search_limited: false,
        }
    }

    /// See [`FrameDetector::set_window_detector`].
    pub fn set_window_detector(&mut self, detector: BlazeFace) {
        self.detect.set_window_detector(detector);
    }

    pub fn has_window_detector(&self) -> bool {
        self.detect.has_window_detector()
    }

    /// See [`FrameDetector::set_closeup_margin`].
    pub fn set_closeup_margin(&mut self, margin: f32) {
        self.detect.set_closeup_margin(margin);
    }

    /// The whole image through the detect stage ([`FrameDetector::detect`]) into `self.detections`.
    fn detect_whole(&mut self, image: &RgbImage, still: bool) -> anyhow::Result<()> {
        self.detect.detect(image, still, &mut self.detections)
    }

    /// The frame loop's detection into `self.detections`: the whole frame, or with `windows`
    /// only around `faces` (the tracker's, [`WINDOW_SCALE`]); sets [`Perception::window_lost`].
    pub fn detect_frame(
        &mut self,
        image: &RgbImage,
        windows: bool,
        faces: &[TrackedFace],
    ) -> anyhow::Result<()> {
        self.window_lost = false;
        self.search_limited = false;
        if windows {
            self.window_lost =
                self.detect
                    .detect_windows(image, faces, WINDOW_SCALE, &mut self.detections)?;
            Ok(())
        } else {
            self.detect_whole(image, false)
        }
    }

    /// Take a frame's detections made elsewhere (a detector worker of the stage-parallel
    /// loop) as [`Perception::detect_frame`]'s; `around`: a window search's, placed by these
    /// tracked faces (tracks made or seen since are not missed: [`Tracker::searched_only`]).
    /// No allocation (up to the capacity).
    pub fn set_detections(
        &mut self,
        found: &[Detection],
        window_lost: bool,
        around: Option<&[TrackedFace]>,
    ) {
        self.detections.clear();
        self.detections.extend_from_slice(found);
        self.window_lost = window_lost;
        self.search_limited = around.is_some();
        self.searched.clear();
        let room = self.searched.capacity();
        let ids = around.unwrap_or_default().iter().map(|f| f.id);
        self.searched.extend(ids.take(room));
    }

    /// The frame loop's perception: detect (best `max_faces` by score) in the whole frame, or
    /// with `windows` only around the faces `tracker` saw last, then
    /// [`Perception::track`]. No allocation in our code.
    pub fn run_tracked<'t>(
        &mut self,
        image: &RgbImage,
        tracker: &'t mut Tracker,
        frame: u64,
        now_ms: u64,
        windows: bool,
        probe: &mut dyn FnMut(Stage),
    ) -> anyhow::Result<&'t [TrackedFace]> {
        probe(Stage::Detect);
        self.detect_frame(image, windows, tracker.faces())?;
        self.track(image, tracker, frame, now_ms, probe)
    }

    /// After a detection ([`Perception::detect_frame`] or [`Perception::set_detections`]):
    /// keep the best `max_faces` by score, match them to `tracker`'s tracks, align each, and
    /// classify only those the tracker wants a view of ([`Tracker::wants_view`], given the
    /// view's [`crate::quality::view_quality`]); then update the tracker (frame `frame` at
    /// `now_ms`) and return its faces. No allocation in our code. A face whose landmarks
    /// cannot be aligned gets no view.
    pub fn track<'t>(
        &mut self,
        image: &RgbImage,
        tracker: &'t mut Tracker,
        frame: u64,
        now_ms: u64,
        probe: &mut dyn FnMut(Stage),
    ) -> anyhow::Result<&'t [TrackedFace]> {
        self.detections
            .sort_unstable_by(|a, b| b.score.total_cmp(&a.score));
        self.kept.clear();
        let n = self.detections.len().min(self.max_faces);
        self.kept.extend_from_slice(&self.detections[..n]);
        tracker.associate(&self.kept);
        if std::mem::take(&mut self.search_limited) {
            tracker.searched_only(&self.searched);
        }
        self.views.clear();
        for (di, d) in self.kept.iter().enumerate() {
            probe(Stage::Align);
            if align_into(image, &d.landmarks, INPUT_SIZE, &mut self.tensor).is_err() {
                self.align_failures += 1;
                self.views.push(None);
                continue;
            }
            let quality = crate::quality::view_quality(d, &self.tensor, INPUT_SIZE);
            if !tracker.wants_view(di, d, quality, now_ms) {
                self.views.push(None);
                continue;
            }
            probe(Stage::Classify);
            let attributes = self.classifier.classify(&self.tensor)?;
            self.classifier_calls += 1;
            self.views.push(Some(View {
                attributes,
                quality,
            }));
        }
        probe(Stage::Track);
        Ok(tracker.update_views(&self.kept, &self.views, frame, now_ms))
    }

    /// Detect, align and classify the faces of `image` (best `max_faces` by score), every
    /// face (one image: `agegender image`).
    pub fn run(&mut self, image: &RgbImage, probe: &mut dyn FnMut(Stage)) -> anyhow::Result<()> {
        probe(Stage::Detect);
        self.detect_whole(image, false)?;
        self.classify_detections(image, probe)
    }

    /// [`Perception::run`] for a still picture of any shape: the detector sees its whole input
    /// letterboxed into a small square, so in a wide group photo small faces shrink below what
    /// it can find. Besides the whole picture, each square tile (side = the shorter edge, half
    /// overlapping) is detected on its own, and the results are merged with NMS. Allocates
    /// (tiles); meant for `agegender image`, not the frame loop.
    pub fn run_still(&mut self, image: &RgbImage, nms_iou: f32) -> anyhow::Result<()> {
        self.detect_whole(image, true)?;
        let (w, h) = (image.width, image.height);
        let side = w.min(h);
        if side > 0 && w.max(h) as f32 > 1.25 * side as f32 {
            let mut all = std::mem::take(&mut self.detections);
            let mut tile = RgbImage::new(side, side);
            let span = w.max(h) - side;
            let steps = (2 * span).div_ceil(side).max(1);
            for k in 0..=steps {
                let off = (span as u64 * k as u64 / steps as u64) as u32;
                let (ox, oy) = if w > h { (off, 0) } else { (0, off) };
                let row = side as usize * 3;
                for y in 0..side as usize {
                    let src = ((oy as usize + y) * w as usize + ox as usize) * 3;
                    tile.data[y * row..(y + 1) * row].copy_from_slice(&image.data[src..src + row]);
                }
                self.detect.detector.detect(&tile, &mut self.detections)?;
                for d in &self.detections {
                    let mut d = *d;
                    let (dx, dy) = (ox as f32, oy as f32);
                    d.bbox = [
                        d.bbox[0] + dx,
                        d.bbox[1] + dy,
                        d.bbox[2] + dx,
                        d.bbox[3] + dy,
                    ];
                    for p in d.landmarks.iter_mut() {
                        p[0] += dx;
                        p[1] += dy;
                    }
                    all.push(d);
                }
            }
            crate::detect::nms(&mut all, nms_iou);
            self.detections = all;
        }
        self.classify_detections(image, &mut |_| {})
    }

    fn classify_detections(
        &mut self,
        image: &RgbImage,
        probe: &mut dyn FnMut(Stage),
    ) -> anyhow::Result<()> {
        self.kept.clear();
        self.attrs.clear();
        self.detections
            .sort_unstable_by(|a, b| b.score.total_cmp(&a.score));
        for d in self.detections.iter() {
            if self.kept.len() == self.max_faces {
                break;
            }
            probe(Stage::Align);
            if align_into(image, &d.landmarks, INPUT_SIZE, &mut self.tensor).is_err() {
                self.align_failures += 1;
                continue;
            }
            probe(Stage::Classify);
            let a = self.classifier.classify(&self.tensor)?;
            self.classifier_calls += 1;
            self.kept.push(*d);
            self.attrs.push(a);
        }
        Ok(())
    }

    /// The classified faces of the last [`Perception::run`] and their labels.
    pub fn results(&self) -> (&[Detection], &[Attributes]) {
        (&self.kept, &self.attrs)
    }

    /// The faces of the last run as unsmoothed [`TrackedFace`]s with ids 1, 2, ... (one image).
    pub fn faces_once(&self, out: &mut Vec<TrackedFace>) {
        out.clear();
        for (i, (d, a)) in self.kept.iter().zip(&self.attrs).enumerate() {
            out.push(TrackedFace {
                id: i as u64 + 1,
                detection: *d,
                attributes: *a,
                hits: 1,
            });
        }
    }
}

/// Loop settings taken from the [`Config`].
#[derive(Clone, Debug)]
pub struct LoopOptions {
    pub max_faces: usize,
    pub detect_every: u32,
    /// 0: until the source ends.
    pub max_frames: u64,
    /// Zero: only the last status line (and camera events).
    pub status_interval: Duration,
    pub status_every_frames: u64,
    pub tracker: TrackerConfig,
    pub visits: VisitConfig,
    pub motion: MotionConfig,
    /// Track-guided detection: whole-frame detections at most this far apart (ms) while the
    /// tracked faces are searched in windows between them; 0: off.
    pub full_detect_interval_ms: u64,
}

impl LoopOptions {
    pub fn from_config(c: &Config) -> Self {
        LoopOptions {
            max_faces: c.max_faces,
            detect_every: c.detect_every.max(1),
            max_frames: c.max_frames,
            status_interval: Duration::from_secs_f32(c.status_interval_s),
            status_every_frames: c.status_every_frames,
            tracker: c.tracker(),
            visits: c.visits(),
            motion: c.motion(),
            full_detect_interval_ms: (c.full_detect_interval_s as f64 * 1000.0).round() as u64,
        }
    }
}

impl Default for LoopOptions {
    fn default() -> Self {
        LoopOptions::from_config(&Config::default())
    }
}

/// What one [`Pipeline::step`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepOutcome {
    /// A frame went through; this many faces were reported.
    Frame { faces: usize, detected: bool },
    /// No frame this time (timeout, capture or decode error, camera reconnected); counted.
    Skipped,
    /// The source has no more frames, or the loop was asked to stop.
    End,
}

/// Every stage and every buffer of the live loop.
pub struct Pipeline {
    source: Box<dyn FrameSource>,
    decoder: Decoder,
    frame: RgbImage,
    perception: Perception,
    tracker: Tracker,
    /// Faces shown and reported for the current frame (copied out of the tracker).
    faces: Vec<TrackedFace>,
    display: Box<dyn Display>,
    reporter: Reporter,
    opts: LoopOptions,
    status: Status,
    last_sequence: Option<u64>,
    started: Instant,
    last_status_at: Instant,
    frames_at_last_status: u64,
    /// Frames numbered so far (those decoded, and in the stage-parallel loop those dropped at
    /// capture, so that the numbers stay the camera's); the `frame` field of face lines.
    processed: u64,
    stop: Arc<AtomicBool>,
    /// Beaten once per step and per reconnect attempt; the systemd watchdog thread watches it.
    heartbeat: Heartbeat,
    display_failed: bool,
    inference_failed: bool,
    decode_failed: bool,
    /// Ended tracks to visits, and the counts window.
    visits: Visits,
    /// Whether a frame due for detection changed enough to run the detector.
    motion: MotionGate,
    /// Unix ms when the loop started: frame times of a source with its own clock
    /// ([`FrameSource::stream_time`]) count from here.
    clock_origin_ms: u64,
    /// Time of the latest frame (ms): the source's clock where it has one, else arrival.
    now_ms: u64,
    /// Time of the latest whole-frame detection (track-guided detection); `None`: none yet,
    /// or one is due (a window lost its face, the camera came back).
    last_full_ms: Option<u64>,
    /// Where the tracked people are this frame ([`person_box`]; preallocated).
    person_boxes: Vec<[f32; 4]>,
    /// Detections in flight while a frame is planned (the stage-parallel loop's; the tracks
    /// are that many detections old): the person boxes grow by it.
    lag: usize,
    /// The latest frames' latencies (ms, a ring of [`LATENCY_WINDOW`]), how many were
    /// recorded, and room to sort them for the status line's percentiles.
    latencies: Box<[f32; LATENCY_WINDOW]>,
    latencies_recorded: u64,
    latencies_sorted: Box<[f32; LATENCY_WINDOW]>,
    /// The stage-parallel loop's detector workers' detectors; empty: the one-thread loop.
    workers: Vec<FrameDetector>,
    /// Whether the detectors can search windows (a window detector is loaded).
    window_search: bool,
}

impl Pipeline {
    pub fn new(
        source: Box<dyn FrameSource>,
        perception: Perception,
        display: Box<dyn Display>,
        reporter: Reporter,
        opts: LoopOptions,
    ) -> Self {
        let (w, h) = source.frame_size();
        let now = Instant::now();
        let window_search = perception.has_window_detector();
        Pipeline {
            decoder: Decoder::with_capacity(w as usize * h as usize * 3),
            frame: RgbImage::new(w, h),
            source,
            perception,
            tracker: Tracker::new(opts.tracker),
            faces: Vec::with_capacity(opts.max_faces),
            display,
            reporter,
            status: Status::default(),
            last_sequence: None,
            started: now,
            last_status_at: now,
            frames_at_last_status: 0,
            processed: 0,
            stop: Arc::new(AtomicBool::new(false)),
            heartbeat: Heartbeat::new(),
            display_failed: false,
            inference_failed: false,
            decode_failed: false,
            visits: Visits::new(opts.visits),
            motion: MotionGate::new(opts.motion, w, h),
            clock_origin_ms: unix_ms(),
            now_ms: 0,
            last_full_ms: None,
            person_boxes: Vec::with_capacity(MAX_WINDOWS),
            lag: 0,
            latencies: Box::new([0.0; LATENCY_WINDOW]),
            latencies_recorded: 0,
            latencies_sorted: Box::new([0.0; LATENCY_WINDOW]),
            workers: Vec::new(),
            window_search,
            opts,
        }
    }

    /// Name the classifier's form and why it runs, in every status line.
    pub fn set_model_form(&mut self, form: &'static str, why: &'static str) {
        self.status.model_form = form;
        self.status.model_form_why = why;
    }

    /// End [`Pipeline::run`] once `n` frames were taken in all (0: never).
    pub fn set_max_frames(&mut self, n: u64) {
        self.opts.max_frames = n;
    }

    /// Set this flag (from another thread) to end [`Pipeline::run`] after the current frame.
    pub fn stop_handle(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Beat `hb` once per step (and per camera reconnect attempt), for the systemd watchdog
    /// ([`crate::service::Watchdog::heartbeat`]).
    pub fn set_heartbeat(&mut self, hb: Heartbeat) {
        self.heartbeat = hb;
    }

    /// Counters so far.
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// Faces of the latest frame.
    pub fn faces(&self) -> &[TrackedFace] {
        &self.faces
    }

    /// The latest decoded frame.
    pub fn frame(&self) -> &RgbImage {
        &self.frame
    }

    pub fn describe_source(&self) -> String {
        self.source.describe()
    }

    pub fn describe_display(&self) -> String {
        self.display.describe()
    }

    /// Run until the source ends, `max_frames` frames were taken, or the stop flag is set;
    /// writes a last status line and flushes. Returns the final counters.
    pub fn run(&mut self) -> anyhow::Result<Status> {
        self.run_frames()?;
        self.end_run()
    }

    /// [`Pipeline::run`] without its end: the tracks stay open, no last status line (a
    /// benchmark's warm-up, then its measured frames). On the detector workers' threads
    /// ([`Pipeline::set_detect_workers`]) if there are any, else step by step.
    pub fn run_frames(&mut self) -> anyhow::Result<()> {
        if !self.workers.is_empty() {
            return self.run_parallel();
        }
        loop {
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            if self.opts.max_frames > 0 && self.status.frames >= self.opts.max_frames {
                break;
            }
            if self.step()? == StepOutcome::End {
                break;
            }
        }
        Ok(())
    }

    /// The end of a run: the people still in view leave with it (visits, the last counts),
    /// a last status line, everything flushed.
    pub fn end_run(&mut self) -> anyhow::Result<Status> {
        // The people still in view leave with the run: their visits, then the last window.
        self.tracker.end_all();
        self.write_visits()?;
        if let Some(c) = self.visits.take_counts(self.now_ms) {
            self.reporter
                .counts(self.now_ms, &c, self.faces.len() as u32)?;
        }
        self.write_status()?;
        self.reporter.flush()?;
        Ok(self.status)
    }

    /// Take the detector and classifier back (to run them on another source).
    pub fn into_perception(self) -> Perception {
        self.perception
    }

    /// Visits so far.
    pub fn visits(&self) -> &Visits {
        &self.visits
    }

    /// A visit line for each track the tracker ended last (those that lasted long enough).
    fn write_visits(&mut self) -> anyhow::Result<()> {
        for s in self.tracker.ended() {
            if let Some(v) = self.visits.end_track(s) {
                self.reporter.visit(self.now_ms, &v)?;
            }
        }
        Ok(())
    }

    /// One frame through every stage.
    pub fn step(&mut self) -> anyhow::Result<StepOutcome> {
        self.step_probed(&mut |_| {})
    }

    /// [`Pipeline::step`], calling `probe` at the start of each stage and with
    /// [`Stage::Done`] at the end (per-stage timing or allocation counts).
    pub fn step_probed(&mut self, probe: &mut dyn FnMut(Stage)) -> anyhow::Result<StepOutcome> {
        self.heartbeat.beat();
        probe(Stage::Capture);
        let arrived;
        let sequence;
        {
            let frame = match self.source.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => {
                    self.status.camera = CameraState::Ended;
                    probe(Stage::Done);
                    return Ok(StepOutcome::End);
                }
                Err(CaptureError::Timeout(_)) => {
                    self.status.capture_timeouts += 1;
                    probe(Stage::Done);
                    return Ok(StepOutcome::Skipped);
                }
                Err(CaptureError::Disconnected(why)) => {
                    self.reconnect(&why)?;
                    probe(Stage::Done);
                    return Ok(StepOutcome::Skipped);
                }
                Err(CaptureError::Other(e)) => {
                    self.status.capture_errors += 1;
                    eprintln!("agegender: warning: capture error: {e:#}");
                    probe(Stage::Done);
                    return Ok(StepOutcome::Skipped);
                }
            };
            arrived = Instant::now();
            sequence = frame.sequence;
            self.status.frames += 1;
            self.status.dropped_frames += sequence_gap(&mut self.last_sequence, sequence);

            probe(Stage::Decode);
            if let Err(e) = self.decoder.decode(&frame, &mut self.frame) {
                self.decode_failed(&e.to_string());
                probe(Stage::Done);
                return Ok(StepOutcome::Skipped);
            }
        }
        let frame_no = self.processed;
        self.processed += 1;
        let now_ms = self.frame_time(self.source.stream_time(sequence));
        // the frame is lent out of `self` for the stages that read it
        let image = std::mem::take(&mut self.frame);
        let plan = self.plan(&image, frame_no, now_ms, probe);
        let found = match plan {
            Plan::Whole | Plan::Windows => {
                probe(Stage::Detect);
                self.perception
                    .detect_frame(&image, plan == Plan::Windows, self.tracker.faces())
            }
            Plan::Show | Plan::Hold => Ok(()),
        };
        let out = self.complete(&image, frame_no, now_ms, arrived, plan, found, probe);
        self.frame = image;
        out
    }

    /// Frame time (ms): the source's clock where it has one (`stream_time`), else now.
    fn frame_time(&self, stream_time: Option<Duration>) -> u64 {
        match stream_time {
            Some(t) => self.clock_origin_ms + t.as_millis() as u64,
            None => unix_ms(),
        }
    }

    /// A frame that could not be decoded: counted, and the first one logged.
    fn decode_failed(&mut self, why: &str) {
        self.status.decode_errors += 1;
        if !self.decode_failed {
            self.decode_failed = true;
            eprintln!("agegender: warning: skipping a frame that cannot be decoded (further ones are only counted): {why}");
        }
    }

    /// Whether frame `frame_no` is due for detection by the schedule (`detect_every`), counted
    /// over the frames that went through: frames dropped at capture (which keep their numbers)
    /// do not shift it.
    fn due(&self, frame_no: u64) -> bool {
        (frame_no - self.status.busy_dropped) % self.opts.detect_every as u64 == 0
    }

    /// What frame `frame_no` (at `now_ms`) gets, decided in frame order before its detection
    /// runs: due by the schedule; then, with motion gating on, detected only if the scene
    /// changed since the last detection (or that was too long ago); then the whole frame or
    /// windows ([`Pipeline::window_search_fits`]). Counts the decision.
    fn plan(
        &mut self,
        image: &RgbImage,
        frame_no: u64,
        now_ms: u64,
        probe: &mut dyn FnMut(Stage),
    ) -> Plan {
        if !self.due(frame_no) {
            return Plan::Show;
        }
        probe(Stage::Motion);
        if !self.motion.should_detect(image, now_ms) {
            self.status.detect_skipped += 1;
            return Plan::Hold;
        }
        self.status.detections += 1;
        let windows = self.window_search_fits(image.width, image.height, now_ms);
        self.motion.detected(now_ms);
        if windows {
            self.status.window_detections += 1;
            Plan::Windows
        } else {
            // counted from its planning: in the stage-parallel loop the frames planned while
            // it is with a worker search windows (a detection behind), not the whole frame again
            self.last_full_ms = Some(now_ms);
            Plan::Whole
        }
    }

    /// The rest of frame `frame_no`'s way, in frame order, once its detection (if it has one)
    /// is in the perception (`found`: whether it succeeded): track, display, report.
    #[allow(clippy::too_many_arguments)]
    fn complete(
        &mut self,
        image: &RgbImage,
        frame_no: u64,
        now_ms: u64,
        arrived: Instant,
        plan: Plan,
        found: anyhow::Result<()>,
        probe: &mut dyn FnMut(Stage),
    ) -> anyhow::Result<StepOutcome> {
        self.now_ms = now_ms;
        self.visits.start(now_ms);
        match plan {
            Plan::Show => {}
            Plan::Hold => {
                // A skipped detection is no tracker update: tracks keep their boxes and
                // labels and are not counted as missed; the faces shown again are still in
                // view, so their visits go on.
                probe(Stage::Track);
                self.tracker.hold_at(frame_no, now_ms);
            }
            Plan::Whole | Plan::Windows => {
                let run = found.and_then(|()| {
                    self.perception
                        .track(image, &mut self.tracker, frame_no, now_ms, probe)
                });
                self.status.classifier_calls = self.perception.classifier_calls;
                match run {
                    Ok(faces) => {
                        self.faces.clear();
                        self.faces.extend_from_slice(faces);
                        if plan == Plan::Windows
                            && self.perception.window_lost
                            && self.last_full_ms.is_some_and(|t| t <= now_ms)
                        {
                            // a face left its window: the next detection looks at everything
                            // (unless one planned after this frame already does)
                            self.last_full_ms = None;
                        }
                    }
                    Err(e) => {
                        if plan == Plan::Whole && self.last_full_ms == Some(now_ms) {
                            // the whole-frame detection planned did not happen
                            self.last_full_ms = None;
                        }
                        self.status.inference_errors += 1;
                        if !self.inference_failed {
                            self.inference_failed = true;
                            eprintln!("agegender: warning: inference failed, frame skipped (further ones are only counted): {e:#}");
                        }
                        probe(Stage::Done);
                        return Ok(StepOutcome::Skipped);
                    }
                }
            }
        }
        let detected = matches!(plan, Plan::Whole | Plan::Windows);

        probe(Stage::Display);
        if let Err(e) = self.display.show(image, &self.faces) {
            if !self.display_failed {
                self.display_failed = true;
                eprintln!(
                    "agegender: warning: display {}: {e:#} (further errors are not logged)",
                    self.display.describe()
                );
            }
        }

        probe(Stage::Report);
        let ts = unix_ms();
        let latency_ms = arrived.elapsed().as_secs_f32() * 1000.0;
        for f in &self.faces {
            self.reporter.face(ts, frame_no, f, latency_ms, None)?;
        }
        if detected {
            self.write_visits()?;
        }
        if self.visits.counts_due(self.now_ms) {
            if let Some(c) = self.visits.take_counts(self.now_ms) {
                self.reporter
                    .counts(self.now_ms, &c, self.faces.len() as u32)?;
            }
        }
        self.status.faces = self.faces.len() as u32;
        self.status.faces_total += self.faces.len() as u64;
        let due_by_frames = self.opts.status_every_frames > 0
            && self.status.frames % self.opts.status_every_frames == 0;
        let due_by_time = !self.opts.status_interval.is_zero()
            && self.last_status_at.elapsed() >= self.opts.status_interval;
        if due_by_frames || due_by_time {
            self.write_status()?;
        }
        self.reporter.flush()?;
        let latency_ms = arrived.elapsed().as_secs_f32() * 1000.0;
        self.latencies[(self.latencies_recorded % LATENCY_WINDOW as u64) as usize] = latency_ms;
        self.latencies_recorded += 1;
        probe(Stage::Done);
        Ok(StepOutcome::Frame {
            faces: self.faces.len(),
            detected,
        })
    }

    /// Whether this frame's detection may search only windows around the tracked faces
    /// (track-guided detection): the motion gate is on (it is what notices someone new
    /// away from the tracked people), a window detector is loaded, a whole-frame detection happened
    /// less than `full_detect_interval_ms` ago and no window lost its face since, one to
    /// [`MAX_WINDOWS`] faces are tracked and every live track was seen by the last detection
    /// (a face the whole frame missed once is looked for in the whole frame again, not left
    /// for the next refresh), none is a close-up (the whole frame's second pass
    /// with context serves those), and the motion gate saw nothing change away from the tracked
    /// people ([`person_box`]: someone coming in). Allocates nothing.
    fn window_search_fits(&mut self, w: u32, h: u32, now_ms: u64) -> bool {
        let interval = self.opts.full_detect_interval_ms;
        let faces = self.tracker.faces();
        let fresh = matches!(self.last_full_ms, Some(t) if now_ms.saturating_sub(t) < interval);
        if interval == 0
            || !self.motion.config().enabled()
            || !self.window_search
            || !fresh
            || faces.is_empty()
            || faces.len() > MAX_WINDOWS
            || self.tracker.live_tracks() > faces.len()
        {
            return false;
        }
        self.person_boxes.clear();
        for f in faces {
            if is_closeup(&f.detection, w, h) {
                return false;
            }
            self.person_boxes
                .push(person_box(&f.detection, h, self.lag));
        }
        !self.motion.changed_outside(&self.person_boxes)
    }

    /// Emit a status line now (fps since the previous one).
    pub fn write_status(&mut self) -> anyhow::Result<()> {
        let now = Instant::now();
        let dt = now.duration_since(self.last_status_at).as_secs_f32();
        let df = self.status.frames - self.frames_at_last_status;
        self.status.fps = if dt > 0.0 { df as f32 / dt } else { 0.0 };
        self.status.uptime_s = now.duration_since(self.started).as_secs_f32();
        self.status.serial_dropped = self.reporter.dropped();
        self.status.classifier_calls_per_frame = if self.status.frames > 0 {
            self.status.classifier_calls as f32 / self.status.frames as f32
        } else {
            0.0
        };
        let n = self.latencies_recorded.min(LATENCY_WINDOW as u64) as usize;
        if n > 0 {
            let sorted = &mut self.latencies_sorted[..n];
            sorted.copy_from_slice(&self.latencies[..n]);
            sorted.sort_unstable_by(f32::total_cmp);
            let q =
                |p: f32| (sorted[((n - 1) as f32 * p).round() as usize] * 100.0).round() / 100.0;
            self.status.latency_p50_ms = q(0.5);
            self.status.latency_p95_ms = q(0.95);
        }
        self.reporter.status(unix_ms(), &self.status)?;
        self.last_status_at = now;
        self.frames_at_last_status = self.status.frames;
        if self.status.camera == CameraState::Resumed {
            self.status.camera = CameraState::Ok;
        }
        Ok(())
    }

    /// The camera went away: say so, then reopen with backoff ([`reopen`]) until it returns
    /// or the stop flag is set.
    fn reconnect(&mut self, why: &str) -> anyhow::Result<()> {
        self.camera_lost(why)?;
        let hb = &self.heartbeat;
        let mut failures = 0;
        let back = reopen(
            self.source.as_mut(),
            &self.stop,
            &mut || hb.beat(),
            &mut || failures += 1,
        );
        self.status.capture_errors += failures;
        if back {
            self.last_sequence = None;
            self.camera_resumed(&self.source.describe())?;
        }
        Ok(())
    }

    /// The camera is lost: whoever was in view leaves with it (visits), and a status line says so.
    fn camera_lost(&mut self, why: &str) -> anyhow::Result<()> {
        eprintln!("agegender: warning: camera lost ({why}); reconnecting");
        self.status.capture_errors += 1;
        self.status.camera = CameraState::Lost;
        self.tracker.end_all();
        self.write_visits()?;
        self.faces.clear();
        // no faces now: the first frame after the camera returns is detected, changed or not
        self.motion.reset();
        self.last_full_ms = None;
        self.write_status()?;
        self.reporter.flush()
    }

    /// The camera is back (`what`: its description): a status line says so.
    fn camera_resumed(&mut self, what: &str) -> anyhow::Result<()> {
        eprintln!("agegender: camera resumed: {what}");
        self.status.camera = CameraState::Resumed;
        self.write_status()?;
        self.reporter.flush()
    }
}

/// What a frame gets, decided in frame order before its detection runs ([`Pipeline::plan`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Plan {
    /// Not due for detection: the tracked faces are shown again.
    Show,
    /// Due, but the motion gate saw no change: the tracks are held.
    Hold,
    /// The whole frame is detected.
    Whole,
    /// Only windows around the tracked faces are (track-guided detection).
    Windows,
}

/// Frames a source skipped before `sequence` (a gap in its numbers), given the last one seen.
fn sequence_gap(last: &mut Option<u64>, sequence: u64) -> u64 {
    let gap = match *last {
        Some(prev) if sequence > prev.saturating_add(1) => sequence - prev - 1,
        _ => 0,
    };
    *last = Some(sequence);
    gap
}

/// Reopen a lost `source`: a try after 0.5 s, the wait doubling to 8 s, until it is back
/// (`true`) or `stop` is set (`false`). `tick` runs around each wait (the watchdog's heartbeat),
/// `failed` after each failed try (counted).
fn reopen(
    source: &mut dyn FrameSource,
    stop: &AtomicBool,
    tick: &mut dyn FnMut(),
    failed: &mut dyn FnMut(),
) -> bool {
    let mut wait = Duration::from_millis(500);
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        // still alive while the camera is away: keep the watchdog fed
        tick();
        std::thread::sleep(wait);
        tick();
        match source.reconnect() {
            Ok(()) => return true,
            Err(e) => {
                failed();
                wait = (wait * 2).min(Duration::from_secs(8));
                eprintln!(
                    "agegender: warning: reconnect failed: {e:#}; next try in {:.1} s",
                    wait.as_secs_f32()
                );
            }
        }
    }
}

/// Open the frame source named by `cfg.source`: a V4L2 device (`/dev/...`, or `v4l2:NAME`
/// for a camera chosen by card name or bus info), a directory of
/// images, or an `.mjpeg` file (a single `.jpg` is a one-frame stream).
pub fn open_source(cfg: &Config) -> anyhow::Result<Box<dyn FrameSource>> {
    let s = cfg.source.as_str();
    let path = Path::new(s);
    if s.starts_with("/dev/") || s.starts_with("v4l2:") {
        return open_v4l2(cfg);
    }
    if path.is_dir() {
        let dir = DirSource::open(path, cfg.fps, cfg.loop_source)?;
        return Ok(if cfg.replay_as_camera {
            Box::new(dir.as_camera())
        } else {
            Box::new(dir)
        });
    }
    if !path.exists() {
        anyhow::bail!("source {s} does not exist (expected a /dev/video device, a directory of images or an .mjpeg file)");
    }
    let file = MjpegFileSource::open(path, cfg.fps, cfg.loop_source)
        .with_context(|| format!("source {s}"))?;
    Ok(if cfg.replay_as_camera {
        Box::new(file.as_camera())
    } else {
        Box::new(file)
    })
}

fn open_v4l2(cfg: &Config) -> anyhow::Result<Box<dyn FrameSource>> {
    #[cfg(target_os = "linux")]
    {
        // `/dev/videoN`, or `v4l2:NAME` for a camera selected by card name or bus info.
        let device = cfg.source.strip_prefix("v4l2:").unwrap_or(&cfg.source);
        let fps = if cfg.fps > 0.0 {
            cfg.fps.round().max(1.0) as u32
        } else {
            30
        };
        Ok(Box::new(crate::capture::v4l2::V4l2Source::open(
            device, cfg.width, cfg.height, fps,
        )?))
    }
    #[cfg(not(target_os = "linux"))]
    anyhow::bail!("source {}: V4L2 capture needs Linux", cfg.source)
}

/// Open the display named by `cfg.display`. `width`/`height`: the frame size.
pub fn open_display(cfg: &Config, width: u32, height: u32) -> anyhow::Result<Box<dyn Display>> {
    let d = cfg.display.as_str();
    if d == "none" {
        return Ok(Box::new(NullDisplay));
    }
    if let Some(dir) = d.strip_prefix("png:") {
        anyhow::ensure!(
            !dir.is_empty(),
            "display png: needs a directory, e.g. png:out/"
        );
        return Ok(Box::new(PngDisplay::open(Path::new(dir), width, height)?));
    }
    #[cfg(target_os = "linux")]
    {
        if let Some(path) = d.strip_prefix("fb:") {
            return Ok(Box::new(crate::display::fb::FbDisplay::open(path)?));
        }
        if d == "spi" || d.starts_with("spi:") {
            use crate::display::spi::{SpiConfig, SpiDisplay};
            let mut spi = match &cfg.spi {
                Some(t) => SpiConfig::from_table(t)?,
                None => SpiConfig::default(),
            };
            // `spi:/dev/spidevB.C` overrides the table's device
            if let Some(dev) = d.strip_prefix("spi:").filter(|p| !p.is_empty()) {
                spi.device = dev.to_string();
            }
            return Ok(Box::new(SpiDisplay::open(&spi)?));
        }
    }
    #[cfg(not(target_os = "linux"))]
    if d.starts_with("fb:") || d.starts_with("spi") {
        anyhow::bail!("display {d}: framebuffer and SPI displays need Linux");
    }
    anyhow::bail!("display {d}: expected none, png:DIR, fb:PATH or spi:")
}

/// Open the report sink: `-` is stdout, `/dev/...` a serial port, anything else a file
/// (appended to).
pub fn open_sink(cfg: &Config) -> anyhow::Result<Box<dyn Sink>> {
    let s = cfg.serial.as_str();
    if s == "-" {
        return Ok(Box::new(StdoutSink));
    }
    if s.starts_with("/dev/") {
        #[cfg(target_os = "linux")]
        {
            return Ok(Box::new(crate::serial::SerialSink::open(
                s,
                cfg.baud,
                cfg.serial_queue,
            )?));
        }
    }
    Ok(Box::new(FileSink::open(Path::new(s))?))
}

/// Load the face detector at `path` with the thresholds of `cfg`, for pictures of any shape.
pub fn load_detector(path: &Path, cfg: &Config) -> anyhow::Result<Box<dyn FaceDetector>> {
    crate::detect::load_detector(path, detector_config(cfg))
}

/// Load the frame loop's face detector at `path` with the thresholds of `cfg`, its input cut
/// to the aspect of the frames `cfg` asks the camera for (`width`×`height`: a 256×192 BlazeFace
/// input for 4:3, a quarter less work than the square one; frames of another size are still
/// letterboxed into it).
pub fn load_live_detector(path: &Path, cfg: &Config) -> anyhow::Result<Box<dyn FaceDetector>> {
    let frame = Some((cfg.width, cfg.height));
    crate::detect::load_detector_for_frames(path, detector_config(cfg), frame)
}

fn detector_config(cfg: &Config) -> crate::detect::DetectorConfig {
    crate::detect::DetectorConfig {
        score_threshold: cfg.score_threshold,
        nms_iou: cfg.nms_iou,
        max_faces: cfg.max_faces,
    }
}

/// Load the window detector of track-guided detection at `path`: a BlazeFace model (the
/// 128×128 front one is the cheap one), with the config's score threshold.
pub fn load_window_detector(path: &Path, cfg: &Config) -> anyhow::Result<BlazeFace> {
    let dc = crate::detect::DetectorConfig {
        score_threshold: cfg.score_threshold,
        nms_iou: cfg.nms_iou,
        max_faces: 4,
    };
    BlazeFace::load(path, dc)
        .map_err(|e| anyhow::anyhow!("window_detector / --window-detector: {e:#}"))
}

/// Load the age/gender classifier at `path`.
pub fn load_classifier(path: &Path) -> anyhow::Result<Box<dyn FaceClassifier>> {
    Ok(Box::new(crate::classify::Classifier::load(path)?))
}

impl FaceClassifier for crate::classify::Classifier {
    fn classify(&mut self, chw_input: &[f32]) -> anyhow::Result<Attributes> {
        crate::classify::Classifier::classify(self, chw_input)
    }
}
