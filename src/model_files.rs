//! Where model files are found: a path given (which must exist), or a default file looked for in
//! the current directory, beside the executable, the `.deb`'s share folder and the source tree.
//! One module for every model the program loads (the classifier of each form, the detectors);
//! the errors name the file and the flag that sets it.

use std::path::{Path, PathBuf};

use crate::classify::FormChoice;

/// The quantized classifier file (runs when `model_form` is, or chooses, `int8`); the file for
/// each form: [`crate::classify::ModelForm::default_file`].
pub const DEFAULT_MODEL: &str = "models/agegender_int8.onnx";
/// The face detector used when neither `--detector` nor `detector = ...` is given.
pub const DEFAULT_DETECTOR: &str = "models/detector/blazeface_back_256.onnx";
/// The window detector of track-guided detection (`window_detector`), beside the default one.
pub const DEFAULT_WINDOW_DETECTOR: &str = "models/detector/blazeface_front_128.onnx";

/// Which model a path is for (named in errors).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelKind {
    Classifier,
    Detector,
    WindowDetector,
}

impl ModelKind {
    fn flag(self) -> &'static str {
        match self {
            ModelKind::Classifier => "--model",
            ModelKind::Detector => "--detector",
            ModelKind::WindowDetector => "--window-detector",
        }
    }
    fn default_path(self) -> &'static str {
        match self {
            ModelKind::Classifier => DEFAULT_MODEL,
            ModelKind::Detector => DEFAULT_DETECTOR,
            ModelKind::WindowDetector => DEFAULT_WINDOW_DETECTOR,
        }
    }
}

/// Where to look for a default model: the current directory, then beside the executable,
/// the `.deb` layout (`/usr/bin/../share/agegender/`), and the source tree for a
/// `cargo build` binary (`target/<profile>/../../`).
pub fn default_model_candidates(rel: &str) -> Vec<PathBuf> {
    let mut out = vec![PathBuf::from(rel)];
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        out.push(dir.join(rel));
        out.push(dir.join("../share/agegender").join(rel));
        let mut up = dir.as_path();
        for _ in 0..3 {
            match up.parent() {
                Some(p) => {
                    up = p;
                    out.push(p.join(rel));
                }
                None => break,
            }
        }
    }
    out
}

/// The model file to load: the explicit path if given (it must exist), else the first
/// default candidate that exists. The error names the path and what to do.
pub fn resolve_model_path(explicit: Option<&Path>, kind: ModelKind) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        if p.is_file() {
            return Ok(p.to_path_buf());
        }
        anyhow::bail!(
            "{} file {} not found: pass an existing file with {}",
            kind_name(kind),
            p.display(),
            kind.flag()
        );
    }
    let rel = kind.default_path();
    let found = default_model_candidates(rel)
        .into_iter()
        .find(|p| p.is_file());
    found.ok_or_else(|| {
        anyhow::anyhow!(
            "{} file {rel} not found (looked in the current directory and beside the executable): \
             run scripts/setup or pass {} PATH",
            kind_name(kind),
            kind.flag()
        )
    })
}

fn kind_name(kind: ModelKind) -> &'static str {
    match kind {
        ModelKind::Classifier => "model",
        ModelKind::Detector => "detector",
        ModelKind::WindowDetector => "window detector",
    }
}

/// The classifier file to load for `choice`: `explicit` if given (it must exist), else the
/// form's default file in the usual places ([`default_model_candidates`]).
pub fn resolve_classifier(explicit: Option<&Path>, choice: &FormChoice) -> anyhow::Result<PathBuf> {
    match explicit {
        Some(p) => resolve_model_path(Some(p), ModelKind::Classifier),
        None => {
            let rel = choice.form.default_file();
            default_model_candidates(rel)
                .into_iter()
                .find(|p| p.is_file())
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "model file {rel} (form {}) not found (looked in the current directory and \
                         beside the executable): run scripts/setup or pass --model PATH",
                        choice.form.name()
                    )
                })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_explicit_model_names_path() {
        let e = resolve_model_path(Some(Path::new("/nope/m.onnx")), ModelKind::Classifier)
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nope/m.onnx") && e.contains("--model"), "{e}");
    }
}
