//! Detect: face detectors run through tract. Each decodes its model's raw outputs into
//! [`Detection`]s in frame pixel coordinates, then [`nms`] removes overlaps.

/// The four landmarks every detector provides, in the subject's frame of reference:
/// right eye, left eye, nose tip, mouth centre (image coordinates, pixels).
pub type Landmarks = [[f32; 2]; 4];

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Detection {
    /// x0, y0, x1, y1 in frame pixels.
    pub bbox: [f32; 4],
    pub score: f32,
    pub landmarks: Landmarks,
}

/// A face detector. `detect` clears `out` and fills it; it must not allocate once warm.
pub trait FaceDetector {
    fn detect(&mut self, image: &crate::rgb::RgbImage, out: &mut Vec<Detection>) -> anyhow::Result<()>;
}

pub mod blazeface;
pub mod yunet;
