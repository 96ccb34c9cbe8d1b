//! The detect stage of a frame: the whole-frame detector with its close-up pass, and
//! track-guided detection's windows around tracked faces (one per thread that detects).

use crate::detect::blazeface::BlazeFace;
use crate::detect::{Detection, FaceDetector, Window};
use crate::rgb::RgbImage;
use crate::track::TrackedFace;

use super::LAG_SCALE;

/// The detect stage: the whole-frame detector with its close-up pass, and track-guided
/// detection's window detector, with their output buffers. One per thread that detects: the
/// one-thread loop's [`Perception`](super::Perception) holds one, each detector worker of the stage-parallel loop
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
