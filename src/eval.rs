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

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use crate::align::{align_into, dataset_landmarks, INPUT_SIZE};
use crate::classify::{bucket_of, Classifier, Gender};
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
/// if given, the first `limit` if given.
pub fn eval_faces(
    dir: &Path,
    detector: &mut dyn FaceDetector,
    classifier: &mut Classifier,
    only: Option<&HashSet<String>>,
    limit: Option<usize>,
    on_unreadable: &mut dyn FnMut(&anyhow::Error),
) -> anyhow::Result<EvalReport> {
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

        let gender_ok = a.gender == label.gender;
        let err = (a.age as f64 - label.age as f64).abs();
        let (pb, tb) = (a.bucket, bucket_of(label.age as f32));
        let bucket_ok = pb == tb;
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
