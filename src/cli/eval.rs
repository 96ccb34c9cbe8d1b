//! `agegender eval`: measure the model on UTKFace-named faces.

use std::process::ExitCode;

use agegender::model_files::{resolve_model_path, ModelKind};
use agegender::pipeline;

use crate::args::*;
use crate::load::*;
use crate::{print_error, Fail};

pub(crate) fn cmd_eval(a: EvalArgs) -> Result<ExitCode, Fail> {
    let cfg = check(base_config(&a.common)?)?;
    if !a.faces.is_dir() {
        return Err(Fail::Runtime(anyhow::anyhow!(
            "face directory {} does not exist",
            a.faces.display()
        )));
    }
    let only = match &a.split {
        Some(p) => Some(agegender::eval::read_split(p, &a.subset).map_err(Fail::Usage)?),
        None => None,
    };
    if a.sequences {
        if a.frames < 2 {
            return Err(Fail::Usage(anyhow::anyhow!(
                "bad value for --frames: {} (a sequence needs at least 2 frames)",
                a.frames
            )));
        }
        if !(a.fps.is_finite() && a.fps > 0.0) {
            return Err(Fail::Usage(anyhow::anyhow!(
                "bad value for --fps: {} is not > 0",
                a.fps
            )));
        }
        let (perception, _) = load_perception(&cfg, true)?;
        let opts = agegender::eval_seq::SeqOptions {
            only: only.as_ref(),
            limit: a.limit.unwrap_or(300),
            frames: a.frames,
            fps: a.fps,
            seed: a.seed,
            jitter: agegender::eval_seq::Jitter::default(),
        };
        let (report, _) = agegender::eval_seq::eval_sequences(&a.faces, perception, &cfg, &opts)
            .map_err(Fail::Runtime)?;
        eprint!("{}", report.table());
        let json = serde_json::to_string(&report).map_err(|e| Fail::Runtime(e.into()))?;
        println!("{json}");
        return Ok(ExitCode::SUCCESS);
    }
    let det_path =
        resolve_model_path(cfg.detector.as_deref(), ModelKind::Detector).map_err(Fail::Model)?;
    let mut detector = pipeline::load_detector(&det_path, &cfg).map_err(Fail::Model)?;
    let (mut classifier, _) = load_classifier(&cfg)?;
    let mut dump = match &a.dump {
        Some(p) => Some(std::io::BufWriter::new(std::fs::File::create(p).map_err(
            |e| {
                Fail::Runtime(anyhow::anyhow!(
                    "--dump {}: cannot create it: {e}",
                    p.display()
                ))
            },
        )?)),
        None => None,
    };
    let opts = agegender::eval::EvalOptions {
        only: only.as_ref(),
        limit: a.limit,
        abstention: cfg.abstention(),
        dump: dump.as_mut().map(|w| w as &mut dyn std::io::Write),
    };
    let report = agegender::eval::eval_faces_with(
        &a.faces,
        &mut *detector,
        &mut classifier,
        opts,
        &mut |e| print_error(e),
    )
    .map_err(Fail::Runtime)?;
    let json = serde_json::to_string(&report).map_err(|e| Fail::Runtime(e.into()))?;
    println!("{json}");
    if report.unreadable > 0 {
        // The measure stands for the faces that could be read; the run still says it was
        // not clean, as `image` does.
        eprintln!(
            "agegender: {} of {} faces could not be read (named above)",
            report.unreadable,
            report.images + report.unreadable
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
