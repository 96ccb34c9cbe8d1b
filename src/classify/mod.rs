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

use std::path::Path;

use tract_onnx::prelude::Framework;

use crate::tract_runner::{describe_values, dims, read_onnx, real_inputs, Precision, TractRunner};

mod form;
mod labels;

pub use form::{choose_form, CpuFacts, FormChoice, FormSetting, ModelForm};
pub use labels::{
    attributes_calibrated, attributes_from, bucket_of, Abstention, Attributes, Calibration, Gender,
    AGE_BUCKETS, AGE_TEMPERATURE_KEY, DEFAULT_BUCKET_MIN_P, DEFAULT_GENDER_MIN_P,
    GENDER_TEMPERATURE_KEY,
};

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
    runner: TractRunner,
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
        let proto = read_onnx(path)?;
        let form = match (is_quantized(&proto), half) {
            (true, _) => ModelForm::Int8,
            (false, true) => ModelForm::F16,
            (false, false) => ModelForm::F32,
        };
        let inputs = real_inputs(&proto);
        let side = INPUT_SIDE as i64;
        if inputs.len() != 1 {
            bail!(
                "model {}: wrong inputs: expected one input [1,3,{side},{side}], the model declares {}",
                path.display(),
                describe_values(&proto, true)
            );
        }
        let d = dims(inputs[0]);
        let shape_ok = d.len() == 4
            && matches!(d[0], Some(1) | None)
            && d[1..] == [Some(3), Some(side), Some(side)];
        if !shape_ok {
            bail!(
                "model {}: wrong input shape: expected [1,3,{side},{side}], the model declares {}",
                path.display(),
                describe_values(&proto, true)
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
                describe_values(&proto, false)
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
        let runner = TractRunner::with_precision(
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
