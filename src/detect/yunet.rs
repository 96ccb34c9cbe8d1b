//! YuNet detector through tract.
//!
//! Files (see `../shared/models/README.md`): `yunet_s_640_640.onnx` (fixed 640×640 input) and
//! `yunet_s_dynamic.onnx` (H, W any multiples of 32). Input `input` f32 `[1,3,H,W]`, BGR, raw
//! 0..255. For each stride s in {8, 16, 32}, over N = (H/s)(W/s) cells in row-major order:
//! `cls_s`, `obj_s` `[1,N,1]` (already sigmoid), `bbox_s` `[1,N,4]` = dx, dy, dw, dh and
//! `kps_s` `[1,N,10]` = right eye, left eye, nose tip, right and left mouth corner.
//! score = sqrt(cls · obj); centre = ((col + dx)·s, (row + dy)·s), size = exp(dw, dh)·s,
//! landmark = ((col + kx)·s, (row + ky)·s). Our mouth centre is the mean of the two corners.
//!
//! The frame is scaled (aspect kept) into the input at the top-left and the rest is padded
//! with zeros (bottom and right), as the model was exported for.

use std::path::Path;

use anyhow::{bail, Context};
use tract_onnx::pb;
use tract_onnx::prelude::*;

use super::{finish, push_candidate, Detection, DetectorConfig, FaceDetector};
use super::{Letterbox, Resampler};
use crate::rgb::RgbImage;
use crate::tract_runner::{read_onnx, TractRunner};

/// Input size used for a dynamic-size YuNet when none is given (a 640×480 camera frame).
pub const DEFAULT_DYNAMIC_INPUT: (u32, u32) = (640, 480);

const STRIDES: [usize; 3] = [8, 16, 32];

pub struct YuNet {
    runner: TractRunner,
    decoder: YuNetDecoder,
    resampler: Resampler,
}

/// YuNet's output decoding (per-stride scores, boxes and landmarks to face boxes in frame
/// pixels, then NMS), apart from inference so that it can be tested and fuzzed on arbitrary
/// tensors. Output lengths are checked; candidates with non-finite or empty boxes are dropped.
#[derive(Clone)]
pub struct YuNetDecoder {
    width: usize,
    height: usize,
    /// For each stride: output indices of cls, obj, bbox, kps.
    outputs: [[usize; 4]; 3],
    cfg: DetectorConfig,
    cands: Vec<Detection>,
    /// Context band of the run being decoded ([`FaceDetector::detect_with_margin`]).
    margin: f32,
}

impl YuNetDecoder {
    /// A decoder for a `width`×`height` input whose outputs come in the order cls, obj, bbox,
    /// kps for stride 8, then 16, then 32.
    pub fn new(width: usize, height: usize, cfg: DetectorConfig) -> YuNetDecoder {
        let mut outputs = [[0usize; 4]; 3];
        for (si, o) in outputs.iter_mut().enumerate() {
            *o = [4 * si, 4 * si + 1, 4 * si + 2, 4 * si + 3];
        }
        YuNetDecoder::with_output_map(width, height, outputs, cfg)
    }

    fn with_output_map(
        width: usize,
        height: usize,
        outputs: [[usize; 4]; 3],
        cfg: DetectorConfig,
    ) -> YuNetDecoder {
        YuNetDecoder {
            width,
            height,
            outputs,
            cfg,
            cands: Vec::with_capacity(super::MAX_CANDIDATES),
            margin: 0.0,
        }
    }

    /// Decode the outputs of a run on a `frame_w`×`frame_h` frame into `out` (cleared first).
    pub fn decode(
        &mut self,
        o: &[&[f32]],
        frame_w: u32,
        frame_h: u32,
        out: &mut Vec<Detection>,
    ) -> anyhow::Result<()> {
        super::start_decoding(out, frame_w, frame_h)?;
        let (iw, ih) = (self.width, self.height);
        let lb = Letterbox::fit_with_margin(frame_w, frame_h, iw, ih, false, self.margin);
        let thr = self.cfg.score_threshold;
        let cands = &mut self.cands;
        cands.clear();
        for (si, &s) in STRIDES.iter().enumerate() {
            let [ci, oi, bi, ki] = self.outputs[si];
            anyhow::ensure!(
                ci.max(oi).max(bi).max(ki) < o.len(),
                "YuNet gave {} outputs, stride {s} needs outputs {ci}, {oi}, {bi}, {ki}",
                o.len()
            );
            let (cols, rows) = (iw / s, ih / s);
            let n = cols * rows;
            let (cls, obj, bbox, kps) = (o[ci], o[oi], o[bi], o[ki]);
            anyhow::ensure!(
                cls.len() == n && obj.len() == n && bbox.len() == 4 * n && kps.len() == 10 * n,
                "YuNet stride {s}: output sizes {} {} {} {} do not match {n} cells",
                cls.len(),
                obj.len(),
                bbox.len(),
                kps.len()
            );
            let sf = s as f32;
            for idx in 0..n {
                let score = (cls[idx].clamp(0.0, 1.0) * obj[idx].clamp(0.0, 1.0)).sqrt();
                if score.is_nan() || score <= thr {
                    continue;
                }
                let (row, col) = ((idx / cols) as f32, (idx % cols) as f32);
                let b = &bbox[idx * 4..idx * 4 + 4];
                let cx = (col + b[0]) * sf;
                let cy = (row + b[1]) * sf;
                let w = b[2].min(10.0).exp() * sf;
                let h = b[3].min(10.0).exp() * sf;
                let k = &kps[idx * 10..idx * 10 + 10];
                let kp = |j: usize| lb.to_frame((col + k[2 * j]) * sf, (row + k[2 * j + 1]) * sf);
                let (ml, mr) = (kp(3), kp(4));
                let p0 = lb.to_frame(cx - w / 2.0, cy - h / 2.0);
                let p1 = lb.to_frame(cx + w / 2.0, cy + h / 2.0);
                let d = Detection {
                    bbox: [p0[0], p0[1], p1[0], p1[1]],
                    score,
                    landmarks: [
                        kp(0),
                        kp(1),
                        kp(2),
                        [(ml[0] + mr[0]) / 2.0, (ml[1] + mr[1]) / 2.0],
                    ],
                };
                push_candidate(cands, d);
            }
        }
        finish(cands, &self.cfg, out);
        Ok(())
    }
}

impl YuNet {
    /// Load YuNet. `input` is the (width, height) to run at, multiples of 32; `None` uses the
    /// model's fixed size, or [`DEFAULT_DYNAMIC_INPUT`] for a dynamic-size model.
    pub fn load(
        path: &Path,
        input: Option<(u32, u32)>,
        cfg: DetectorConfig,
    ) -> anyhow::Result<YuNet> {
        let proto = read_onnx(path)?;
        match super::identify(&proto) {
            Some(super::Kind::YuNet) => Self::from_proto(path, proto, input, cfg),
            _ => bail!(
                "detector {}: not a YuNet model (inputs {}, outputs {})",
                path.display(),
                crate::tract_runner::describe_values(&proto, true),
                crate::tract_runner::describe_values(&proto, false)
            ),
        }
    }

    pub(crate) fn from_proto(
        path: &Path,
        proto: pb::ModelProto,
        input: Option<(u32, u32)>,
        cfg: DetectorConfig,
    ) -> anyhow::Result<YuNet> {
        let inputs = crate::tract_runner::real_inputs(&proto);
        let d = crate::tract_runner::dims(inputs[0]);
        let fixed = match (d.get(2).copied().flatten(), d.get(3).copied().flatten()) {
            (Some(h), Some(w)) => Some((w as u32, h as u32)),
            _ => None,
        };
        let (w, h) = match (fixed, input) {
            (Some(f), Some(i)) if f != i => bail!(
                "detector {}: this YuNet has a fixed {}x{} input; {}x{} was requested \
                 (use the dynamic-size model for other sizes)",
                path.display(),
                f.0,
                f.1,
                i.0,
                i.1
            ),
            (Some(f), _) => f,
            (None, Some(i)) => i,
            (None, None) => DEFAULT_DYNAMIC_INPUT,
        };
        if w == 0 || h == 0 || w % 32 != 0 || h % 32 != 0 {
            bail!(
                "detector {}: YuNet input {w}x{h} must be non-zero multiples of 32",
                path.display()
            );
        }
        let names: Vec<&str> = proto
            .graph
            .as_ref()
            .map(|g| g.output.iter().map(|o| o.name.as_str()).collect())
            .unwrap_or_default();
        let mut outputs = [[0usize; 4]; 3];
        for (si, s) in STRIDES.iter().enumerate() {
            for (k, kind) in ["cls", "obj", "bbox", "kps"].iter().enumerate() {
                let name = format!("{kind}_{s}");
                outputs[si][k] = names.iter().position(|n| *n == name).with_context(|| {
                    format!("detector {}: YuNet output {name} missing", path.display())
                })?;
            }
        }
        let model = tract_onnx::onnx()
            .with_ignore_value_info(true)
            .with_ignore_output_shapes(true)
            .model_for_proto_model(&proto)
            .map_err(|e| {
                anyhow::anyhow!("detector {}: tract cannot load it: {e:?}", path.display())
            })?;
        let (wu, hu) = (w as usize, h as usize);
        let runner = TractRunner::new(path, model, &[1, 3, hu, wu], "detector")?;
        Ok(YuNet {
            runner,
            decoder: YuNetDecoder::with_output_map(wu, hu, outputs, cfg),
            resampler: Resampler::default(),
        })
    }

    /// Input (width, height) the network runs at.
    pub fn input_size(&self) -> (usize, usize) {
        (self.decoder.width, self.decoder.height)
    }
}

impl FaceDetector for YuNet {
    fn fork(&self) -> anyhow::Result<Box<dyn FaceDetector>> {
        Ok(Box::new(YuNet {
            runner: self.runner.fork()?,
            decoder: self.decoder.clone(),
            resampler: Resampler::default(),
        }))
    }

    fn detect_with_margin(
        &mut self,
        image: &RgbImage,
        margin: f32,
        out: &mut Vec<Detection>,
    ) -> anyhow::Result<()> {
        out.clear();
        super::ensure_not_empty(image)?;
        let (iw, ih) = (self.decoder.width, self.decoder.height);
        let lb = Letterbox::fit_with_margin(image.width, image.height, iw, ih, false, margin);
        self.decoder.margin = margin;
        {
            let input = self.runner.input_mut()?;
            let plane = iw * ih;
            lb.sample(&mut self.resampler, image, iw, ih, |x, y, p| {
                let i = y * iw + x;
                input[i] = p[2];
                input[plane + i] = p[1];
                input[2 * plane + i] = p[0];
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

    /// Outputs of a 64x32 input, in the decoder's default order, with every score zero.
    fn outputs() -> Vec<Vec<f32>> {
        let mut o = Vec::new();
        for s in STRIDES {
            let n = (64 / s) * (32 / s);
            o.extend([
                vec![0.0; n],
                vec![0.0; n],
                vec![0.0; 4 * n],
                vec![0.0; 10 * n],
            ]);
        }
        o
    }

    fn decode(o: &[Vec<f32>], w: u32, h: u32) -> anyhow::Result<Vec<Detection>> {
        let slices: Vec<&[f32]> = o.iter().map(|t| t.as_slice()).collect();
        let mut out = Vec::new();
        YuNetDecoder::new(64, 32, DetectorConfig::default()).decode(&slices, w, h, &mut out)?;
        Ok(out)
    }

    #[test]
    fn one_cell_decodes_to_its_box_in_frame_pixels() {
        // Stride 16, cell (col 1, row 0): centre (16 + 0.5*16, 0.5*16) = (24, 8), size
        // exp(0)*16 = 16. The 128x64 frame is scaled by 1/2 into the input.
        let mut o = outputs();
        o[4][1] = 0.81;
        o[5][1] = 1.0;
        o[6][4..8].copy_from_slice(&[0.5, 0.5, 0.0, 0.0]);
        let d = decode(&o, 128, 64).unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].bbox, [32.0, 0.0, 64.0, 32.0]);
        assert!((d[0].score - 0.9).abs() < 1e-6);
    }

    #[test]
    fn nan_and_wrong_lengths_do_not_reach_the_pipeline() {
        let mut o = outputs();
        o[4][1] = 1.0;
        o[5][1] = 1.0;
        o[6][4] = f32::NAN;
        assert!(decode(&o, 64, 32).unwrap().is_empty());
        let mut short = outputs();
        short[11].pop();
        let e = decode(&short, 64, 32).unwrap_err().to_string();
        assert!(e.contains("stride 32"), "{e}");
        let e = decode(&outputs()[..5], 64, 32).unwrap_err().to_string();
        assert!(e.contains("5 outputs"), "{e}");
    }
}
