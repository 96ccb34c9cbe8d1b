//! `agegender bench`: per-stage times, fps and allocations of the live loop.

use std::path::Path;
use std::process::ExitCode;

use agegender::bench::{CanvasDisplay, DiscardSink};
use agegender::heap::PoolAlloc;
use agegender::pipeline::{LoopOptions, Pipeline};

use crate::args::*;
use crate::load::*;
use crate::Fail;

pub(crate) fn cmd_bench(a: BenchArgs) -> Result<ExitCode, Fail> {
    let mut cfg = base_config(&a.common)?;
    overlay!(cfg, Some(a.source), source, "--source");
    a.detection.apply(&mut cfg);
    a.mqtt.apply(&mut cfg);
    let mut cfg = check(cfg)?;
    if !(a.clock_fps.is_finite() && (0.0..=1000.0).contains(&a.clock_fps)) {
        return Err(Fail::Usage(anyhow::anyhow!(
            "bench --clock-fps {}: expected 0 (the loop's own clock) to 1000",
            a.clock_fps
        )));
    }
    // What bench measures: the file replayed in a loop as fast as it goes (on its own clock,
    // --clock-fps), without end.
    cfg.fps = 0.0;
    cfg.loop_source = true;
    cfg.max_frames = 0;
    // A measurement takes no update command (only `run` ends for one).
    cfg.mqtt_update_request = None;
    if cfg.source.starts_with("/dev/") || cfg.source.starts_with("v4l2:") {
        return Err(Fail::Usage(anyhow::anyhow!(
            "bench --source {}: give an .mjpeg file or a directory of images (a camera cannot be replayed)",
            cfg.source
        )));
    }
    let (perception, form) = load_perception(&cfg, true)?;
    let workers = load_workers(&cfg, &perception.detect)?;
    // as `run` does
    agegender::heap::start_pooling();
    // Replayed unpaced (as fast as it goes) on its own clock of --clock-fps.
    let path = Path::new(&cfg.source);
    let source: Box<dyn agegender::capture::FrameSource> = if path.is_dir() {
        if a.bounce {
            return Err(Fail::Usage(anyhow::anyhow!(
                "bench --bounce --source {}: --bounce replays an .mjpeg file, not a directory",
                cfg.source
            )));
        }
        let dir = agegender::capture::files::DirSource::open(path, a.clock_fps, true)
            .map_err(|e| Fail::Runtime(e.context(format!("source {}", cfg.source))))?;
        Box::new(dir.unpaced())
    } else {
        let src = agegender::capture::files::MjpegFileSource::open(path, a.clock_fps, true)
            .map_err(|e| Fail::Runtime(e.context(format!("source {}", cfg.source))))?
            .unpaced();
        Box::new(if a.bounce { src.bouncing() } else { src })
    };
    let (w, h) = source.frame_size();
    let mut p = Pipeline::new(
        source,
        perception,
        Box::new(CanvasDisplay::new(w, h)),
        reporter_for(&cfg, Box::new(DiscardSink::default()))?.0,
        LoopOptions::from_config(&cfg),
    );
    p.set_model_form(form.form.name(), form.why);
    let report = if workers.is_empty() {
        agegender::bench::run(
            &mut p,
            a.frames,
            a.warmup,
            cfg.max_faces,
            cfg.detect_every,
            cfg.motion_threshold,
            PoolAlloc::counts,
        )
    } else {
        p.set_detect_workers(workers);
        agegender::bench::run_parallel(
            &mut p,
            a.frames,
            a.warmup,
            cfg.detect_every,
            cfg.motion_threshold,
            PoolAlloc::process_counts,
        )
    }
    .map_err(Fail::Runtime)?;
    if a.json {
        let json = serde_json::to_string(&report).map_err(|e| Fail::Runtime(e.into()))?;
        println!("{json}");
    } else {
        print!("{}", report.table());
    }
    Ok(ExitCode::SUCCESS)
}
