//! Classify: the age/gender ResNet through tract, in the form that is cheapest on this CPU.
//!
//! Forms ([`ModelForm`]): `f32` (models/agegender_f32.onnx as exported), `f16` (the same file
//! turned into f16 arithmetic at load, for arm64 CPUs with fp16 kernels) and `int8` (the
//! QOperator file models/agegender_int8.onnx). [`choose_form`] picks one from the CPU
//! features tract itself selects kernels by (deterministic, nothing timed at start-up); the
//! `model_form` setting or `--model` override it. Why each rule: docs/performance.md, "Model form per CPU".
//!
//! Model contract (see models/README.md): input `input` f32 [1,3,112,112], RGB, raw 0..255
//! (normalisation is inside the model); outputs `gender` [1,2] = softmax(P male, P female) and
//! `age` [1,101] = softmax over ages 0..=100. Age is the expectation of that distribution.
//!
//! Calibration ([`Calibration`]): two temperatures fitted on the validation split through this
//! runtime's own path (`scripts/train/calibrate.py`) and stored in the model file's ONNX
//! metadata (`agegender.gender_temperature`, `agegender.age_temperature`). They rescale the
//! gender logit and the age log-probabilities so that `gender_p` and `bucket_p` are calibrated
//! probabilities; a file without them runs uncalibrated (temperature 1). They change no
//! decision: the reported gender, age and bucket are the same at any temperature.
//!
//! Abstention ([`Abstention`]): below `gender_min_p` the gender is reported as
//! [`Gender::Unknown`] (`"U"`, drawn as `?`); below `bucket_min_p` the bucket is marked unknown
//! (`bucket_known = false`: `"age_bucket":"?"`, drawn as `?`).

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

use std::path::Path;

use tract_onnx::prelude::Framework;

use crate::detect::Precision;

/// How the classifier runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelForm {
    F32,
    F16,
    Int8,
}

impl ModelForm {
    pub fn name(self) -> &'static str {
        match self {
            ModelForm::F32 => "f32",
            ModelForm::F16 => "f16",
            ModelForm::Int8 => "int8",
        }
    }

    /// The file this form is made from, relative to the model directory (f16 is the f32
    /// file, converted at load).
    pub fn default_file(self) -> &'static str {
        match self {
            ModelForm::F32 | ModelForm::F16 => "models/agegender_f32.onnx",
            ModelForm::Int8 => "models/agegender_int8.onnx",
        }
    }
}

/// The `model_form` setting: one form, or `auto` (chosen from the CPU by [`choose_form`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FormSetting {
    #[default]
    Auto,
    F32,
    F16,
    Int8,
}

impl std::str::FromStr for FormSetting {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(FormSetting::Auto),
            "f32" => Ok(FormSetting::F32),
            "f16" => Ok(FormSetting::F16),
            "int8" => Ok(FormSetting::Int8),
            _ => Err(format!("`{s}` is not one of auto, f32, f16, int8")),
        }
    }
}

/// The CPU facts the choice rests on: the instruction sets tract 0.23.9 picks its kernels by,
/// as tract itself probes them (`tract_linalg::isa::native()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuFacts {
    pub arch: &'static str,
    /// arm64 half-precision arithmetic, as tract detects it (the `asimdhp` feature in
    /// /proc/cpuinfo, or a Cortex-A55/A75 part number): Cortex-A76 (Pi 5), A78 (Jetson Orin).
    pub fp16: bool,
    /// arm64 SDOT/UDOT (tract's `arm64simd_mmm_i32_8x8_dot` int8 kernel).
    pub dotprod: bool,
}

impl CpuFacts {
    /// This machine, as tract sees it.
    pub fn native() -> CpuFacts {
        use tract_linalg::isa::{native, Isa};
        let isa = native();
        CpuFacts {
            arch: std::env::consts::ARCH,
            fp16: isa.has(Isa::Aarch64Fp16),
            dotprod: isa.has(Isa::Aarch64DotProd),
        }
    }
}

/// The form that runs, and why (for the status line, `--version` and the start-up line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormChoice {
    pub form: ModelForm,
    pub why: &'static str,
}

/// Pick the classifier's form for `cpu` (`setting` = auto), or honour the setting. The
/// rules rest on instruction counts of the aarch64 code (scripts/bench/arm-cost) and on x86
/// times, not on a guess: tract 0.23.9 runs the QOperator int8 graph with an eager im2col
/// that costs more than the f32 graph's lazy one on every CPU measured (docs/performance.md, "Model form
/// per CPU"). Err: `f16` asked for on a CPU without fp16 arithmetic, where tract emulates it
/// (about 40 s per face on x86-64, against milliseconds in f32).
pub fn choose_form(setting: FormSetting, cpu: CpuFacts) -> Result<FormChoice, String> {
    let (form, why) = match setting {
        FormSetting::F32 => (ModelForm::F32, "model_form = f32 (set)"),
        FormSetting::Int8 => (ModelForm::Int8, "model_form = int8 (set)"),
        FormSetting::F16 if cpu.fp16 => (ModelForm::F16, "model_form = f16 (set)"),
        FormSetting::F16 => {
            return Err(format!(
                "f16 needs arm64 fp16 arithmetic (`asimdhp`, e.g. Cortex-A76 / Pi 5); this {} \
                 CPU has none and tract would emulate it at about 40 s per face: use auto or f32",
                cpu.arch
            ))
        }
        FormSetting::Auto => match cpu.arch {
            "aarch64" if cpu.fp16 => (
                ModelForm::F16,
                "auto: arm64 with fp16 arithmetic (Cortex-A76 / Pi 5 class): f16 kernels",
            ),
            "aarch64" => (
                ModelForm::F32,
                "auto: arm64 without fp16 (Cortex-A72 / Pi 4 class): int8 executes more \
                 instructions than f32 in tract 0.23.9",
            ),
            "x86_64" => (
                ModelForm::F32,
                "auto: x86-64: tract 0.23.9's int8 path is slower than f32 (1.5x with \
                 AVX-512 VNNI, 40x on AVX2-only CPUs)",
            ),
            _ => (
                ModelForm::F32,
                "auto: int8 not measured on this architecture, f32 is the reference",
            ),
        },
    };
    Ok(FormChoice { form, why })
}

/// True if the ONNX file holds QOperator integer ops (a quantized export).
fn is_quantized(proto: &tract_onnx::pb::ModelProto) -> bool {
    proto.graph.as_ref().is_some_and(|g| {
        g.node
            .iter()
            .any(|n| n.op_type.starts_with("QLinear") || n.op_type == "ConvInteger")
    })
}

/// The classifier's input side (the aligned crop), pixels.
pub const INPUT_SIDE: usize = crate::align::INPUT_SIZE;

/// The age/gender network, loaded once, run on one aligned face at a time through a reused
/// tract state and a preallocated input tensor.
pub struct Classifier {
    runner: crate::detect::TractRunner,
    form: ModelForm,
    /// Output indices of `gender` and `age`.
    gender_out: usize,
    age_out: usize,
    /// Temperatures from the file's metadata.
    calibration: Calibration,
    /// The latest face's outputs as the network gave them (before calibration).
    raw_gender: [f32; 2],
    raw_age: [f32; 101],
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier").finish_non_exhaustive()
    }
}

impl Classifier {
    /// Load the model as exported (f32 or int8). Errors name the file and say what is wrong:
    /// missing, empty or truncated, not ONNX, wrong input shape (expected `[1,3,112,112]`),
    /// missing outputs.
    pub fn load(path: &Path) -> anyhow::Result<Classifier> {
        Self::load_as(path, false)
    }

    /// Load the model; `half`: run a float model in f16 (a quantized file runs as exported).
    /// [`Classifier::form`] says what runs.
    pub fn load_as(path: &Path, half: bool) -> anyhow::Result<Classifier> {
        use anyhow::bail;
        let proto = crate::detect::read_onnx(path)?;
        let form = match (is_quantized(&proto), half) {
            (true, _) => ModelForm::Int8,
            (false, true) => ModelForm::F16,
            (false, false) => ModelForm::F32,
        };
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
        let calibration = Calibration::from_metadata(
            proto
                .metadata_props
                .iter()
                .map(|e| (e.key.as_str(), e.value.as_str())),
        )
        .map_err(|e| anyhow::anyhow!("model {}: {e}", path.display()))?;
        let model = tract_onnx::onnx()
            .model_for_proto_model(&proto)
            .map_err(|e| {
                anyhow::anyhow!(
                    "model {}: tract cannot load it (truncated or unsupported): {e:?}",
                    path.display()
                )
            })?;
        let precision = match form {
            ModelForm::F16 => Precision::F16,
            ModelForm::F32 | ModelForm::Int8 => Precision::AsExported,
        };
        let runner = crate::detect::TractRunner::with_precision(
            path,
            model,
            &[1, 3, INPUT_SIDE, INPUT_SIDE],
            "classifier",
            precision,
        )?;
        let mut c = Classifier {
            runner,
            form,
            gender_out,
            age_out,
            calibration,
            raw_gender: [0.0; 2],
            raw_age: [0.0; 101],
        };
        // One run now checks the output shapes and warms tract's scratch buffers.
        c.runner.input_mut()?.fill(128.0);
        c.run()
            .map_err(|e| anyhow::anyhow!("model {}: {e:#}", path.display()))?;
        Ok(c)
    }

    /// The form that runs (int8 for a quantized file, else f32 or f16 as loaded).
    pub fn form(&self) -> ModelForm {
        self.form
    }

    /// The temperatures read from the model file (1 and 1 where it has none).
    pub fn calibration(&self) -> Calibration {
        self.calibration
    }

    /// The latest classified face's outputs as the network gave them, before calibration:
    /// `gender` (P male, P female) and `age` (101 probabilities).
    pub fn raw_outputs(&self) -> (&[f32; 2], &[f32; 101]) {
        (&self.raw_gender, &self.raw_age)
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
        let calibration = self.calibration;
        let (raw_gender, raw_age) = (&mut self.raw_gender, &mut self.raw_age);
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
            raw_gender.copy_from_slice(g);
            raw_age.copy_from_slice(a);
            attributes_calibrated(g, a, &calibration)
        })
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

#[cfg(test)]
mod form_tests {
    use super::*;

    const PI4: CpuFacts = CpuFacts {
        arch: "aarch64",
        fp16: false,
        dotprod: false,
    };
    const PI5: CpuFacts = CpuFacts {
        arch: "aarch64",
        fp16: true,
        dotprod: true,
    };
    const X86: CpuFacts = CpuFacts {
        arch: "x86_64",
        fp16: false,
        dotprod: false,
    };

    #[test]
    fn auto_picks_by_cpu_features() {
        let form = |cpu| choose_form(FormSetting::Auto, cpu).unwrap().form;
        assert_eq!(form(PI4), ModelForm::F32);
        assert_eq!(form(PI5), ModelForm::F16);
        assert_eq!(form(X86), ModelForm::F32);
        let armv7 = CpuFacts { arch: "arm", ..PI4 };
        assert_eq!(form(armv7), ModelForm::F32);
        // The reason names the fact the choice rests on.
        assert!(choose_form(FormSetting::Auto, PI4)
            .unwrap()
            .why
            .contains("without fp16"));
    }

    #[test]
    fn a_set_form_is_honoured_and_f16_needs_fp16() {
        for cpu in [PI4, PI5, X86] {
            let c = choose_form(FormSetting::Int8, cpu).unwrap();
            assert_eq!(
                (c.form, c.why),
                (ModelForm::Int8, "model_form = int8 (set)")
            );
            assert_eq!(
                choose_form(FormSetting::F32, cpu).unwrap().form,
                ModelForm::F32
            );
        }
        assert_eq!(
            choose_form(FormSetting::F16, PI5).unwrap().form,
            ModelForm::F16
        );
        let e = choose_form(FormSetting::F16, X86).unwrap_err();
        assert!(e.contains("asimdhp") && e.contains("x86_64"), "{e}");
        assert!(choose_form(FormSetting::F16, PI4).is_err());
        assert_eq!("int8".parse::<FormSetting>(), Ok(FormSetting::Int8));
        assert!("fp32"
            .parse::<FormSetting>()
            .unwrap_err()
            .contains("auto, f32"));
    }

    #[test]
    fn each_form_names_its_file() {
        assert_eq!(ModelForm::F16.default_file(), ModelForm::F32.default_file());
        assert_ne!(
            ModelForm::Int8.default_file(),
            ModelForm::F32.default_file()
        );
    }
}
