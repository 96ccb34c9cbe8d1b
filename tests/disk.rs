//! Bounded disk, through the real binary: saved frames, and a report file, on a small tmpfs that
//! fills up (in a mount namespace of the test's own, `unshare -rm`). The run goes on to its end
//! with every line it can write; nothing already written is lost.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::process::finish;
use serde_json::Value;

/// 40 frames of 320×240 with a face in each: a PNG of each is far more than the tmpfs holds.
fn clip(dir: &Path) -> PathBuf {
    let faces = common::utk_faces(2, 7);
    let mut stream = Vec::new();
    for i in 0..40u32 {
        let dx = i % 10 * 3;
        let (jpeg, _) = common::face_frame(
            &[(
                faces[(i / 20) as usize].clone(),
                [40 + dx, 30, 170 + dx, 160],
            )],
            320,
            240,
        );
        stream.extend_from_slice(&jpeg);
    }
    let path = dir.join("faces.mjpeg");
    std::fs::write(&path, stream).unwrap();
    path
}

/// `agegender run --source SOURCE` with the test models and `args`, in a mount namespace where
/// `mountpoint` is a fresh tmpfs of `size` (root, or an unprivileged user namespace:
/// `unshare -rm`). After the run, a `report.jsonl` it wrote there is printed to stdout (the tmpfs
/// goes with the namespace).
fn run_on_tmpfs(
    mountpoint: &Path,
    size: &str,
    source: &Path,
    args: &[&str],
) -> std::process::Output {
    let kiosk = common::agegender_command();
    let mut cmd = Command::new("unshare");
    cmd.args(["-rm", "sh", "-c"])
        .arg(format!(
            "mount -t tmpfs -o size={size} agegender-test \"$0\" || exit 99; \"$@\"; rc=$?; \
             [ ! -f \"$0/report.jsonl\" ] || cat \"$0/report.jsonl\"; exit $rc"
        ))
        .arg(mountpoint)
        .arg(kiosk.get_program())
        .args(kiosk.get_args())
        .arg("run")
        .arg("--source")
        .arg(source)
        .arg("--model")
        .arg(common::classifier_model())
        .arg("--detector")
        .arg(common::blazeface_model(false))
        .args(args);
    let out = finish(&mut cmd);
    assert_ne!(
        out.status.code(),
        Some(99),
        "cannot mount a tmpfs (unshare -rm: root or user namespaces needed): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn lines(out: &std::process::Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

#[test]
fn a_full_disk_stops_saving_frames_not_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let source = clip(tmp.path());
    let frames = tmp.path().join("frames");
    std::fs::create_dir(&frames).unwrap();
    let out = run_on_tmpfs(
        &frames,
        "160k",
        &source,
        &[
            "--serial",
            "-",
            "--status-interval",
            "0",
            "--save-frames",
            frames.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines = lines(&out);
    let faces = lines.iter().filter(|l| l["type"] == "face").count();
    assert!(faces >= 30, "the run went on: {faces} face lines\n{stderr}");
    let last = lines.last().unwrap();
    assert_eq!(last["type"], "status");
    assert_eq!(last["saving"], "stopped", "{last}");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("saving PNG files stopped"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(warnings[0].contains("the disk is full"), "{stderr}");
}

/// The report file on a 16 KiB tmpfs: it fills after a few dozen lines; the run goes on to its
/// end (exit 0, one warning), and the file holds whole lines only.
#[test]
fn a_full_disk_under_the_report_file_is_not_the_end_of_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let source = clip(tmp.path());
    let dir = tmp.path().join("log");
    std::fs::create_dir(&dir).unwrap();
    let report = dir.join("report.jsonl");
    let out = run_on_tmpfs(
        &dir,
        "16k",
        &source,
        &[
            "--loop",
            "--max-frames",
            "200",
            "--serial",
            report.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let warned: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("cannot write to") && l.contains("report.jsonl"))
        .collect();
    assert_eq!(warned.len(), 1, "one warning: {stderr}");
    // what reached the file is whole lines (the 200 frames' lines are far more than 16 KiB)
    let written = lines(&out);
    assert!(written.len() >= 10, "{} lines", written.len());
}
