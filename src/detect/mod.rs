//! Detect: face detectors run through tract. Each decodes its model's raw outputs into
//! [`Detection`]s in frame pixel coordinates, then [`nms`] removes overlaps.
//!
//! Two models are supported, chosen by [`load_detector`] from what the ONNX file declares:
//! - BlazeFace (MediaPipe; `scripts/fetch-detector` gets it from npm): [`blazeface::BlazeFace`];
//! - YuNet (libfacedetection / OpenCV Zoo, from a file path): [`yunet::YuNet`].
//!
//! How tract runs the models (allocations per run, the reused state): [`crate::tract_runner`].

use std::path::Path;

use anyhow::bail;
use tract_onnx::pb;

use crate::rgb::RgbImage;
use crate::tract_runner::{describe_values, dims, read_onnx, real_inputs};

pub mod blazeface;
mod resample;
pub mod yunet;

pub(crate) use resample::Resampler;

/// The four landmarks every detector provides, in the subject's frame of reference:
/// right eye, left eye, nose tip, mouth centre (image coordinates, pixels).
/// The subject's right eye is on the image's left.
pub type Landmarks = [[f32; 2]; 4];

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Detection {
    /// x0, y0, x1, y1 in frame pixels.
    pub bbox: [f32; 4],
    pub score: f32,
    pub landmarks: Landmarks,
}

impl Detection {
    /// Move the box and the landmarks by (`dx`, `dy`) pixels.
    pub fn translate(&mut self, dx: f32, dy: f32) {
        self.bbox[0] += dx;
        self.bbox[2] += dx;
        self.bbox[1] += dy;
        self.bbox[3] += dy;
        for l in self.landmarks.iter_mut() {
            l[0] += dx;
            l[1] += dy;
        }
    }

    /// Side of the box in pixels (the longer edge; 0 for an empty or inverted box).
    pub fn face_side(&self) -> f32 {
        (self.bbox[2] - self.bbox[0])
            .max(self.bbox[3] - self.bbox[1])
            .max(0.0)
    }
}

/// A face detector. `detect` clears `out` and fills it; it must not allocate once warm.
pub trait FaceDetector: Send {
    /// The faces of `image`, in its pixels.
    fn detect(&mut self, image: &RgbImage, out: &mut Vec<Detection>) -> anyhow::Result<()> {
        self.detect_with_margin(image, 0.0, out)
    }

    /// As [`FaceDetector::detect`], with the image shrunk inside the detector's input so that a
    /// band of `margin` × its size is left on each side (0: none): context for a face that fills
    /// the frame or runs off its edge (a visitor leaning in), which the detector's anchors,
    /// trained on faces with surroundings, otherwise place badly or miss. Boxes come back in
    /// `image` pixels.
    fn detect_with_margin(
        &mut self,
        image: &RgbImage,
        margin: f32,
        out: &mut Vec<Detection>,
    ) -> anyhow::Result<()>;

    /// The same detector for another thread: the model's plan (its weights) shared, its own
    /// state and buffers.
    fn fork(&self) -> anyhow::Result<Box<dyn FaceDetector>>;
}

/// A square of the frame that a window search ([`blazeface::BlazeFace::detect_window`]) looks
/// at, in frame pixels; it may run past the frame's edges (that part is black, as letterbox
/// padding is).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    pub x0: f32,
    pub y0: f32,
    pub side: f32,
}

impl Window {
    /// The square of side `scale` × the face's side ([`Detection::face_side`]), at least
    /// `min_side`, centred on the face.
    pub fn around(face: &Detection, scale: f32, min_side: f32) -> Window {
        let side = (scale * face.face_side()).max(min_side);
        let b = face.bbox;
        let (cx, cy) = ((b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0);
        Window {
            x0: cx - side / 2.0,
            y0: cy - side / 2.0,
            side,
        }
    }

    /// As `[x0, y0, x1, y1]`.
    pub fn bbox(&self) -> [f32; 4] {
        [self.x0, self.y0, self.x0 + self.side, self.y0 + self.side]
    }
}

/// Thresholds shared by both detectors.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DetectorConfig {
    /// Minimum face score (0..1).
    pub score_threshold: f32,
    /// Overlap above which the lower-scored of two boxes is removed.
    pub nms_iou: f32,
    /// Most faces reported per frame (the highest scores are kept).
    pub max_faces: usize,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            score_threshold: 0.6,
            nms_iou: 0.3,
            max_faces: 8,
        }
    }
}

/// Intersection over union of two `[x0, y0, x1, y1]` boxes (0 when either is empty).
pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let area = |r: &[f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - inter;
    if union <= 0.0 || !union.is_finite() {
        0.0
    } else {
        inter / union
    }
}

/// Greedy non-maximum suppression in place: sorts by score (highest first) and removes every
/// box overlapping a higher-scored kept box by more than `iou_threshold`. Allocates nothing.
pub fn nms(dets: &mut Vec<Detection>, iou_threshold: f32) {
    // sort_unstable_by does not allocate (sort_by may).
    dets.sort_unstable_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept = 0;
    for i in 0..dets.len() {
        let cand = dets[i];
        if dets[..kept]
            .iter()
            .all(|k| iou(&k.bbox, &cand.bbox) <= iou_threshold)
        {
            dets[kept] = cand;
            kept += 1;
        }
    }
    dets.truncate(kept);
}

/// A detector's input check: an image with no pixels is an error naming its size.
pub(crate) fn ensure_not_empty(image: &RgbImage) -> anyhow::Result<()> {
    anyhow::ensure!(
        image.width > 0 && image.height > 0,
        "empty image {}x{}",
        image.width,
        image.height
    );
    Ok(())
}

/// Load a face detector, recognising the model from its ONNX inputs and outputs:
/// BlazeFace (input `[1,S,S,3]`, S = 128 or 256; outputs 512+384 scores and 16 regressors
/// per anchor) or YuNet (input `[1,3,H,W]`; outputs `cls_8` … `kps_32`).
/// A dynamic-size YuNet runs at 640×480 ([`yunet::YuNet::load`] takes other sizes).
pub fn load_detector(path: &Path, cfg: DetectorConfig) -> anyhow::Result<Box<dyn FaceDetector>> {
    load_detector_for_frames(path, cfg, None)
}

/// [`load_detector`] for a frame loop whose frames are `frame` = (width, height): a BlazeFace
/// input is cut to their aspect ([`blazeface::input_height`]: no work on a letterbox's band);
/// `None`: as [`load_detector`].
pub fn load_detector_for_frames(
    path: &Path,
    cfg: DetectorConfig,
    frame: Option<(u32, u32)>,
) -> anyhow::Result<Box<dyn FaceDetector>> {
    let proto = read_onnx(path)?;
    match identify(&proto) {
        Some(Kind::BlazeFace(size)) => Ok(Box::new(blazeface::BlazeFace::from_proto(
            path, proto, size, frame, cfg,
        )?)),
        Some(Kind::YuNet) => Ok(Box::new(yunet::YuNet::from_proto(path, proto, None, cfg)?)),
        None => bail!(
            "detector {}: not a recognised face detector (expected BlazeFace with input [1,S,S,3] \
             and 4 outputs, or YuNet with input [1,3,H,W] and outputs cls_8..kps_32); it declares \
             inputs {} and outputs {}",
            path.display(),
            describe_values(&proto, true),
            describe_values(&proto, false)
        ),
    }
}

pub(crate) enum Kind {
    BlazeFace(usize),
    YuNet,
}

/// Which detector an ONNX file is, from its declared inputs and outputs.
pub(crate) fn identify(proto: &pb::ModelProto) -> Option<Kind> {
    let inputs = real_inputs(proto);
    let outputs = &proto.graph.as_ref()?.output;
    if inputs.len() != 1 {
        return None;
    }
    let d = dims(inputs[0]);
    if d.len() != 4 {
        return None;
    }
    let names: Vec<&str> = outputs.iter().map(|o| o.name.as_str()).collect();
    let yunet_names = [
        "cls_8", "cls_16", "cls_32", "obj_8", "bbox_8", "kps_8", "kps_32",
    ];
    if d[1] == Some(3) && yunet_names.iter().all(|n| names.contains(n)) {
        return Some(Kind::YuNet);
    }
    if d[3] == Some(3) && d[1].is_some() && d[1] == d[2] && outputs.len() == 4 {
        let s = d[1]? as usize;
        let od: Vec<Vec<Option<i64>>> = outputs.iter().map(dims).collect();
        let want = [
            [Some(1), Some(512), Some(1)],
            [Some(1), Some(384), Some(1)],
            [Some(1), Some(512), Some(16)],
            [Some(1), Some(384), Some(16)],
        ];
        if (s == 128 || s == 256) && od.iter().zip(want).all(|(a, b)| a[..] == b[..]) {
            return Some(Kind::BlazeFace(s));
        }
    }
    None
}

/// Where a frame sits inside a detector's input: `input = frame * scale + offset`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Letterbox {
    pub scale: f32,
    pub off_x: f32,
    pub off_y: f32,
}

impl Letterbox {
    /// Fit a `w`×`h` frame into `iw`×`ih` keeping its aspect; `center` pads evenly, otherwise
    /// the frame sits at the top-left (padding right and bottom).
    pub(crate) fn fit(w: u32, h: u32, iw: usize, ih: usize, center: bool) -> Letterbox {
        let scale = (iw as f32 / w as f32).min(ih as f32 / h as f32);
        let (off_x, off_y) = if center {
            (
                (iw as f32 - w as f32 * scale) / 2.0,
                (ih as f32 - h as f32 * scale) / 2.0,
            )
        } else {
            (0.0, 0.0)
        };
        Letterbox {
            scale,
            off_x,
            off_y,
        }
    }

    /// [`Letterbox::fit`] shrunk by `1 + 2 * margin` and centred: a band of `margin` × the
    /// frame's size around it (0: `fit` itself).
    pub(crate) fn fit_with_margin(
        w: u32,
        h: u32,
        iw: usize,
        ih: usize,
        center: bool,
        margin: f32,
    ) -> Letterbox {
        let lb = Letterbox::fit(w, h, iw, ih, center);
        if !(margin > 0.0 && margin.is_finite()) {
            return lb;
        }
        let scale = lb.scale / (1.0 + 2.0 * margin);
        Letterbox {
            scale,
            off_x: (iw as f32 - w as f32 * scale) / 2.0,
            off_y: (ih as f32 - h as f32 * scale) / 2.0,
        }
    }

    /// The square `w` of the frame scaled onto an `iw`×`iw` input (what lies outside the
    /// frame is padding).
    pub(crate) fn window(w: Window, iw: usize) -> Letterbox {
        let scale = iw as f32 / w.side;
        Letterbox {
            scale,
            off_x: -w.x0 * scale,
            off_y: -w.y0 * scale,
        }
    }

    /// Input coordinates back to frame pixels.
    #[inline]
    pub(crate) fn to_frame(self, x: f32, y: f32) -> [f32; 2] {
        [(x - self.off_x) / self.scale, (y - self.off_y) / self.scale]
    }
}

/// Most candidates kept before NMS; beyond that the weakest is replaced.
pub(crate) const MAX_CANDIDATES: usize = 512;

/// Clear `out` and check the frame size, before decoding a detector's outputs.
pub(crate) fn start_decoding(
    out: &mut Vec<Detection>,
    frame_w: u32,
    frame_h: u32,
) -> anyhow::Result<()> {
    out.clear();
    anyhow::ensure!(
        frame_w > 0 && frame_h > 0,
        "empty frame {frame_w}x{frame_h}"
    );
    Ok(())
}

/// Add a candidate if it is [`plausible`], without growing past [`MAX_CANDIDATES`] (replaces
/// the weakest when full).
pub(crate) fn push_candidate(cands: &mut Vec<Detection>, d: Detection) {
    if !plausible(&d) {
        return;
    }
    if cands.len() < MAX_CANDIDATES {
        cands.push(d);
    } else if let Some(min) = cands
        .iter_mut()
        .min_by(|a, b| a.score.total_cmp(&b.score))
        .filter(|m| m.score < d.score)
    {
        *min = d;
    }
}

/// A candidate worth keeping: every coordinate finite and the box not empty (a corrupt or
/// foreign model can emit NaN, infinities or inverted boxes; the rest of the pipeline relies
/// on finite, non-empty boxes).
pub(crate) fn plausible(d: &Detection) -> bool {
    let b = d.bbox;
    b.iter()
        .chain(d.landmarks.iter().flatten())
        .all(|v| v.is_finite())
        && d.score.is_finite()
        && b[2] > b[0]
        && b[3] > b[1]
}

/// NMS over the candidates, keep the `max_faces` best, copy them to `out` (which grows only
/// on its first use).
pub(crate) fn finish(cands: &mut Vec<Detection>, cfg: &DetectorConfig, out: &mut Vec<Detection>) {
    nms(cands, cfg.nms_iou);
    cands.truncate(cfg.max_faces);
    out.clear();
    out.extend_from_slice(cands);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(b: [f32; 4], s: f32) -> Detection {
        Detection {
            bbox: b,
            score: s,
            landmarks: [[0.0; 2]; 4],
        }
    }

    #[test]
    fn iou_of_known_boxes() {
        assert_eq!(iou(&[0.0, 0.0, 10.0, 10.0], &[0.0, 0.0, 10.0, 10.0]), 1.0);
        assert_eq!(iou(&[0.0, 0.0, 10.0, 10.0], &[20.0, 0.0, 30.0, 10.0]), 0.0);
        let v = iou(&[0.0, 0.0, 10.0, 10.0], &[5.0, 0.0, 15.0, 10.0]);
        assert!((v - 50.0 / 150.0).abs() < 1e-6);
        assert_eq!(iou(&[0.0, 0.0, 0.0, 0.0], &[0.0, 0.0, 0.0, 0.0]), 0.0);
    }

    #[test]
    fn letterbox_maps_back() {
        let lb = Letterbox::fit(640, 480, 256, 256, true);
        assert!((lb.scale - 0.4).abs() < 1e-6);
        assert!((lb.off_y - 32.0).abs() < 1e-4 && lb.off_x.abs() < 1e-4);
        let p = lb.to_frame(128.0, 128.0);
        assert!((p[0] - 320.0).abs() < 1e-3 && (p[1] - 240.0).abs() < 1e-3);
    }

    #[test]
    fn nms_keeps_best_of_overlaps() {
        let mut d = vec![
            det([0.0, 0.0, 10.0, 10.0], 0.7),
            det([1.0, 1.0, 11.0, 11.0], 0.9),
            det([50.0, 50.0, 60.0, 60.0], 0.8),
        ];
        nms(&mut d, 0.3);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].score, 0.9);
        assert_eq!(d[1].score, 0.8);
    }
}
