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

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::capture::{CaptureError, FrameSource};
use crate::decode::Decoder;
use crate::display::Display;
use crate::motion::MotionGate;
use crate::report::{unix_ms, CameraState, Reporter, Status};
use crate::rgb::RgbImage;
use crate::service::Heartbeat;
use crate::track::{Follower, TrackedFace, Tracker};
use crate::visits::Visits;

mod camera;
mod frame_detector;
mod latency;
mod open;
mod options;
mod parallel;
mod perception;
mod stage;

pub use frame_detector::{
    is_closeup, person_box, FrameDetector, CLOSEUP_EDGE_SIDE, CLOSEUP_SIDE, MAX_WINDOWS,
    PERSON_WIDTH, WINDOW_MIN_SIDE, WINDOW_SCALE,
};
pub use latency::{Latencies, LATENCY_WINDOW};
pub use open::{
    load_classifier, load_detector, load_live_detector, load_window_detector, open_display,
    open_sink, open_source,
};
pub use options::LoopOptions;
pub use parallel::LAG_SCALE;
pub use perception::{FaceClassifier, Perception};
pub use stage::{Stage, StepOutcome};

use camera::sequence_gap;

/// Detections in a row that look again for a tracked face the last one missed, before the
/// face counts as gone for planning ([`Pipeline::only_tracked_people_moved`]): 1, a second
/// look, as a detector's one-frame miss needs. Before, a face that left kept every due frame
/// detected until `max_missed` (5) detections had missed it and ended its track.
pub const MISSED_LOOKS: u32 = 1;

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
    /// Unix ms when the loop started: frame times count from here, on the source's clock where
    /// it has one ([`FrameSource::stream_time`]: a file), else on the loop's monotonic one.
    clock_origin_ms: u64,
    /// The source has no clock of its own (a camera): its frame times are the loop's monotonic
    /// clock, and reports convert them to the wall clock when they are written.
    loop_clock: bool,
    /// The wall clock (Unix ms): report time stamps ([`crate::report::unix_ms`]; a test sets it).
    wall_clock: fn() -> u64,
    /// Time of the latest frame (ms): the source's clock where it has one, else arrival.
    now_ms: u64,
    /// Time of the latest whole-frame detection (track-guided detection); `None`: none yet,
    /// or one is due (a window lost its face, the camera came back).
    last_full_ms: Option<u64>,
    /// The template tracker that moves the tracked faces between detections and says whether
    /// it followed them surely (`follow_interval_s`; idle when that is 0).
    follower: Follower,
    /// Where the tracked people are this frame ([`person_box`]; preallocated).
    person_boxes: Vec<[f32; 4]>,
    /// Detections in flight while a frame is planned (the stage-parallel loop's; the tracks
    /// are that many detections old): the person boxes grow by it.
    lag: usize,
    /// The latest frames' latencies, for the status line's percentiles.
    latencies: Latencies,
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
        let source_is_live = source.stream_time(0).is_none(); // no clock of its own
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
            loop_clock: source_is_live,
            wall_clock: unix_ms,
            now_ms: 0,
            last_full_ms: None,
            follower: Follower::new(opts.max_faces),
            person_boxes: Vec::with_capacity(3 * opts.max_faces.max(MAX_WINDOWS)),
            lag: 0,
            latencies: Latencies::new(),
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

    /// Read the wall clock (Unix ms) from `clock` instead of the system's: the loop starts at
    /// its time now. For tests of a clock that is set while the kiosk runs.
    pub fn set_wall_clock(&mut self, clock: fn() -> u64) {
        self.wall_clock = clock;
        self.clock_origin_ms = clock();
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
        if self.stop.load(Ordering::Relaxed) {
            self.status.camera = CameraState::Stopped;
        }
        // The people still in view leave with the run: their visits, then the last window.
        self.tracker.end_all();
        let wall_ms = (self.wall_clock)();
        self.report_wall_clock(wall_ms);
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
            Plan::Show | Plan::Hold | Plan::Follow => Ok(()),
        };
        let out = self.complete(&image, frame_no, now_ms, arrived, plan, found, probe);
        self.frame = image;
        out
    }

    /// Frame time (ms): the source's clock where it has one (`stream_time`), else the loop's
    /// monotonic clock, both counted from the wall clock at the start. Tracks, dwell and counts
    /// windows never jump when the wall clock is set (a board with no clock that survives power
    /// off sets it from NTP after the kiosk started): [`Pipeline::report_wall_clock`] converts.
    fn frame_time(&self, stream_time: Option<Duration>) -> u64 {
        let t = stream_time.unwrap_or_else(|| self.started.elapsed());
        self.clock_origin_ms + t.as_millis() as u64
    }

    /// Tell the reporter how the loop's clock stands to the wall clock, which reads `wall_ms`
    /// now (before visits and counts are written): for a camera, the wall clock's step since the
    /// start (0 until it is set); a file's times are its own and are written as they are.
    fn report_wall_clock(&mut self, wall_ms: u64) {
        let shift = if self.loop_clock {
            let loop_now = self.clock_origin_ms + self.started.elapsed().as_millis() as u64;
            wall_ms as i64 - loop_now as i64
        } else {
            0
        };
        self.reporter.set_wall_shift(shift);
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
    /// changed since the last detection (or that was too long ago); then, if only the tracked
    /// people moved and they were followed surely, not at all ([`Pipeline::follow_fits`]);
    /// then the whole frame or windows ([`Pipeline::window_search_fits`]). Counts the decision.
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
        if self.follow_fits(image.width, image.height, now_ms) {
            self.status.followed += 1;
            return Plan::Follow;
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
            Plan::Show | Plan::Follow => {
                if self.opts.follow_interval_ms > 0 {
                    // the faces move with their templates between detections
                    // (a face its template lost is not shown until a detection sees it
                    // again: it may have left; the next due frame is detected)
                    probe(Stage::Track);
                    let all = self.follower.follow(image, &mut self.tracker);
                    self.faces.clear();
                    let follower = &self.follower;
                    self.faces
                        .extend(self.tracker.faces().iter().filter(|f| !follower.lost(f.id)));
                    if plan == Plan::Follow && all {
                        // the followed faces are in view: their visits go on (as a hold's)
                        self.tracker.hold_at(frame_no, now_ms);
                    }
                }
            }
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
                        if self.opts.follow_interval_ms > 0 {
                            self.follower.capture(
                                image,
                                self.tracker.faces(),
                                self.tracker.detected_ids(),
                            );
                        }
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
        let ts = (self.wall_clock)();
        self.report_wall_clock(ts);
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
        self.latencies.record(latency_ms);
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
    /// [`MAX_WINDOWS`] faces are tracked, and [`Pipeline::only_tracked_people_moved`].
    /// Allocates nothing.
    fn window_search_fits(&mut self, w: u32, h: u32, now_ms: u64) -> bool {
        let interval = self.opts.full_detect_interval_ms;
        let fresh = matches!(self.last_full_ms, Some(t) if now_ms.saturating_sub(t) < interval);
        interval != 0
            && self.motion.config().enabled()
            && self.window_search
            && fresh
            && self.tracker.faces().len() <= MAX_WINDOWS
            && self.only_tracked_people_moved(w, h)
    }

    /// Whether this frame's due detection may be skipped, its faces followed by their
    /// templates instead (`follow_interval_s`): the motion gate is on, the latest detection
    /// (the motion gate's reference) is less than `follow_interval_ms` old, the follower followed every tracked face surely
    /// on every frame since, and [`Pipeline::only_tracked_people_moved`]. Allocates nothing.
    fn follow_fits(&mut self, w: u32, h: u32, now_ms: u64) -> bool {
        let interval = self.opts.follow_interval_ms;
        interval != 0
            && self.motion.config().enabled()
            && self
                .motion
                .last_detect_ms()
                .is_some_and(|t| now_ms.saturating_sub(t) < interval)
            && self.follower.sure(self.tracker.faces())
            && self.only_tracked_people_moved(w, h)
    }

    /// Whether the frame last given to the motion gate changed only where the tracked people
    /// are: faces are tracked and every live track was seen by the last detection, or missed
    /// more than [`MISSED_LOOKS`] times in a row (a face the whole frame missed once is looked
    /// for in the whole frame again, not left for the next refresh; missed again, it has left
    /// or turned away, and only the motion gate or the next refresh brings detection back
    /// for it), none is a close-up (the whole frame's second pass with context serves
    /// those), and the motion gate saw nothing change away from the tracked people
    /// ([`person_box`]: someone coming in). Allocates nothing.
    fn only_tracked_people_moved(&mut self, w: u32, h: u32) -> bool {
        let faces = self.tracker.faces();
        if faces.is_empty() || self.tracker.sought_tracks(MISSED_LOOKS) > faces.len() {
            return false;
        }
        self.person_boxes.clear();
        for f in faces {
            if is_closeup(&f.detection, w, h) {
                return false;
            }
            self.person_boxes
                .push(person_box(&f.detection, h, self.lag));
            if let Some(at) = self.follower.captured(f.id).filter(|d| **d != f.detection) {
                // followed since: its person's motion shows where it was too
                self.person_boxes.push(person_box(at, h, self.lag));
            }
            let [dx, dy] = self.follower.last_step(f.id);
            if dx != 0.0 || dy != 0.0 {
                // and where it is on this frame if it kept going (the frame is planned
                // before it is followed)
                let mut ahead = f.detection;
                ahead.translate(dx, dy);
                self.person_boxes.push(person_box(&ahead, h, self.lag));
            }
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
        self.status.saving = self.display.saving().unwrap_or("");
        self.status.classifier_calls_per_frame = if self.status.frames > 0 {
            self.status.classifier_calls as f32 / self.status.frames as f32
        } else {
            0.0
        };
        if let Some([p50, p95]) = self.latencies.percentiles([0.5, 0.95]) {
            self.status.latency_p50_ms = p50;
            self.status.latency_p95_ms = p95;
        }
        self.reporter.status((self.wall_clock)(), &self.status)?;
        self.last_status_at = now;
        self.frames_at_last_status = self.status.frames;
        if self.status.camera == CameraState::Resumed {
            self.status.camera = CameraState::Ok;
        }
        Ok(())
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
    /// Due, but only the tracked people moved and the follower followed them surely: no
    /// detection, the faces move with their templates.
    Follow,
}
