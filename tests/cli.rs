//! CLI errors through the real binary: each gives exactly one `agegender: error:` line naming
//! the input, the documented exit code (1 input, 2 usage/config, 3 model), and no panic.

mod common;

use embedded_graphics::pixelcolor::RgbColor;
use std::path::Path;
use std::process::Output;

fn agegender(args: &[&str]) -> Output {
    common::agegender_command().args(args).output().unwrap()
}

/// stderr's `agegender: error:` lines; asserts there is no panic message.
fn error_lines(out: &Output) -> Vec<String> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("internal error"),
        "panic: {stderr}"
    );
    stderr
        .lines()
        .filter(|l| l.starts_with("agegender: error: "))
        .map(String::from)
        .collect()
}

fn one_error(out: &Output, code: i32, must_contain: &[&str]) -> String {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = error_lines(out);
    assert_eq!(lines.len(), 1, "exactly one error line: {lines:?}");
    for s in must_contain {
        assert!(lines[0].contains(s), "{:?} does not name {s:?}", lines[0]);
    }
    lines[0].clone()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn missing_model_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no_such_model.onnx");
    let img = tmp.path().join("x.jpg");
    std::fs::write(&img, common::encode_jpeg(&common::background(64, 64), 90)).unwrap();
    let out = agegender(&[
        "image",
        s(&img),
        "--model",
        s(&missing),
        "--out",
        s(tmp.path()),
    ]);
    one_error(&out, 3, &[s(&missing), "--model"]);
    let out = agegender(&[
        "run",
        "--source",
        s(&img),
        "--detector",
        s(&missing),
        "--model",
        s(&common::classifier_model()),
    ]);
    one_error(&out, 3, &[s(&missing), "--detector"]);
}

#[test]
fn model_that_is_not_onnx_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let junk = tmp.path().join("junk.onnx");
    std::fs::write(&junk, b"this is not a model").unwrap();
    let img = tmp.path().join("x.jpg");
    std::fs::write(&img, common::encode_jpeg(&common::background(64, 64), 90)).unwrap();
    let det = common::blazeface_model(false);
    let out = agegender(&[
        "image",
        s(&img),
        "--model",
        s(&junk),
        "--detector",
        s(&det),
        "--out",
        s(tmp.path()),
    ]);
    one_error(&out, 3, &[s(&junk)]);
    let out = agegender(&[
        "image",
        s(&img),
        "--model",
        s(&common::classifier_model()),
        "--detector",
        s(&junk),
    ]);
    one_error(&out, 3, &[s(&junk)]);
}

#[test]
fn unreadable_images_are_named_and_the_others_still_processed() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing.jpg");
    let garbage = tmp.path().join("garbage.jpg");
    std::fs::write(&garbage, b"\xFF\xD8\xFF\xE0 definitely not a jpeg").unwrap();
    let good = tmp.path().join("good.jpg");
    let faces = common::utk_faces(1, 3);
    let (jpeg, _) = common::face_frame(&[(faces[0].clone(), [80, 60, 240, 220])], 320, 280);
    std::fs::write(&good, jpeg).unwrap();
    let out_dir = tmp.path().join("out");
    let out = agegender(&[
        "image",
        s(&missing),
        s(&garbage),
        s(&good),
        "--out",
        s(&out_dir),
        "--model",
        s(&common::classifier_model()),
        "--detector",
        s(&common::blazeface_model(false)),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let errors = error_lines(&out);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].contains(s(&missing)), "{errors:?}");
    assert!(errors[1].contains(s(&garbage)), "{errors:?}");
    // The good picture still got its JSON line and its PNG.
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    assert_eq!(lines[0]["source"], s(&good));
    assert!(out_dir.join("good.png").is_file());
    assert!(!out_dir.join("garbage.png").exists());
}

#[test]
fn unknown_config_key_names_key_and_file() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("kiosk.toml");
    std::fs::write(&cfg, "fps = 10\nmax_facez = 3\n").unwrap();
    let out = agegender(&["run", "--config", s(&cfg)]);
    one_error(&out, 2, &[s(&cfg), "max_facez", "line 2"]);
    // A bad value names the key too.
    std::fs::write(&cfg, "detect_every = 0\n").unwrap();
    let out = agegender(&["run", "--config", s(&cfg)]);
    one_error(&out, 2, &[s(&cfg), "detect_every"]);
    std::fs::write(&cfg, "threads = 0\n").unwrap();
    let out = agegender(&["run", "--config", s(&cfg)]);
    one_error(&out, 2, &[s(&cfg), "threads"]);
    std::fs::write(&cfg, "motion_threshold = 1.5\n").unwrap();
    let out = agegender(&["run", "--config", s(&cfg)]);
    one_error(&out, 2, &[s(&cfg), "motion_threshold"]);
    std::fs::write(&cfg, "detect_max_interval_s = 0\n").unwrap();
    let out = agegender(&["run", "--config", s(&cfg)]);
    one_error(&out, 2, &[s(&cfg), "detect_max_interval_s"]);
    // and the flags name themselves
    let out = agegender(&["run", "--motion-threshold=-0.1"]);
    one_error(&out, 2, &["--motion-threshold"]);
    // A config file that does not exist.
    let nothere = tmp.path().join("nothere.toml");
    let out = agegender(&["image", "x.jpg", "--config", s(&nothere)]);
    one_error(&out, 2, &[s(&nothere)]);
}

/// A bad value is reported where it came from: the flag the user typed, or the file. A rule
/// between two keys, broken by a flag over a file that passed, names that flag.
#[test]
fn config_errors_name_the_flag_or_the_file_the_value_came_from() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("kiosk.toml");
    // Flags in seconds drop the key's `_s`; the message names the flag as typed.
    one_error(
        &agegender(&["run", "--classify-refresh=-1"]),
        2,
        &["--classify-refresh:", "seconds"],
    );
    one_error(
        &agegender(&["run", "--watchdog-timeout", "0"]),
        2,
        &["--watchdog-timeout:"],
    );
    one_error(
        &agegender(&["run", "--screen-notice", "d\u{e9}bogage"]),
        2,
        &["--screen-notice:", "ASCII"],
    );
    // The file sets a CA, which is fine with an mqtts:// broker; the flag then names a plain
    // broker: the error is the flag's.
    std::fs::write(
        &cfg,
        "mqtt = \"mqtts://broker.example\"\nmqtt_ca = \"ca.pem\"\n",
    )
    .unwrap();
    let e = one_error(
        &agegender(&[
            "bench",
            "--source",
            "x.mjpeg",
            "--config",
            s(&cfg),
            "--mqtt",
            "mqtt://broker.example",
        ]),
        2,
        &["--mqtt:", "mqtts://"],
    );
    assert!(!e.contains(s(&cfg)), "{e}");
    // The same value from the file names the file and the key.
    std::fs::write(
        &cfg,
        "mqtt = \"mqtt://broker.example\"\nmqtt_ca = \"ca.pem\"\n",
    )
    .unwrap();
    one_error(
        &agegender(&["bench", "--source", "x.mjpeg", "--config", s(&cfg)]),
        2,
        &[s(&cfg), "`mqtt_ca`"],
    );
}

/// Every flag that the command line lays over the config (`overlay!` in src/cli/) is a flag
/// of the commands that use it: an error never names a flag that does not exist.
#[test]
fn every_overlaid_flag_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let help = |cmd: &str| {
        let out = agegender(&[cmd, "--help"]);
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let (run, bench, image, eval) = (help("run"), help("bench"), help("image"), help("eval"));
    let mut seen = 0;
    for (file, helps) in [
        ("src/cli/args.rs", vec![&run, &bench, &image, &eval]),
        ("src/cli/run.rs", vec![&run]),
        ("src/cli/bench.rs", vec![&bench]),
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        // `overlay!(cfg, value, key, "--flag")`, on one line or several
        for (at, _) in text.match_indices("overlay!(") {
            let call = &text[at + "overlay!(".len()..];
            let Some(flag) = call
                .split('"')
                .nth(1)
                .filter(|f| f.starts_with("--") && *f != "--flag")
            else {
                continue;
            };
            seen += 1;
            // the base flags are every command's; those of the flag groups that `apply`
            // themselves (detection, MQTT) are run's and bench's
            let in_group = text[..at].rfind("fn apply") > text[..at].rfind("fn base_config");
            let wanted: Vec<&String> = if file.ends_with("args.rs") && in_group {
                vec![&run, &bench]
            } else {
                helps.clone()
            };
            for h in wanted {
                assert!(
                    h.contains(&format!("{flag} ")) || h.contains(&format!("{flag}\n")),
                    "{file}: {flag} is not a flag of every command that lays it over the config"
                );
            }
        }
    }
    assert!(seen > 40, "found only {seen} overlaid flags");
}

#[test]
fn usage_errors_are_one_line_with_exit_2() {
    one_error(
        &agegender(&["run", "--max-frames", "many"]),
        2,
        &["--max-frames"],
    );
    one_error(
        &agegender(&["run", "--no-such-flag"]),
        2,
        &["--no-such-flag"],
    );
    one_error(
        &agegender(&["run", "--max-faces", "0"]),
        2,
        &["--max-faces"],
    );
    one_error(&agegender(&["image"]), 2, &["FILE"]);
    // The abstention thresholds: a gender probability is ≥ 0.5, a bucket's in 0..=1.
    one_error(
        &agegender(&["image", "x.jpg", "--gender-min-p", "0.3"]),
        2,
        &["--gender-min-p", "0.5"],
    );
    one_error(
        &agegender(&["eval", "--faces", ".", "--bucket-min-p", "1.5"]),
        2,
        &["--bucket-min-p"],
    );
    // classify tracks, not frames: factors ≥ 1, and eval --sequences' own flags
    one_error(
        &agegender(&["run", "--classify-grow", "0.5"]),
        2,
        &["--classify-grow"],
    );
    one_error(
        &agegender(&["bench", "--source", "x.mjpeg", "--clock-fps=-1"]),
        2,
        &["--clock-fps", "-1"],
    );
    one_error(
        &agegender(&["bench", "--source", "x", "--classify-refresh=-1"]),
        2,
        &["--classify-refresh"],
    );
    one_error(
        &agegender(&["eval", "--faces", ".", "--sequences", "--frames", "1"]),
        2,
        &["--frames"],
    );
    one_error(
        &agegender(&["eval", "--faces", ".", "--frames", "8"]),
        2,
        &["--sequences"],
    );
}

#[test]
fn missing_source_names_it() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("nothing.mjpeg");
    let out = agegender(&[
        "run",
        "--source",
        s(&src),
        "--model",
        s(&common::classifier_model()),
        "--detector",
        s(&common::blazeface_model(false)),
    ]);
    one_error(&out, 1, &[s(&src)]);
}

#[test]
fn display_that_cannot_open_runs_headless() {
    let tmp = tempfile::tempdir().unwrap();
    let faces = common::utk_faces(1, 11);
    let mut stream = Vec::new();
    for i in 0..3u32 {
        let (jpeg, _) = common::face_frame(
            &[(faces[0].clone(), [60 + 4 * i, 40, 200 + 4 * i, 180])],
            320,
            240,
        );
        stream.extend_from_slice(&jpeg);
    }
    let src = tmp.path().join("clip.mjpeg");
    std::fs::write(&src, stream).unwrap();
    let fb = tmp.path().join("no-fb0");
    let out = agegender(&[
        "run",
        "--source",
        s(&src),
        "--fps",
        "0",
        "--display",
        &format!("fb:{}", s(&fb)),
        "--serial",
        "-",
        "--model",
        s(&common::classifier_model()),
        "--detector",
        s(&common::blazeface_model(false)),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    assert!(error_lines(&out).is_empty(), "{stderr}");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("agegender: warning:"))
        .collect();
    assert_eq!(warnings.len(), 1, "one warning: {stderr}");
    assert!(
        warnings[0].contains(s(&fb)) && warnings[0].contains("headless"),
        "{}",
        warnings[0]
    );
    // the loop ran: face lines and a final status line on stdout
    let stdout = String::from_utf8_lossy(&out.stdout);
    let faces = stdout
        .lines()
        .filter(|l| l.contains("\"type\":\"face\""))
        .count();
    assert!(faces >= 2, "face lines: {stdout}");
    assert!(
        stdout.lines().last().unwrap().contains("\"frames\":3"),
        "{stdout}"
    );
}

/// Privacy: frames reach the disk only with `--save-frames` (and then only frames that show a
/// face); the same run without it writes nothing next to it.
#[test]
fn frames_are_saved_only_when_asked_and_only_with_faces() {
    let tmp = tempfile::tempdir().unwrap();
    let faces = common::utk_faces(1, 12);
    let mut stream = Vec::new();
    for i in 0..4u32 {
        let placed = [(faces[0].clone(), [60 + 4 * i, 40, 200 + 4 * i, 180])];
        // frames 0 and 2 show a face, 1 and 3 are empty
        let (jpeg, _) = common::face_frame(if i % 2 == 0 { &placed } else { &[] }, 320, 240);
        stream.extend_from_slice(&jpeg);
    }
    let src = tmp.path().join("clip.mjpeg");
    std::fs::write(&src, stream).unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let saved = tmp.path().join("saved");
    let model = common::classifier_model();
    let detector = common::blazeface_model(false);
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "--source",
            s(&src),
            "--fps",
            "0",
            "--serial",
            "-",
            "--model",
            s(&model),
            "--detector",
            s(&detector),
        ];
        args.extend_from_slice(extra);
        let out = common::agegender_command()
            .args(&args)
            .current_dir(&work)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };

    run(&[]);
    assert_eq!(std::fs::read_dir(&work).unwrap().count(), 0);
    assert!(!saved.exists());

    run(&["--save-frames", s(&saved)]);
    assert_eq!(std::fs::read_dir(&work).unwrap().count(), 0);
    let mut names: Vec<String> = std::fs::read_dir(&saved)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["face_000001.png", "face_000002.png"]);
    let img = image::open(saved.join(&names[0])).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (320, 240));

    // The screen notice (the image's debug shell): a band along the bottom of every frame shown,
    // and only when asked.
    let amber = |dir: &Path| {
        let img = image::open(dir.join("frame_000001.png")).unwrap().to_rgb8();
        let c = agegender::draw::NOTICE_COLOR;
        (0..img.width())
            .filter(|&x| img.get_pixel(x, img.height() - 1).0 == [c.r(), c.g(), c.b()])
            .count()
    };
    let plain = tmp.path().join("plain");
    run(&["--display", &format!("png:{}", s(&plain))]);
    assert_eq!(amber(&plain), 0, "no notice unless asked");
    let noticed = tmp.path().join("noticed");
    run(&[
        "--display",
        &format!("png:{}", s(&noticed)),
        "--screen-notice",
        "DEBUG SHELL ON ttyUSB0",
    ]);
    assert_eq!(
        amber(&noticed),
        320,
        "the notice's band spans the bottom row"
    );
}

/// Without the `multithread` feature more than one inference thread is refused, saying how to
/// get it, before any model is loaded.
#[cfg(not(feature = "multithread"))]
#[test]
fn threads_beyond_one_need_the_multithread_build() {
    let out = agegender(&["image", "nothere.jpg", "--threads", "2"]);
    one_error(&out, 2, &["threads = 2", "--features multithread"]);
}

/// The classifier's form is chosen from the CPU (`auto`), set (`--model-form`), or follows the
/// file given (`--model` with a quantized file runs int8); the status line and `--version` say
/// which and why.
#[test]
fn model_form_is_chosen_per_cpu_and_said_in_status_and_version() {
    let tmp = tempfile::tempdir().unwrap();
    let faces = common::utk_faces(1, 12);
    let (jpeg, _) = common::face_frame(&[(faces[0].clone(), [60, 40, 200, 180])], 320, 240);
    let src = tmp.path().join("face.jpg");
    std::fs::write(&src, jpeg).unwrap();
    let detector = common::blazeface_model(false);
    let status = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec![
            "run",
            "--source",
            s(&src),
            "--serial",
            "-",
            "--detector",
            s(&detector),
        ];
        args.extend_from_slice(extra);
        let out = common::agegender_command()
            .args(&args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        assert!(stderr.contains("agegender: classifier: "), "{stderr}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .rfind(|l| l["type"] == "status")
            .expect("a status line")
    };
    // auto: no arm64 fp16 on the machines the tests run on (x86-64; qemu-user shows tract the
    // host's /proc/cpuinfo), so f32 everywhere they run.
    let auto = status(&[]);
    assert_eq!(auto["model_form"], "f32", "{auto}");
    assert!(auto["model_form_why"]
        .as_str()
        .unwrap()
        .starts_with("auto: "));
    let set = status(&["--model-form", "int8"]);
    assert_eq!(set["model_form"], "int8");
    assert_eq!(set["model_form_why"], "model_form = int8 (set)");
    let int8 = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/agegender_int8.onnx");
    let file = status(&["--model", s(&int8)]);
    assert_eq!(file["model_form"], "int8");
    assert!(file["model_form_why"]
        .as_str()
        .unwrap()
        .contains("quantized"));

    let out = agegender(&["--version"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "classifier form on this CPU ({}): f32: auto: ",
            std::env::consts::ARCH
        )),
        "{text}"
    );
    // f16 where there is no fp16 arithmetic is refused, not emulated at 40 s a face.
    let out = agegender(&["image", s(&src), "--model-form", "f16"]);
    one_error(&out, 2, &["model_form", "asimdhp"]);
}
