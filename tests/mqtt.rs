//! The MQTT publisher against a real broker: Debian's `mosquitto`, started here on 127.0.0.1
//! with a free port and its own config file, and a real subscriber (`mosquitto_sub`). The kiosk
//! is the real binary replaying a generated stream. Covered: topics, payloads against the
//! schema, QoS 1 visits, the retained availability and the Last Will when the kiosk is killed,
//! the broker stopped and restarted mid-run (the loop keeps its rate, the outage's visits arrive
//! afterwards, drops are counted), TLS with a CA made here and a password file, a wrong password
//! and an untrusted certificate (one error line; the serial log goes on), and no network socket
//! at all without `--mqtt`.
//!
//! Needs `mosquitto` and `mosquitto-clients` (scripts/setup installs them) and `openssl`.

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::process::{finish, Lines};

/// Generous: the suite runs on a loaded 2-core machine.
const WAIT: Duration = Duration::from_secs(60);

/// One test at a time: each runs a kiosk with both models, and the restart test measures the
/// loop's rate, which other kiosks on the same cores would disturb.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn need(tool: &str) {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
        || Path::new("/usr/sbin").join(tool).is_file();
    assert!(
        ok,
        "{tool} is not installed: run scripts/setup --deps (apt: mosquitto mosquitto-clients)"
    );
}

fn mosquitto_bin() -> PathBuf {
    need("mosquitto");
    for p in ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"] {
        if Path::new(p).is_file() {
            return PathBuf::from(p);
        }
    }
    PathBuf::from("mosquitto")
}

fn whoami() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Poll `f` every 50 ms until it returns Some, or panic after `limit` naming `what`.
fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A mosquitto process with its own config in `dir`, killed on drop.
struct Broker {
    child: Option<Child>,
    port: u16,
    conf: PathBuf,
    log: PathBuf,
}

impl Broker {
    /// `extra`: more config lines (TLS, passwords) for the listener on `port`.
    fn start(dir: &Path, port: u16, extra: &str) -> Broker {
        let conf = dir.join(format!("mosquitto-{port}.conf"));
        let db = dir.join("db");
        std::fs::create_dir_all(&db).unwrap();
        std::fs::write(
            &conf,
            format!(
                // `user`: started as root, mosquitto would switch to the `mosquitto` user,
                // which cannot read this test's private files; it stays who we are
                "user {}\nlistener {port} 127.0.0.1\n{extra}\npersistence true\npersistence_location {}/\n",
                whoami(),
                db.display()
            ),
        )
        .unwrap();
        let mut b = Broker {
            child: None,
            port,
            conf,
            log: dir.join(format!("mosquitto-{port}.log")),
        };
        b.restart();
        b
    }

    fn restart(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(mosquitto_bin())
            .arg("-c")
            .arg(&self.conf)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        let port = self.port;
        wait_for("mosquitto to listen", WAIT, || {
            if let Ok(Some(st)) = self.child.as_mut().unwrap().try_wait() {
                panic!(
                    "mosquitto exited ({st}): {}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            TcpStream::connect(("127.0.0.1", port)).ok()
        });
    }

    /// SIGTERM (mosquitto saves its persistent sessions) and wait for it to exit.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            common::process::signal(&c, "-TERM");
            let _ = c.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A `mosquitto_sub` on `agegender/#` printing `topic qos retained payload`, with a persistent
/// session (`-c -i ID`, QoS 1) so that it misses nothing across a broker restart. Returns once
/// it is subscribed (a probe message came through).
struct Subscriber {
    child: Child,
    lines: Lines,
}

impl Subscriber {
    fn start(port: u16, id: &str, extra: &[&str]) -> Subscriber {
        need("mosquitto_sub");
        let mut child = Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1", "-c"])
            .args(["-i", id, "-t", "agegender/#", "-F", "%t %q %r %p"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto_sub");
        let lines = Lines::collect(child.stdout.take().unwrap());
        let s = Subscriber { child, lines };
        wait_for("the subscriber to be subscribed", WAIT, || {
            let _ = Command::new("mosquitto_pub")
                .args(["-h", "127.0.0.1", "-p", &port.to_string()])
                .args(["-t", "agegender/probe", "-m", "ready"])
                .args(extra)
                .status();
            std::thread::sleep(Duration::from_millis(200));
            s.messages()
                .iter()
                .any(|m| m.topic == "agegender/probe")
                .then_some(())
        });
        s
    }

    fn messages(&self) -> Vec<Message> {
        self.lines
            .all()
            .iter()
            .filter_map(|l| Message::parse(l))
            .collect()
    }

    /// Messages on `<...>/<leaf>`.
    fn on(&self, leaf: &str) -> Vec<Message> {
        self.messages()
            .into_iter()
            .filter(|m| m.topic.rsplit('/').next() == Some(leaf))
            .collect()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Clone, Debug)]
struct Message {
    topic: String,
    qos: u8,
    retained: bool,
    payload: String,
}

impl Message {
    fn parse(l: &str) -> Option<Message> {
        let mut p = l.splitn(4, ' ');
        Some(Message {
            topic: p.next()?.to_string(),
            qos: p.next()?.parse().ok()?,
            retained: p.next()? == "1",
            payload: p.next().unwrap_or("").to_string(),
        })
    }
    fn json(&self) -> Value {
        serde_json::from_str(&self.payload)
            .unwrap_or_else(|e| panic!("not JSON on {}: {}: {e}", self.topic, self.payload))
    }
}

fn validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src/report.schema.json"),
    )
    .unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
}

fn assert_valid(v: &jsonschema::Validator, line: &Value) {
    let errors: Vec<String> = v.iter_errors(line).map(|e| e.to_string()).collect();
    assert!(
        errors.is_empty(),
        "{line} does not match the schema: {errors:?}"
    );
}

/// A 320×240 `.mjpeg` of `cycles` × 40 frames: in each cycle a face (a different one each
/// cycle, at a different place) is in view for frames 0..=19 and gone for 20..=39. At 20 fps
/// that is one visit of 0.95 s every 2 s.
fn clip(dir: &Path, cycles: usize) -> PathBuf {
    let faces = common::utk_faces(cycles.min(4), 21);
    let boxes = [
        [20, 30, 140, 150],
        [170, 60, 290, 180],
        [90, 20, 210, 140],
        [40, 100, 160, 220],
    ];
    let empty = common::face_frame(&[], 320, 240).0;
    let mut stream = Vec::new();
    for c in 0..cycles {
        let with =
            common::face_frame(&[(faces[c % faces.len()].clone(), boxes[c % 4])], 320, 240).0;
        for i in 0..40 {
            stream.extend_from_slice(if i < 20 { &with } else { &empty });
        }
    }
    let path = dir.join("cycles.mjpeg");
    std::fs::write(&path, stream).unwrap();
    path
}

/// `agegender run` over `source` at 20 fps with visits of ≥ 0.5 s, status lines every second
/// and `extra` flags; stdout and stderr piped.
fn kiosk(source: &Path, extra: &[&str]) -> Command {
    kiosk_status_every(source, "1", extra)
}

/// [`kiosk`] with status lines every `status_interval` seconds.
fn kiosk_status_every(source: &Path, status_interval: &str, extra: &[&str]) -> Command {
    let mut c = common::agegender_command();
    c.arg("run")
        .arg("--source")
        .arg(source)
        .args(["--fps", "20", "--serial", "-", "--min-dwell", "0.5"])
        .args(["--status-interval", status_interval, "--model"])
        .arg(common::classifier_model())
        .arg("--detector")
        .arg(common::blazeface_model(false))
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn json_lines(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn of_type<'a>(lines: &'a [Value], t: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["type"] == t).collect()
}

#[test]
fn publishes_each_line_type_on_its_topic_with_its_qos_and_marks_availability() {
    let _one = one_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    let broker = Broker::start(tmp.path(), free_port(), "allow_anonymous true");
    let sub = Subscriber::start(broker.port, "t-topics", &[]);
    let source = clip(tmp.path(), 3);
    let url = format!("mqtt://127.0.0.1:{}", broker.port);
    let out = finish(
        kiosk(&source, &["--mqtt", &url, "--mqtt-client-id", "kiosk-a"]).args([
            "--mqtt-faces",
            "--counts-interval",
            "2",
        ]),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let serial: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let serial_json = json_lines(&serial);
    assert_eq!(of_type(&serial_json, "visit").len(), 3, "{serial:?}");
    // The clean exit sends `offline` after everything else.
    wait_for("availability offline", WAIT, || {
        sub.on("availability")
            .iter()
            .any(|m| m.payload == "offline")
            .then_some(())
    });
    let v = validator();
    let msgs = sub.messages();
    for m in msgs.iter().filter(|m| m.topic != "agegender/probe") {
        let leaf = m
            .topic
            .strip_prefix("agegender/kiosk-a/")
            .unwrap_or_else(|| panic!("topic {} is not under agegender/kiosk-a/", m.topic));
        if leaf == "availability" {
            assert!(m.payload == "online" || m.payload == "offline", "{m:?}");
            assert_eq!(m.qos, 1, "{m:?}");
            continue;
        }
        let line = m.json();
        assert_valid(&v, &line);
        assert_eq!(line["type"], leaf, "{m:?}");
        let want_qos = if leaf == "visit" || leaf == "counts" {
            1
        } else {
            0
        };
        assert_eq!(m.qos, want_qos, "{m:?}");
    }
    let avail: Vec<&str> = sub
        .on("availability")
        .iter()
        .map(|m| m.payload.as_str())
        .map(|p| if p == "online" { "online" } else { "offline" })
        .collect();
    assert_eq!(avail, ["online", "offline"]);
    // Every visit and counts line of the serial log, byte for byte, in order (QoS 1).
    for t in ["visit", "counts"] {
        let serial_t: Vec<&String> = serial
            .iter()
            .filter(|l| l.contains(&format!("\"type\":\"{t}\"")))
            .collect();
        let mqtt_t: Vec<String> = sub.on(t).into_iter().map(|m| m.payload).collect();
        assert_eq!(mqtt_t.len(), serial_t.len(), "{t}: {mqtt_t:?}");
        for (a, b) in mqtt_t.iter().zip(serial_t) {
            assert_eq!(a, b);
        }
    }
    // Faces: QoS 0 on a local broker, all of them.
    assert_eq!(sub.on("face").len(), of_type(&serial_json, "face").len());
    // The last status line says connected, nothing dropped.
    let last = of_type(&serial_json, "status")
        .last()
        .copied()
        .unwrap()
        .clone();
    assert_eq!(last["mqtt"], "connected", "{last}");
    assert_eq!(last["mqtt_dropped"], 0, "{last}");
    // A subscriber that comes later gets the retained `offline`.
    assert_retained_offline(broker.port, "t-late");
}

/// A subscriber that comes now gets the retained `offline` availability.
fn assert_retained_offline(port: u16, client: &str) {
    let late = Subscriber::start(port, client, &[]);
    let a = wait_for("the retained availability", WAIT, || {
        late.on("availability").into_iter().next()
    });
    assert_eq!((a.payload.as_str(), a.retained), ("offline", true));
}

#[test]
fn last_will_marks_a_killed_kiosk_offline() {
    let _one = one_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    let broker = Broker::start(tmp.path(), free_port(), "allow_anonymous true");
    let sub = Subscriber::start(broker.port, "t-will", &[]);
    let source = clip(tmp.path(), 2);
    let url = format!("mqtt://127.0.0.1:{}", broker.port);
    let mut child = kiosk(
        &source,
        &["--mqtt", &url, "--mqtt-client-id", "kiosk-w", "--loop"],
    )
    .spawn()
    .unwrap();
    let _out = Lines::collect(child.stdout.take().unwrap());
    let _err = Lines::collect(child.stderr.take().unwrap());
    wait_for("availability online", WAIT, || {
        sub.on("availability")
            .iter()
            .any(|m| m.payload == "online")
            .then_some(())
    });
    child.kill().unwrap(); // SIGKILL: no goodbye from the kiosk
    child.wait().unwrap();
    let will = wait_for("the Last Will", WAIT, || {
        sub.on("availability")
            .into_iter()
            .find(|m| m.payload == "offline")
    });
    assert_eq!(will.topic, "agegender/kiosk-w/availability");
    assert_eq!(will.qos, 1);
    assert_retained_offline(broker.port, "t-will-late");
}

/// `systemctl stop` of a kiosk with people in view: SIGTERM ends the run as the end of its
/// stream does, and their visits, the last counts and the last status reach the broker before
/// the kiosk exits (status 0), then it marks itself offline.
#[test]
fn a_stopped_kiosk_delivers_the_visits_in_progress_to_the_broker() {
    let _one = one_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    let broker = Broker::start(tmp.path(), free_port(), "allow_anonymous true");
    let sub = Subscriber::start(broker.port, "t-stop", &[]);
    // one person in view all along, swaying (the clip ends where it starts: no seam), looped
    let face = common::utk_faces(1, 21);
    let mut stream = Vec::new();
    for i in 0..40u32 {
        let dx = (i % 40).min(40 - i % 40);
        let b = [60 + dx, 40, 180 + dx, 160];
        stream.extend_from_slice(&common::face_frame(&[(face[0].clone(), b)], 320, 240).0);
    }
    let source = tmp.path().join("standing.mjpeg");
    std::fs::write(&source, stream).unwrap();
    let url = format!("mqtt://127.0.0.1:{}", broker.port);
    let mut child = kiosk(
        &source,
        &["--mqtt", &url, "--mqtt-client-id", "kiosk-s", "--loop"],
    )
    .spawn()
    .unwrap();
    let out = Lines::collect(child.stdout.take().unwrap());
    let err = Lines::collect(child.stderr.take().unwrap());
    wait_for("availability online and 30 face lines", WAIT, || {
        let faces = out
            .all()
            .iter()
            .filter(|l| l.contains("\"type\":\"face\""))
            .count();
        (faces >= 30 && sub.on("availability").iter().any(|m| m.payload == "online")).then_some(())
    });
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "exit {status}: {:?}", err.all());
    let serial = json_lines(&out.all());
    let visits = of_type(&serial, "visit");
    assert_eq!(
        visits.len(),
        1,
        "the person in view became a visit: {visits:?}"
    );
    let last = serial.last().unwrap();
    assert_eq!(last["camera"], "stopped", "{last}");
    let want: std::collections::BTreeSet<u64> = visits
        .iter()
        .map(|v| v["track_id"].as_u64().unwrap())
        .collect();
    let got = wait_for("every visit at the broker", WAIT, || {
        let got: std::collections::BTreeSet<u64> = sub
            .on("visit")
            .iter()
            .map(|m| m.json()["track_id"].as_u64().unwrap())
            .collect();
        (got == want).then_some(got)
    });
    assert_eq!(got, want);
    wait_for("the last status and counts at the broker", WAIT, || {
        let stopped = sub
            .on("status")
            .iter()
            .any(|m| m.json()["camera"] == "stopped");
        (stopped && !sub.on("counts").is_empty()).then_some(())
    });
    wait_for("availability offline", WAIT, || {
        sub.on("availability")
            .iter()
            .any(|m| m.payload == "offline")
            .then_some(())
    });
}

/// The broker goes away for a while and comes back. The frame loop goes on (its status lines
/// during the outage count more frames each time), every
/// visit of the serial log reaches the subscriber (those of the outage after it), the status
/// lines say `disconnected` meanwhile, and the QoS 0 status lines the outage cost are counted in
/// `mqtt_dropped`.
#[test]
fn broker_restart_mid_run_loses_no_visit_and_never_blocks_the_loop() {
    let _one = one_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    let mut broker = Broker::start(tmp.path(), free_port(), "allow_anonymous true");
    let sub = Subscriber::start(broker.port, "t-restart", &[]);
    let source = clip(tmp.path(), 4);
    let url = format!("mqtt://127.0.0.1:{}", broker.port);
    // 4 cycles × 40 frames = 8 s of stream, looped to 24 s (480 frames): 12 visits.
    let mut child = kiosk(
        &source,
        &["--mqtt", &url, "--mqtt-client-id", "kiosk-r", "--loop"],
    )
    .args(["--max-frames", "480"])
    .spawn()
    .unwrap();
    let out = Lines::collect(child.stdout.take().unwrap());
    let err = Lines::collect(child.stderr.take().unwrap());
    // Connected and running for a while: a visit through, and 4 status lines for the rate.
    wait_for("a first visit over MQTT and 4 status lines", WAIT, || {
        let statuses = out
            .all()
            .iter()
            .filter(|l| l.contains("\"type\":\"status\""))
            .count();
        (!sub.on("visit").is_empty() && statuses >= 4).then_some(())
    });
    broker.stop();
    let stopped = Instant::now();
    // Away long enough for two visits to end and the status to say so.
    wait_for(
        "two visits on the serial log during the outage",
        WAIT,
        || {
            let visits_after = out
                .timed()
                .iter()
                .filter(|(t, l)| *t > stopped && l.contains("\"type\":\"visit\""))
                .count();
            let said = out
                .timed()
                .iter()
                .any(|(t, l)| *t > stopped && l.contains("\"mqtt\":\"disconnected\""));
            (visits_after >= 2 && said).then_some(())
        },
    );
    broker.restart();
    let restarted = Instant::now();
    let status = child.wait().unwrap();
    assert!(status.success(), "{:?}", err.all());
    let serial = json_lines(&out.all());
    let visits = of_type(&serial, "visit");
    assert_eq!(visits.len(), 12, "{visits:?}");
    // Every visit arrives (QoS 1, at least once: a line in flight at the break may come twice).
    let ids = |ms: &[Message]| -> std::collections::BTreeSet<u64> {
        ms.iter()
            .map(|m| m.json()["track_id"].as_u64().unwrap())
            .collect()
    };
    let want: std::collections::BTreeSet<u64> = visits
        .iter()
        .map(|v| v["track_id"].as_u64().unwrap())
        .collect();
    let got = wait_for("every visit over MQTT", WAIT, || {
        let got = ids(&sub.on("visit"));
        (got == want).then_some(got)
    });
    assert_eq!(got, want);
    // The outage's visits came after the restart.
    let outage_visits = out
        .timed()
        .iter()
        .filter(|(t, l)| *t > stopped && *t < restarted && l.contains("\"type\":\"visit\""))
        .count();
    assert!(outage_visits >= 2);
    // The loop went on during the outage: status lines (every second) kept coming, each with
    // more frames than the last (a loop blocked on the publisher would write none). How fast
    // it went is the machine's speed, which the benchmarks measure, not this test.
    let frames_in = |from: Instant, to: Instant| -> Vec<u64> {
        out.timed()
            .iter()
            .filter(|(t, l)| *t > from && *t < to && l.contains("\"type\":\"status\""))
            .map(|(_, l)| {
                serde_json::from_str::<Value>(l).unwrap()["frames"]
                    .as_u64()
                    .unwrap()
            })
            .collect()
    };
    let during = frames_in(stopped, restarted);
    eprintln!("frames in the status lines of the outage: {during:?}");
    assert!(
        during.len() >= 2,
        "status lines during the outage: {during:?}"
    );
    assert!(
        during.windows(2).all(|w| w[0] < w[1]),
        "the loop stalled during the outage: {during:?}"
    );
    let statuses = of_type(&serial, "status");
    let last = statuses.last().unwrap();
    assert_eq!(last["mqtt"], "connected", "{last}");
    let dropped = last["mqtt_dropped"].as_u64().unwrap();
    assert!(
        dropped >= 1,
        "status lines of the outage counted as dropped: {last}"
    );
    // Every status line went out or was counted (the last one is sent after its own count).
    let received = sub.on("status").len() as u64;
    assert!(
        received + dropped >= statuses.len() as u64 - 1,
        "{received} status lines received, {dropped} dropped, {} written",
        statuses.len()
    );
    let errs = err.all();
    assert!(
        errs.iter()
            .any(|l| l.contains("connected to") && l.contains("again")),
        "{errs:?}"
    );
}

/// Makes a CA and a server certificate for 127.0.0.1 with the openssl CLI.
fn make_ca(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    make_ca_for(dir, name, "IP:127.0.0.1,DNS:localhost")
}

/// Makes a CA and a server certificate for the names `san` (openssl's subjectAltName syntax).
fn make_ca_for(dir: &Path, name: &str, san: &str) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ca_key = format!("{name}-ca.key");
    let ca = format!("{name}-ca.pem");
    let key = format!("{name}-server.key");
    let csr = format!("{name}-server.csr");
    let cert = format!("{name}-server.pem");
    let ext = format!("{name}-ext.cnf");
    std::fs::write(dir.join(&ext), format!("subjectAltName={san}\n")).unwrap();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        &format!("/CN={name} test CA"),
        "-keyout",
        &ca_key,
        "-out",
        &ca,
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        &key,
        "-out",
        &csr,
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &ext,
        "-out",
        &cert,
    ]);
    (dir.join(ca), dir.join(cert), dir.join(key))
}

/// mqtts:// with a CA made here, a user and a password file: visits arrive; a wrong password
/// and a certificate from another CA are each one error line, and the serial log is complete.
#[test]
fn tls_with_a_password_file_and_the_two_ways_it_is_refused() {
    let _one = one_at_a_time();
    need("mosquitto_passwd");
    let tmp = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_ca(tmp.path(), "good");
    let (other_ca, _, _) = make_ca(tmp.path(), "other");
    let passwd = tmp.path().join("passwd");
    let st = Command::new("mosquitto_passwd")
        .args(["-c", "-b"])
        .arg(&passwd)
        .args(["kiosk", "s3cret word"])
        .status()
        .unwrap();
    assert!(st.success());
    let port = free_port();
    let broker = Broker::start(
        tmp.path(),
        port,
        &format!(
            "allow_anonymous false\npassword_file {}\ncafile {}\ncertfile {}\nkeyfile {}\n",
            passwd.display(),
            ca.display(),
            cert.display(),
            key.display()
        ),
    );
    let ca_s = ca.to_str().unwrap().to_string();
    let sub_auth = ["--cafile", &ca_s, "-u", "kiosk", "-P", "s3cret word"];
    let sub = Subscriber::start(broker.port, "t-tls", &sub_auth);
    let source = clip(tmp.path(), 2);
    let url = format!("mqtts://127.0.0.1:{port}");
    let private = |name: &str, text: &str| {
        use std::os::unix::fs::PermissionsExt;
        let p = tmp.path().join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p
    };
    // only the first line is the password (a comment may follow)
    let good_pw = private("good.pw", "s3cret word\nkiosk 7, set 2026-12-07\n");
    let bad_pw = private("bad.pw", "guess\n");
    let run = |ca: &Path, pw: &Path| {
        let out = finish(
            kiosk(&source, &["--mqtt", &url, "--mqtt-client-id", "kiosk-t"])
                .arg("--mqtt-ca")
                .arg(ca)
                .args(["--mqtt-user", "kiosk", "--mqtt-password-file"])
                .arg(pw),
        );
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(out.status.success(), "{stderr}");
        let serial = json_lines(
            &String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>(),
        );
        assert_eq!(
            of_type(&serial, "visit").len(),
            2,
            "the serial log is complete"
        );
        (serial, stderr)
    };

    let (_, stderr) = run(&ca, &good_pw);
    assert!(!stderr.contains("warning: mqtt"), "{stderr}");
    wait_for("two visits over TLS", WAIT, || {
        (sub.on("visit").len() == 2).then_some(())
    });

    for (ca, pw, says) in [
        (&ca, &bad_pw, "refused the connection"),
        (&other_ca, &good_pw, "certificate is not trusted"),
    ] {
        let (serial, stderr) = run(ca, pw);
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("warning: mqtt") && !l.contains("not delivered at exit"))
            .collect();
        eprintln!("{errors:?}");
        assert_eq!(errors.len(), 1, "one error line: {stderr}");
        assert!(errors[0].contains(says), "{stderr}");
        let last = of_type(&serial, "status").last().copied().unwrap().clone();
        assert_eq!(last["mqtt"], "disconnected", "{last}");
    }
    assert_eq!(sub.on("visit").len(), 2, "nothing more arrived");

    // A password file that others may read is refused at start, naming it and its mode.
    let open_pw = tmp.path().join("open.pw");
    std::fs::write(&open_pw, "s3cret word\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&open_pw, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let out = finish(
        kiosk(&source, &["--mqtt", &url, "--mqtt-client-id", "kiosk-t"])
            .arg("--mqtt-ca")
            .arg(&ca)
            .args(["--mqtt-user", "kiosk", "--mqtt-password-file"])
            .arg(&open_pw),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("open.pw") && stderr.contains("644") && stderr.contains("chmod 600"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "no line before the error");
    drop(broker);

    // A broker whose certificate (from a trusted CA) was issued for another host: refused.
    let (elsewhere_ca, cert, key) = make_ca_for(tmp.path(), "elsewhere", "DNS:broker.example");
    let port = free_port();
    let _broker = Broker::start(
        tmp.path(),
        port,
        &format!(
            "allow_anonymous true\ncafile {}\ncertfile {}\nkeyfile {}\n",
            elsewhere_ca.display(),
            cert.display(),
            key.display()
        ),
    );
    let url = format!("mqtts://127.0.0.1:{port}");
    let out = finish(
        kiosk(&source, &["--mqtt", &url, "--mqtt-client-id", "kiosk-h"])
            .arg("--mqtt-ca")
            .arg(&elsewhere_ca),
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("warning: mqtt") && !l.contains("not delivered at exit"))
        .collect();
    assert_eq!(errors.len(), 1, "one error line: {stderr}");
    assert!(errors[0].contains("not issued for the host"), "{stderr}");
}

/// The fds of a process that are sockets.
fn sockets(pid: u32) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    rd.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|l| l.to_string_lossy().into_owned())
        .filter(|l| l.starts_with("socket:"))
        .collect()
}

/// Without `--mqtt`, the running kiosk holds no socket at all (looked at in /proc while it
/// runs); with it, it does (the same check sees the broker connection).
#[test]
fn without_mqtt_no_socket_is_opened() {
    let _one = one_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    let source = clip(tmp.path(), 2);
    let look = |extra: &[&str]| -> Vec<String> {
        let mut child = kiosk(&source, &["--loop", "--max-frames", "2000"])
            .args(extra)
            .env_remove("NOTIFY_SOCKET")
            .spawn()
            .unwrap();
        let out = Lines::collect(child.stdout.take().unwrap());
        let _err = Lines::collect(child.stderr.take().unwrap());
        let pid = child.id();
        // Running: a few face lines out, then look several times over a second.
        wait_for("face lines", WAIT, || (out.all().len() >= 5).then_some(()));
        let mut seen = Vec::new();
        for _ in 0..10 {
            seen.extend(sockets(pid));
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        seen
    };
    assert_eq!(look(&[]), Vec::<String>::new(), "sockets without --mqtt");
    let broker = Broker::start(tmp.path(), free_port(), "allow_anonymous true");
    let url = format!("mqtt://127.0.0.1:{}", broker.port);
    assert!(
        !look(&["--mqtt", &url, "--mqtt-client-id", "kiosk-s"]).is_empty(),
        "with --mqtt the check sees the broker connection"
    );
}

/// Bad MQTT settings stop the kiosk before it runs, with one line naming the key (and the
/// config file, or the file that cannot be read); exit code 2.
#[test]
fn bad_mqtt_settings_name_the_key_and_the_file() {
    let _one = one_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    let source = clip(tmp.path(), 1);
    let conf = tmp.path().join("kiosk.toml");
    let missing_ca = tmp.path().join("no-such-ca.pem");
    for (toml, flags, says) in [
        (
            "mqtt = \"tcp://broker:1883\"\n",
            vec![],
            vec!["kiosk.toml", "`mqtt`", "tcp://broker"],
        ),
        (
            "mqtt_qos_visit = 2\n",
            vec![],
            vec!["kiosk.toml", "mqtt_qos_visit"],
        ),
        (
            "mqtt_pasword_file = \"x\"\n",
            vec![],
            vec!["kiosk.toml", "mqtt_pasword_file"],
        ),
        (
            "",
            vec![
                "--mqtt",
                "mqtts://127.0.0.1:1",
                "--mqtt-ca",
                missing_ca.to_str().unwrap(),
            ],
            vec!["mqtt_ca", "no-such-ca.pem"],
        ),
        (
            "",
            vec!["--mqtt", "mqtt://127.0.0.1:1", "--mqtt-qos-face", "3"],
            vec!["--mqtt-qos-face"],
        ),
        // a password over plain mqtt://: the flag that made it plain is named
        (
            "mqtt_user = \"kiosk\"\nmqtt_password_file = \"/etc/agegender/mqtt.pw\"\n",
            vec!["--mqtt", "mqtt://127.0.0.1:1"],
            vec!["--mqtt:", "mqtts://", "mqtt_allow_plain_password"],
        ),
        (
            "",
            vec![
                "--mqtt",
                "mqtt://127.0.0.1:1",
                "--mqtt-topic-prefix",
                "$SYS/x",
            ],
            vec!["--mqtt-topic-prefix", "$"],
        ),
    ] {
        std::fs::write(&conf, toml).unwrap();
        let out = finish(kiosk(&source, &flags).arg("--config").arg(&conf));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{toml} {flags:?}: {stderr}");
        let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
        assert_eq!(errors.len(), 1, "{stderr}");
        for s in says {
            assert!(errors[0].contains(s), "{s} not in {stderr}");
        }
        assert!(out.stdout.is_empty(), "no line before the error");
    }
}

/// Copies bytes between a client and the broker, holding each chunk `delay` first: a broker
/// far away (or a slow TLS handshake).
fn delaying_proxy(to_port: u16, delay: Duration) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { break };
            let Ok(broker) = TcpStream::connect(("127.0.0.1", to_port)) else {
                continue;
            };
            for (mut from, mut to) in [
                (client.try_clone().unwrap(), broker.try_clone().unwrap()),
                (broker, client),
            ] {
                std::thread::spawn(move || {
                    use std::io::{Read, Write};
                    let mut buf = [0u8; 16 * 1024];
                    while let Ok(n) = from.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        std::thread::sleep(delay);
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = to.shutdown(std::net::Shutdown::Both);
                });
            }
        }
    });
    port
}

/// A broker 300 ms away (each direction): the connection is made and the visits arrive; the
/// frame loop does not wait for it.
#[test]
fn a_slow_broker_is_reached() {
    let _one = one_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    let broker = Broker::start(tmp.path(), free_port(), "allow_anonymous true");
    let sub = Subscriber::start(broker.port, "t-slow", &[]);
    let proxy = delaying_proxy(broker.port, Duration::from_millis(300));
    let source = clip(tmp.path(), 2);
    let url = format!("mqtt://127.0.0.1:{proxy}");
    let out = finish(&mut kiosk(
        &source,
        &["--mqtt", &url, "--mqtt-client-id", "kiosk-slow"],
    ));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("mqtt: connected to"), "{stderr}");
    assert!(!stderr.contains("warning: mqtt"), "{stderr}");
    wait_for("two visits through the slow link", WAIT, || {
        (sub.on("visit").len() == 2).then_some(())
    });
}

/// A broker that never answers and a queue of one line: the first QoS 1 lines wait (the
/// channel's one and the publisher's one), every other line is dropped and counted in the
/// status line, the frame loop finishes the stream all the same, and the waiting lines are named
/// at exit.
#[test]
fn lines_beyond_the_queue_bound_are_dropped_and_counted() {
    let _one = one_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    let source = clip(tmp.path(), 4);
    let nobody = free_port(); // nothing listens there
    let url = format!("mqtt://127.0.0.1:{nobody}");
    let out = finish(
        kiosk(&source, &["--mqtt", &url, "--mqtt-client-id", "kiosk-q"])
            .args(["--mqtt-queue", "1"]),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let serial = json_lines(
        &String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>(),
    );
    let visits = of_type(&serial, "visit").len();
    let counts = of_type(&serial, "counts").len();
    assert_eq!((visits, counts), (4, 1));
    let statuses = of_type(&serial, "status");
    let last = statuses.last().unwrap();
    assert_eq!(last["mqtt"], "disconnected", "{last}");
    // QoS 1 lines: 5, of which 2 wait; status lines before the last: all dropped (the last
    // one or two may still be on their way to the publisher thread when it is written).
    let dropped = last["mqtt_dropped"].as_u64().unwrap();
    let want = (visits + counts - 2) as u64 + statuses.len() as u64 - 1;
    assert!(
        dropped + 2 >= want && dropped <= want,
        "dropped {dropped}, about {want}: {last}"
    );
    assert!(stderr.contains("2 lines not delivered at exit"), "{stderr}");
    let refused: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("warning: mqtt") && !l.contains("at exit"))
        .collect();
    assert_eq!(
        refused.len(),
        1,
        "one line for the refused connection: {stderr}"
    );
}

/// A PUBLISH a [`StuckBroker`] received.
#[derive(Clone, Debug)]
struct Received {
    /// Which connection (0: the first).
    conn: usize,
    topic: String,
    qos: u8,
    at: Instant,
}

/// A broker that accepts connections, answers pings and acknowledges every QoS 1 PUBLISH except
/// those on `.../visit`: a broker stuck on one message while it keeps the connection alive, a
/// fault a real broker cannot be asked to show. MQTT 3.1.1 framing only, as much as the kiosk
/// sends; it closes a connection on DISCONNECT, as a broker must.
struct StuckBroker {
    port: u16,
    received: Arc<Mutex<Vec<Received>>>,
}

impl StuckBroker {
    fn start() -> StuckBroker {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let r = received.clone();
        std::thread::spawn(move || {
            for (conn, stream) in listener.incoming().enumerate() {
                let Ok(mut s) = stream else { return };
                let r = r.clone();
                std::thread::spawn(move || loop {
                    let mut head = [0u8; 1];
                    if s.read_exact(&mut head).is_err() {
                        return;
                    }
                    // remaining length: a base-128 varint
                    let (mut len, mut shift) = (0usize, 0);
                    loop {
                        let mut b = [0u8; 1];
                        if s.read_exact(&mut b).is_err() {
                            return;
                        }
                        len |= ((b[0] & 0x7f) as usize) << shift;
                        shift += 7;
                        if b[0] & 0x80 == 0 {
                            break;
                        }
                    }
                    let mut body = vec![0u8; len];
                    if s.read_exact(&mut body).is_err() {
                        return;
                    }
                    let reply: &[u8] = match head[0] >> 4 {
                        1 => &[0x20, 0x02, 0x00, 0x00], // CONNECT -> CONNACK, accepted
                        12 => &[0xd0, 0x00],            // PINGREQ -> PINGRESP
                        14 => return,                   // DISCONNECT: close
                        3 => {
                            let qos = (head[0] >> 1) & 3;
                            let n = u16::from_be_bytes([body[0], body[1]]) as usize;
                            let topic = String::from_utf8_lossy(&body[2..2 + n]).into_owned();
                            let stuck = topic.ends_with("/visit");
                            r.lock().unwrap().push(Received {
                                conn,
                                topic,
                                qos,
                                at: Instant::now(),
                            });
                            if qos == 1 && !stuck {
                                let _ = s.write_all(&[0x40, 0x02, body[2 + n], body[3 + n]]);
                            }
                            continue;
                        }
                        _ => continue,
                    };
                    if s.write_all(reply).is_err() {
                        return;
                    }
                });
            }
        });
        StuckBroker { port, received }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

/// A broker that keeps the connection (pings answered) but never acknowledges a visit: status
/// lines (QoS 0) go on arriving while the visit waits for its PUBACK, and after the ack deadline
/// the kiosk connects again and sends the visit again.
#[test]
fn a_stuck_acknowledgement_holds_no_qos0_line_and_the_kiosk_connects_again() {
    let _one = one_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    let broker = StuckBroker::start();
    let source = clip(tmp.path(), 4);
    let url = format!("mqtt://127.0.0.1:{}", broker.port);
    // keep-alive 5 s: an ack deadline of 10 s (agegender::mqtt::ack_deadline)
    let deadline = agegender::mqtt::ack_deadline(Duration::from_secs(5));
    let mut child = kiosk_status_every(
        &source,
        "0.5",
        &["--mqtt", &url, "--mqtt-client-id", "kiosk-stuck", "--loop"],
    )
    .args(["--mqtt-keep-alive", "5"])
    .spawn()
    .unwrap();
    let _out = Lines::collect(child.stdout.take().unwrap());
    let err = Lines::collect(child.stderr.take().unwrap());
    // The first visit is published, and never acknowledged.
    let first_visit = wait_for("a first visit at the broker", WAIT, || {
        broker
            .received()
            .into_iter()
            .find(|m| m.topic.ends_with("/visit"))
    });
    assert_eq!(first_visit.qos, 1);
    // The kiosk connects again once the deadline has passed, and sends the visit again.
    let again = wait_for("the visit sent again on a new connection", WAIT, || {
        broker
            .received()
            .into_iter()
            .find(|m| m.conn > first_visit.conn && m.topic.ends_with("/visit"))
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        again.at.duration_since(first_visit.at) >= deadline,
        "connected again before the deadline"
    );
    // Meanwhile, on the first connection, status lines (QoS 0, every 0.5 s) kept coming.
    let statuses_while_stuck = broker
        .received()
        .iter()
        .filter(|m| {
            m.conn == first_visit.conn
                && m.topic.ends_with("/status")
                && m.at > first_visit.at + Duration::from_secs(1)
        })
        .count();
    assert!(
        statuses_while_stuck >= 5,
        "QoS 0 lines held behind the unacknowledged visit: {statuses_while_stuck} status lines"
    );
    let warned: Vec<String> = err
        .all()
        .into_iter()
        .filter(|l| l.contains("no acknowledgement within"))
        .collect();
    assert!(!warned.is_empty(), "{:?}", err.all());
}

/// Two kiosks with one client id (a cloned card: the same machine id) knock each other off the
/// broker at every connect. The backoff keeps doubling (jittered) until a connection has lasted,
/// so in 20 s each connects at most 9 times, not every half second (about 40 times).
#[test]
fn two_kiosks_with_one_client_id_back_off() {
    let _one = one_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    let broker = Broker::start(tmp.path(), free_port(), "allow_anonymous true");
    let source = clip(tmp.path(), 2);
    let url = format!("mqtt://127.0.0.1:{}", broker.port);
    let start = || {
        let mut child = kiosk(
            &source,
            &["--mqtt", &url, "--mqtt-client-id", "kiosk-clone", "--loop"],
        )
        .args(["--max-frames", "400"])
        .spawn()
        .unwrap();
        let out = Lines::collect(child.stdout.take().unwrap());
        let err = Lines::collect(child.stderr.take().unwrap());
        (child, out, err)
    };
    let began = Instant::now();
    let (mut a, _a_out, a_err) = start();
    let (mut b, _b_out, b_err) = start();
    // 400 frames at 20 fps: 20 s of both kiosks fighting for the client id (longer on a slower
    // machine: the bound below is of the time they ran)
    for (child, err) in [(&mut a, &a_err), (&mut b, &b_err)] {
        let status = common::process::wait_exit(child, Duration::from_secs(300));
        assert!(status.success(), "{:?}", err.all());
    }
    let ran = began.elapsed().as_secs_f64();
    // The most connects the backoff allows in that time: the first, then one after each wait,
    // each at least half its backoff (0.5 s doubling to 8 s).
    let mut allowed = 1;
    let (mut t, mut backoff) = (0.0, 0.5_f64);
    loop {
        t += backoff / 2.0;
        if t > ran {
            break;
        }
        allowed += 1;
        backoff = (backoff * 2.0).min(8.0);
    }
    let connects = |err: &Lines| err.count("agegender: mqtt: connected to");
    let (ca, cb) = (connects(&a_err), connects(&b_err));
    eprintln!("connects in {ran:.1} s: {ca} and {cb} (at most {allowed})");
    assert!(ca >= 1 && cb >= 1, "{:?} {:?}", a_err.all(), b_err.all());
    assert!(
        ca <= allowed && cb <= allowed,
        "reconnected {ca} and {cb} times in {ran:.1} s (at most {allowed}): {:?}",
        a_err.all()
    );
}

/// `mosquitto_pub` of `payload` on `topic` at QoS 1 (`extra`: `-r` for retained); an empty
/// `payload` is a null message (`-n`).
fn publish(port: u16, topic: &str, payload: &str, extra: &[&str]) {
    let message: &[&str] = if payload.is_empty() {
        &["-n"]
    } else {
        &["-m", payload]
    };
    let ok = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args(["-t", topic])
        .args(message)
        .args(extra)
        .status()
        .unwrap();
    assert!(ok.success(), "mosquitto_pub -t {topic} -m {payload}");
}

/// Updates over MQTT (docs/updates.md), the kiosk's part, against the real broker: the
/// update-state file's line is published, retained, at connect and when it changes; commands on
/// `cmd/update` that are retained, not JSON, not an http(s) URL, or sent while a try is under
/// way are refused with the reason (nothing handed over, the run goes on); a good one is
/// answered `accepted` (retained), its URL written to the hand-off file (mode 0600), and the run
/// ends as a stop does (the person in view becomes a visit, delivered) with exit status 4.
#[test]
fn an_update_command_is_checked_answered_handed_over_and_ends_the_run() {
    let _one = one_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    let broker = Broker::start(tmp.path(), free_port(), "allow_anonymous true");
    let sub = Subscriber::start(broker.port, "t-update", &[]);
    // one person in view all along (as the stop test), looped
    let face = common::utk_faces(1, 21);
    let mut stream = Vec::new();
    for i in 0..40u32 {
        let dx = i.min(40 - i);
        let b = [60 + dx, 40, 180 + dx, 160];
        stream.extend_from_slice(&common::face_frame(&[(face[0].clone(), b)], 320, 240).0);
    }
    let source = tmp.path().join("standing.mjpeg");
    std::fs::write(&source, stream).unwrap();
    let request = tmp.path().join("url");
    let state = tmp.path().join("update-state.txt");
    std::fs::write(&state, "committed b 1.0+old\n").unwrap();
    let cmd = "agegender/kiosk-u/cmd/update";
    // A retained command, there before the kiosk subscribes: refused (it would run again at
    // every connect), even with a good URL.
    publish(
        broker.port,
        cmd,
        r#"{"url": "http://127.0.0.1:9/retained.swu"}"#,
        &["-r"],
    );
    let url = format!("mqtt://127.0.0.1:{}", broker.port);
    let (req, st) = (request.to_str().unwrap(), state.to_str().unwrap());
    let mut child = kiosk(
        &source,
        &["--mqtt", &url, "--mqtt-client-id", "kiosk-u", "--loop"],
    )
    .args(["--mqtt-update-request", req, "--mqtt-update-state", st])
    .spawn()
    .unwrap();
    let out = Lines::collect(child.stdout.take().unwrap());
    let err = Lines::collect(child.stderr.take().unwrap());
    // (not `cmd/update`, whose commands the subscriber sees too)
    let answers = || -> Vec<Value> {
        sub.messages()
            .iter()
            .filter(|m| m.topic == "agegender/kiosk-u/update")
            .map(|m| m.json())
            .collect()
    };
    let answer =
        |n: usize, what: &str| -> Value { wait_for(what, WAIT, || answers().get(n).cloned()) };
    // What the broker keeps (retained) on the result topic: what a subscriber that comes now
    // gets first. (A subscriber already there sees no retain flag: MQTT 3.1.1 sets it only on
    // what a new subscription is sent.)
    let kept = |client: &str| -> Value {
        let late = Subscriber::start(broker.port, client, &[]);
        let m = wait_for("the retained update state", WAIT, || {
            late.messages()
                .into_iter()
                .find(|m| m.topic == "agegender/kiosk-u/update")
        });
        assert!(m.retained, "{m:?}");
        m.json()
    };
    // the state at connect, and the retained command refused (in either order)
    let first: Vec<Value> = (0..2).map(|n| answer(n, "two answers")).collect();
    assert!(
        first.contains(
            &serde_json::json!({"state": "committed", "slot": "b", "version": "1.0+old"})
        ),
        "{first:?}"
    );
    let refused = first.iter().find(|v| v["state"] == "refused").unwrap();
    assert!(
        refused["reason"].as_str().unwrap().contains("retained"),
        "{refused}"
    );
    // (the retained command cleared: an empty message, which the kiosk does not answer)
    publish(broker.port, cmd, "", &["-r"]);
    let mut n = 2;
    // Bad commands: refused, naming what was wrong; not retained.
    for (payload, says) in [
        ("update please", "not JSON"),
        (
            r#"{"url": "ftp://10.0.0.1/a.swu"}"#,
            "`ftp://10.0.0.1/a.swu` is not an http",
        ),
        (r#"{"link": "http://h/a.swu"}"#, "unknown key `link`"),
    ] {
        publish(broker.port, cmd, payload, &[]);
        let v = answer(n, says);
        n += 1;
        assert_eq!(v["state"], "refused", "{payload}: {v}");
        assert!(
            v["reason"].as_str().unwrap().contains(says),
            "{payload}: {v}"
        );
    }
    // A try under way: its state is published, and a command waits for it.
    std::fs::write(&state, "trying a 1.1+new\n").unwrap();
    let v = answer(n, "the trying state");
    n += 1;
    assert_eq!(v["state"], "trying", "{v}");
    publish(broker.port, cmd, r#"{"url": "http://h/b.swu"}"#, &[]);
    let v = answer(n, "the refusal during the try");
    n += 1;
    assert!(v["reason"].as_str().unwrap().contains("on trial"), "{v}");
    assert!(!request.exists(), "a refused command was handed over");
    // the state stays what the broker keeps: refusals are not retained
    assert_eq!(kept("t-update-late1")["state"], "trying");
    assert!(
        child.try_wait().unwrap().is_none(),
        "the kiosk stopped for a refused command"
    );
    // Committed: published; then a good command is accepted and ends the run.
    std::fs::write(&state, "committed a 1.1+new\n").unwrap();
    let v = answer(n, "the committed state");
    n += 1;
    assert_eq!(v["state"], "committed", "{v}");
    let good = "https://updates.example.com/fleet/agegender-rpi-arm64.swu";
    publish(broker.port, cmd, &format!(r#"{{"url": "{good}"}}"#), &[]);
    let v = answer(n, "accepted");
    assert_eq!(v, serde_json::json!({"state": "accepted", "url": good}));
    let status = common::process::wait_exit(&mut child, WAIT);
    assert_eq!(status.code(), Some(4), "{:?}", err.all());
    assert_eq!(
        std::fs::read_to_string(&request).unwrap(),
        format!("{good}\n")
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&request).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the hand-off file is {mode:o}");
    }
    // The run ended as a stop does: the person in view became a visit, delivered; offline.
    let serial = json_lines(&out.all());
    let visits = of_type(&serial, "visit");
    assert_eq!(visits.len(), 1, "{visits:?}");
    assert_eq!(serial.last().unwrap()["camera"], "stopped");
    wait_for("the visit and offline at the broker", WAIT, || {
        (sub.on("visit").len() == 1
            && sub
                .on("availability")
                .iter()
                .any(|m| m.payload == "offline"))
        .then_some(())
    });
    assert!(
        err.all()
            .iter()
            .any(|l| l.contains("stopped for an update")),
        "{:?}",
        err.all()
    );
    assert_eq!(kept("t-update-late2"), v, "`accepted` is retained");
}
