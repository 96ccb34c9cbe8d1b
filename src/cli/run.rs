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
    overlay!(cfg, a.source, source, "--source");
    overlay!(cfg, a.fps, fps, "--fps");
    overlay!(cfg, a.width, width, "--width");
    overlay!(cfg, a.height, height, "--height");
    overlay!(cfg, a.loop_source.then_some(true), loop_source, "--loop");
    overlay!(
        cfg,
        a.as_camera.then_some(true),
        replay_as_camera,
        "--as-camera"
    );
    overlay!(cfg, a.display, display, "--display");
    overlay!(
        cfg,
        a.screen_notice.map(Some),
        screen_notice,
        "--screen-notice"
    );
    overlay!(cfg, a.save_frames.map(Some), save_frames, "--save-frames");
    overlay!(cfg, a.serial, serial, "--serial");
    overlay!(cfg, a.baud, baud, "--baud");
    overlay!(cfg, a.max_frames, max_frames, "--max-frames");
    a.detection.apply(&mut cfg);
    overlay!(
        cfg,
        a.watchdog_device.map(Some),
        watchdog_device,
        "--watchdog-device"
    );
    overlay!(
        cfg,
        a.watchdog_timeout,
        watchdog_timeout_s,
        "--watchdog-timeout"
    );
    overlay!(
        cfg,
        a.status_interval,
        status_interval_s,
        "--status-interval"
    );
    overlay!(cfg, a.track_iou, track_iou, "--track-iou");
    overlay!(cfg, a.max_missed, max_missed, "--max-missed");
    overlay!(cfg, a.age_alpha, age_alpha, "--age-alpha");
    // visits and counts
    overlay!(cfg, a.min_dwell, min_dwell_s, "--min-dwell");
    overlay!(cfg, a.visit_end, visit_end_s, "--visit-end");
    overlay!(
        cfg,
        a.counts_interval,
        counts_interval_s,
        "--counts-interval"
    );
    a.mqtt.apply(&mut cfg);
    overlay!(
        cfg,
        a.mqtt_update_request.map(Some),
        mqtt_update_request,
        "--mqtt-update-request"
    );
    overlay!(
        cfg,
        a.mqtt_update_state.map(Some),
        mqtt_update_state,
        "--mqtt-update-state"
    );
    let cfg = check(cfg)?;

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
    let mut display = match &cfg.save_frames {
        Some(dir) => Box::new(
            SaveFrames::open(dir, display, w, h, cfg.save_limits())
                .map_err(|e| Fail::Runtime(e.context("--save-frames")))?,
        ),
        None => display,
    };
    if let Some(notice) = &cfg.screen_notice {
        display.set_notice(notice);
    }
    let sink = pipeline::open_sink(&cfg).map_err(Fail::Runtime)?;
    let (reporter, updates) = reporter_for(&cfg, sink)?;
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
    // watchdog is disarmed, and the exit status is 0 (4 when an update accepted over MQTT
    // ended it). A second signal exits at once (128 + the
    // signal's number, as a shell reports a process killed by it).
    let stop = p.stop_handle();
    // An update accepted over MQTT ends the run the same way (src/mqtt/update.rs).
    if let Some(u) = &updates {
        u.stop_with(Arc::clone(&stop));
    }
    for sig in [SIGTERM, SIGINT] {
        signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, Arc::clone(&stop))
            .and_then(|_| signal_hook::flag::register(sig, Arc::clone(&stop)))
            .map_err(|e| Fail::Runtime(anyhow::anyhow!("cannot handle signal {sig}: {e}")))?;
    }
    let status = p.run().map_err(Fail::Runtime)?;
    let update = updates.as_ref().is_some_and(|u| u.requested());
    if update {
        eprintln!("agegender: stopped for an update accepted over MQTT (exit status 4: /init installs it)");
    } else if stop.load(Ordering::Relaxed) {
        eprintln!("agegender: stopped by a signal: the run ended as at the end of its stream");
    }
    eprintln!(
        "agegender: done: {} frames, {} faces reported, {} decode errors, {} capture errors",
        status.frames, status.faces_total, status.decode_errors, status.capture_errors
    );
    // (the publisher delivers the answer `accepted` and the last lines when `p` is dropped)
    drop(p);
    if update {
        return Ok(ExitCode::from(agegender::mqtt::update::EXIT_UPDATE));
    }
    Ok(ExitCode::SUCCESS)
}
