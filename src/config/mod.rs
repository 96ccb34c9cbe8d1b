//! Configuration: every `agegender run` flag, settable from a TOML file (`--config FILE`).
//!
//! Precedence: built-in defaults < the TOML file < command-line flags. Unknown keys and bad
//! values are errors that name the key and the file, on one line.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod check;
mod stages;

pub use check::{ConfigError, Invalid, Layered, Origin};

/// Context band around the frame for the detector's second look at close-ups (a face that fills
/// the frame or runs off its edge), in frame sizes per side: chosen by measurement
/// (`scripts/bench/closeups.py`, docs/detector.md, "Close-ups").
pub const DEFAULT_CLOSEUP_MARGIN: f32 = 0.5;
/// Motion gating (`motion_threshold`, `detect_max_interval_s`): chosen by measurement on the
/// replay streams (`scripts/bench/motion.py`, docs/performance.md, "Motion gating").
pub const DEFAULT_MOTION_THRESHOLD: f32 = 0.005;
pub const DEFAULT_DETECT_MAX_INTERVAL_S: f32 = 1.0;
/// Track-guided detection (`full_detect_interval_s`): chosen by measurement on the replay
/// streams (`scripts/bench/motion.py`) and the board's instruction counts (docs/performance.md,
/// "Track-guided detection").
pub const DEFAULT_FULL_DETECT_INTERVAL_S: f32 = 1.0;
/// Following (`follow_interval_s`): chosen by measurement on the replay streams
/// (`scripts/bench/motion.py`) and the board's instruction counts (docs/performance.md,
/// "Following").
pub const DEFAULT_FOLLOW_INTERVAL_S: f32 = 0.25;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// A V4L2 device (`/dev/video0`), a directory of images, or an `.mjpeg` file.
    pub source: String,
    /// Frames per second: requested from a camera, or the replay rate of a file source;
    /// 0 replays files as fast as possible.
    pub fps: f32,
    /// Requested capture width (a camera may choose another; files report their own).
    pub width: u32,
    /// Requested capture height.
    pub height: u32,
    /// Replay a file source from the start when it ends.
    pub loop_source: bool,
    /// Replay a file source at `fps` as a live camera delivers frames: those the frame loop
    /// has no room for are dropped and counted (`busy_dropped`). Off: a file is never dropped
    /// from; a machine slower than the clip replays every frame, only later.
    pub replay_as_camera: bool,
    /// `none`, `png:DIR`, `fb:/dev/fb0` or `spi:`.
    pub display: String,
    /// One line of text shown along the bottom of the screen on every frame (printable ASCII, at
    /// most 100 characters; empty: none). The SD-card image sets it while its debug shell is on.
    pub screen_notice: Option<String>,
    /// Also write every frame that shows a face, annotated, as a PNG into this directory
    /// (empty: never; no frame touches the disk unless asked, see docs/privacy-and-security.md).
    pub save_frames: Option<PathBuf>,
    /// Most PNG files `save_frames` (and the `png:` display) keep in their directory; the oldest
    /// are removed first. Numbering goes on from the files already there.
    pub save_max_files: usize,
    /// Most megabytes (MiB) of PNG files `save_frames` (and `png:`) keep; the oldest are removed
    /// first. The default fits the SD-card image's FRAMES partition (64 MiB).
    pub save_max_mb: u32,
    /// Where JSON lines go: `-` for stdout, a file path, or a serial device (`/dev/tty...`).
    pub serial: String,
    /// A report file (`serial` a file path) is renamed to `FILE.1` (replacing an older one) and
    /// started again once it reaches this many megabytes (MiB).
    pub report_max_mb: u32,
    /// Baud rate of a serial device given as `serial`.
    pub baud: u32,
    /// Lines the serial writer may queue before it drops (and counts) them.
    pub serial_queue: usize,
    /// Classifier ONNX; default: the file of the chosen `model_form`
    /// ([`crate::model_files::resolve_classifier`]).
    pub model: Option<PathBuf>,
    /// `auto` (from the CPU's features: [`crate::classify::choose_form`]), `f32`, `f16` or
    /// `int8`.
    pub model_form: crate::classify::FormSetting,
    /// Detector ONNX; default [`crate::model_files::DEFAULT_DETECTOR`].
    pub detector: Option<PathBuf>,
    /// Minimum detector score for a face.
    pub score_threshold: f32,
    /// IoU above which overlapping detections are merged by non-maximum suppression.
    pub nms_iou: f32,
    /// Most faces handled per frame (every per-face buffer is sized from this).
    pub max_faces: usize,
    /// When a face fills the frame or runs off its edge, detect again with a band of this many
    /// frame sizes of context on each side (0: never).
    pub closeup_margin: f32,
    /// Least IoU between a track and a detection for them to be the same face.
    pub track_iou: f32,
    /// Detection frames a track may go unseen before it is forgotten.
    pub max_missed: u32,
    /// Weight of a new age estimate in the exponential average (1 = no smoothing).
    pub age_alpha: f32,
    /// Least weight of a new frame's gender log-odds in a track's average (1 = no smoothing;
    /// the first frames are averaged equally).
    pub gender_alpha: f32,
    /// Classified views a track may have before only the refresh classifies it again; within
    /// them a face is classified again when it grew, the view is better or its labels still
    /// abstain (src/track/). 0: classify every detection.
    pub classify_budget: u32,
    /// Within the budget: classify again when the face's side is at least this many times the
    /// best view's (≥ 1).
    pub classify_grow: f32,
    /// Within the budget: classify again when the view's quality is at least this many times
    /// the best view's (≥ 1).
    pub classify_quality_gain: f32,
    /// Past the budget: classify a track again once its latest view is this many seconds old
    /// (0: never).
    pub classify_refresh_s: f32,
    /// Bound on the smoothed gender log-odds (how sure smoothing may become).
    pub gender_logodds_clamp: f32,
    /// Below this (calibrated) probability of the more likely gender, the gender is reported
    /// as `"U"` and drawn as `?` (0.5: always answer). Default: chosen on the validation
    /// split for ≥ 95% right on the faces answered (models/README.md).
    pub gender_min_p: f32,
    /// Below this (calibrated) probability of the age bucket, the bucket is reported as `"?"`
    /// (0: always answer). Default: chosen on the validation split (models/README.md).
    pub bucket_min_p: f32,
    // --- visits and counts (src/visits.rs) ---
    /// A track that lasted less than this many seconds (first to last view) is not a visit.
    pub min_dwell_s: f32,
    /// A track (a visit) ends once it has gone unseen for `max_missed` detection frames and
    /// at least this many seconds (0: `max_missed` alone).
    pub visit_end_s: f32,
    /// Seconds between `counts` lines (0: none).
    pub counts_interval_s: f32,
    // --- end of visits and counts ---
    // --- MQTT publisher (src/mqtt/); off unless `mqtt` is set ---
    /// Broker: `mqtt://host[:port]` or `mqtts://host[:port]` (TLS). Unset: no network at all.
    pub mqtt: Option<String>,
    /// Client id, also the topic level after the prefix (default: derived from /etc/machine-id).
    pub mqtt_client_id: Option<String>,
    /// Topics are `<prefix>/<client id>/{face,visit,counts,status,availability}` (and `update`,
    /// `cmd/update` with `mqtt_update_request` or `mqtt_update_state`).
    pub mqtt_topic_prefix: String,
    /// Also publish every face line (per frame; off by default).
    pub mqtt_faces: bool,
    /// QoS (0 or 1) of face lines.
    pub mqtt_qos_face: u8,
    /// QoS (0 or 1) of visit lines.
    pub mqtt_qos_visit: u8,
    /// QoS (0 or 1) of counts lines.
    pub mqtt_qos_counts: u8,
    /// QoS (0 or 1) of status lines.
    pub mqtt_qos_status: u8,
    /// PEM CA certificate(s) the broker's certificate must chain to (default: the system's).
    pub mqtt_ca: Option<PathBuf>,
    /// PEM client certificate, for brokers that ask for one (with `mqtt_key`).
    pub mqtt_cert: Option<PathBuf>,
    /// PEM private key of `mqtt_cert`.
    pub mqtt_key: Option<PathBuf>,
    /// User name; its password is read from `mqtt_password_file` (never a flag or the URL).
    pub mqtt_user: Option<String>,
    /// File holding the MQTT password of `mqtt_user`: its first line. Refused when others may
    /// read it (chmod 600), and over a plain `mqtt://` broker unless
    /// `mqtt_allow_plain_password`.
    pub mqtt_password_file: Option<PathBuf>,
    /// Send the password over a plain `mqtt://` connection, readable by anyone on the network
    /// path (only on a network you trust; `mqtts://` is the way).
    pub mqtt_allow_plain_password: bool,
    /// Lines the publisher may hold (twice this: the frame loop's queue and its own) before it
    /// drops and counts them.
    pub mqtt_queue: usize,
    /// Seconds between keep-alive pings (the broker sends the Last Will after 1.5 times this
    /// without a word from the kiosk).
    pub mqtt_keep_alive_s: u32,
    /// Updates over MQTT (the SD-card image's /init sets it; docs/updates.md): with it the
    /// kiosk takes `{"url": "https://..."}` on `<prefix>/<id>/cmd/update`, writes the URL to
    /// this file (for /init, which downloads and installs the bundle), answers on
    /// `<prefix>/<id>/update` and ends its run as a stop does, exit status 4. Unset: no
    /// command is listened for.
    pub mqtt_update_request: Option<PathBuf>,
    /// The SD-card image's `update-state.txt` (what the last update did): its line is published,
    /// retained, on `<prefix>/<id>/update` when the kiosk connects and whenever it changes; an
    /// update command is refused while it says a try is under way.
    pub mqtt_update_state: Option<PathBuf>,
    // --- end of MQTT ---
    /// Seconds between status lines (0 = none except the last).
    pub status_interval_s: f32,
    /// Also write a status line every this many frames (0 = only by time).
    pub status_every_frames: u64,
    /// Stop after this many frames (0 = run until the source ends).
    pub max_frames: u64,
    /// Run the detector on every k-th frame; track (keep boxes and labels) in between.
    pub detect_every: u32,
    /// Motion gating (src/motion.rs): on a frame `detect_every` would detect on, run the
    /// detector only when at least this fraction of a small luma grid changed since the last
    /// detection (0: off, detect on schedule). Default chosen by measurement (docs/performance.md, "Motion
    /// gating").
    pub motion_threshold: f32,
    /// With motion gating on, detect at least this often (seconds) even in a still scene.
    pub detect_max_interval_s: f32,
    /// Track-guided detection: a frame due for detection while faces are tracked searches only
    /// a window around each of them with `window_detector`, as long as the last whole-frame
    /// detection is younger than this (seconds) and nothing moved outside the windows; a face
    /// a window lost, a close-up or more than three faces bring the whole frame back. 0, or
    /// motion gating off (`motion_threshold = 0`: nothing would notice a newcomer outside the
    /// windows): every detection is of the whole frame.
    pub full_detect_interval_s: f32,
    /// Following: between detections each tracked face's box moves with a template of it
    /// (src/track/follow.rs), and a frame due for detection is not detected at all while every
    /// face was followed surely since the last detection, which is younger than this
    /// (seconds), and nothing moved away from the tracked people (motion gating). A face the
    /// template loses, a close-up or a newcomer brings the detection back. 0, or motion gating
    /// off: every due frame is detected and boxes stay put between detections.
    pub follow_interval_s: f32,
    /// The window search's detector: a BlazeFace ONNX (the 128×128 front model by default).
    pub window_detector: Option<PathBuf>,
    /// Threads tract's matrix products may use (1: all inference on the frame-loop thread).
    pub threads: usize,
    /// Detector workers of the stage-parallel frame loop (`src/pipeline/parallel.rs`):
    /// `"auto"` (the default) is one per core; 1 is the one-thread loop, every stage on one
    /// thread (tiny boards, and the comparison).
    pub workers: Workers,
    /// A hardware watchdog device (`/dev/watchdog`) fed while the frame loop runs, so a hung
    /// loop resets the board (the SD-card image's `/init` passes it; under systemd, the unit's
    /// `WatchdogSec=` does this job instead).
    pub watchdog_device: Option<PathBuf>,
    /// The hardware watchdog's timeout, in seconds (the driver may clamp it: bcm2835 ≤ 15).
    pub watchdog_timeout_s: u32,
    /// `[spi]` table for the SPI display; its keys are checked when the display opens.
    pub spi: Option<toml::Table>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            source: "/dev/video0".into(),
            fps: 0.0,
            width: 640,
            height: 480,
            loop_source: false,
            replay_as_camera: false,
            display: "none".into(),
            screen_notice: None,
            save_frames: None,
            save_max_files: 1000,
            save_max_mb: 48,
            serial: "-".into(),
            report_max_mb: 64,
            baud: 115_200,
            serial_queue: 256,
            model: None,
            model_form: crate::classify::FormSetting::Auto,
            detector: None,
            score_threshold: 0.6,
            nms_iou: 0.3,
            max_faces: 8,
            closeup_margin: DEFAULT_CLOSEUP_MARGIN,
            track_iou: 0.3,
            max_missed: 5,
            age_alpha: 0.3,
            gender_alpha: 0.2,
            classify_budget: 4,
            classify_grow: 1.2,
            classify_quality_gain: 1.25,
            classify_refresh_s: 3.0,
            gender_logodds_clamp: 6.0,
            gender_min_p: crate::classify::DEFAULT_GENDER_MIN_P,
            bucket_min_p: crate::classify::DEFAULT_BUCKET_MIN_P,
            min_dwell_s: 1.0,
            visit_end_s: 0.0,
            counts_interval_s: 60.0,
            mqtt: None,
            mqtt_client_id: None,
            mqtt_topic_prefix: "agegender".into(),
            mqtt_faces: false,
            mqtt_qos_face: 0,
            mqtt_qos_visit: 1,
            mqtt_qos_counts: 1,
            mqtt_qos_status: 0,
            mqtt_ca: None,
            mqtt_cert: None,
            mqtt_key: None,
            mqtt_user: None,
            mqtt_password_file: None,
            mqtt_allow_plain_password: false,
            mqtt_queue: 256,
            mqtt_keep_alive_s: 30,
            mqtt_update_request: None,
            mqtt_update_state: None,
            status_interval_s: 5.0,
            status_every_frames: 0,
            max_frames: 0,
            detect_every: 1,
            motion_threshold: DEFAULT_MOTION_THRESHOLD,
            detect_max_interval_s: DEFAULT_DETECT_MAX_INTERVAL_S,
            full_detect_interval_s: DEFAULT_FULL_DETECT_INTERVAL_S,
            follow_interval_s: DEFAULT_FOLLOW_INTERVAL_S,
            window_detector: None,
            threads: 1,
            workers: Workers::Auto,
            watchdog_device: None,
            watchdog_timeout_s: 15,
            spi: None,
        }
    }
}

/// The `workers` setting: `"auto"` (one per core) or a count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "WorkersToml", into = "WorkersToml")]
pub enum Workers {
    #[default]
    Auto,
    Count(usize),
}

impl Workers {
    /// How many: `auto` is the cores this process may run on (1 if that cannot be known).
    pub fn count(self) -> usize {
        match self {
            Workers::Count(n) => n,
            Workers::Auto => std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

impl std::str::FromStr for Workers {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Workers::Auto),
            _ => s
                .parse()
                .map(Workers::Count)
                .map_err(|_| format!("`{s}` is not \"auto\" or a number")),
        }
    }
}

/// How `workers` is written in TOML: `"auto"` or a number.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
enum WorkersToml {
    Count(usize),
    Name(String),
}

impl TryFrom<WorkersToml> for Workers {
    type Error = String;
    fn try_from(w: WorkersToml) -> Result<Self, String> {
        match w {
            WorkersToml::Count(n) => Ok(Workers::Count(n)),
            WorkersToml::Name(s) => s.parse(),
        }
    }
}

impl From<Workers> for WorkersToml {
    fn from(w: Workers) -> Self {
        match w {
            Workers::Auto => WorkersToml::Name("auto".into()),
            Workers::Count(n) => WorkersToml::Count(n),
        }
    }
}
/// Read and check a config file (TOML).
impl Config {
    /// Read and check a TOML file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Self::from_toml_str(&text, path)
    }

    /// Parse TOML text; `path` names it in errors.
    pub fn from_toml_str(text: &str, path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            line: e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1),
            // toml's message may span lines (it lists the expected keys); keep one line.
            message: crate::one_line(e.message()),
        })?;
        cfg.validate()
            .map_err(|bad| bad.at(Origin::File(path.to_path_buf())))?;
        #[cfg(target_os = "linux")]
        if let Some(spi) = &cfg.spi {
            crate::display::spi::SpiConfig::from_table(spi).map_err(|e| {
                Invalid::of("spi", crate::one_line(&format!("{e:#}")))
                    .at(Origin::File(path.to_path_buf()))
            })?;
        }
        Ok(cfg)
    }

    /// The abstention thresholds `gender_min_p` and `bucket_min_p`.
    pub fn abstention(&self) -> crate::classify::Abstention {
        crate::classify::Abstention {
            gender_min_p: self.gender_min_p,
            bucket_min_p: self.bucket_min_p,
        }
    }
}

/// Seconds as whole milliseconds, as the stages count time.
pub fn ms(seconds: f32) -> u64 {
    (seconds as f64 * 1000.0).round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_every_key_parses() {
        Config::default().validate().unwrap();
        let text = toml::to_string(&Config {
            model: Some("m.onnx".into()),
            detector: Some("d.onnx".into()),
            ..Config::default()
        })
        .unwrap();
        let back = Config::from_toml_str(&text, "x.toml").unwrap();
        assert_eq!(back.model.as_deref(), Some(Path::new("m.onnx")));
    }

    #[test]
    fn unknown_key_names_key_file_and_line() {
        let e = Config::from_toml_str("fps = 5\nbogus_key = 1\n", "my.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("my.toml") && e.contains("bogus_key") && e.contains("line 2"),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn bad_value_names_key() {
        let e = Config::from_toml_str("max_faces = 0\n", "c.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_faces") && e.contains("c.toml"), "{e}");
        let e = Config::from_toml_str("fps = \"fast\"\n", "c.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("c.toml") && e.contains("line 1"), "{e}");
        for bad in [
            "gender_min_p = 0.4",
            "gender_min_p = 1.2",
            "bucket_min_p = -0.1",
            "min_dwell_s = -1",
            "visit_end_s = nan",
            "counts_interval_s = inf",
            "classify_grow = 0.9",
            "classify_quality_gain = nan",
            "classify_refresh_s = -1",
            "mqtt = \"http://broker\"",
            "mqtt = \"mqtt://user:pw@broker\"",
            "mqtt_qos_visit = 2",
            "mqtt_topic_prefix = \"a/#\"",
            "mqtt_client_id = \"a/b\"",
            "mqtt_queue = 0",
            "mqtt_keep_alive_s = 1",
            "mqtt_cert = \"c.pem\"",
            "mqtt_password_file = \"pw\"",
            "mqtt_user = \"u\"\nmqtt_password_file = \"pw\"\nmqtt = \"mqtt://h\"",
            "mqtt_topic_prefix = \"$SYS\"",
            "mqtt_client_id = \"a\\u0007b\"",
            "mqtt = \"mqtt://h\"\nmqtt_ca = \"ca.pem\"",
        ] {
            let e = Config::from_toml_str(bad, "c.toml")
                .unwrap_err()
                .to_string();
            let key = bad.lines().last().unwrap().split(' ').next().unwrap();
            let key = match key {
                // the key it needs with it
                "mqtt_cert" => "mqtt_key",
                "mqtt_password_file" => "mqtt_user",
                k => k,
            };
            assert!(e.contains(key) && e.contains("c.toml"), "{e}");
        }
        // a password over plain mqtt:// only when asked for
        Config::from_toml_str(
            "mqtt = \"mqtt://h\"\nmqtt_user = \"u\"\nmqtt_password_file = \"pw\"\n\
             mqtt_allow_plain_password = true\n",
            "c.toml",
        )
        .unwrap();
        Config::from_toml_str(
            "mqtt = \"mqtts://h\"\nmqtt_user = \"u\"\nmqtt_password_file = \"pw\"\n",
            "c.toml",
        )
        .unwrap();
        let c =
            Config::from_toml_str("gender_min_p = 0.9\nbucket_min_p = 0.5\n", "c.toml").unwrap();
        assert_eq!(
            c.abstention(),
            crate::classify::Abstention {
                gender_min_p: 0.9,
                bucket_min_p: 0.5
            }
        );
    }
}
