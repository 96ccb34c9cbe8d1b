//! Perception of one frame: detect, align and classify the faces over buffers sized once for
//! `max_faces`, and hand them to the tracker. Shared by the live loop and `agegender image`.

use crate::align::{align_into, INPUT_SIZE};
use crate::classify::Attributes;
use crate::detect::blazeface::BlazeFace;
use crate::detect::{Detection, FaceDetector};
use crate::rgb::RgbImage;
use crate::track::{TrackedFace, Tracker, View};

use super::{FrameDetector, Stage, MAX_WINDOWS, WINDOW_SCALE};

/// The classifier seam: one aligned face (planar CHW f32, `3 × INPUT_SIZE²`) in, labels out.
pub trait FaceClassifier {
    fn classify(&mut self, chw_input: &[f32]) -> anyhow::Result<Attributes>;
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
