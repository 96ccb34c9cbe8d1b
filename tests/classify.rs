//! Classify stage: the committed age/gender ONNX models through tract, on real UTKFace faces via
//! `eval_faces` (detect → align → classify), and model-file errors.

mod common;

use std::path::{Path, PathBuf};

use agegender::align::{align_into, dataset_landmarks, INPUT_SIZE};
use agegender::classify::{Classifier, Gender, AGE_BUCKETS};
use agegender::decode::load_image;
use agegender::detect::blazeface::BlazeFace;
use agegender::detect::DetectorConfig;
use agegender::eval::eval_faces;

/// A classifier file from `models/` (or from `$AGEGENDER_MODEL_DIR`, to check another export
/// of the same contract).
fn model(name: &str) -> PathBuf {
    let dir = std::env::var_os("AGEGENDER_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("models"));
    let p = dir.join(name);
    assert!(p.is_file(), "{} is missing", p.display());
    p
}

/// The error message of a failed load, with its whole context chain.
fn load_err(p: &Path) -> String {
    format!("{:#}", Classifier::load(p).expect_err("loading must fail"))
}

#[test]
fn model_file_errors_name_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let check = |p: &Path, what: &str| {
        let e = load_err(p);
        assert!(e.contains(&p.display().to_string()), "no file name in: {e}");
        assert!(e.contains(what), "expected '{what}' in: {e}");
        assert!(!e.contains('\n'), "not one line: {e}");
    };
    check(&dir.path().join("missing.onnx"), "cannot open");

    let empty = dir.path().join("empty.onnx");
    std::fs::write(&empty, b"").unwrap();
    check(&empty, "empty");

    let text = dir.path().join("notes.onnx");
    std::fs::write(&text, "name,age\nbob,3\n".repeat(20)).unwrap();
    check(&text, "ONNX");

    let bytes = std::fs::read(model("agegender_int8.onnx")).unwrap();
    for frac in [2, 3] {
        let cut = dir.path().join(format!("cut{frac}.onnx"));
        std::fs::write(&cut, &bytes[..bytes.len() / frac]).unwrap();
        let e = load_err(&cut);
        assert!(e.contains(&cut.display().to_string()), "{e}");
        assert!(
            e.contains("truncated") || e.contains("not an ONNX") || e.contains("not a readable"),
            "{e}"
        );
    }

    // Real ONNX files with the wrong input shape: the face detectors.
    check(&common::blazeface_model(false), "wrong input shape");
    check(
        &common::shared_model("yunet_s_640_640.onnx"),
        "expected [1,3,112,112]",
    );
}

#[test]
fn classify_checks_its_input_length() {
    let mut c = Classifier::load(&model("agegender_int8.onnx")).unwrap();
    let e = c.classify(&[0.0; 10]).unwrap_err().to_string();
    assert!(e.contains("37632"), "{e}");
}

#[test]
fn attributes_are_consistent_and_int8_tracks_f32() {
    let mut q = Classifier::load(&model("agegender_int8.onnx")).unwrap();
    let mut f = Classifier::load(&model("agegender_f32.onnx")).unwrap();
    let mut crop = vec![0.0f32; 3 * INPUT_SIZE * INPUT_SIZE];
    let mut agree = 0;
    let faces = common::utk_faces(20, 77);
    for p in &faces {
        let img = load_image(p).unwrap();
        align_into(
            &img,
            &dataset_landmarks(img.width, img.height),
            INPUT_SIZE,
            &mut crop,
        )
        .unwrap();
        let a = q.classify(&crop).unwrap();
        let b = f.classify(&crop).unwrap();
        for x in [a, b] {
            assert!((0.5..=1.0).contains(&x.gender_p), "{x:?}");
            let pf = if x.gender == Gender::Female {
                x.gender_p
            } else {
                1.0 - x.gender_p
            };
            assert!((pf - x.p_female).abs() < 1e-5, "{x:?}");
            assert!((0.0..=100.0).contains(&x.age), "{x:?}");
            let (_, lo, hi) = AGE_BUCKETS[x.bucket];
            let r = x.age.round() as u32;
            assert!(lo <= r && r <= hi, "{x:?}");
            assert!((0.0..=1.0 + 1e-5).contains(&x.bucket_p), "{x:?}");
        }
        agree += (a.gender == b.gender) as usize;
        assert!(
            (a.age - b.age).abs() < 8.0,
            "int8 {} vs f32 {} years on {}",
            a.age,
            b.age,
            p.display()
        );
    }
    assert!(
        agree >= 18,
        "int8 and f32 agree on gender for {agree}/20 faces"
    );
}

/// Accuracy floors for the committed int8 model on the 50 held-out faces below (the model
/// card's test split: 92–93% gender accuracy, about 5.3 years MAE on all 2,128). On 50 faces
/// one error is 2 points, so the floors leave room for sampling noise and nothing more: an
/// untrained or mis-fed model (wrong channel order, wrong crop) falls far below them.
const GENDER_FLOOR: f64 = 0.84;
const AGE_MAE_CEILING: f64 = 7.5;

/// The committed int8 model on 50 UTKFace faces of its test split through the live path
/// (BlazeFace → align → classify) via `eval_faces`.
#[test]
fn int8_model_on_fifty_utkface_faces_beats_the_floor() {
    let dir = tempfile::tempdir().unwrap();
    for p in common::utk_test_faces(50, 20261128) {
        std::os::unix::fs::symlink(&p, dir.path().join(p.file_name().unwrap())).unwrap();
    }
    std::fs::write(dir.path().join("README.txt"), "not a face").unwrap();
    let mut det =
        BlazeFace::load(&common::blazeface_model(false), DetectorConfig::default()).unwrap();
    let mut clf = Classifier::load(&model("agegender_int8.onnx")).unwrap();
    let r = eval_faces(dir.path(), &mut det, &mut clf, None, None, &mut |_| {}).unwrap();
    println!("{}", serde_json::to_string_pretty(&r).unwrap());
    assert_eq!(r.images, 50);
    assert_eq!(r.skipped_names, 1);
    assert!(
        r.no_face <= 10,
        "the detector missed {} of 50 face crops",
        r.no_face
    );
    let n: usize = r.by_gender.values().map(|g| g.n).sum();
    assert_eq!(n, 50);
    let n: usize = r.by_race.values().map(|g| g.n).sum();
    assert_eq!(n, 50);
    assert!(r.bucket_1off_acc >= r.bucket_acc);
    assert!(
        r.gender_acc >= GENDER_FLOOR,
        "gender accuracy {}",
        r.gender_acc
    );
    assert!(r.age_mae <= AGE_MAE_CEILING, "age MAE {}", r.age_mae);

    // --limit
    let r = eval_faces(dir.path(), &mut det, &mut clf, None, Some(5), &mut |_| {}).unwrap();
    assert_eq!(r.images, 5);

    // --split: only the named subset
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".jpg"))
        .collect();
    names.sort();
    let mut csv = String::from("file,split\n");
    for (i, n) in names.iter().enumerate() {
        csv += &format!("{n},{}\n", if i % 10 == 3 { "test" } else { "train" });
    }
    let split = dir.path().join("split.csv");
    std::fs::write(&split, csv).unwrap();
    let only = agegender::eval::read_split(&split, "test").unwrap();
    assert_eq!(only.len(), 5);
    let r = eval_faces(
        dir.path(),
        &mut det,
        &mut clf,
        Some(&only),
        None,
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(r.images, 5);
    let e = agegender::eval::read_split(&split, "holdout").unwrap_err();
    assert!(
        e.to_string().contains("split.csv") && e.to_string().contains("test 5"),
        "{e}"
    );
}

#[test]
fn eval_errors_name_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cat.jpg"), b"meow").unwrap();
    let mut det =
        BlazeFace::load(&common::blazeface_model(false), DetectorConfig::default()).unwrap();
    let mut clf = Classifier::load(&model("agegender_int8.onnx")).unwrap();
    let e = eval_faces(dir.path(), &mut det, &mut clf, None, None, &mut |_| {}).unwrap_err();
    assert!(
        e.to_string().contains(&dir.path().display().to_string()),
        "{e}"
    );
    let missing = dir.path().join("nope");
    let e = format!(
        "{:#}",
        eval_faces(&missing, &mut det, &mut clf, None, None, &mut |_| {}).unwrap_err()
    );
    assert!(e.contains("nope"), "{e}");
}

/// `bytes` (a serialized ONNX ModelProto) with `metadata_props` entries appended: protobuf
/// merges a repeated field written again at the end of a message, so this is the file with
/// those entries added (a later entry with the same key wins in the runtime).
fn with_metadata(bytes: &[u8], props: &[(&str, &str)]) -> Vec<u8> {
    fn varint(mut v: usize, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    let mut out = bytes.to_vec();
    for (k, v) in props {
        let mut entry = vec![0x0a]; // StringStringEntryProto.key: field 1, length-delimited
        varint(k.len(), &mut entry);
        entry.extend_from_slice(k.as_bytes());
        entry.push(0x12); // .value: field 2
        varint(v.len(), &mut entry);
        entry.extend_from_slice(v.as_bytes());
        out.push(0x72); // ModelProto.metadata_props: field 14, length-delimited
        varint(entry.len(), &mut out);
        out.extend_from_slice(&entry);
    }
    out
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// The temperatures are read from the file's metadata and applied: gender_p and bucket_p
/// change as the temperature says, the decisions (gender, age, bucket) do not; a file
/// without them runs uncalibrated; a bad value is a model error naming the key.
#[test]
fn temperatures_from_the_model_metadata_are_applied() {
    use agegender::classify::{
        attributes_from, Calibration, AGE_TEMPERATURE_KEY, GENDER_TEMPERATURE_KEY,
    };
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(model("agegender_f32.onnx")).unwrap();
    let write = |name: &str, props: &[(&str, &str)]| {
        let p = dir.path().join(name);
        std::fs::write(&p, with_metadata(&bytes, props)).unwrap();
        p
    };
    let hot = write(
        "hot.onnx",
        &[
            (GENDER_TEMPERATURE_KEY, "2.0"),
            (AGE_TEMPERATURE_KEY, "0.5"),
        ],
    );
    let plain = write(
        "plain.onnx",
        &[(GENDER_TEMPERATURE_KEY, "1"), (AGE_TEMPERATURE_KEY, "1")],
    );
    let mut h = Classifier::load(&hot).unwrap();
    let mut u = Classifier::load(&plain).unwrap();
    assert_eq!(
        h.calibration(),
        Calibration {
            gender_temperature: 2.0,
            age_temperature: 0.5
        }
    );
    assert_eq!(u.calibration(), Calibration::NONE);
    // An exported file without the metadata (the dynamic-batch one) runs uncalibrated.
    let old = Classifier::load(&model("agegender_f32_dynamic.onnx")).unwrap();
    assert_eq!(old.calibration(), Calibration::NONE);

    let mut crop = vec![0.0f32; 3 * INPUT_SIZE * INPUT_SIZE];
    let mut bucket_p_moved = 0;
    for p in common::utk_faces(8, 19) {
        let img = load_image(&p).unwrap();
        let lm = dataset_landmarks(img.width, img.height);
        align_into(&img, &lm, INPUT_SIZE, &mut crop).unwrap();
        let a = h.classify(&crop).unwrap();
        let b = u.classify(&crop).unwrap();
        let (g, ages) = h.raw_outputs();
        assert_eq!((g, ages), u.raw_outputs(), "same network, same outputs");
        // Uncalibrated = the plain computation on the raw outputs.
        assert_eq!(b, attributes_from(g, ages).unwrap());
        assert!((b.p_female - g[1] / (g[0] + g[1])).abs() < 1e-6);
        // Gender: the logit divided by 2.
        let z = (g[1] / g[0]).ln();
        assert!(
            (a.p_female - sigmoid(z / 2.0)).abs() < 1e-4,
            "{} vs {}",
            a.p_female,
            sigmoid(z / 2.0)
        );
        assert!(a.gender_p <= b.gender_p + 1e-6, "T = 2 makes it less sure");
        // Age: p^(1/0.5) = p², renormalised, summed over the bucket.
        let (_, lo, hi) = AGE_BUCKETS[a.bucket];
        let sq: f32 = ages.iter().map(|p| p * p).sum();
        let want: f32 = ages[lo as usize..=hi as usize]
            .iter()
            .map(|p| p * p)
            .sum::<f32>()
            / sq;
        assert!((a.bucket_p - want).abs() < 1e-3, "{} vs {want}", a.bucket_p);
        bucket_p_moved += ((a.bucket_p - b.bucket_p).abs() > 1e-3) as usize;
        // The decisions do not change.
        assert_eq!((a.gender, a.age, a.bucket), (b.gender, b.age, b.bucket));
    }
    assert!(
        bucket_p_moved >= 6,
        "bucket_p changed on {bucket_p_moved}/8"
    );

    let bad = write("bad.onnx", &[(GENDER_TEMPERATURE_KEY, "warm")]);
    let e = load_err(&bad);
    assert!(
        e.contains(GENDER_TEMPERATURE_KEY) && e.contains("bad.onnx"),
        "{e}"
    );
    let zero = write("zero.onnx", &[(AGE_TEMPERATURE_KEY, "0")]);
    assert!(load_err(&zero).contains("0.05..=20"));
}

/// The committed models carry the temperatures fitted by scripts/train/calibrate.py (a fresh
/// `export.py` file has none until `calibrate.py --write` runs: models/README.md).
#[test]
fn committed_models_are_calibrated() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    for name in ["agegender_f32.onnx", "agegender_int8.onnx"] {
        let c = Classifier::load(&dir.join(name)).unwrap().calibration();
        assert_ne!(c, agegender::classify::Calibration::NONE, "{name}: {c:?}");
    }
}

/// `eval` with thresholds and a dump: accuracy on the answered faces and coverage follow the
/// thresholds, and the dump holds one line per face with the outputs before calibration.
#[test]
fn eval_reports_coverage_and_dumps_raw_outputs() {
    use agegender::classify::Abstention;
    use agegender::eval::{eval_faces_with, DumpLine, EvalOptions};
    let dir = tempfile::tempdir().unwrap();
    for p in common::utk_test_faces(12, 5) {
        std::os::unix::fs::symlink(&p, dir.path().join(p.file_name().unwrap())).unwrap();
    }
    let mut det =
        BlazeFace::load(&common::blazeface_model(false), DetectorConfig::default()).unwrap();
    let mut clf = Classifier::load(&model("agegender_f32.onnx")).unwrap();
    let cal = clf.calibration();
    let mut run = |abstention: Abstention, dump: Option<&mut Vec<u8>>| {
        let opts = EvalOptions {
            abstention,
            dump: dump.map(|d| d as &mut dyn std::io::Write),
            ..Default::default()
        };
        eval_faces_with(dir.path(), &mut det, &mut clf, opts, &mut |_| {}).unwrap()
    };
    let mut dump = Vec::new();
    let all = run(Abstention::NONE, Some(&mut dump));
    assert_eq!(all.images, 12);
    assert_eq!((all.gender_coverage, all.bucket_coverage), (1.0, 1.0));
    assert_eq!(all.gender_acc_answered, all.gender_acc);
    assert_eq!(all.bucket_acc_answered, all.bucket_acc);
    assert!((0.0..=1.0).contains(&all.gender_ece));
    let lines: Vec<DumpLine> = String::from_utf8(dump)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 12);
    for l in &lines {
        assert_eq!(l.age_dist.len(), 101);
        assert!((l.age_dist.iter().sum::<f32>() - 1.0).abs() < 1e-3);
        assert!((0.0..=1.0).contains(&l.p_female));
        assert!(l.gender == "M" || l.gender == "F");
        assert!(dir.path().join(&l.file).exists(), "{}", l.file);
    }
    // At thresholds inside the faces' own probabilities (recomputed from the dump with the
    // model's temperatures), coverage and accuracy on the answered faces are what they say.
    // (gender_p, gender right, bucket_p, bucket right) per face
    type Scored = (f32, bool, f32, bool);
    let scored: Vec<Scored> = lines
        .iter()
        .map(|l| {
            let a = agegender::classify::attributes_calibrated(
                &[1.0 - l.p_female, l.p_female],
                &l.age_dist,
                &cal,
            )
            .unwrap();
            let female = l.gender == "F";
            let true_bucket = agegender::classify::bucket_of(l.age as f32);
            (
                a.gender_p,
                (a.gender == Gender::Female) == female,
                a.bucket_p,
                a.bucket == true_bucket,
            )
        })
        .collect();
    let mut gp: Vec<f32> = scored.iter().map(|s| s.0).collect();
    let mut bp: Vec<f32> = scored.iter().map(|s| s.2).collect();
    gp.sort_by(f32::total_cmp);
    bp.sort_by(f32::total_cmp);
    // Midway between the 6th and 7th probability: 6 of 12 answered (ties aside).
    let (gt, bt) = ((gp[5] + gp[6]) / 2.0, (bp[5] + bp[6]) / 2.0);
    let strict = run(
        Abstention {
            gender_min_p: gt.max(0.5),
            bucket_min_p: bt,
        },
        None,
    );
    let share = |f: &dyn Fn(&Scored) -> bool| scored.iter().filter(|s| f(s)).count() as f64 / 12.0;
    let g_ans = share(&|s| s.0 >= gt.max(0.5));
    let b_ans = share(&|s| s.2 >= bt);
    assert!((strict.gender_coverage - g_ans).abs() < 1e-9, "{strict:?}");
    assert!((strict.bucket_coverage - b_ans).abs() < 1e-9, "{strict:?}");
    assert!(strict.gender_coverage < 1.0 && strict.bucket_coverage < 1.0);
    let g_right = share(&|s| s.0 >= gt.max(0.5) && s.1) / g_ans;
    let b_right = share(&|s| s.2 >= bt && s.3) / b_ans;
    assert!(
        (strict.gender_acc_answered - g_right).abs() < 1e-9,
        "{strict:?}"
    );
    assert!(
        (strict.bucket_acc_answered - b_right).abs() < 1e-9,
        "{strict:?}"
    );
    let v = serde_json::to_value(&strict).unwrap();
    for key in [
        "gender_acc_answered",
        "gender_coverage",
        "bucket_acc_answered",
        "bucket_coverage",
        "gender_min_p",
        "bucket_min_p",
        "gender_ece",
        "bucket_ece",
    ] {
        assert!(v.get(key).is_some(), "{key} missing from {v}");
    }
}
