//! A kiosk that is stopped loses nothing: SIGTERM (systemctl stop, a reboot, busybox's poweroff)
//! and SIGINT end `agegender run` as the end of its stream does. The people in view become
//! visit lines, a last counts line and a status line saying `"camera":"stopped"` are written,
//! and the exit status is 0; in the one-thread loop and the stage-parallel one. A second signal
//! while the first is being handled exits at once.
//!
//! Real binary, real models, a looped replay that never ends by itself, real signals (`kill`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::process::{signal, wait_exit, Lines};

/// Two people standing in view, swaying a little: a 2 s clip, replayed in a loop.
fn two_people(dir: &Path) -> PathBuf {
    let faces = common::utk_faces(2, 31);
    let mut stream = Vec::new();
    for i in 0..20u32 {
        let dx = (i % 10).min(10 - i % 10) * 2;
        let a = [60 + dx, 80, 200 + dx, 220];
        let b = [400 - dx, 120, 530 - dx, 250];
        let (jpeg, _) =
            common::face_frame(&[(faces[0].clone(), a), (faces[1].clone(), b)], 640, 480);
        stream.extend_from_slice(&jpeg);
    }
    let path = dir.join("two.mjpeg");
    std::fs::write(&path, stream).unwrap();
    path
}

/// Wait (at most 3 minutes: a hang guard, not a speed bound) until `n` face lines have come.
fn wait_for_faces(child: &mut Child, lines: &Lines, n: usize) {
    let end = Instant::now() + Duration::from_secs(180);
    loop {
        let faces = lines.count("\"type\":\"face\"");
        if faces >= n {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the kiosk exited before it was stopped: {status}");
        }
        assert!(
            Instant::now() < end,
            "only {faces} face lines after 3 minutes"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `agegender run` over the looped clip at 15 fps (its own clock: the 45 frames waited for are
/// 3 s of stream, past `min_dwell_s`), with `extra` flags.
fn kiosk(clip: &Path, extra: &[&str]) -> Child {
    common::agegender_command()
        .arg("run")
        .arg("--source")
        .arg(clip)
        .args(["--loop", "--fps", "15", "--serial", "-", "--model"])
        .arg(common::classifier_model())
        .arg("--detector")
        .arg(common::blazeface_model(false))
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn stopped_by(sig: &str, workers: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let clip = two_people(tmp.path());
    let mut child = kiosk(&clip, &["--workers", workers]);
    let lines = Lines::collect(child.stdout.take().unwrap());
    wait_for_faces(&mut child, &lines, 90);
    signal(&child, sig);
    let status = wait_exit(&mut child, Duration::from_secs(180));
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{sig}: exit {status}; stderr:\n{stderr}");
    assert!(stderr.contains("stopped by a signal"), "{stderr}");
    // the reader thread has seen stdout close
    std::thread::sleep(Duration::from_millis(100));
    let lines: Vec<Value> = lines
        .all()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let of = |t: &str| -> Vec<&Value> { lines.iter().filter(|l| l["type"] == t).collect() };
    let visits = of("visit");
    assert_eq!(
        visits.len(),
        2,
        "{sig}, workers {workers}: the two people in view leave with the run: {visits:?}"
    );
    for v in &visits {
        assert!(v["dwell_s"].as_f64().unwrap() >= 1.0, "{v}");
    }
    let counts = of("counts");
    let last_counts = counts.last().expect("a last counts line");
    assert_eq!(last_counts["visits"], 2, "{last_counts}");
    let last = lines.last().unwrap();
    assert_eq!(
        last["type"], "status",
        "the last line is the status: {last}"
    );
    assert_eq!(last["camera"], "stopped", "{last}");
}

#[test]
fn sigterm_ends_the_one_thread_loop_with_visits_counts_and_exit_0() {
    stopped_by("-TERM", "1");
}

#[test]
fn sigterm_ends_the_stage_parallel_loop_with_visits_counts_and_exit_0() {
    stopped_by("-TERM", "2");
}

#[test]
fn sigint_ends_the_run_as_sigterm_does() {
    stopped_by("-INT", "2");
}

#[test]
fn a_second_signal_exits_at_once() {
    // a broker that is not there: at the stop the publisher holds the visits (QoS 1) and keeps
    // trying to deliver them for agegender::mqtt::LINGER (5 s); a second SIGTERM cuts that short
    // with the status a shell gives a process killed by SIGTERM (143)
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tmp = tempfile::tempdir().unwrap();
    let clip = two_people(tmp.path());
    let url = format!("mqtt://127.0.0.1:{port}");
    let mut child = kiosk(&clip, &["--mqtt", &url, "--mqtt-client-id", "kiosk-stop"]);
    let lines = Lines::collect(child.stdout.take().unwrap());
    wait_for_faces(&mut child, &lines, 90);
    signal(&child, "-TERM");
    // the first stop has written its visits (to stdout) and is now lingering for the broker
    let end = Instant::now() + Duration::from_secs(60);
    while !lines.any("\"camera\":\"stopped\"") {
        assert!(Instant::now() < end, "no last status line after the signal");
        std::thread::sleep(Duration::from_millis(10));
    }
    signal(&child, "-TERM");
    let status = wait_exit(&mut child, Duration::from_secs(180));
    assert_eq!(status.code(), Some(143), "{status}");
}
