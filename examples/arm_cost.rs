//! Stages of the frame loop, each run a chosen number of times after one fixed set-up, for
//! instruction counting under qemu-user (`scripts/bench/arm-cost`, which reads the counts).
//!
//!     arm_cost [--config FILE] [--model ONNX] [--alt-model ONNX [--alt-f16]] [--detector ONNX] [--describe]
//!              INPUT:STAGE:K...
//!
//! Set-up (the parent process): board/config.toml (or `--config`), the detector and the
//! classifier (`--model`, default models/agegender_int8.onnx; `--alt-model` a second one) are
//! loaded, and from then on the frame loop's blocks are pooled as in `agegender run`; the fixed
//! 640×480 frames named by the measurements are built from `tests/fixtures/demo/crew.jpg`
//! (decoded, composed, JPEG-encoded at quality 90): `one` (one face), `four` (four faces),
//! `none` (no face); each is detected, aligned, classified (by both classifiers), tracked twice,
//! drawn and reported, and the shipped frame loop runs `detect_every` frames on it — the
//! warm-up; the trackers then match every face to its track, their steady state.
//!
//! Then, for each measurement INPUT:STAGE:K, the parent forks a child that runs STAGE K times on
//! INPUT and exits, then one that runs it 2K times; it waits for each child before the next.
//! qemu-user's counting plugin prints `insns N` when each child exits: set-up, the parent's
//! own work before that fork, and the child's reps. Two children with no reps, forked first and
//! second, measure the parent's work per fork `c` (a third, last, checks that it is constant);
//! so the stage's cost per rep is `(count(2K) − count(K) − c) / K`, exactly. Before forking
//! the parent prints the measurements in order, one JSON line on stdout.
//!
//! Stages (one rep each): `decode` (the MJPEG frame into RGB), `detect` (letterbox, network,
//! decoding, NMS), `window` (track-guided detection's window search around every face of the
//! input: the window detector on a crop), `align` (every face of the input), `classify` (every face), `track` (one
//! tracker update), `draw` (the overlay composed into a canvas, as the framebuffer display does),
//! `report` (every face's JSON line into a discarding sink) and `frame` (one frame of the
//! shipped loop: decode, every `detect_every`-th frame detect + align + classify + track, draw,
//! report; K should be a multiple of `detect_every`); `classify-alt` and `frame-alt` are
//! `classify` and `frame` with the `--alt-model` classifier (run in f16 with `--alt-f16`, as
//! `model_form = "f16"` runs it). `loop` is one `Pipeline::step` of the shipped loop itself
//! (`agegender run`'s `Pipeline`, built from the configuration, with a display that composes the
//! overlay into a canvas and a discarding sink, no status lines) on the `drift` input: the
//! `one` portrait's person (its middle strip, head and shoulders) swaying 64 px left and right
//! over the still rest of the picture, 2 px a frame, a 64-frame cycle at 30 fps by the
//! stream's own clock; K should be a multiple of 64 (whole cycles: the 2K child's cycles after
//! the K child's are what is counted, the tracks then long established).
//! The `crowd` input is the same for four people (the `four` frame's portraits, one per
//! quarter, over a plain wall) moving as kiosk visitors do, in a 32-frame cycle
//! ([`CROWD_FRAMES`], 30 fps): one stands still, one sways left and right, one sways up and
//! down (a nod, a shift of weight), and one walks in from the left edge, stands, and walks out
//! again (mostly out of view for a few frames around the cycle's end); K should be a multiple of
//! 32. So `loop` counts whatever the loop decides per frame (when to detect, which faces to
//! classify), where `frame` replays a fixed schedule on a still frame; `loop-alt` is `loop` with
//! the `--alt-model` classifier. The report lines' time stamps and latencies come from the
//! clock in `loop` (their digits move the count by a few hundred instructions a frame); nothing
//! else here reads a clock; the script
//! makes getrandom(2) (Rust's hash seeds) and /proc/cpuinfo (tract's CPU probe) fixed, so every
//! count is a function of the binary and its arguments.
//!
//! `--describe` prints, per input, the faces found (JSON lines) and forks nothing.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context};

use agegender::align::{align_into, INPUT_SIZE};
use agegender::capture::files::MjpegFileSource;
use agegender::capture::{Frame, PixelFormat};
use agegender::classify::Attributes;
use agegender::config::Config;
use agegender::decode::Decoder;
use agegender::detect::blazeface::BlazeFace;
use agegender::detect::{Detection, Window};
use agegender::display::png::annotate_into;
use agegender::display::Display;
use agegender::pipeline::{self, FaceClassifier, LoopOptions, Perception, Pipeline};
use agegender::report::{Reporter, Sink};
use agegender::rgb::RgbImage;
use agegender::track::{TrackedFace, Tracker};

#[global_allocator]
static ALLOC: agegender::heap::PoolAlloc = agegender::heap::PoolAlloc;

const W: u32 = 640;
const H: u32 = 480;
/// Background of the composed frames (the demo picture's own).
const BG: [u8; 3] = [40, 44, 52];
/// Fixed values for the report lines (a clock would make the count vary).
const TS_MS: u64 = 1_700_000_000_000;
const LATENCY_MS: f32 = 12.5;

struct Discard;
impl Sink for Discard {
    fn write_line(&mut self, line: &[u8]) -> anyhow::Result<bool> {
        std::hint::black_box(line);
        Ok(true)
    }
}

/// The demo picture's parts (see `scripts/fixtures/make-demo-image.py`): the NASA portrait at 480×480 at
/// x = 0, the Navy portrait at 409×480 at x = 480, a 240×240 copy of the first at (889, 120).
const ASTRONAUT: (u32, u32, u32, u32) = (0, 0, 480, 480);
const HOPPER: (u32, u32, u32, u32) = (480, 0, 409, 480);
const ASTRONAUT_SMALL: (u32, u32, u32, u32) = (889, 120, 240, 240);

/// Copy `src`'s rectangle `r` into `dst` at (x, y), halving it first when `half` (2×2 box).
fn paste(dst: &mut RgbImage, src: &RgbImage, r: (u32, u32, u32, u32), x: u32, y: u32, half: bool) {
    let f = if half { 2 } else { 1 };
    let (rw, rh) = (r.2 / f, r.3 / f);
    for j in 0..rh {
        for i in 0..rw {
            let mut acc = [0u32; 3];
            for dy in 0..f {
                for dx in 0..f {
                    let p = src.pixel(r.0 + i * f + dx, r.1 + j * f + dy);
                    for (a, v) in acc.iter_mut().zip(p) {
                        *a += v as u32;
                    }
                }
            }
            let o = (((y + j) * dst.width + x + i) * 3) as usize;
            for (d, a) in dst.data[o..o + 3].iter_mut().zip(acc) {
                *d = ((a + (f * f) / 2) / (f * f)) as u8;
            }
        }
    }
}

fn blank() -> RgbImage {
    let mut img = RgbImage::new(W, H);
    for px in img.data.chunks_exact_mut(3) {
        px.copy_from_slice(&BG);
    }
    img
}

/// The three fixed frames: `one` (the NASA portrait, face about 200 px), `four` (two halved
/// copies of each portrait in a 2×2 grid, faces about 100 px), `none` (the lower, face-free
/// rows of the demo picture, repeated).
fn compose(crew: &RgbImage) -> Vec<(&'static str, RgbImage)> {
    let mut one = blank();
    paste(&mut one, crew, ASTRONAUT, (W - 480) / 2, 0, false);

    let mut four = blank();
    let cells = [
        (ASTRONAUT_SMALL, false),
        (HOPPER, true),
        (HOPPER, true),
        (ASTRONAUT_SMALL, false),
    ];
    for (k, (r, half)) in cells.into_iter().enumerate() {
        let (cw, ch) = if half { (r.2 / 2, r.3 / 2) } else { (r.2, r.3) };
        let (cx, cy) = ((k as u32 % 2) * W / 2, (k as u32 / 2) * H / 2);
        paste(
            &mut four,
            crew,
            r,
            cx + (W / 2 - cw) / 2,
            cy + (H / 2 - ch) / 2,
            half,
        );
    }

    let mut none = blank();
    let (y0, rows) = (300, crew.height - 300);
    for y in 0..H {
        let s = ((y0 + y % rows) * crew.width * 3) as usize;
        let d = (y * W * 3) as usize;
        none.data[d..d + W as usize * 3].copy_from_slice(&crew.data[s..s + W as usize * 3]);
    }
    vec![("one", one), ("four", four), ("none", none)]
}

/// The `drift` frames: the `one` frame's portrait, its middle strip [`PERSON`] (the astronaut:
/// head and shoulders, 2.6 faces wide, to the bottom) swaying left and right over the rest of
/// the picture, which stays still (a person moving in front of a still scene, as a kiosk's fixed
/// camera sees it; the wall they uncover is the frames' plain background), 2 px a frame, ±32 px
/// around where `one` has it.
fn drift_frames(crew: &RgbImage) -> anyhow::Result<Vec<Vec<u8>>> {
    let base = (W - 480) / 2;
    let (a, b) = PERSON;
    (0..DRIFT_FRAMES as u32)
        .map(|n| {
            let half = DRIFT_SPAN / DRIFT_STEP;
            let dx = DRIFT_STEP * if n <= half { n } else { 2 * half - n };
            let mut img = blank();
            paste(&mut img, crew, (0, 0, a, 480), base, 0, false);
            paste(&mut img, crew, (b, 0, 480 - b, 480), base + b, 0, false);
            let x = base + a + dx - DRIFT_SPAN / 2;
            paste(&mut img, crew, (a, 0, b - a, 480), x, 0, false);
            encode_jpeg(&img)
        })
        .collect()
}

/// The columns of the NASA portrait (480 px wide) that move in `drift`: its face is at 166..258.
const PERSON: (u32, u32) = (92, 332);

fn encode_jpeg(img: &RgbImage) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90).encode(
        &img.data,
        img.width,
        img.height,
        image::ExtendedColorType::Rgb8,
    )?;
    Ok(out)
}

fn mjpeg(jpeg: &[u8]) -> Frame<'_> {
    Frame {
        data: jpeg,
        format: PixelFormat::Mjpeg,
        width: W,
        height: H,
        sequence: 0,
    }
}

/// The `drift` input: the `one` frame's portrait swaying left and right, [`DRIFT_STEP`] px a
/// frame over [`DRIFT_SPAN`] px and back ([`DRIFT_FRAMES`] frames, the cycle), at [`DRIFT_FPS`].
const DRIFT_STEP: u32 = 2;
const DRIFT_SPAN: u32 = 64;
const DRIFT_FRAMES: u64 = (2 * DRIFT_SPAN / DRIFT_STEP) as u64;
const DRIFT_FPS: f32 = 30.0;

/// The `crowd` input's cycle: [`crowd_frames`].
const CROWD_FRAMES: u32 = 32;

/// The `crowd` frames: the `four` frame's four portraits (each with the patch of its own
/// picture around it, cut where the quarter's is), one per quarter, over the plain background,
/// moving over a [`CROWD_FRAMES`]-frame cycle: top left stands still; top right sways 2 px a
/// frame, ±16 px (its patch is its head and shoulders, 2.6 faces wide: it moves whole); bottom
/// right sways up and down 1 px a frame, ±8 px: as in `drift`, only the person (the patch's
/// strip [`PERSON`] / 2, head and shoulders) moves, over the still rest of its picture (the
/// flag and the shuttle behind the astronaut stay where they are, as a fixed camera sees a
/// scene; what the person uncovers is the plain background); bottom left walks in from the
/// left edge (8 frames), stands (16 frames) and walks out again (8 frames).
fn crowd_frames(crew: &RgbImage) -> anyhow::Result<Vec<Vec<u8>>> {
    // the four people as `compose` places them in `four`, each its own picture
    let cells = [
        (ASTRONAUT_SMALL, false),
        (HOPPER, true),
        (HOPPER, true),
        (ASTRONAUT_SMALL, false),
    ];
    let people: Vec<(RgbImage, i32, i32)> = cells
        .into_iter()
        .enumerate()
        .map(|(k, (r, half))| {
            let (cw, ch) = if half { (r.2 / 2, r.3 / 2) } else { (r.2, r.3) };
            let mut img = RgbImage::new(cw, ch);
            paste(&mut img, crew, r, 0, 0, half);
            let (cx, cy) = ((k as u32 % 2) * W / 2, (k as u32 / 2) * H / 2);
            let (x, y) = (cx + (W / 2 - cw) / 2, cy + (H / 2 - ch) / 2);
            (img, x as i32, y as i32)
        })
        .collect();
    // the bottom right astronaut's person strip (the others move whole)
    let strip = {
        let pic = &people[3].0;
        let (a, b) = (PERSON.0 / 2, PERSON.1 / 2);
        let mut strip = RgbImage::new(b - a, pic.height);
        paste(&mut strip, pic, (a, 0, b - a, pic.height), 0, 0, false);
        strip
    };
    let tri = |n: u32, step: i32, half: u32| -> i32 {
        // 0 up to step * half, down to -step * half, back to 0 over 4 * half frames
        let p = (n % (4 * half)) as i32;
        let h = half as i32;
        step * if p <= h {
            p
        } else if p <= 3 * h {
            2 * h - p
        } else {
            p - 4 * h
        }
    };
    (0..CROWD_FRAMES)
        .map(|n| {
            let mut img = blank();
            let walk = |w: i32| -> i32 {
                // in over frames 0..8 (from 7/8 of the way out), stand, out over 24..32
                let n = n as i32;
                match n {
                    0..=7 => -w * (7 - n) / 8,
                    8..=23 => 0,
                    _ => -w * (n - 23) / 8,
                }
            };
            let moves = [
                (0, 0),
                (tri(n, 2, CROWD_FRAMES / 4), 0),
                (walk(people[2].0.width as i32 + people[2].1), 0),
                (0, tri(n, 1, CROWD_FRAMES / 4)),
            ];
            for (k, ((pic, x, y), (dx, dy))) in people.iter().zip(moves).enumerate() {
                if k == 3 {
                    // the scene behind the person stays; the person's strip moves
                    let (a, b) = (PERSON.0 / 2, PERSON.1 / 2);
                    blit(&mut img, pic, *x, *y);
                    let wall = blank_patch(b - a, pic.height);
                    blit(&mut img, &wall, x + a as i32, *y);
                    blit(&mut img, &strip, x + a as i32 + dx, y + dy);
                } else {
                    blit(&mut img, pic, x + dx, y + dy);
                }
            }
            encode_jpeg(&img)
        })
        .collect()
}

/// A `w`×`h` patch of the plain background.
fn blank_patch(w: u32, h: u32) -> RgbImage {
    let mut img = RgbImage::new(w, h);
    for px in img.data.chunks_exact_mut(3) {
        px.copy_from_slice(&BG);
    }
    img
}

/// Copy all of `src` into `dst` with its top left corner at (x, y), clipped to `dst`.
fn blit(dst: &mut RgbImage, src: &RgbImage, x: i32, y: i32) {
    let x0 = x.max(0);
    let x1 = (x + src.width as i32).min(dst.width as i32);
    if x1 <= x0 {
        return;
    }
    for j in 0..src.height as i32 {
        let dy = y + j;
        if dy < 0 || dy >= dst.height as i32 {
            continue;
        }
        let s = ((j * src.width as i32 + (x0 - x)) * 3) as usize;
        let d = ((dy * dst.width as i32 + x0) * 3) as usize;
        let n = ((x1 - x0) * 3) as usize;
        dst.data[d..d + n].copy_from_slice(&src.data[s..s + n]);
    }
}

/// The framebuffer display's work without a framebuffer: the overlay composed into a canvas.
struct CanvasDisplay(RgbImage);

impl Display for CanvasDisplay {
    fn show(&mut self, frame: &RgbImage, faces: &[TrackedFace]) -> anyhow::Result<()> {
        annotate_into(frame, faces, &mut self.0);
        Ok(())
    }
    fn describe(&self) -> String {
        "canvas".into()
    }
}

/// One fixed input with what the set-up found in it, and its own copy of the loop's state.
struct Input {
    name: &'static str,
    jpeg: Vec<u8>,
    rgb: RgbImage,
    dets: Vec<Detection>,
    attrs: Vec<Attributes>,
    tensors: Vec<Vec<f32>>,
    faces: Vec<TrackedFace>,
    /// For `track`: a tracker that has seen this input.
    tracker: Tracker,
    /// For `frame`: the loop's tracker, shown faces and frame number.
    loop_tracker: Tracker,
    loop_faces: Vec<TrackedFace>,
    loop_frame: u64,
}

/// Buffers shared by the stages.
struct Stages {
    detect_every: u64,
    perception: Perception,
    decoder: Decoder,
    frame: RgbImage,
    dets: Vec<Detection>,
    tensor: Vec<f32>,
    canvas: RgbImage,
    reporter: Reporter,
    /// `--alt-model`, for `classify-alt` and `frame-alt`.
    alt: Option<Box<dyn FaceClassifier>>,
    /// The shipped loop itself on the `drift` and `crowd` inputs (`loop`), and with
    /// `--alt-model` (`loop-alt`): (input, alt, its loop).
    loops: Vec<(&'static str, bool, Pipeline)>,
    /// Track-guided detection's window detector (`window`), when the measurements name it.
    window: Option<BlazeFace>,
}

/// The inputs that only the shipped loop itself runs (`loop`, `loop-alt`).
const LOOP_INPUTS: [&str; 2] = ["drift", "crowd"];

const STAGES: [&str; 13] = [
    "decode",
    "detect",
    "window",
    "align",
    "classify",
    "track",
    "draw",
    "report",
    "frame",
    "classify-alt",
    "frame-alt",
    "loop",
    "loop-alt",
];

impl Stages {
    /// Put the other classifier (`--alt-model`) in place of the first, or back.
    fn swap_classifier(&mut self) -> anyhow::Result<()> {
        let alt = self.alt.as_mut().context("no --alt-model")?;
        std::mem::swap(&mut self.perception.classifier, alt);
        Ok(())
    }

    fn run(&mut self, stage: &str, input: &mut Input) -> anyhow::Result<()> {
        match stage {
            "decode" => self.decoder.decode(&mjpeg(&input.jpeg), &mut self.frame)?,
            "detect" => self
                .perception
                .detect
                .detector
                .detect(&input.rgb, &mut self.dets)?,
            "window" => {
                let w = self.window.as_mut().context("no window detector")?;
                for d in &input.dets {
                    let window =
                        Window::around(d, pipeline::WINDOW_SCALE, pipeline::WINDOW_MIN_SIDE);
                    w.detect_window(&input.rgb, window, &mut self.dets)?;
                }
            }
            "align" => {
                for d in &input.dets {
                    align_into(&input.rgb, &d.landmarks, INPUT_SIZE, &mut self.tensor)?;
                }
            }
            "classify" => {
                for t in &input.tensors {
                    std::hint::black_box(self.perception.classifier.classify(t)?);
                }
            }
            "track" => {
                std::hint::black_box(input.tracker.update(&input.dets, &input.attrs));
            }
            "draw" => annotate_into(&input.rgb, &input.faces, &mut self.canvas),
            "report" => {
                for f in &input.faces {
                    self.reporter.face(TS_MS, 0, f, LATENCY_MS, None)?;
                }
                self.reporter.flush()?;
            }
            "frame" => self.frame(input)?,
            other => bail!("unknown stage {other:?} (one of {STAGES:?})"),
        }
        Ok(())
    }

    /// One frame of `Pipeline::step`, without capture, clocks and status lines.
    fn frame(&mut self, input: &mut Input) -> anyhow::Result<()> {
        self.decoder.decode(&mjpeg(&input.jpeg), &mut self.frame)?;
        let n = input.loop_frame;
        input.loop_frame += 1;
        if n % self.detect_every == 0 {
            self.perception.run(&self.frame, &mut |_| {})?;
            let (dets, attrs) = self.perception.results();
            let faces = input.loop_tracker.update(dets, attrs);
            input.loop_faces.clear();
            input.loop_faces.extend_from_slice(faces);
        }
        annotate_into(&self.frame, &input.loop_faces, &mut self.canvas);
        for f in &input.loop_faces {
            self.reporter.face(TS_MS, n, f, LATENCY_MS, None)?;
        }
        self.reporter.flush()?;
        Ok(())
    }
}

extern "C" {
    fn fork() -> i32;
    fn waitpid(pid: i32, status: *mut i32, options: i32) -> i32;
    fn _exit(status: i32) -> !;
}

/// Run `work` in a forked child that then exits (0, or 1 on an error); wait for it.
fn in_child(mut work: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<()> {
    // SAFETY: single-threaded process (threads = 1, no rayon pool); the child only runs our
    // stages and leaves with _exit, the parent only waits.
    let pid = unsafe { fork() };
    if pid == 0 {
        let code = match work() {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("arm_cost: child failed: {e:#}");
                1
            }
        };
        // SAFETY: ends the child without running the parent's destructors twice.
        unsafe { _exit(code) }
    }
    ensure!(pid > 0, "fork failed");
    let mut status = 0i32;
    // SAFETY: waits for the child just forked.
    let r = unsafe { waitpid(pid, &mut status, 0) };
    ensure!(
        r == pid && status == 0,
        "measurement child failed (wait status {status})"
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    agegender::heap::fix_mmap_threshold();
    let mut config = PathBuf::from("board/config.toml");
    let mut model = None;
    let mut alt_model = None;
    let mut alt_f16 = false;
    let mut detector = None;
    let mut describe = false;
    let mut measures: Vec<(String, String, u64)> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--config" => config = val()?.into(),
            "--model" => model = Some(PathBuf::from(val()?)),
            "--alt-model" => alt_model = Some(PathBuf::from(val()?)),
            "--alt-f16" => alt_f16 = true,
            "--detector" => detector = Some(PathBuf::from(val()?)),
            "--describe" => describe = true,
            m if !m.starts_with('-') => {
                let parts: Vec<&str> = m.split(':').collect();
                ensure!(
                    parts.len() == 3
                        && ["one", "four", "none", "drift", "crowd"].contains(&parts[0])
                        && STAGES.contains(&parts[1])
                        && LOOP_INPUTS.contains(&parts[0]) == parts[1].starts_with("loop"),
                    "{m}: expected INPUT:STAGE:K, INPUT one of one, four, none, STAGE one of {STAGES:?}; or drift:loop:K, drift:loop-alt:K, crowd:loop:K, crowd:loop-alt:K"
                );
                let k: u64 = parts[2].parse().with_context(|| format!("{m}: K"))?;
                ensure!(k > 0, "{m}: K must be at least 1");
                measures.push((parts[0].into(), parts[1].into(), k));
            }
            _ => bail!("unknown argument {a} (see the comment at the top of examples/arm_cost.rs)"),
        }
    }
    ensure!(
        describe || !measures.is_empty(),
        "nothing to measure (see the comment at the top of examples/arm_cost.rs)"
    );
    let mut wanted: Vec<&str> = measures.iter().map(|m| m.0.as_str()).collect();
    if describe {
        wanted = vec!["one", "four", "none"];
    }

    // The shipped configuration; the models from the repository unless named.
    let mut cfg = Config::from_file(&config)?;
    cfg.model = Some(model.unwrap_or_else(|| agegender::model_files::DEFAULT_MODEL.into()));
    cfg.detector =
        Some(detector.unwrap_or_else(|| agegender::model_files::DEFAULT_DETECTOR.into()));
    agegender::tract_runner::set_inference_threads(cfg.threads)?;
    let det = pipeline::load_live_detector(cfg.detector.as_deref().unwrap(), &cfg)?;
    let cls = pipeline::load_classifier(cfg.model.as_deref().unwrap())?;
    let load_alt = || -> anyhow::Result<Option<Box<dyn FaceClassifier>>> {
        Ok(match alt_model.as_deref() {
            Some(p) => Some(Box::new(agegender::classify::Classifier::load_as(
                p, alt_f16,
            )?)),
            None => None,
        })
    };
    let alt = load_alt()?;
    // Track-guided detection's window detector, as `agegender run` loads it.
    let load_window = || {
        let path = cfg
            .window_detector
            .clone()
            .unwrap_or_else(|| agegender::model_files::DEFAULT_WINDOW_DETECTOR.into());
        pipeline::load_window_detector(&path, &cfg)
    };
    let window = match measures.iter().any(|m| m.1 == "window") {
        true => Some(load_window()?),
        false => None,
    };
    // The `loop` stages' own detector and classifier (each Pipeline owns its Perception).
    let loop_perception = |input: &str, alt: bool| -> anyhow::Result<Option<Perception>> {
        let stage = if alt { "loop-alt" } else { "loop" };
        if !measures.iter().any(|m| m.0 == input && m.1 == stage) {
            return Ok(None);
        }
        let cls = match alt {
            true => load_alt()?.context("loop-alt needs --alt-model")?,
            false => pipeline::load_classifier(cfg.model.as_deref().unwrap())?,
        };
        let det = pipeline::load_live_detector(cfg.detector.as_deref().unwrap(), &cfg)?;
        let mut p = Perception::new(det, cls, cfg.max_faces);
        p.set_closeup_margin(cfg.closeup_margin);
        if cfg.full_detect_interval_s > 0.0 {
            p.set_window_detector(load_window()?);
        }
        Ok(Some(p))
    };
    let mut loop_perceptions = Vec::new();
    for input in LOOP_INPUTS {
        for alt in [false, true] {
            if let Some(p) = loop_perception(input, alt)? {
                loop_perceptions.push((input, alt, p));
            }
        }
    }
    // From here on the frame loop's blocks are pooled, as in `agegender run`.
    agegender::heap::start_pooling();
    let tcfg = cfg.tracker();
    let mut st = Stages {
        detect_every: cfg.detect_every.max(1) as u64,
        perception: Perception::new(det, cls, cfg.max_faces),
        decoder: Decoder::with_capacity((W * H * 3) as usize),
        frame: RgbImage::new(W, H),
        dets: Vec::with_capacity(256),
        tensor: vec![0f32; 3 * INPUT_SIZE * INPUT_SIZE],
        canvas: RgbImage::new(W, H),
        reporter: Reporter::new(Box::new(Discard)),
        alt,
        loops: Vec::new(),
        window,
    };

    let crew_path = Path::new("tests/fixtures/demo/crew.jpg");
    let crew_jpeg = std::fs::read(crew_path).with_context(|| crew_path.display().to_string())?;
    let mut crew = RgbImage::new(1, 1);
    st.decoder.decode_jpeg(&crew_jpeg, &mut crew)?;
    ensure!(
        (crew.width, crew.height) == (1129, 480),
        "{}: expected the 1129x480 demo composite, got {}x{}",
        crew_path.display(),
        crew.width,
        crew.height
    );

    for (input, alt, perception) in loop_perceptions {
        let frames = match input {
            "drift" => drift_frames(&crew)?,
            _ => crowd_frames(&crew)?,
        };
        if input == "crowd" {
            // all four people in view mid-cycle, and found there
            let mut rgb = RgbImage::new(W, H);
            st.decoder
                .decode(&mjpeg(&frames[CROWD_FRAMES as usize / 2]), &mut rgb)?;
            st.perception.run(&rgb, &mut |_| {})?;
            let found = st.perception.results().0.len();
            ensure!(
                found == 4,
                "crowd: {found} faces found mid-cycle, 4 expected"
            );
        }
        // The shipped loop as `agegender run` builds it, less the status lines (they read the
        // wall clock); the source's own clock times everything else.
        let mut opts = LoopOptions::from_config(&cfg);
        opts.status_interval = std::time::Duration::ZERO;
        opts.status_every_frames = 0;
        // looping, as fast as it goes, timed by its own clock (frame n at n / DRIFT_FPS), so
        // whatever the loop times (motion gate, per-track refreshes, visits) does not depend
        // on how fast qemu runs
        let source =
            MjpegFileSource::from_bytes(Path::new(input), frames.concat(), DRIFT_FPS, true)?
                .unpaced();
        // No warm-up here: the K child's cycles are the 2K child's first ones, so the
        // difference counts the 2K child's later, steady cycles.
        let pipeline = Pipeline::new(
            Box::new(source),
            perception,
            Box::new(CanvasDisplay(RgbImage::new(W, H))),
            Reporter::new(Box::new(Discard)),
            opts,
        );
        st.loops.push((input, alt, pipeline));
    }

    let mut inputs = Vec::new();
    for (name, img) in compose(&crew) {
        if !wanted.contains(&name) {
            continue;
        }
        let jpeg = encode_jpeg(&img)?;
        let mut rgb = RgbImage::new(W, H);
        st.decoder.decode(&mjpeg(&jpeg), &mut rgb)?;
        st.perception.run(&rgb, &mut |_| {})?;
        let (d, a) = st.perception.results();
        let (dets, attrs) = (d.to_vec(), a.to_vec());
        let want = match name {
            "one" => 1,
            "four" => 4,
            _ => 0,
        };
        ensure!(
            dets.len() == want,
            "input {name}: the detector found {} faces where the report assumes {want}",
            dets.len()
        );
        let mut tensors = Vec::new();
        for d in &dets {
            let mut t = vec![0f32; 3 * INPUT_SIZE * INPUT_SIZE];
            align_into(&rgb, &d.landmarks, INPUT_SIZE, &mut t)?;
            tensors.push(t);
        }
        let faces = Tracker::new(tcfg).update(&dets, &attrs).to_vec();
        inputs.push(Input {
            name,
            jpeg,
            rgb,
            dets,
            attrs,
            tensors,
            faces,
            tracker: Tracker::new(tcfg),
            loop_tracker: Tracker::new(tcfg),
            loop_faces: Vec::with_capacity(cfg.max_faces),
            loop_frame: 0,
        });
    }
    if describe {
        for i in &inputs {
            let faces: Vec<_> = i
                .dets
                .iter()
                .zip(&i.attrs)
                .map(|(d, a)| {
                    serde_json::json!({
                        "bbox": d.bbox.map(|v| v.round() as i32),
                        "score": (d.score * 1000.0).round() / 1000.0,
                        "gender": format!("{:?}", a.gender),
                        "age": (a.age * 10.0).round() / 10.0,
                    })
                })
                .collect();
            println!(
                "{}",
                serde_json::json!({"input": i.name, "jpeg_bytes": i.jpeg.len(), "faces": faces})
            );
        }
        return Ok(());
    }

    // Warm-up (detect and classify already ran above): every other stage once, the tracker
    // twice, one detection period of the loop (its tracker then matches every face).
    for input in inputs.iter_mut() {
        for s in ["decode", "align", "track", "track", "draw", "report"] {
            st.run(s, input)?;
        }
        if st.alt.is_some() {
            st.swap_classifier()?;
            st.run("classify", input)?;
            st.swap_classifier()?;
        }
        for _ in 0..st.detect_every {
            st.run("frame", input)?;
        }
        input.loop_frame = 0;
    }

    // The children, in order: two empty ones, (K, 2K) per measurement, an empty one. The
    // `drift` and `crowd` inputs have no entry in `inputs` (their loops have their own state):
    // index LOOPS + their place in LOOP_INPUTS.
    const LOOPS: usize = usize::MAX - 8;
    let mut order: Vec<(usize, &str, u64)> = vec![(0, "none", 0), (0, "none", 0)];
    for (inp, stage, k) in &measures {
        let i = match LOOP_INPUTS.iter().position(|l| l == inp) {
            Some(l) => LOOPS + l,
            None => inputs.iter().position(|x| x.name == inp.as_str()).unwrap(),
        };
        order.push((i, stage, *k));
        order.push((i, stage, 2 * k));
    }
    order.push((0, "none", 0));
    let listed: Vec<_> = order
        .iter()
        .map(|&(i, s, k)| {
            let name = match i.checked_sub(LOOPS) {
                Some(l) => LOOP_INPUTS[l],
                None => inputs.get(i).map_or("drift", |x| x.name),
            };
            serde_json::json!([name, s, k])
        })
        .collect();
    // What `model_form = "auto"` picks on this CPU (as the binary would), for the script's
    // "shipped configuration" figures.
    let auto = agegender::classify::choose_form(
        agegender::classify::FormSetting::Auto,
        agegender::classify::CpuFacts::native(),
    )
    .map_err(anyhow::Error::msg)?;
    println!(
        "{}",
        serde_json::json!({ "children": listed, "auto_form": auto.form.name() })
    );
    std::io::stdout().flush()?;
    for &(i, stage, reps) in &order {
        in_child(|| {
            if reps == 0 {
                return Ok(()); // the empty children: the parent's own work per fork
            }
            if let Some(l) = i.checked_sub(LOOPS) {
                let (input, alt) = (LOOP_INPUTS[l], stage == "loop-alt");
                let p = st.loops.iter_mut().find(|x| (x.0, x.1) == (input, alt));
                let p = &mut p.with_context(|| format!("{input} loop not built"))?.2;
                for _ in 0..reps {
                    let out = p.step()?;
                    ensure!(
                        matches!(out, pipeline::StepOutcome::Frame { .. }),
                        "{input}: the loop did not take a frame ({out:?})"
                    );
                }
                return Ok(());
            }
            // `-alt`: the other classifier, swapped in once (by both children of a pair)
            if let Some(s) = stage.strip_suffix("-alt") {
                st.swap_classifier()?;
                for _ in 0..reps {
                    st.run(s, &mut inputs[i])?;
                }
            } else {
                for _ in 0..reps {
                    st.run(stage, &mut inputs[i])?;
                }
            }
            Ok(())
        })?;
    }
    Ok(())
}
