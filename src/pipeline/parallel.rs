//! The stage-parallel frame loop: the same stages as [`Pipeline::step`], on their own threads.
//!
//! ```text
//!  capture + decode ──frame──▶ ordering thread ──job──▶ detector worker × N
//!   (one thread)    ◀─free slot─┤ (this one: motion, ◀─detections─┘
//!                                │  plan, track, align,
//!                                │  classify, display, report)
//! ```
//!
//! - **A fixed ring of frame slots.** Each [`Slot`] owns a decoded frame and the buffers its
//!   detection needs; slots are made once, before the first frame, and move between the
//!   threads over bounded channels (moving a slot copies a few words, allocates nothing).
//! - **Back-pressure at capture.** A live source (a camera, or a replay run `--as-camera`)
//!   whose frame finds no free slot is dropped there, before decoding, and counted
//!   (`busy_dropped` in the status line): the frame rate falls, latency does not grow. A file
//!   waits for a slot instead, also when replayed at a set rate: a machine slower than the clip
//!   reports every frame, only later.
//! - **Detection on N workers.** A frame due for detection is planned in frame order on the
//!   ordering thread (motion gate, whole frame or windows) and handed to whichever detector
//!   worker is free; each worker has its own detector ([`FrameDetector`]). Frames wait in
//!   frame order for their detection, so tracks see frames in order, and serial lines
//!   leave in frame order.
//! - **Windows on tracks a detection behind.** While an earlier frame's detection is in flight,
//!   the tracks a window search is placed by are a detection old; the window then grows by
//!   [`LAG_SCALE`] face sides (the model's input stays 128×128, so a wider window costs nothing
//!   more). A window search is never more than [`MAX_LAG`] detections behind: with more in
//!   flight, the ordering thread first waits for the oldest (a face would shrink too far
//!   inside a wider window). Whole-frame detections need no tracks and run on every worker.
//!   A whole-frame detection counts from its planning, so the frames planned while it is in
//!   flight search windows instead of the whole frame again; a track those windows were not
//!   placed around (a newcomer the whole frame found) is not missed by them
//!   ([`crate::track::Tracker::searched_only`]), and the motion gate's person boxes grow with
//!   the lag as the windows do.
//! - **The camera.** A lost camera is reopened with backoff on the capture thread; the ordering
//!   thread first finishes the frames it holds, then ends the visits and says so, as the
//!   one-thread loop does.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::camera::{reopen, sequence_gap};
use super::{FrameDetector, Pipeline, Plan, WINDOW_SCALE};
use crate::capture::{CaptureError, FrameSource};
use crate::decode::Decoder;
use crate::detect::Detection;
use crate::report::CameraState;
use crate::rgb::RgbImage;
use crate::track::TrackedFace;

/// A window search's scale grows by this many face sides per detection still in flight:
/// the tracked face may have moved 0.75 of its side per detection interval, on each side.
pub const LAG_SCALE: f32 = 1.5;

/// Detections a window search may be behind (in flight when it is planned); with more, the
/// ordering thread waits for the oldest first. 2, not 1: while a whole-frame detection (several
/// window searches long) is in flight, the other workers go on with the windows of the frames
/// after it instead of idling (`agegender bench --workers 2`, 1 face: 1.77–1.86 cores busy with
/// 1, 1.91–1.97 with 2 and the two more slots below; `tests/parallel.rs` still follows walking
/// faces in their wider windows).
pub const MAX_LAG: usize = 2;

/// Frame slots beyond one per worker. With following (`follow_interval_s`, 0.25 s) a
/// whole-frame detection comes every 8th frame at 30 fps, and the 7 followed frames after it
/// wait for it in frame order: the ring must also hold them and the next due frame, so that
/// the capture thread reaches that frame and a second worker starts its detection while the
/// first is still in flight (with 6, the capture thread stalled on a full ring behind the one
/// detection and the loop ran about one detection at a time). Each slot is a decoded frame
/// (0.9 MiB at 640×480). `agegender bench --bounce --workers auto|1` on compare's streams,
/// interleaved pairs (three; two with 4 faces and 10): speed-up 1.04–1.14 (4 faces) and
/// 1.21–1.25 (1 face) with 6, 1.40–1.60 and 1.22–1.42 with 10; 14 and more gained no frames
/// a second, only latency.
const SPARE_SLOTS: usize = 10;

/// How long the ordering thread waits for a message before looking again.
const POLL: Duration = Duration::from_millis(500);

/// One frame on its way through the threads, with every buffer its detection needs.
struct Slot {
    image: RgbImage,
    /// The detector's output.
    found: Vec<Detection>,
    /// Windows: the tracked faces to search around, and the window's scale.
    around: Vec<TrackedFace>,
    scale: f32,
    /// Windows: whether one lost its face; any plan: the detector's error.
    lost: bool,
    error: Option<anyhow::Error>,
    // Filled by the capture thread.
    sequence: u64,
    arrived: Instant,
    stream_time: Option<Duration>,
    taken: Taken,
    // Filled by the ordering thread.
    frame_no: u64,
    now_ms: u64,
    plan: Plan,
}

/// Frames the capture thread took since its last message, and of those the ones it dropped
/// (no free slot) and the ones the source skipped (sequence gaps).
#[derive(Clone, Copy, Debug, Default)]
struct Taken {
    frames: u64,
    busy: u64,
    gaps: u64,
}

/// What the capture thread and the detector workers tell the ordering thread.
enum Msg {
    /// A decoded frame, in capture order.
    Frame(Slot),
    /// A frame's detection is done (or failed: `Slot::error`).
    Detected(Slot),
    /// A frame that could not be decoded.
    DecodeError(Taken, String),
    Timeout,
    CaptureError,
    Lost(String),
    ReconnectFailed,
    /// The camera is back (its description).
    Resumed(String),
    /// The source ended (`true`), or `max_frames` were taken or the stop flag was set.
    End(Taken, bool),
}

impl Pipeline {
    /// Give the loop more detector workers' detectors: [`Pipeline::run`] then runs the
    /// stage-parallel loop with these and the perception's own, one worker each. None (the
    /// default): the one-thread loop.
    pub fn set_detect_workers(&mut self, more: Vec<FrameDetector>) {
        self.status.workers = more.len() as u32 + 1;
        self.workers = more;
    }

    /// One line for the log: how the loop runs.
    pub fn describe_loop(&self) -> String {
        match self.workers.len() {
            0 => "one thread (workers = 1)".into(),
            n => format!(
                "stage-parallel: capture + decode, {} detector workers, ordering (track, classify, \
                 draw, report); {} frame slots",
                n + 1,
                n + 1 + SPARE_SLOTS
            ),
        }
    }

    /// [`Pipeline::run`] with the stages on their own threads (see the module's text).
    pub(super) fn run_parallel(&mut self) -> anyhow::Result<()> {
        let mut detectors = std::mem::take(&mut self.workers);
        // the perception's detector is one of the workers' while they run
        let placeholder = FrameDetector::new(Box::new(Gone));
        detectors.push(std::mem::replace(&mut self.perception.detect, placeholder));
        let mut source = std::mem::replace(&mut self.source, Box::new(Gone));
        let mut decoder = std::mem::replace(&mut self.decoder, Decoder::with_capacity(0));
        let (w, h) = (self.frame.width, self.frame.height);
        let n_slots = detectors.len() + SPARE_SLOTS;
        let live = source.is_live();
        let max_frames = match self.opts.max_frames {
            0 => 0,
            n if self.status.frames >= n => return Ok(()),
            n => n - self.status.frames,
        };

        let (to_main, inbox) = sync_channel::<Msg>(2 * n_slots + 8);
        let (free_tx, free_rx) = sync_channel::<Slot>(n_slots);
        let (job_tx, job_rx) = sync_channel::<Slot>(n_slots);
        for _ in 0..n_slots {
            free_tx
                .send(Slot::new(w, h, self.opts.max_faces))
                .expect("the receiver is alive");
        }
        let job_rx = Mutex::new(job_rx);
        // the capture thread's stop flag: set when the loop's own is, and when the loop ends
        let halt = AtomicBool::new(false);
        let stop = &halt;
        let result = std::thread::scope(|s| {
            let tx = to_main.clone();
            let src = source.as_mut();
            let dec = &mut decoder;
            std::thread::Builder::new()
                .name("capture".into())
                .spawn_scoped(s, move || {
                    capture(src, dec, free_rx, tx, stop, max_frames, live)
                })
                .expect("spawning the capture thread");
            for (k, det) in detectors.iter_mut().enumerate() {
                let tx = to_main.clone();
                let jobs = &job_rx;
                std::thread::Builder::new()
                    .name(format!("detect-{k}"))
                    .spawn_scoped(s, move || detect_worker(det, jobs, tx))
                    .expect("spawning a detector worker");
            }
            drop(to_main);
            let r = self.order(inbox, job_tx, free_tx, n_slots, stop);
            self.lag = 0;
            // whatever happened, the other threads end now: their channels close with `order`
            stop.store(true, Ordering::Relaxed);
            r
        });
        self.source = source;
        self.decoder = decoder;
        if let Some(own) = detectors.pop() {
            self.perception.detect = own;
        }
        self.workers = detectors;
        result
    }

    /// The ordering thread's loop: plan each frame as it arrives, hand its detection to a
    /// worker, and finish frames (track, display, report) strictly in frame order.
    fn order(
        &mut self,
        inbox: Receiver<Msg>,
        jobs: SyncSender<Slot>,
        free: SyncSender<Slot>,
        n_slots: usize,
        halt: &AtomicBool,
    ) -> anyhow::Result<()> {
        // frames in order; `None` while a worker has it
        let mut pending: VecDeque<(u64, Option<Slot>)> = VecDeque::with_capacity(n_slots);
        // messages that came while the frames held were being finished (a lost camera)
        let mut deferred: VecDeque<Msg> = VecDeque::with_capacity(8);
        loop {
            if self.stop.load(Ordering::Relaxed) {
                halt.store(true, Ordering::Relaxed);
            }
            let msg = match deferred.pop_front() {
                Some(m) => m,
                None => match inbox.recv_timeout(POLL) {
                    Ok(m) => m,
                    Err(RecvTimeoutError::Timeout) => continue,
                    // every other thread is gone (a panic): finish what is here
                    Err(RecvTimeoutError::Disconnected) => break,
                },
            };
            self.heartbeat.beat();
            match msg {
                Msg::Frame(mut slot) => {
                    self.take(slot.taken);
                    // frames dropped at capture keep their numbers: `frame` counts the camera's
                    self.processed += slot.taken.busy;
                    slot.frame_no = self.processed;
                    self.processed += 1;
                    slot.now_ms = self.frame_time(slot.stream_time);
                    // A window search is placed by the tracks of at most MAX_LAG detections
                    // ago: with more in flight, wait for the oldest first.
                    self.lag = in_flight(&pending);
                    if self.due(slot.frame_no)
                        && self.lag > MAX_LAG
                        && self.window_search_fits(slot.image.width, slot.image.height, slot.now_ms)
                    {
                        self.finish_until(MAX_LAG, &mut pending, &inbox, &free, &mut deferred)?;
                    }
                    let lag = in_flight(&pending);
                    self.lag = lag;
                    slot.plan = self.plan(&slot.image, slot.frame_no, slot.now_ms, &mut |_| {});
                    match slot.plan {
                        Plan::Whole | Plan::Windows => {
                            if slot.plan == Plan::Windows {
                                slot.around.clear();
                                slot.around.extend_from_slice(self.tracker.faces());
                                slot.scale = WINDOW_SCALE + LAG_SCALE * lag as f32;
                            }
                            pending.push_back((slot.frame_no, None));
                            // never blocks: there are no more slots than room in the queue
                            if jobs.send(slot).is_err() {
                                anyhow::bail!("the detector workers are gone");
                            }
                        }
                        Plan::Show | Plan::Hold | Plan::Follow => {
                            pending.push_back((slot.frame_no, Some(slot)))
                        }
                    }
                }
                Msg::Detected(slot) => file_returned(&mut pending, slot),
                Msg::DecodeError(taken, why) => {
                    self.take(taken);
                    self.decode_failed(&why);
                }
                Msg::Timeout => self.status.capture_timeouts += 1,
                Msg::CaptureError | Msg::ReconnectFailed => self.status.capture_errors += 1,
                Msg::Lost(why) => {
                    self.finish_until(0, &mut pending, &inbox, &free, &mut deferred)?;
                    self.camera_lost(&why)?;
                }
                Msg::Resumed(what) => {
                    self.last_sequence = None;
                    self.camera_resumed(&what)?;
                }
                Msg::End(taken, source_ended) => {
                    self.take(taken);
                    self.finish_until(0, &mut pending, &inbox, &free, &mut deferred)?;
                    if source_ended {
                        self.status.camera = CameraState::Ended;
                    }
                    return Ok(());
                }
            }
            self.finish_ready(&mut pending, &free)?;
        }
        Ok(())
    }

    /// Count what the capture thread took.
    fn take(&mut self, t: Taken) {
        self.status.frames += t.frames;
        self.status.busy_dropped += t.busy;
        self.status.dropped_frames += t.gaps;
    }

    /// Finish the frames at the head of `pending` whose detection is done, in order, and
    /// hand their slots back to the capture thread.
    fn finish_ready(
        &mut self,
        pending: &mut VecDeque<(u64, Option<Slot>)>,
        free: &SyncSender<Slot>,
    ) -> anyhow::Result<()> {
        while matches!(pending.front(), Some((_, Some(_)))) {
            let Some((_, Some(mut slot))) = pending.pop_front() else {
                unreachable!("the head was checked");
            };
            let found = match slot.error.take() {
                Some(e) => Err(e),
                None => {
                    match slot.plan {
                        Plan::Whole => self.perception.set_detections(&slot.found, false, None),
                        Plan::Windows => self.perception.set_detections(
                            &slot.found,
                            slot.lost,
                            Some(&slot.around),
                        ),
                        Plan::Show | Plan::Hold | Plan::Follow => {}
                    }
                    Ok(())
                }
            };
            let plan = slot.plan;
            self.complete(
                &slot.image,
                slot.frame_no,
                slot.now_ms,
                slot.arrived,
                plan,
                found,
                &mut |_| {},
            )?;
            // the capture thread may have ended; then the slot is simply dropped
            let _ = free.send(slot);
        }
        Ok(())
    }

    /// Wait for frames held by the workers to come back, finishing frames in order as they
    /// can be, until at most `max_out` are still out (0: every frame held is finished);
    /// other messages that come meanwhile are kept in `deferred`, in order.
    fn finish_until(
        &mut self,
        max_out: usize,
        pending: &mut VecDeque<(u64, Option<Slot>)>,
        inbox: &Receiver<Msg>,
        free: &SyncSender<Slot>,
        deferred: &mut VecDeque<Msg>,
    ) -> anyhow::Result<()> {
        // (with none out, the frames held were all ready, and are finished)
        self.finish_ready(pending, free)?;
        while in_flight(pending) > max_out {
            match inbox.recv_timeout(POLL) {
                Ok(Msg::Detected(slot)) => {
                    self.heartbeat.beat();
                    file_returned(pending, slot);
                    self.finish_ready(pending, free)?;
                }
                Ok(other) => deferred.push_back(other),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    anyhow::bail!("a detector worker ended with frames still held")
                }
            }
        }
        Ok(())
    }
}

/// Frames of `pending` out with a detector worker.
fn in_flight(pending: &VecDeque<(u64, Option<Slot>)>) -> usize {
    pending.iter().filter(|p| p.1.is_none()).count()
}

/// A slot back from a detector worker, into its place in `pending`.
fn file_returned(pending: &mut VecDeque<(u64, Option<Slot>)>, slot: Slot) {
    if let Some(p) = pending.iter_mut().find(|p| p.0 == slot.frame_no) {
        p.1 = Some(slot);
    }
}

impl Slot {
    fn new(w: u32, h: u32, max_faces: usize) -> Slot {
        Slot {
            image: RgbImage::new(w, h),
            found: Vec::with_capacity(crate::detect::MAX_CANDIDATES),
            around: Vec::with_capacity(max_faces.max(super::MAX_WINDOWS)),
            scale: WINDOW_SCALE,
            lost: false,
            error: None,
            sequence: 0,
            arrived: Instant::now(),
            stream_time: None,
            taken: Taken::default(),
            frame_no: 0,
            now_ms: 0,
            plan: Plan::Show,
        }
    }
}

/// The capture thread: take frames, decode each into a free slot (or drop it: see the
/// module's text), send them on in order; reopen a lost camera.
fn capture(
    source: &mut dyn FrameSource,
    decoder: &mut Decoder,
    free: Receiver<Slot>,
    out: SyncSender<Msg>,
    stop: &AtomicBool,
    max_frames: u64,
    live: bool,
) {
    let mut taken = Taken::default();
    let mut total = 0u64;
    let mut last_sequence = None;
    // a slot whose frame could not be decoded, used for the next one
    let mut spare: Option<Slot> = None;
    loop {
        if stop.load(Ordering::Relaxed) || (max_frames > 0 && total >= max_frames) {
            let _ = out.send(Msg::End(std::mem::take(&mut taken), false));
            return;
        }
        let msg = match source.next_frame() {
            Ok(None) => {
                let _ = out.send(Msg::End(std::mem::take(&mut taken), true));
                return;
            }
            Ok(Some(frame)) => {
                let arrived = Instant::now();
                total += 1;
                taken.frames += 1;
                taken.gaps += sequence_gap(&mut last_sequence, frame.sequence);
                let slot = match spare.take() {
                    Some(s) => Some(s),
                    None if live => free.try_recv().ok(),
                    None => match free.recv() {
                        Ok(s) => Some(s),
                        Err(_) => return, // the ordering thread is gone
                    },
                };
                let Some(mut slot) = slot else {
                    taken.busy += 1;
                    continue;
                };
                match decoder.decode(&frame, &mut slot.image) {
                    Ok(()) => {
                        slot.sequence = frame.sequence;
                        slot.arrived = arrived;
                        slot.taken = std::mem::take(&mut taken);
                        slot.stream_time = source.stream_time(slot.sequence);
                        Msg::Frame(slot)
                    }
                    Err(e) => {
                        spare = Some(slot);
                        Msg::DecodeError(std::mem::take(&mut taken), e.to_string())
                    }
                }
            }
            Err(CaptureError::Timeout(_)) => Msg::Timeout,
            Err(CaptureError::Other(e)) => {
                eprintln!("agegender: warning: capture error: {e:#}");
                Msg::CaptureError
            }
            Err(CaptureError::Disconnected(why)) => {
                if out.send(Msg::Lost(why)).is_err() {
                    return;
                }
                last_sequence = None;
                let mut gone = false;
                let back = reopen(source, stop, &mut || {}, &mut || {
                    gone |= out.send(Msg::ReconnectFailed).is_err();
                });
                if gone {
                    return;
                }
                if !back {
                    continue; // stopped: End at the top
                }
                Msg::Resumed(source.describe())
            }
        };
        if out.send(msg).is_err() {
            return;
        }
    }
}

/// A detector worker: detect each frame handed to it, whole or in windows, and send it back.
/// A detector that panics is an error for that frame, not a hung loop.
fn detect_worker(det: &mut FrameDetector, jobs: &Mutex<Receiver<Slot>>, out: SyncSender<Msg>) {
    loop {
        let job = jobs.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(mut slot) = job else {
            return; // the ordering thread is done
        };
        let s = &mut slot;
        let run = std::panic::catch_unwind(AssertUnwindSafe(|| -> anyhow::Result<bool> {
            if s.plan == Plan::Windows {
                det.detect_windows(&s.image, &s.around, s.scale, &mut s.found)
            } else {
                det.detect(&s.image, false, &mut s.found).map(|()| false)
            }
        }));
        match run {
            Ok(Ok(lost)) => slot.lost = lost,
            Ok(Err(e)) => slot.error = Some(e),
            Err(_) => slot.error = Some(anyhow::anyhow!("the detector panicked")),
        }
        if out.send(Msg::Detected(slot)).is_err() {
            return;
        }
    }
}

/// Stands in for the source while the capture thread has it, and for the perception's
/// detector while a worker has it.
struct Gone;

impl crate::detect::FaceDetector for Gone {
    fn detect_with_margin(
        &mut self,
        _image: &RgbImage,
        _margin: f32,
        _out: &mut Vec<Detection>,
    ) -> anyhow::Result<()> {
        anyhow::bail!("the detector is with a detector worker")
    }
    fn fork(&self) -> anyhow::Result<Box<dyn crate::detect::FaceDetector>> {
        anyhow::bail!("the detector is with a detector worker")
    }
}

impl FrameSource for Gone {
    fn next_frame(&mut self) -> Result<Option<crate::capture::Frame<'_>>, CaptureError> {
        Ok(None)
    }
    fn frame_size(&self) -> (u32, u32) {
        (0, 0)
    }
    fn describe(&self) -> String {
        "(with the capture thread)".into()
    }
}
