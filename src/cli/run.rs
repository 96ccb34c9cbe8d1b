//! `agegender run`: the live loop.

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use signal_hook::consts::{SIGINT, SIGTERM};

use agegender::display::png::SaveFrames;
use agegender::pipeline::{self, LoopOptions, Pipeline};

use crate::args::*;
use crate::load::*;
use crate::Fail;

pub(crate) fn cmd_run(a: RunArgs) -> Result<ExitCode, Fail> {
    let mut cfg = base_config(&a.common)?;
    set(&mut cfg.source, a.source);
    set(&mut cfg.fps, a.fps);
    set(&mut cfg.width, a.width);
    set(&mut cfg.height, a.height);
    cfg.loop_source |= a.loop_source;
    cfg.replay_as_camera |= a.as_camera;
    set(&mut cfg.display, a.display);
    if a.save_frames.is_some() {
        cfg.save_frames = a.save_frames;
    }
    set(&mut cfg.serial, a.serial);
    set(&mut cfg.baud, a.baud);
    set(&mut cfg.max_frames, a.max_frames);
    set(&mut cfg.detect_every, a.detect_every);
    set(&mut cfg.motion_threshold, a.motion_threshold);
    set(&mut cfg.detect_max_interval_s, a.detect_max_interval);
    set(&mut cfg.full_detect_interval_s, a.full_detect_interval);
    if a.watchdog_device.is_some() {
        cfg.watchdog_device = a.watchdog_device;
    }
    set(&mut cfg.watchdog_timeout_s, a.watchdog_timeout);
    set(&mut cfg.status_interval_s, a.status_interval);
    set(&mut cfg.track_iou, a.track_iou);
    set(&mut cfg.max_missed, a.max_missed);
    set(&mut cfg.age_alpha, a.age_alpha);
    // visits and counts
    set(&mut cfg.min_dwell_s, a.min_dwell);
    set(&mut cfg.visit_end_s, a.visit_end);
    set(&mut cfg.counts_interval_s, a.counts_interval);
    a.mqtt.apply(&mut cfg);
    check(&cfg)?;

    let (perception, form) = load_perception(&cfg, true)?;
    let workers = load_workers(&cfg, &perception.detect)?;
    // From here on the frame loop asks for the same blocks every frame: keep them. (Not for
    // `image` and `eval`, whose pictures may all differ in size.)
    agegender::heap::start_pooling();
    let source = pipeline::open_source(&cfg).map_err(Fail::Runtime)?;
    let (w, h) = source.frame_size();
    let display = match pipeline::open_display(&cfg, w, h) {
        Ok(d) => d,
        Err(e) if cfg.display.starts_with("png:") => return Err(Fail::Runtime(e)),
        Err(e) => {
            // A kiosk keeps running without its screen.
            eprintln!("agegender: warning: {e:#}; running headless");
            Box::new(agegender::display::png::NullDisplay)
        }
    };
    let display = match &cfg.save_frames {
        Some(dir) => Box::new(
            SaveFrames::open(dir, display, w, h)
                .map_err(|e| Fail::Runtime(e.context("--save-frames")))?,
        ),
        None => display,
    };
    let sink = pipeline::open_sink(&cfg).map_err(Fail::Runtime)?;
    let reporter = reporter_for(&cfg, sink)?;
    let mut p = Pipeline::new(
        source,
        perception,
        display,
        reporter,
        LoopOptions::from_config(&cfg),
    );
    p.set_model_form(form.form.name(), form.why);
    p.set_detect_workers(workers);
    eprintln!("agegender: source: {}", p.describe_source());
    eprintln!("agegender: display: {}", p.describe_display());
    eprintln!("agegender: frame loop: {}", p.describe_loop());
    // Under systemd: READY=1 now that models, camera and display are open; WATCHDOG=1 from a
    // timer thread for as long as the frame loop keeps beating. The same thread feeds a hardware
    // watchdog (the SD-card image); one that cannot be opened is a warning: a kiosk without its
    // watchdog still beats a kiosk that does not run.
    let hw = cfg.watchdog_device.as_deref().and_then(|dev| {
        match agegender::service::HardwareWatchdog::open(dev, cfg.watchdog_timeout_s) {
            Ok(hw) => {
                eprintln!(
                    "agegender: watchdog: {} armed, {} s",
                    dev.display(),
                    hw.timeout().as_secs()
                );
                Some(hw)
            }
            Err(e) => {
                eprintln!("agegender: warning: {e:#}; running without it");
                None
            }
        }
    });
    let watchdog = agegender::service::Watchdog::start(hw);
    if let Some(w) = &watchdog {
        p.set_heartbeat(w.heartbeat());
        w.set_status(&format!(
            "running: {} -> {}",
            p.describe_source(),
            p.describe_display()
        ));
    }
    // SIGTERM (systemctl stop, a reboot, busybox's poweroff) and SIGINT (Ctrl-C) end the run as
    // the end of a stream does: the frames in flight are finished, the people in view become
    // visits, a last counts and status line are written and the serial queue is flushed; then
    // the MQTT publisher delivers what it holds for at most agegender::mqtt::LINGER, the
    // watchdog is disarmed, and the exit status is 0. A second signal exits at once (128 + the
    // signal's number, as a shell reports a process killed by it).
    let stop = p.stop_handle();
    for sig in [SIGTERM, SIGINT] {
        signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, Arc::clone(&stop))
            .and_then(|_| signal_hook::flag::register(sig, Arc::clone(&stop)))
            .map_err(|e| Fail::Runtime(anyhow::anyhow!("cannot handle signal {sig}: {e}")))?;
    }
    let status = p.run().map_err(Fail::Runtime)?;
    if stop.load(Ordering::Relaxed) {
        eprintln!("agegender: stopped by a signal: the run ended as at the end of its stream");
    }
    eprintln!(
        "agegender: done: {} frames, {} faces reported, {} decode errors, {} capture errors",
        status.frames, status.faces_total, status.decode_errors, status.capture_errors
    );
    Ok(ExitCode::SUCCESS)
}
