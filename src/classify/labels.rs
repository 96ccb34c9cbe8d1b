//! What the classifier says about a face: the age buckets, the gender, the labels of one face
//! ([`Attributes`]), their calibration ([`Calibration`]: temperatures from the model file) and
//! when to say "not sure" ([`Abstention`]).

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
    /// Not sure: the probability of the more likely gender is below `gender_min_p`
    /// ([`Abstention`]). The classifier itself never says this; abstention does.
    #[serde(rename = "U")]
    Unknown,
}

/// What the classifier says about one face.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Attributes {
    /// The more likely gender, or [`Gender::Unknown`] once [`Abstention::apply`]d below its
    /// threshold.
    pub gender: Gender,
    /// Probability of the more likely gender (≥ 0.5), calibrated.
    pub gender_p: f32,
    /// Probability the face is female, calibrated, before thresholding.
    pub p_female: f32,
    /// Expected age in years.
    pub age: f32,
    /// Index into [`AGE_BUCKETS`] (the best guess, also when `bucket_known` is false).
    pub bucket: usize,
    /// Probability mass of the (calibrated) age distribution inside that bucket.
    pub bucket_p: f32,
    /// False once [`Abstention::apply`]d with `bucket_p` below `bucket_min_p`: the bucket
    /// is reported as `"?"`.
    pub bucket_known: bool,
}

/// Metadata key of the gender temperature in the classifier's ONNX file.
pub const GENDER_TEMPERATURE_KEY: &str = "agegender.gender_temperature";
/// Metadata key of the age temperature in the classifier's ONNX file.
pub const AGE_TEMPERATURE_KEY: &str = "agegender.age_temperature";

/// Temperatures that turn the network's outputs into calibrated probabilities: the gender
/// logit `ln(P female / P male)` is divided by `gender_temperature`, and the age
/// log-probabilities by `age_temperature` (then renormalised). 1 and 1: as exported.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Calibration {
    pub gender_temperature: f32,
    pub age_temperature: f32,
}

impl Default for Calibration {
    fn default() -> Self {
        Calibration::NONE
    }
}

impl Calibration {
    /// No calibration (a model file without the metadata).
    pub const NONE: Calibration = Calibration {
        gender_temperature: 1.0,
        age_temperature: 1.0,
    };

    /// Read the temperatures from ONNX `metadata_props` (key, value) pairs; a missing key is
    /// temperature 1. Err: a value that is not a number in 0.05..=20.
    pub fn from_metadata<'a>(
        props: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Calibration, String> {
        let mut c = Calibration::NONE;
        for (k, v) in props {
            let slot = match k {
                GENDER_TEMPERATURE_KEY => &mut c.gender_temperature,
                AGE_TEMPERATURE_KEY => &mut c.age_temperature,
                _ => continue,
            };
            let t: f32 = v
                .trim()
                .parse()
                .map_err(|_| format!("metadata `{k}` = `{v}` is not a number"))?;
            if !(0.05..=20.0).contains(&t) {
                return Err(format!(
                    "metadata `{k}` = {t} is not a temperature in 0.05..=20"
                ));
            }
            *slot = t;
        }
        Ok(c)
    }
}

/// The `gender_min_p` the margin rule gives on the validation split (models/README.md,
/// "Calibration and abstention"; `scripts/train/calibrate.py` applies it): the smallest
/// threshold at which the one-sided 95% lower confidence bound of the share of answered faces
/// whose gender is right is ≥ 95%. The one definition of the default: the config, the help and
/// the docs take it from here, and a test re-derives it from the committed validation dump.
pub const DEFAULT_GENDER_MIN_P: f32 = 0.69;
/// The `bucket_min_p` the same rule gives for the exact age bucket, target 80%.
pub const DEFAULT_BUCKET_MIN_P: f32 = 0.69;

/// When to say "not sure": a gender below `gender_min_p` becomes [`Gender::Unknown`], a
/// bucket below `bucket_min_p` becomes unknown. Thresholds are on calibrated probabilities;
/// a face is answered when its probability is at least the threshold (0.5 and 0: always).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Abstention {
    pub gender_min_p: f32,
    pub bucket_min_p: f32,
}

impl Default for Abstention {
    fn default() -> Self {
        Abstention {
            gender_min_p: DEFAULT_GENDER_MIN_P,
            bucket_min_p: DEFAULT_BUCKET_MIN_P,
        }
    }
}

impl Abstention {
    /// Never abstain.
    pub const NONE: Abstention = Abstention {
        gender_min_p: 0.5,
        bucket_min_p: 0.0,
    };

    /// Is a gender with this probability answered?
    pub fn gender_answered(&self, gender_p: f32) -> bool {
        gender_p >= self.gender_min_p
    }

    /// Is a bucket with this probability answered?
    pub fn bucket_answered(&self, bucket_p: f32) -> bool {
        bucket_p >= self.bucket_min_p
    }

    /// `a` with its gender and bucket withdrawn where their probabilities are below the
    /// thresholds (the probabilities and the best guesses stay as they are).
    pub fn apply(&self, mut a: Attributes) -> Attributes {
        if !self.gender_answered(a.gender_p) {
            a.gender = Gender::Unknown;
        }
        a.bucket_known = a.bucket_known && self.bucket_answered(a.bucket_p);
        a
    }
}

/// Turn the two output distributions into [`Attributes`], uncalibrated: gender with its
/// probability, age as the expectation over 0..=100, bucket containing the rounded age and that
/// bucket's mass.
pub fn attributes_from(gender: &[f32], age: &[f32]) -> anyhow::Result<Attributes> {
    attributes_calibrated(gender, age, &Calibration::NONE)
}

/// [`attributes_from`] with the temperatures of `cal` applied to the probabilities:
/// `p_female = sigmoid(ln(g1 / g0) / Tg)`, and `bucket_p` = the bucket's share of
/// `age[i]^(1 / Ta)`. The age (the expectation of the distribution as the network gave it) and
/// hence the bucket do not depend on the temperatures.
pub fn attributes_calibrated(
    gender: &[f32],
    age: &[f32],
    cal: &Calibration,
) -> anyhow::Result<Attributes> {
    anyhow::ensure!(
        gender
            .iter()
            .chain(age)
            .all(|v| v.is_finite() && *v >= -1e-6),
        "classifier produced non-finite or negative probabilities"
    );
    let gsum = gender[0] + gender[1];
    anyhow::ensure!(gsum > 0.0, "gender probabilities sum to zero");
    let p_female = if cal.gender_temperature == 1.0 {
        gender[1] / gsum
    } else {
        // The logit from the two probabilities (a zero one is as sure as f32 can say).
        let tiny = f32::MIN_POSITIVE;
        let z = gender[1].max(tiny).ln() - gender[0].max(tiny).ln();
        1.0 / (1.0 + (-z / cal.gender_temperature).exp())
    };
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
    let span = lo as usize..=(hi as usize).min(age.len() - 1);
    let bucket_p = if cal.age_temperature == 1.0 {
        age[span].iter().sum::<f32>() / total
    } else {
        // age[i]^(1/T), scaled by the largest so that nothing overflows or vanishes.
        let inv_t = 1.0 / cal.age_temperature;
        let max = age.iter().fold(0.0f32, |m, &p| m.max(p));
        let w = |p: f32| if p > 0.0 { (p / max).powf(inv_t) } else { 0.0 };
        let all: f32 = age.iter().map(|&p| w(p)).sum();
        age[span].iter().map(|&p| w(p)).sum::<f32>() / all
    };
    Ok(Attributes {
        gender: g,
        gender_p,
        p_female,
        age: years,
        bucket,
        bucket_p: bucket_p.clamp(0.0, 1.0),
        bucket_known: true,
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

    #[test]
    fn temperatures_soften_probabilities_and_keep_decisions() {
        let mut age = [0.0f32; 101];
        age[30] = 0.6;
        age[40] = 0.4;
        let cal = Calibration {
            gender_temperature: 2.0,
            age_temperature: 0.5,
        };
        let a = attributes_calibrated(&[0.2, 0.8], &age, &cal).unwrap();
        // logit 4 -> 2: 0.8 -> 2/3; ages squared: 0.36 / (0.36 + 0.16)
        assert!((a.p_female - 2.0 / 3.0).abs() < 1e-5, "{a:?}");
        assert_eq!(a.gender, Gender::Female);
        assert!((a.age - 34.0).abs() < 1e-4);
        assert_eq!(AGE_BUCKETS[a.bucket].0, "25-32");
        assert!((a.bucket_p - 0.36 / 0.52).abs() < 1e-5, "{a:?}");
        // Temperature 1 is the plain computation, bit for bit.
        let raw = attributes_from(&[0.2, 0.8], &age).unwrap();
        assert_eq!(
            attributes_calibrated(&[0.2, 0.8], &age, &Calibration::NONE).unwrap(),
            raw
        );
    }

    #[test]
    fn calibration_metadata_is_parsed_and_checked() {
        let c = Calibration::from_metadata([
            ("producer", "x"),
            (GENDER_TEMPERATURE_KEY, "1.75"),
            (AGE_TEMPERATURE_KEY, " 0.8 "),
        ])
        .unwrap();
        assert_eq!((c.gender_temperature, c.age_temperature), (1.75, 0.8));
        // Absent: temperature 1 (an old file).
        assert_eq!(Calibration::from_metadata([]).unwrap(), Calibration::NONE);
        let e = Calibration::from_metadata([(AGE_TEMPERATURE_KEY, "hot")]).unwrap_err();
        assert!(e.contains(AGE_TEMPERATURE_KEY), "{e}");
        assert!(Calibration::from_metadata([(GENDER_TEMPERATURE_KEY, "0")]).is_err());
        assert!(Calibration::from_metadata([(GENDER_TEMPERATURE_KEY, "NaN")]).is_err());
    }

    #[test]
    fn abstention_says_unknown_below_the_thresholds() {
        let mut age = [0.0f32; 101];
        age[30] = 0.55;
        age[40] = 0.45;
        let a = attributes_from(&[0.3, 0.7], &age).unwrap();
        let ab = Abstention {
            gender_min_p: 0.75,
            bucket_min_p: 0.6,
        };
        let u = ab.apply(a);
        assert_eq!(u.gender, Gender::Unknown);
        assert!(!u.bucket_known);
        // Probabilities and best guesses stay.
        assert_eq!(
            (u.gender_p, u.p_female, u.bucket),
            (a.gender_p, a.p_female, a.bucket)
        );
        // At the threshold: answered.
        let ab = Abstention {
            gender_min_p: a.gender_p,
            bucket_min_p: a.bucket_p,
        };
        assert_eq!(ab.apply(a), a);
        assert_eq!(Abstention::NONE.apply(a), a);
    }
}
