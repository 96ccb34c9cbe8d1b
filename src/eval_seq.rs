//! `agegender eval --sequences`: what classifying tracks (not frames) and fusing their views
//! does to the labels, measured through the runtime's own path.
//!
//! Each test-split face is rendered over `frames` frames into a 640×480 picture with seeded,
//! realistic jitter ([`Jitter`]): a per-face base size (70 to 200 px) and position, and per
//! frame a scale change, a shift, an in-plane rotation, a Gaussian blur, a brightness change
//! and a JPEG re-encode at a random quality. The frames go through a real [`Pipeline`] (JPEG
//! decode → detector every `detect_every` frames → tracker → classification policy →
//! classifier → fusion) at `fps` frames per second of stream time, one pipeline per face (the
//! models are loaded once and passed on). For each face the report takes the labels of the
//! first frame that reported the face ("single frame": one classified view, nothing fused) and
//! of the last one ("fused"), and scores both against the file name's labels. It does this for
//! three settings: the configured policy with quality weights, the same with uniform weights
//! (to judge the quality score), and every detection classified (`classify_budget = 0`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use crate::bench::DiscardSink;
use crate::capture::files::MjpegFileSource;
use crate::classify::Gender;
use crate::config::Config;
use crate::display::png::NullDisplay;
use crate::eval::parse_utk_name;
use crate::pipeline::{LoopOptions, Perception, Pipeline, StepOutcome};
use crate::report::Reporter;

/// Frame size of the rendered sequences.
pub const SEQ_WIDTH: u32 = 640;
pub const SEQ_HEIGHT: u32 = 480;

/// The ranges of the per-frame jitter.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Jitter {
    /// Face side in pixels, per face (uniform in this range).
    pub base_side: (f32, f32),
    /// Per frame: relative scale change (±).
    pub scale: f32,
    /// Per frame: shift of the face centre in pixels (±, a random walk step).
    pub shift: f32,
    /// Per frame: in-plane rotation in degrees (±).
    pub rotation_deg: f32,
    /// Per frame: Gaussian blur sigma in pixels (0 to this; 0 on half the frames).
    pub blur_sigma: f32,
    /// Per frame: brightness factor range.
    pub brightness: (f32, f32),
    /// Per frame: JPEG quality range.
    pub jpeg_quality: (u8, u8),
}

impl Default for Jitter {
    fn default() -> Self {
        Jitter {
            base_side: (70.0, 200.0),
            scale: 0.12,
            shift: 6.0,
            rotation_deg: 12.0,
            blur_sigma: 2.5,
            brightness: (0.6, 1.25),
            jpeg_quality: (35, 95),
        }
    }
}

/// Options of [`eval_sequences`].
pub struct SeqOptions<'a> {
    /// Faces to use: `limit` of them (chosen with `seed`) among those named in `only`.
    pub only: Option<&'a HashSet<String>>,
    pub limit: usize,
    pub frames: usize,
    pub fps: f32,
    pub seed: u64,
    pub jitter: Jitter,
}

/// The figures of one setting.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SeqRun {
    pub name: String,
    /// Faces reported in at least one frame (the ones scored).
    pub faces_found: usize,
    pub single_gender_acc: f64,
    pub single_age_mae: f64,
    pub fused_gender_acc: f64,
    pub fused_age_mae: f64,
    /// Share of the scored faces whose fused gender is answered (not `U`), and the accuracy on
    /// those.
    pub fused_gender_coverage: f64,
    pub fused_gender_acc_answered: f64,
    pub classifier_calls_per_frame: f64,
}

/// What `agegender eval --sequences` prints.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SeqReport {
    pub faces: usize,
    pub frames_per_face: usize,
    pub fps: f32,
    pub detect_every: u32,
    pub seed: u64,
    pub runs: Vec<SeqRun>,
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Uniform in [0, 1).
fn unit(state: &mut u64) -> f32 {
    (splitmix64(state) >> 40) as f32 / (1u64 << 24) as f32
}

/// Uniform in [-1, 1).
fn sym(state: &mut u64) -> f32 {
    2.0 * unit(state) - 1.0
}

/// Render `face` over `frames` JPEG frames with the jitter of `j`, seeded by `seed`.
pub fn render_sequence(
    face: &image::RgbImage,
    frames: usize,
    j: &Jitter,
    seed: u64,
) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut rng = seed;
    let base = j.base_side.0 + unit(&mut rng) * (j.base_side.1 - j.base_side.0);
    let margin = 0.75 * base * (1.0 + j.scale);
    let mut cx = margin + unit(&mut rng) * (SEQ_WIDTH as f32 - 2.0 * margin).max(0.0);
    let mut cy = margin + unit(&mut rng) * (SEQ_HEIGHT as f32 - 2.0 * margin).max(0.0);
    let (fw, fh) = (face.width() as f32, face.height() as f32);
    let mut out = Vec::with_capacity(frames);
    for _ in 0..frames {
        let side = base * (1.0 + j.scale * sym(&mut rng));
        cx = (cx + j.shift * sym(&mut rng)).clamp(margin, SEQ_WIDTH as f32 - margin);
        cy = (cy + j.shift * sym(&mut rng)).clamp(margin, SEQ_HEIGHT as f32 - margin);
        let theta = (j.rotation_deg * sym(&mut rng)).to_radians();
        let sigma = if unit(&mut rng) < 0.5 {
            0.0
        } else {
            j.blur_sigma * unit(&mut rng)
        };
        let bright = j.brightness.0 + unit(&mut rng) * (j.brightness.1 - j.brightness.0);
        let q = j.jpeg_quality.0 as f32
            + unit(&mut rng) * (j.jpeg_quality.1 as f32 - j.jpeg_quality.0 as f32);

        // A patch around the face (room for the rotation and the blur), face drawn over a
        // grey gradient, then blurred and pasted into the frame.
        let half = (0.75 * side).ceil() as i64;
        let (px0, py0) = (cx as i64 - half, cy as i64 - half);
        let pside = (2 * half) as u32;
        let (cos, sin) = (theta.cos(), theta.sin());
        let bg = |x: i64, y: i64| -> [u8; 3] {
            let g =
                90.0 + 60.0 * (x as f32 / SEQ_WIDTH as f32) + 30.0 * (y as f32 / SEQ_HEIGHT as f32);
            [g as u8, (g * 0.95) as u8, (g * 0.9) as u8]
        };
        let mut patch = image::RgbImage::new(pside, pside);
        for py in 0..pside {
            for px in 0..pside {
                let (x, y) = (px0 + px as i64, py0 + py as i64);
                let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
                // frame → face: undo the rotation, then the scale
                let u = (cos * dx + sin * dy) / side * fw + fw / 2.0;
                let v = (-sin * dx + cos * dy) / side * fh + fh / 2.0;
                let p = if u >= 0.0 && v >= 0.0 && u < fw - 1.0 && v < fh - 1.0 {
                    let (u0, v0) = (u.floor(), v.floor());
                    let (a, b) = (u - u0, v - v0);
                    let (u0, v0) = (u0 as u32, v0 as u32);
                    let s = |uu: u32, vv: u32, c: usize| face.get_pixel(uu, vv).0[c] as f32;
                    let mut p = [0u8; 3];
                    for (c, o) in p.iter_mut().enumerate() {
                        let top = s(u0, v0, c) * (1.0 - a) + s(u0 + 1, v0, c) * a;
                        let bot = s(u0, v0 + 1, c) * (1.0 - a) + s(u0 + 1, v0 + 1, c) * a;
                        *o = (top * (1.0 - b) + bot * b).round() as u8;
                    }
                    p
                } else {
                    bg(x, y)
                };
                patch.put_pixel(px, py, image::Rgb(p));
            }
        }
        if sigma > 0.3 {
            patch = image::imageops::blur(&patch, sigma);
        }
        let mut frame = image::RgbImage::from_fn(SEQ_WIDTH, SEQ_HEIGHT, |x, y| {
            image::Rgb(bg(x as i64, y as i64))
        });
        for py in 0..pside {
            for px in 0..pside {
                let (x, y) = (px0 + px as i64, py0 + py as i64);
                if x >= 0 && y >= 0 && x < SEQ_WIDTH as i64 && y < SEQ_HEIGHT as i64 {
                    frame.put_pixel(x as u32, y as u32, *patch.get_pixel(px, py));
                }
            }
        }
        for v in frame.iter_mut() {
            *v = (*v as f32 * bright).round().clamp(0.0, 255.0) as u8;
        }
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, q.round() as u8)
            .encode(
                &frame,
                SEQ_WIDTH,
                SEQ_HEIGHT,
                image::ExtendedColorType::Rgb8,
            )
            .context("encoding a rendered frame")?;
        out.push(jpeg);
    }
    Ok(out)
}

/// One setting to measure.
struct Setting {
    name: &'static str,
    budget: Option<u32>,
    uniform: bool,
}

#[derive(Default)]
struct Tally {
    found: usize,
    single_gender_ok: usize,
    single_age_err: f64,
    fused_gender_ok: usize,
    fused_age_err: f64,
    fused_answered: usize,
    fused_answered_ok: usize,
    calls: u64,
    frames: u64,
}

/// Measure single-frame against fused labels on rendered sequences of the faces in `dir`
/// (see the module). `perception` is used for every run and returned.
pub fn eval_sequences(
    dir: &Path,
    mut perception: Perception,
    cfg: &Config,
    opts: &SeqOptions<'_>,
) -> anyhow::Result<(SeqReport, Perception)> {
    anyhow::ensure!(opts.frames >= 2, "--frames: at least 2 frames per face");
    anyhow::ensure!(opts.fps > 0.0, "--fps: must be > 0");
    let mut files: Vec<(PathBuf, crate::eval::UtkLabel)> = std::fs::read_dir(dir)
        .with_context(|| format!("face directory {}: cannot list it", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_string();
            if opts.only.is_some_and(|o| !o.contains(&name)) {
                return None;
            }
            Some((p, parse_utk_name(&name)?))
        })
        .collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    // a seeded pick, not the first names (they are sorted by age)
    let mut rng = opts.seed;
    let n = opts.limit.min(files.len());
    for i in 0..n {
        let j = i + (splitmix64(&mut rng) % (files.len() - i) as u64) as usize;
        files.swap(i, j);
    }
    files.truncate(n);
    anyhow::ensure!(
        !files.is_empty(),
        "no UTKFace-named faces in {}",
        dir.display()
    );

    let settings = [
        Setting {
            name: "policy, quality weights",
            budget: None,
            uniform: false,
        },
        Setting {
            name: "policy, uniform weights",
            budget: None,
            uniform: true,
        },
        Setting {
            name: "every detection, quality weights",
            budget: Some(0),
            uniform: false,
        },
    ];
    let mut tallies: Vec<Tally> = settings.iter().map(|_| Tally::default()).collect();
    for (k, (path, label)) in files.iter().enumerate() {
        let face = image::open(path)
            .with_context(|| format!("{}: cannot read it", path.display()))?
            .to_rgb8();
        let frames =
            render_sequence(&face, opts.frames, &opts.jitter, opts.seed ^ (k as u64 + 1))?.concat();
        for (s, t) in settings.iter().zip(tallies.iter_mut()) {
            let mut c = cfg.clone();
            if let Some(b) = s.budget {
                c.classify_budget = b;
            }
            let mut lo = LoopOptions::from_config(&c);
            lo.tracker.uniform_weights = s.uniform;
            lo.max_frames = 0;
            let calls_before = perception.classifier_calls;
            // replayed once, as fast as it goes, timed by its own clock (frame n at n / fps)
            let source =
                MjpegFileSource::from_bytes(path, frames.clone(), opts.fps, false)?.unpaced();
            let mut p = Pipeline::new(
                Box::new(source),
                perception,
                Box::new(NullDisplay),
                Reporter::new(Box::new(DiscardSink::default())),
                lo,
            );
            let mut first = None;
            let mut last = None;
            loop {
                match p.step()? {
                    StepOutcome::End => break,
                    StepOutcome::Skipped => {}
                    StepOutcome::Frame { .. } => {
                        // one face rendered: the largest one reported is it
                        let f = p.faces().iter().max_by(|a, b| {
                            a.detection.face_side().total_cmp(&b.detection.face_side())
                        });
                        if let Some(f) = f {
                            if first.is_none() {
                                first = Some(f.attributes);
                            }
                            last = Some(f.attributes);
                        }
                    }
                }
            }
            t.frames += p.status().frames;
            perception = p.into_perception();
            t.calls += perception.classifier_calls - calls_before;
            let (Some(first), Some(last)) = (first, last) else {
                continue;
            };
            t.found += 1;
            let right = |g: Gender, p_female: f32| {
                let g = match g {
                    Gender::Unknown if p_female >= 0.5 => Gender::Female,
                    Gender::Unknown => Gender::Male,
                    g => g,
                };
                g == label.gender
            };
            t.single_gender_ok += right(first.gender, first.p_female) as usize;
            t.fused_gender_ok += right(last.gender, last.p_female) as usize;
            t.single_age_err += (first.age as f64 - label.age as f64).abs();
            t.fused_age_err += (last.age as f64 - label.age as f64).abs();
            if last.gender != Gender::Unknown {
                t.fused_answered += 1;
                t.fused_answered_ok += (last.gender == label.gender) as usize;
            }
        }
        if (k + 1) % 50 == 0 {
            eprintln!("agegender: eval --sequences: {} of {n} faces", k + 1);
        }
    }
    let runs = settings
        .iter()
        .zip(&tallies)
        .map(|(s, t)| {
            let f = t.found.max(1) as f64;
            SeqRun {
                name: s.name.to_string(),
                faces_found: t.found,
                single_gender_acc: t.single_gender_ok as f64 / f,
                single_age_mae: t.single_age_err / f,
                fused_gender_acc: t.fused_gender_ok as f64 / f,
                fused_age_mae: t.fused_age_err / f,
                fused_gender_coverage: t.fused_answered as f64 / f,
                fused_gender_acc_answered: t.fused_answered_ok as f64
                    / t.fused_answered.max(1) as f64,
                classifier_calls_per_frame: t.calls as f64 / t.frames.max(1) as f64,
            }
        })
        .collect();
    Ok((
        SeqReport {
            faces: n,
            frames_per_face: opts.frames,
            fps: opts.fps,
            detect_every: cfg.detect_every.max(1),
            seed: opts.seed,
            runs,
        },
        perception,
    ))
}

impl SeqReport {
    /// A Markdown table (for the docs).
    pub fn table(&self) -> String {
        let mut s = format!(
            "{} faces × {} frames at {} fps, detection every {} frames, seed {}\n\n",
            self.faces, self.frames_per_face, self.fps, self.detect_every, self.seed
        );
        s += "| setting | faces found | gender acc, single frame | gender acc, fused | age MAE, single frame | age MAE, fused | fused gender answered (acc) | classifier calls / frame |\n";
        s += "|---|---|---|---|---|---|---|---|\n";
        for r in &self.runs {
            s += &format!(
                "| {} | {} | {:.3} | {:.3} | {:.2} | {:.2} | {:.3} ({:.3}) | {:.3} |\n",
                r.name,
                r.faces_found,
                r.single_gender_acc,
                r.fused_gender_acc,
                r.single_age_mae,
                r.fused_age_mae,
                r.fused_gender_coverage,
                r.fused_gender_acc_answered,
                r.classifier_calls_per_frame
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendering_is_seeded_and_makes_decodable_frames() {
        let face = image::RgbImage::from_fn(64, 64, |x, y| {
            image::Rgb([(x * 4) as u8, (y * 4) as u8, 128])
        });
        let a = render_sequence(&face, 3, &Jitter::default(), 7).unwrap();
        let b = render_sequence(&face, 3, &Jitter::default(), 7).unwrap();
        let c = render_sequence(&face, 3, &Jitter::default(), 8).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        // the frames differ from each other (jitter), and decode to 640×480
        assert_ne!(a[0], a[1]);
        let img = image::load_from_memory(&a[2]).unwrap();
        assert_eq!((img.width(), img.height()), (SEQ_WIDTH, SEQ_HEIGHT));
    }
}
