//! Classify: the age/gender ResNet (int8 ONNX) through tract.
//!
//! Model contract (see models/README.md): input `input` f32 [1,3,112,112], RGB, raw 0..255
//! (normalisation is inside the model); outputs `gender` [1,2] = softmax(P male, P female) and
//! `age` [1,101] = softmax over ages 0..=100. Age is the expectation of that distribution.

/// The seed's eight Adience buckets: label, first and last age that belongs to it
/// (the ages between the published buckets go to the nearest one).
pub const AGE_BUCKETS: [(&str, u32, u32); 8] = [
    ("0-2", 0, 3),
    ("4-6", 4, 6),
    ("8-12", 7, 13),
    ("15-20", 14, 22),
    ("25-32", 23, 34),
    ("38-43", 35, 44),
    ("48-53", 45, 55),
    ("60+", 56, 100),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Gender {
    #[serde(rename = "M")]
    Male,
    #[serde(rename = "F")]
    Female,
}

/// What the classifier says about one face.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Attributes {
    pub gender: Gender,
    /// Probability of the reported gender (≥ 0.5).
    pub gender_p: f32,
    /// Probability the face is female, before thresholding.
    pub p_female: f32,
    /// Expected age in years.
    pub age: f32,
    /// Index into [`AGE_BUCKETS`].
    pub bucket: usize,
    /// Probability mass of the predicted age distribution inside that bucket.
    pub bucket_p: f32,
}

use tract_onnx::prelude::Framework;

/// The classifier's input side (the aligned crop), pixels.
pub const INPUT_SIDE: usize = crate::align::INPUT_SIZE;

/// The age/gender network, loaded once, run on one aligned face at a time through a reused
/// tract state and a preallocated input tensor.
pub struct Classifier {
    runner: crate::detect::TractRunner,
    /// Output indices of `gender` and `age`.
    gender_out: usize,
    age_out: usize,
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier").finish_non_exhaustive()
    }
}

impl Classifier {
    /// Load the model. Errors name the file and say what is wrong: missing, empty or
    /// truncated, not ONNX, wrong input shape (expected `[1,3,112,112]`), missing outputs.
    pub fn load(path: &std::path::Path) -> anyhow::Result<Classifier> {
        use anyhow::bail;
        let proto = crate::detect::read_onnx(path)?;
        let inputs = crate::detect::real_inputs(&proto);
        let side = INPUT_SIDE as i64;
        if inputs.len() != 1 {
            bail!(
                "model {}: wrong inputs: expected one input [1,3,{side},{side}], the model declares {}",
                path.display(),
                crate::detect::describe_values(&proto, true)
            );
        }
        let d = crate::detect::dims(inputs[0]);
        let shape_ok = d.len() == 4
            && matches!(d[0], Some(1) | None)
            && d[1..] == [Some(3), Some(side), Some(side)];
        if !shape_ok {
            bail!(
                "model {}: wrong input shape: expected [1,3,{side},{side}], the model declares {}",
                path.display(),
                crate::detect::describe_values(&proto, true)
            );
        }
        let names: Vec<&str> = proto
            .graph
            .as_ref()
            .map(|g| g.output.iter().map(|o| o.name.as_str()).collect())
            .unwrap_or_default();
        let find = |n: &str| names.iter().position(|x| *x == n);
        let (Some(gender_out), Some(age_out)) = (find("gender"), find("age")) else {
            bail!(
                "model {}: expected outputs `gender` [1,2] and `age` [1,101], the model declares {}",
                path.display(),
                crate::detect::describe_values(&proto, false)
            );
        };
        let model = tract_onnx::onnx()
            .model_for_proto_model(&proto)
            .map_err(|e| {
                anyhow::anyhow!(
                    "model {}: tract cannot load it (truncated or unsupported): {e:?}",
                    path.display()
                )
            })?;
        let runner = crate::detect::TractRunner::new(
            path,
            model,
            &[1, 3, INPUT_SIDE, INPUT_SIDE],
            "classifier",
        )?;
        let mut c = Classifier {
            runner,
            gender_out,
            age_out,
        };
        // One run now checks the output shapes and warms tract's scratch buffers.
        c.runner.input_mut()?.fill(128.0);
        c.run()
            .map_err(|e| anyhow::anyhow!("model {}: {e:#}", path.display()))?;
        Ok(c)
    }

    /// Classify one aligned face: `input` is planar CHW f32 RGB in 0..=255 of side
    /// [`crate::align::INPUT_SIZE`] (what [`crate::align::align_into`] writes).
    pub fn classify(&mut self, input: &[f32]) -> anyhow::Result<Attributes> {
        let n = 3 * INPUT_SIDE * INPUT_SIDE;
        anyhow::ensure!(
            input.len() == n,
            "classifier input holds {} values, {n} expected (3x{INPUT_SIDE}x{INPUT_SIDE})",
            input.len()
        );
        self.runner.input_mut()?.copy_from_slice(input);
        self.run()
    }

    fn run(&mut self) -> anyhow::Result<Attributes> {
        let (gi, ai) = (self.gender_out, self.age_out);
        self.runner.run(|o| {
            let (g, a) = (o[gi], o[ai]);
            anyhow::ensure!(
                g.len() == 2,
                "output `gender` has {} values, 2 expected",
                g.len()
            );
            anyhow::ensure!(
                a.len() == 101,
                "output `age` has {} values, 101 expected",
                a.len()
            );
            attributes_from(g, a)
        })
    }
}

/// Turn the two output distributions into [`Attributes`]: gender with its probability, age as
/// the expectation over 0..=100, bucket containing the rounded age and that bucket's mass.
pub fn attributes_from(gender: &[f32], age: &[f32]) -> anyhow::Result<Attributes> {
    anyhow::ensure!(
        gender
            .iter()
            .chain(age)
            .all(|v| v.is_finite() && *v >= -1e-6),
        "classifier produced non-finite or negative probabilities"
    );
    let gsum = gender[0] + gender[1];
    anyhow::ensure!(gsum > 0.0, "gender probabilities sum to zero");
    let p_female = gender[1] / gsum;
    let (g, gender_p) = if p_female >= 0.5 {
        (Gender::Female, p_female)
    } else {
        (Gender::Male, 1.0 - p_female)
    };
    let total: f32 = age.iter().sum();
    anyhow::ensure!(total > 0.0, "age distribution sums to zero");
    let years: f32 = age
        .iter()
        .enumerate()
        .map(|(i, p)| i as f32 * p)
        .sum::<f32>()
        / total;
    let bucket = bucket_of(years);
    let (_, lo, hi) = AGE_BUCKETS[bucket];
    let bucket_p = age[lo as usize..=(hi as usize).min(age.len() - 1)]
        .iter()
        .sum::<f32>()
        / total;
    Ok(Attributes {
        gender: g,
        gender_p,
        p_female,
        age: years,
        bucket,
        bucket_p,
    })
}

/// Index of the [`AGE_BUCKETS`] entry holding `round(age)` (ages past 100 go to the last).
pub fn bucket_of(age: f32) -> usize {
    let a = age.round().clamp(0.0, 100.0) as u32;
    AGE_BUCKETS
        .iter()
        .position(|&(_, lo, hi)| (lo..=hi).contains(&a))
        .unwrap_or(AGE_BUCKETS.len() - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_age_once() {
        for a in 0..=100u32 {
            let n = AGE_BUCKETS
                .iter()
                .filter(|&&(_, lo, hi)| (lo..=hi).contains(&a))
                .count();
            assert_eq!(n, 1, "age {a}");
        }
        assert_eq!(bucket_of(2.4), 0);
        assert_eq!(bucket_of(3.6), 1);
        assert_eq!(bucket_of(27.0), 4);
        assert_eq!(bucket_of(130.0), 7);
    }

    #[test]
    fn attributes_from_a_peaked_distribution() {
        let mut age = [0.0f32; 101];
        age[30] = 0.5;
        age[40] = 0.5;
        let a = attributes_from(&[0.2, 0.8], &age).unwrap();
        assert_eq!(a.gender, Gender::Female);
        assert!((a.gender_p - 0.8).abs() < 1e-6 && (a.p_female - 0.8).abs() < 1e-6);
        assert!((a.age - 35.0).abs() < 1e-4);
        assert_eq!(AGE_BUCKETS[a.bucket].0, "38-43");
        assert!((a.bucket_p - 0.5).abs() < 1e-6);
        let m = attributes_from(&[0.9, 0.1], &age).unwrap();
        assert_eq!(m.gender, Gender::Male);
        assert!((m.gender_p - 0.9).abs() < 1e-6);
        assert!(attributes_from(&[f32::NAN, 0.1], &age).is_err());
    }
}
