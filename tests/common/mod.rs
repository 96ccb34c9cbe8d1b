//! Helpers shared by the integration tests: where the shared data lives, a deterministic pick
//! of UTKFace faces, and real JPEG frames built from those faces at known boxes.
//!
//! Signatures here are used by several test files; keep them stable.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub mod process;

use agegender::rgb::RgbImage;

/// `../shared` relative to the crate root, if it exists. Tests that need it should call
/// [`require_shared`], which fails loudly instead of skipping (CI has the folder).
pub fn shared_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("shared");
    dir.is_dir().then_some(dir)
}

/// `../shared`, or a panic that says what is missing.
pub fn require_shared() -> PathBuf {
    shared_dir().unwrap_or_else(|| {
        panic!(
            "this test needs the shared data folder at {}/../shared (UTKFace faces and YuNet models); \
             it is missing",
            env!("CARGO_MANIFEST_DIR")
        )
    })
}

/// `../shared/data/utkface`.
pub fn utkface_dir() -> PathBuf {
    let d = require_shared().join("data").join("utkface");
    assert!(d.is_dir(), "UTKFace folder {} is missing", d.display());
    d
}

/// A file under `../shared/models`, which must exist.
pub fn shared_model(name: &str) -> PathBuf {
    let p = require_shared().join("models").join(name);
    assert!(p.is_file(), "shared model {} is missing", p.display());
    p
}

/// The BlazeFace ONNX files fetched by `scripts/fetch-detector` into `models/detector/`.
/// Panics with the command to run when they are not there.
pub fn blazeface_model(front: bool) -> PathBuf {
    let name = if front {
        "blazeface_front_128.onnx"
    } else {
        "blazeface_back_256.onnx"
    };
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models")
        .join("detector")
        .join(name);
    assert!(
        p.is_file(),
        "{} is missing: run scripts/fetch-detector first (needs npm)",
        p.display()
    );
    p
}

/// Labels parsed from a UTKFace name `[age]_[gender]_[race]_...`; race is `None` for the
/// few files that lack it.
pub fn utk_labels(path: &Path) -> Option<(u32, u32, Option<u32>)> {
    let name = path.file_name()?.to_str()?;
    let mut it = name.split('_');
    let age: u32 = it.next()?.parse().ok()?;
    let gender: u32 = it.next()?.parse().ok()?;
    if gender > 1 {
        return None;
    }
    let race = it
        .next()
        .and_then(|r| r.parse::<u32>().ok())
        .filter(|r| *r <= 4);
    Some((age, gender, race))
}

/// `n` UTKFace files picked deterministically from `seed` (same files on every machine that has
/// the same folder). Panics if the folder is missing or holds fewer than `n` faces.
pub fn utk_faces(n: usize, seed: u64) -> Vec<PathBuf> {
    let dir = utkface_dir();
    let mut all: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| utk_labels(p).is_some())
        .collect();
    all.sort();
    assert!(
        all.len() >= n,
        "{} holds {} faces, {n} wanted",
        dir.display(),
        all.len()
    );
    pick(all, n, seed)
}

/// `n` of `all`, chosen by a partial Fisher-Yates shuffle with splitmix64: deterministic and
/// independent of std's hasher.
fn pick(mut all: Vec<PathBuf>, n: usize, seed: u64) -> Vec<PathBuf> {
    let mut state = seed;
    for i in 0..n.min(all.len()) {
        let j = i + (splitmix64(&mut state) % (all.len() - i) as u64) as usize;
        all.swap(i, j);
    }
    all.truncate(n);
    all
}

/// The classifier file the binary runs on this machine when none is named (`model_form =
/// auto`: the form chosen from the CPU by `agegender::classify::choose_form`, f32 on x86-64),
/// checked to exist. The tests run what ships here; the few that are about one form name its
/// file themselves.
pub fn classifier_model() -> PathBuf {
    use agegender::classify::{choose_form, CpuFacts, FormSetting};
    let choice = choose_form(FormSetting::Auto, CpuFacts::native()).expect("auto always chooses");
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(choice.form.default_file());
    assert!(p.is_file(), "{} is missing", p.display());
    p
}

/// `n` faces of the model's held-out test split (`models/split.csv`), chosen by `seed`.
#[allow(dead_code)]
pub fn utk_test_faces(n: usize, seed: u64) -> Vec<PathBuf> {
    let split = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/split.csv");
    let names = agegender::eval::read_split(&split, "test").unwrap_or_else(|e| panic!("{e:#}"));
    let dir = utkface_dir();
    let mut all: Vec<PathBuf> = names.iter().map(|n| dir.join(n)).collect();
    all.sort();
    pick(all, n, seed)
}

/// A `Command` for the agegender binary under test. When the suite runs as foreign code
/// (`cargo test --target aarch64-...` with a qemu-user runner), the test binaries run under
/// qemu but a child process would be exec'd natively; `AGEGENDER_TEST_RUNNER` (e.g.
/// `qemu-aarch64 -L /usr/aarch64-linux-gnu`, set by scripts/test) is then put in front of it.
#[allow(dead_code)]
pub fn agegender_command() -> std::process::Command {
    // option_env!: this module is also compiled into examples, where cargo does not set it.
    let Some(bin) = option_env!("CARGO_BIN_EXE_agegender") else {
        panic!("only integration tests start the binary")
    };
    match std::env::var("AGEGENDER_TEST_RUNNER") {
        Ok(r) if !r.trim().is_empty() => {
            let mut parts = r.split_whitespace();
            let mut c = std::process::Command::new(parts.next().unwrap());
            c.args(parts).arg(bin);
            c
        }
        _ => std::process::Command::new(bin),
    }
}

pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A plain textured background (smooth gradient with mild deterministic noise and a few soft
/// stripes; nothing face-like), `w`×`h`.
pub fn background(w: u32, h: u32) -> RgbImage {
    let mut img = RgbImage::new(w, h);
    let mut state = 0x5eed_u64 ^ ((w as u64) << 32 | h as u64);
    for y in 0..h {
        for x in 0..w {
            let n = (splitmix64(&mut state) % 17) as i32 - 8;
            let stripe = if (x / 37 + y / 53) % 2 == 0 { 10 } else { 0 };
            let r = 90 + (60 * x / w.max(1)) as i32 + n + stripe;
            let g = 110 + (40 * y / h.max(1)) as i32 + n;
            let b = 130 - (30 * x / w.max(1)) as i32 + n - stripe;
            let i = ((y * w + x) * 3) as usize;
            img.data[i] = r.clamp(0, 255) as u8;
            img.data[i + 1] = g.clamp(0, 255) as u8;
            img.data[i + 2] = b.clamp(0, 255) as u8;
        }
    }
    img
}

/// Paste each face image, resized to its box `[x0, y0, x1, y1]` (frame pixels, exclusive end),
/// onto [`background`] of size `w`×`h`, then JPEG-encode the frame (quality 90).
///
/// Returns the JPEG bytes (a real camera-like frame) and the RGB frame that was encoded.
/// A UTKFace chip is an aligned face that fills its square, so face detectors report a box
/// close to the paste box (YuNet / BlazeFace IoU with it ≈ 0.75–0.85).
pub fn face_frame(faces: &[(PathBuf, [u32; 4])], w: u32, h: u32) -> (Vec<u8>, RgbImage) {
    let mut frame = background(w, h);
    for (path, b) in faces {
        let [x0, y0, x1, y1] = *b;
        assert!(
            x0 < x1 && y0 < y1 && x1 <= w && y1 <= h,
            "box {b:?} outside {w}x{h}"
        );
        let face = image::open(path)
            .unwrap_or_else(|e| panic!("cannot read face {}: {e}", path.display()))
            .to_rgb8();
        let face = image::imageops::resize(
            &face,
            x1 - x0,
            y1 - y0,
            image::imageops::FilterType::Triangle,
        );
        for (fx, fy, p) in face.enumerate_pixels() {
            let i = (((y0 + fy) * w + x0 + fx) * 3) as usize;
            frame.data[i..i + 3].copy_from_slice(&p.0);
        }
    }
    (encode_jpeg(&frame, 90), frame)
}

/// `frame` with ±`amp` levels of sensor-like noise that differs per `seed`, as a JPEG.
pub fn noisy_jpeg(frame: &RgbImage, amp: u64, seed: u64) -> Vec<u8> {
    let mut f = frame.clone();
    let mut s = seed;
    for p in f.data.iter_mut() {
        let r = (splitmix64(&mut s) % (2 * amp + 1)) as i32 - amp as i32;
        *p = (*p as i32 + r).clamp(0, 255) as u8;
    }
    encode_jpeg(&f, 90)
}

/// JPEG-encode an RGB image with the image crate.
pub fn encode_jpeg(img: &RgbImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .encode(
            &img.data,
            img.width,
            img.height,
            image::ExtendedColorType::Rgb8,
        )
        .expect("JPEG encoding of a valid RGB buffer");
    out
}

/// The `box` of a face line, `[x0, y0, x1, y1]`.
pub fn face_box(line: &serde_json::Value) -> [f32; 4] {
    let b: Vec<f32> = line["box"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    [b[0], b[1], b[2], b[3]]
}

/// Intersection over union of two `[x0, y0, x1, y1]` boxes.
pub fn box_iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    agegender::detect::iou(&a, &b)
}

pub fn to_f32_box(b: [u32; 4]) -> [f32; 4] {
    b.map(|v| v as f32)
}

/// Mean absolute difference per byte of two RGB images of the same size.
pub fn mean_abs_diff(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!((a.width, a.height), (b.width, b.height));
    let sum: u64 = a
        .data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| x.abs_diff(*y) as u64)
        .sum();
    sum as f64 / a.data.len() as f64
}

/// How a replayed stream's frames come to the loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pace {
    /// As fast as they are taken, each timed by the stream's clock.
    Unpaced,
    /// At the stream's rate; a frame the loop has no room for is waited for (a file).
    Paced,
    /// At the stream's rate, dropped when the loop has no room (a camera: `as_camera`).
    Camera,
    /// At the stream's rate, waited for, and the classifier made slower than the stream's
    /// frame time by this much per face: the real one, then a sleep, as on a CPU where tract's
    /// kernels are slow (an AVX2-only x86 running the int8 file took 300 ms a face).
    SlowClassifier(std::time::Duration),
}

/// The real classifier, and then a wait: a CPU slower than this one.
struct SlowClassifier {
    inner: Box<dyn agegender::pipeline::FaceClassifier>,
    extra: std::time::Duration,
}

impl agegender::pipeline::FaceClassifier for SlowClassifier {
    fn classify(&mut self, chw: &[f32]) -> anyhow::Result<agegender::classify::Attributes> {
        let out = self.inner.classify(chw);
        std::thread::sleep(self.extra);
        out
    }
}

/// The live loop over a replayed MJPEG `stream` at `fps` (timed by the stream's clock), with
/// the repository's BlazeFace back 256 and the classifier this machine runs
/// ([`classifier_model`]), no display, its report lines in `log`; with `windows`, track-guided
/// detection's window detector (the front 128 model) too.
pub fn replay_loop(
    stream: Vec<u8>,
    fps: f32,
    cfg: &agegender::config::Config,
    log: &Path,
    windows: bool,
) -> agegender::pipeline::Pipeline {
    replay_loop_with(stream, (fps, Pace::Paced), cfg, log, windows, 1)
}

/// [`replay_loop`] with `workers` detector workers (1: the one-thread loop; more: the
/// stage-parallel loop, for [`agegender::pipeline::Pipeline::run`]), its frames coming at
/// `fps` as `pace` says.
pub fn replay_loop_with(
    stream: Vec<u8>,
    (fps, pace): (f32, Pace),
    cfg: &agegender::config::Config,
    log: &Path,
    windows: bool,
    workers: usize,
) -> agegender::pipeline::Pipeline {
    use agegender::pipeline::{self, LoopOptions, Perception, Pipeline};
    let source = agegender::capture::files::MjpegFileSource::from_bytes(
        Path::new("replay.mjpeg"),
        stream,
        fps,
        false,
    )
    .unwrap();
    let source = match pace {
        Pace::Unpaced => source.unpaced(),
        Pace::Paced | Pace::SlowClassifier(_) => source,
        Pace::Camera => source.as_camera(),
    };
    // as the frame loop loads it: the input cut to the frames' aspect
    let detector = pipeline::load_live_detector(&blazeface_model(false), cfg).unwrap();
    let mut classifier = pipeline::load_classifier(&classifier_model()).unwrap();
    if let Pace::SlowClassifier(extra) = pace {
        classifier = Box::new(SlowClassifier {
            inner: classifier,
            extra,
        });
    }
    let mut perception = Perception::new(detector, classifier, cfg.max_faces);
    if windows {
        perception.set_window_detector(
            pipeline::load_window_detector(&blazeface_model(true), cfg).unwrap(),
        );
    }
    let more = perception.detect.forks(workers - 1).unwrap();
    let mut p = Pipeline::new(
        Box::new(source),
        perception,
        Box::new(agegender::display::png::NullDisplay),
        agegender::report::Reporter::new(Box::new(
            agegender::report::FileSink::open(log, u64::MAX).unwrap(),
        )),
        LoopOptions::from_config(cfg),
    );
    p.set_detect_workers(more);
    p
}

/// Step `p` until its source ends; per frame: (faces reported, whether the detector ran).
/// A skipped frame is a failure.
pub fn run_to_end(p: &mut agegender::pipeline::Pipeline) -> Vec<(usize, bool)> {
    use agegender::pipeline::StepOutcome;
    let mut out = Vec::new();
    loop {
        match p.step().unwrap() {
            StepOutcome::Frame { faces, detected } => out.push((faces, detected)),
            StepOutcome::Skipped => panic!("a frame was skipped"),
            StepOutcome::End => return out,
        }
    }
}
