//! Eval: measure the classifier from outside on a folder of UTKFace-named faces
//! (`agegender eval --faces DIR`), through the same detect → align → classify path as the
//! live loop.
//!
//! Names are `[age]_[gender]_[race]_[date].jpg.chip.jpg` (gender 0 male, 1 female; race 0..4 =
//! White, Black, Asian, Indian, Others). A few files lack the race field (reported as
//! `unknown`) and one has a space before `.jpg`; names that do not start with an age and a
//! gender are skipped and counted.
//!
//! Each image is a face crop that fills its frame, so it is first padded with a black border
//! of half its side (the face then looks as it would further from the camera, and the
//! detector sees some context; the training pipeline's `prepare.py` does the same). The face
//! taken is the highest-scoring one whose centre lies near the image centre (other faces in a
//! crop are not the labelled person). Where none is found, the image is classified with the
//! dataset's own alignment ([`crate::align::dataset_landmarks`]) and counted in `no_face`.
//!
//! Confidence: the report also gives the accuracy on the faces answered and the share answered
//! at the abstention thresholds ([`crate::classify::Abstention`]), and the expected calibration
//! error of `gender_p` and `bucket_p` (15 equal-width bins of the probability over 0..1).
//! With `dump`, one JSON line per face holds what the calibration script needs: the labels and
//! the network's outputs before calibration ([`DumpLine`]).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use crate::align::{align_into, dataset_landmarks, INPUT_SIZE};
use crate::classify::{bucket_of, Abstention, Classifier, Gender};
use crate::detect::{Detection, FaceDetector};
use crate::rgb::RgbImage;

/// Labels parsed from a UTKFace file name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UtkLabel {
    pub age: u32,
    pub gender: Gender,
    /// 0..=4, `None` where the name has no race field.
    pub race: Option<u8>,
}

/// Parse `[age]_[gender]_[race]_...`; `None` if the name does not start with an age and a
/// gender (0 or 1).
pub fn parse_utk_name(name: &str) -> Option<UtkLabel> {
    let mut it = name.split('_');
    let age: u32 = it.next()?.trim().parse().ok()?;
    let gender = match it.next()?.trim() {
        "0" => Gender::Male,
        "1" => Gender::Female,
        _ => return None,
    };
    // The race field is absent in a few names: there the next field is the date.
    let race = it
        .next()
        .and_then(|r| r.trim().parse::<u8>().ok())
        .filter(|r| *r <= 4);
    if age > 130 {
        return None;
    }
    Some(UtkLabel { age, gender, race })
}

pub const RACE_NAMES: [&str; 5] = ["White", "Black", "Asian", "Indian", "Others"];

/// Accuracy figures of one group of faces.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct GroupStats {
    pub n: usize,
    pub gender_acc: f64,
    pub age_mae: f64,
    pub bucket_acc: f64,
}

/// What `agegender eval --faces DIR` prints, as one JSON object.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct EvalReport {
    /// Images classified.
    pub images: usize,
    /// Images where no face was found (classified with the standard crop instead).
    pub no_face: usize,
    /// Files whose names do not follow the UTKFace pattern (not evaluated).
    pub skipped_names: usize,
    /// UTKFace-named files that could not be read or decoded (not evaluated).
    pub unreadable: usize,
    pub gender_acc: f64,
    pub age_mae: f64,
    /// Bucket of the predicted age equals the bucket of the true age.
    pub bucket_acc: f64,
    /// Buckets at most one apart.
    pub bucket_1off_acc: f64,
    /// The abstention thresholds the next six figures are measured at.
    pub gender_min_p: f64,
    pub bucket_min_p: f64,
    /// Gender right, among the faces whose gender is answered (`gender_p` ≥ `gender_min_p`);
    /// 0 when none is.
    pub gender_acc_answered: f64,
    /// Share of the faces whose gender is answered.
    pub gender_coverage: f64,
    /// Bucket right, among the faces whose bucket is answered (`bucket_p` ≥ `bucket_min_p`).
    pub bucket_acc_answered: f64,
    /// Share of the faces whose bucket is answered.
    pub bucket_coverage: f64,
    /// Expected calibration error of `gender_p` (as the runtime reports it, calibrated by the
    /// model file's temperature): 15 equal-width bins over 0..1, |accuracy − mean p| weighted
    /// by the share of faces in each bin.
    pub gender_ece: f64,
    /// The same for `bucket_p` (the reported bucket right).
    pub bucket_ece: f64,
    /// White, Black, Asian, Indian, Others, unknown.
    pub by_race: BTreeMap<String, GroupStats>,
    /// male, female.
    pub by_gender: BTreeMap<String, GroupStats>,
    /// 0-9, 10-19, …, 90+.
    pub by_age_decade: BTreeMap<String, GroupStats>,
}

#[derive(Default)]
struct Acc {
    n: usize,
    gender_ok: usize,
    abs_err: f64,
    bucket_ok: usize,
}

impl Acc {
    fn add(&mut self, gender_ok: bool, abs_err: f64, bucket_ok: bool) {
        self.n += 1;
        self.gender_ok += gender_ok as usize;
        self.abs_err += abs_err;
        self.bucket_ok += bucket_ok as usize;
    }
    fn stats(&self) -> GroupStats {
        let n = self.n.max(1) as f64;
        GroupStats {
            n: self.n,
            gender_acc: self.gender_ok as f64 / n,
            age_mae: self.abs_err / n,
            bucket_acc: self.bucket_ok as f64 / n,
        }
    }
}

/// Expected calibration error over 15 equal-width bins of the probability.
#[derive(Default)]
struct Ece {
    /// Per bin: faces, sum of probabilities, faces right.
    bins: [(usize, f64, usize); ECE_BINS],
}

/// Bins of the expected calibration error.
pub const ECE_BINS: usize = 15;

impl Ece {
    fn add(&mut self, p: f32, right: bool) {
        let p = (p as f64).clamp(0.0, 1.0);
        let b = ((p * ECE_BINS as f64) as usize).min(ECE_BINS - 1);
        let bin = &mut self.bins[b];
        bin.0 += 1;
        bin.1 += p;
        bin.2 += right as usize;
    }
    fn value(&self) -> f64 {
        let n: usize = self.bins.iter().map(|b| b.0).sum();
        if n == 0 {
            return 0.0;
        }
        self.bins
            .iter()
            .filter(|b| b.0 > 0)
            .map(|&(_, sp, ok)| (ok as f64 - sp).abs() / n as f64)
            .sum()
    }
}

/// Faces answered and right among them.
#[derive(Default)]
struct Answered {
    answered: usize,
    right: usize,
}

impl Answered {
    fn add(&mut self, answered: bool, right: bool) {
        self.answered += answered as usize;
        self.right += (answered && right) as usize;
    }
    fn acc(&self) -> f64 {
        self.right as f64 / self.answered.max(1) as f64
    }
}

/// One line of `agegender eval --dump FILE`: a face's labels and the network's outputs before
/// calibration (what `scripts/train/calibrate.py` fits the temperatures on).
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct DumpLine {
    /// File name in the faces folder.
    pub file: String,
    /// True age (years) and gender (`M`, `F`) from the file name.
    pub age: u32,
    pub gender: String,
    /// 0..=4 (White, Black, Asian, Indian, Others), absent where the name has none.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub race: Option<u8>,
    /// Whether the detector found the face (else the standard crop was classified).
    pub detected: bool,
    /// P(female) as the network gave it.
    pub p_female: f32,
    /// The network's age distribution over 0..=100 years.
    pub age_dist: Vec<f32>,
}

/// What [`eval_faces_with`] measures and where.
#[derive(Default)]
pub struct EvalOptions<'a> {
    /// Only the files named here (a subset of a split).
    pub only: Option<&'a HashSet<String>>,
    /// At most this many files (after sorting by name).
    pub limit: Option<usize>,
    /// Thresholds for `gender_acc_answered`, `gender_coverage`, and the bucket's.
    pub abstention: Abstention,
    /// Write one [`DumpLine`] per face here.
    pub dump: Option<&'a mut dyn std::io::Write>,
}

fn decade(age: u32) -> String {
    if age >= 90 {
        "90+".into()
    } else {
        let d = age / 10 * 10;
        format!("{d}-{}", d + 9)
    }
}

/// The file names of one subset (`train`, `val`, `test`) of a split CSV written by the
/// training pipeline (`file,split` header, one row per face).
pub fn read_split(path: &Path, subset: &str) -> anyhow::Result<HashSet<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("split file {}: cannot read it", path.display()))?;
    let mut lines = text.lines();
    anyhow::ensure!(
        lines.next().map(str::trim) == Some("file,split"),
        "split file {}: expected the header `file,split`",
        path.display()
    );
    let mut names = HashSet::new();
    let mut subsets = BTreeMap::new();
    for (i, line) in lines.enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let (file, which) = line.rsplit_once(',').with_context(|| {
            format!(
                "split file {} line {}: expected `file,split`",
                path.display(),
                i + 2
            )
        })?;
        *subsets.entry(which.trim().to_string()).or_insert(0usize) += 1;
        if which.trim() == subset {
            names.insert(file.to_string());
        }
    }
    anyhow::ensure!(
        !names.is_empty(),
        "split file {}: no rows in subset `{subset}` (it has: {})",
        path.display(),
        subsets
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(names)
}

/// Evaluate every UTKFace-named image in `dir` (sorted by name), only those named in `only`
/// if given, the first `limit` if given; coverage at the default thresholds.
pub fn eval_faces(
    dir: &Path,
    detector: &mut dyn FaceDetector,
    classifier: &mut Classifier,
    only: Option<&HashSet<String>>,
    limit: Option<usize>,
    on_unreadable: &mut dyn FnMut(&anyhow::Error),
) -> anyhow::Result<EvalReport> {
    let opts = EvalOptions {
        only,
        limit,
        ..Default::default()
    };
    eval_faces_with(dir, detector, classifier, opts, on_unreadable)
}

/// [`eval_faces`] with every option: thresholds, and a per-face dump.
pub fn eval_faces_with(
    dir: &Path,
    detector: &mut dyn FaceDetector,
    classifier: &mut Classifier,
    opts: EvalOptions<'_>,
    on_unreadable: &mut dyn FnMut(&anyhow::Error),
) -> anyhow::Result<EvalReport> {
    let EvalOptions {
        only,
        limit,
        abstention,
        mut dump,
    } = opts;
    let mut files: Vec<(std::path::PathBuf, UtkLabel)> = Vec::new();
    let mut skipped = 0usize;
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("faces folder {}: cannot list it", dir.display()))?;
    for e in entries {
        let e = e.with_context(|| format!("faces folder {}: cannot list it", dir.display()))?;
        let path = e.path();
        if !path.is_file() {
            continue;
        }
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            skipped += 1;
            continue;
        };
        if only.is_some_and(|set| !set.contains(name)) {
            continue;
        }
        match parse_utk_name(name) {
            Some(l) => files.push((path, l)),
            None => skipped += 1,
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(n) = limit {
        files.truncate(n);
    }
    anyhow::ensure!(
        !files.is_empty(),
        "faces folder {}: no UTKFace-named images ([age]_[gender]_[race]_….jpg); {skipped} other files",
        dir.display()
    );

    let mut report = EvalReport {
        skipped_names: skipped,
        ..Default::default()
    };
    let (mut all, mut bucket_1off) = (Acc::default(), 0usize);
    let mut by_race: BTreeMap<String, Acc> = BTreeMap::new();
    let mut by_gender: BTreeMap<String, Acc> = BTreeMap::new();
    let mut by_decade: BTreeMap<String, Acc> = BTreeMap::new();
    let mut padded = RgbImage::default();
    let mut dets: Vec<Detection> = Vec::with_capacity(64);
    let mut crop = vec![0.0f32; 3 * INPUT_SIZE * INPUT_SIZE];
    let (mut gender_ans, mut bucket_ans) = (Answered::default(), Answered::default());
    let (mut gender_ece, mut bucket_ece) = (Ece::default(), Ece::default());

    for (path, label) in &files {
        let img = match crate::decode::load_image(path) {
            Ok(i) => i,
            Err(e) => {
                // Counted and named; the other faces are still measured.
                on_unreadable(&e);
                report.unreadable += 1;
                continue;
            }
        };
        let landmarks = find_face(&img, detector, &mut padded, &mut dets)
            .with_context(|| format!("detecting a face in {}", path.display()))?;
        let aligned = match landmarks {
            Some(lm) => align_into(&img, &lm, INPUT_SIZE, &mut crop).is_ok(),
            None => false,
        };
        if !aligned {
            report.no_face += 1;
            align_into(
                &img,
                &dataset_landmarks(img.width, img.height),
                INPUT_SIZE,
                &mut crop,
            )
            .with_context(|| format!("standard crop of {}", path.display()))?;
        }
        let a = classifier
            .classify(&crop)
            .with_context(|| format!("classifying {}", path.display()))?;
        if let Some(out) = dump.as_mut() {
            let (g, ages) = classifier.raw_outputs();
            let line = DumpLine {
                file: path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                age: label.age,
                gender: if label.gender == Gender::Female {
                    "F"
                } else {
                    "M"
                }
                .into(),
                race: label.race,
                detected: aligned,
                p_female: g[1] / (g[0] + g[1]),
                age_dist: ages.to_vec(),
            };
            serde_json::to_writer(&mut *out, &line)?;
            out.write_all(b"\n").context("writing the dump")?;
        }

        let gender_ok = a.gender == label.gender;
        let err = (a.age as f64 - label.age as f64).abs();
        let (pb, tb) = (a.bucket, bucket_of(label.age as f32));
        let bucket_ok = pb == tb;
        gender_ans.add(abstention.gender_answered(a.gender_p), gender_ok);
        bucket_ans.add(abstention.bucket_answered(a.bucket_p), bucket_ok);
        gender_ece.add(a.gender_p, gender_ok);
        bucket_ece.add(a.bucket_p, bucket_ok);
        all.add(gender_ok, err, bucket_ok);
        bucket_1off += (pb.abs_diff(tb) <= 1) as usize;
        let race = label
            .race
            .map_or("unknown", |r| RACE_NAMES[r as usize])
            .to_string();
        by_race
            .entry(race)
            .or_default()
            .add(gender_ok, err, bucket_ok);
        let g = match label.gender {
            Gender::Male => "male",
            Gender::Female => "female",
            Gender::Unknown => "unknown",
        };
        by_gender
            .entry(g.into())
            .or_default()
            .add(gender_ok, err, bucket_ok);
        by_decade
            .entry(decade(label.age))
            .or_default()
            .add(gender_ok, err, bucket_ok);
    }

    anyhow::ensure!(
        all.n > 0,
        "faces folder {}: none of the {} UTKFace-named images could be read",
        dir.display(),
        files.len()
    );
    let s = all.stats();
    report.images = all.n;
    report.gender_acc = s.gender_acc;
    report.age_mae = s.age_mae;
    report.bucket_acc = s.bucket_acc;
    report.bucket_1off_acc = bucket_1off as f64 / all.n as f64;
    let exact = |x: f32| (x as f64 * 1e4).round() / 1e4; // 0.8, not 0.800000011920929
    report.gender_min_p = exact(abstention.gender_min_p);
    report.bucket_min_p = exact(abstention.bucket_min_p);
    report.gender_acc_answered = gender_ans.acc();
    report.gender_coverage = gender_ans.answered as f64 / all.n as f64;
    report.bucket_acc_answered = bucket_ans.acc();
    report.bucket_coverage = bucket_ans.answered as f64 / all.n as f64;
    report.gender_ece = gender_ece.value();
    report.bucket_ece = bucket_ece.value();
    if let Some(out) = dump.as_mut() {
        out.flush().context("writing the dump")?;
    }
    report.by_race = by_race.into_iter().map(|(k, v)| (k, v.stats())).collect();
    report.by_gender = by_gender.into_iter().map(|(k, v)| (k, v.stats())).collect();
    report.by_age_decade = by_decade.into_iter().map(|(k, v)| (k, v.stats())).collect();
    Ok(report)
}

/// Landmarks of the labelled face in a face crop, in `img` pixels: pad with black (half the
/// side on each edge), detect, keep the best face whose centre is within 30% of the side from
/// the image centre.
pub fn find_face(
    img: &RgbImage,
    detector: &mut dyn FaceDetector,
    padded: &mut RgbImage,
    dets: &mut Vec<Detection>,
) -> anyhow::Result<Option<crate::detect::Landmarks>> {
    let (w, h) = (img.width, img.height);
    let pad = w.max(h) / 2;
    padded.resize(w + 2 * pad, h + 2 * pad);
    padded.data.fill(0);
    let pw = padded.width as usize;
    for y in 0..h as usize {
        let src = &img.data[y * w as usize * 3..(y + 1) * w as usize * 3];
        let o = ((y + pad as usize) * pw + pad as usize) * 3;
        padded.data[o..o + src.len()].copy_from_slice(src);
    }
    detector.detect(padded, dets)?;
    let p = pad as f32;
    let (cx0, cy0) = (w as f32 / 2.0, h as f32 / 2.0);
    let tol = 0.3 * w.max(h) as f32;
    let best = dets
        .iter()
        .filter(|d| {
            let cx = (d.bbox[0] + d.bbox[2]) / 2.0 - p;
            let cy = (d.bbox[1] + d.bbox[3]) / 2.0 - p;
            (cx - cx0).abs() < tol && (cy - cy0).abs() < tol
        })
        .max_by(|a, b| a.score.total_cmp(&b.score));
    Ok(best.map(|d| d.landmarks.map(|q| [q[0] - p, q[1] - p])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_odd_utkface_names() {
        let l = parse_utk_name("100_1_2_20170112213615815.jpg.chip.jpg").unwrap();
        assert_eq!(
            l,
            UtkLabel {
                age: 100,
                gender: Gender::Female,
                race: Some(2)
            }
        );
        // No race field: the third field is the date.
        let l = parse_utk_name("39_1_20170116174525125.jpg.chip.jpg").unwrap();
        assert_eq!((l.age, l.gender, l.race), (39, Gender::Female, None));
        // A space before .jpg.
        let l = parse_utk_name("24_0_1_20170116220224657 .jpg.chip.jpg").unwrap();
        assert_eq!((l.age, l.gender, l.race), (24, Gender::Male, Some(1)));
        assert!(parse_utk_name("README.md").is_none());
        assert!(parse_utk_name("30_2_0_x.jpg").is_none());
        assert!(parse_utk_name("face.jpg").is_none());
    }

    #[test]
    fn decades() {
        assert_eq!(decade(0), "0-9");
        assert_eq!(decade(27), "20-29");
        assert_eq!(decade(95), "90+");
    }
}
