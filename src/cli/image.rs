//! `agegender image`: label still pictures.

use std::collections::HashSet;
use std::path::Path;
use std::process::ExitCode;

use agegender::display::png::{annotate_into, save_png};
use agegender::report::{unix_ms, Reporter, StdoutSink};
use agegender::rgb::RgbImage;

use crate::args::*;
use crate::load::*;
use crate::{print_error, Fail};

/// A PNG name for `input` in `out`, unique within this run.
fn png_name(input: &Path, used: &mut HashSet<String>) -> String {
    let stem = input
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("image")
        .to_string();
    let mut name = format!("{stem}.png");
    let mut k = 2;
    while !used.insert(name.clone()) {
        name = format!("{stem}_{k}.png");
        k += 1;
    }
    name
}

pub(crate) fn cmd_image(a: ImageArgs) -> Result<ExitCode, Fail> {
    let cfg = check(base_config(&a.common)?)?;
    let (mut perception, _) = load_perception(&cfg, false)?;
    std::fs::create_dir_all(&a.out).map_err(|e| {
        Fail::Runtime(anyhow::anyhow!(
            "cannot create output directory {}: {e}",
            a.out.display()
        ))
    })?;
    let mut reporter = Reporter::new(Box::new(StdoutSink));
    let mut faces = Vec::new();
    let mut canvas = RgbImage::default();
    let mut used = HashSet::new();
    let mut failed = 0usize;
    for (i, file) in a.files.iter().enumerate() {
        let t0 = std::time::Instant::now();
        let result = (|| -> anyhow::Result<()> {
            let img = agegender::decode::load_image(file)?;
            perception
                .run_still(&img, cfg.nms_iou)
                .map_err(|e| e.context(format!("cannot analyse {}", file.display())))?;
            perception.faces_once(&mut faces);
            // One picture, no track: abstain on each face's own (calibrated) probabilities.
            let abstention = cfg.abstention();
            for f in faces.iter_mut() {
                f.attributes = abstention.apply(f.attributes);
            }
            let ms = t0.elapsed().as_secs_f32() * 1000.0;
            let name = file.to_string_lossy();
            for f in &faces {
                reporter.face(unix_ms(), i as u64, f, ms, Some(&name))?;
            }
            reporter.flush()?;
            annotate_into(&img, &faces, &mut canvas);
            save_png(&canvas, &a.out.join(png_name(file, &mut used)))?;
            Ok(())
        })();
        if let Err(e) = result {
            failed += 1;
            print_error(&e);
        }
    }
    if failed > 0 {
        eprintln!("agegender: {failed} of {} inputs failed", a.files.len());
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
