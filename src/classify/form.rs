//! Which form of the classifier runs on this CPU: f32, f16 or int8 ([`choose_form`]), from the
//! instruction sets tract dispatches its kernels on.

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

#[cfg(test)]
mod tests {
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
