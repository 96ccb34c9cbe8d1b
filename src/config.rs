//! Configuration: every `agegender run` flag, settable from a TOML file (`--config FILE`).
//!
//! Precedence: built-in defaults < the TOML file < command-line flags. Unknown keys and bad
//! values are errors that name the key and the file, on one line.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Context band around the frame for the detector's second look at close-ups (a face that fills
/// the frame or runs off its edge), in frame sizes per side: chosen by measurement
/// (`scripts/bench/closeups`, docs/detector.md, "Close-ups").
pub const DEFAULT_CLOSEUP_MARGIN: f32 = 0.5;
/// Motion gating (`motion_threshold`, `detect_max_interval_s`): chosen by measurement on the
/// replay streams (`scripts/bench/motion.py`, docs/performance.md, "Motion gating").
pub const DEFAULT_MOTION_THRESHOLD: f32 = 0.005;
pub const DEFAULT_DETECT_MAX_INTERVAL_S: f32 = 1.0;
/// Track-guided detection (`full_detect_interval_s`): chosen by measurement on the replay
/// streams (`scripts/bench/motion.py`) and the board's instruction counts (docs/performance.md,
/// "Track-guided detection").
pub const DEFAULT_FULL_DETECT_INTERVAL_S: f32 = 1.0;

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
    /// Also write every frame that shows a face, annotated, as a PNG into this directory
    /// (empty: never; no frame touches the disk unless asked, see docs/privacy-and-security.md).
    pub save_frames: Option<PathBuf>,
    /// Where JSON lines go: `-` for stdout, a file path, or a serial device (`/dev/tty...`).
    pub serial: String,
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
    /// abstain (src/track.rs). 0: classify every detection.
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
    /// Topics are `<prefix>/<client id>/{face,visit,counts,status,availability}`.
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
    /// File holding the MQTT password of `mqtt_user` (the whole file less its trailing newline).
    pub mqtt_password_file: Option<PathBuf>,
    /// Lines the publisher may hold (twice this: the frame loop's queue and its own) before it
    /// drops and counts them.
    pub mqtt_queue: usize,
    /// Seconds between keep-alive pings (the broker sends the Last Will after 1.5 times this
    /// without a word from the kiosk).
    pub mqtt_keep_alive_s: u32,
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
            save_frames: None,
            serial: "-".into(),
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
            mqtt_queue: 256,
            mqtt_keep_alive_s: 30,
            status_interval_s: 5.0,
            status_every_frames: 0,
            max_frames: 0,
            detect_every: 1,
            motion_threshold: DEFAULT_MOTION_THRESHOLD,
            detect_max_interval_s: DEFAULT_DETECT_MAX_INTERVAL_S,
            full_detect_interval_s: DEFAULT_FULL_DETECT_INTERVAL_S,
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

/// A configuration problem: the message names the key and where it came from.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Read and check a TOML file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read config file {}: {e}", path.display())))?;
        Self::from_toml_str(&text, &path.display().to_string())
    }

    /// Parse TOML text; `origin` names it in errors (a file path).
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            // toml's message may span lines (it lists the expected keys); keep one line.
            let msg = crate::one_line(e.message());
            match line {
                Some(l) => ConfigError(format!("config file {origin}, line {l}: {msg}")),
                None => ConfigError(format!("config file {origin}: {msg}")),
            }
        })?;
        cfg.validate().map_err(|(key, why)| {
            ConfigError(format!(
                "config file {origin}: bad value for `{key}`: {why}"
            ))
        })?;
        #[cfg(target_os = "linux")]
        if let Some(spi) = &cfg.spi {
            crate::display::spi::SpiConfig::from_table(spi)
                .map_err(|e| ConfigError(format!("config file {origin}: {e:#}")))?;
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

    /// Check value ranges. Returns the offending key and why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        fn unit(key: &'static str, v: f32) -> Result<(), (&'static str, String)> {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err((key, format!("{v} is not between 0 and 1")))
            }
        }
        if self.source.is_empty() {
            return Err(("source", "must not be empty".into()));
        }
        if !(self.fps.is_finite() && self.fps >= 0.0) {
            return Err(("fps", format!("{} is not a rate ≥ 0", self.fps)));
        }
        if self.width == 0 || self.height == 0 || self.width > 8192 || self.height > 8192 {
            return Err((
                "width",
                format!(
                    "{}x{} is not a frame size (1..=8192)",
                    self.width, self.height
                ),
            ));
        }
        if self.baud == 0 {
            return Err(("baud", "must be > 0".into()));
        }
        if self.serial_queue == 0 {
            return Err(("serial_queue", "must be > 0".into()));
        }
        unit("score_threshold", self.score_threshold)?;
        unit("nms_iou", self.nms_iou)?;
        unit("track_iou", self.track_iou)?;
        if !(1..=64).contains(&self.max_faces) {
            return Err(("max_faces", format!("{} is not in 1..=64", self.max_faces)));
        }
        if !(0.0..=2.0).contains(&self.closeup_margin) {
            return Err((
                "closeup_margin",
                format!("{} is not in 0..=2", self.closeup_margin),
            ));
        }
        if !(self.age_alpha > 0.0 && self.age_alpha <= 1.0) {
            return Err(("age_alpha", format!("{} is not in (0, 1]", self.age_alpha)));
        }
        if !(self.gender_alpha > 0.0 && self.gender_alpha <= 1.0) {
            return Err((
                "gender_alpha",
                format!("{} is not in (0, 1]", self.gender_alpha),
            ));
        }
        for (key, v) in [
            ("classify_grow", self.classify_grow),
            ("classify_quality_gain", self.classify_quality_gain),
        ] {
            if !(v.is_finite() && (1.0..=100.0).contains(&v)) {
                return Err((key, format!("{v} is not a factor in 1..=100")));
            }
        }
        if !(self.classify_refresh_s.is_finite()
            && (0.0..=86_400.0).contains(&self.classify_refresh_s))
        {
            return Err((
                "classify_refresh_s",
                format!(
                    "{} is not a number of seconds in 0..=86400",
                    self.classify_refresh_s
                ),
            ));
        }
        if !(0.5..=1.0).contains(&self.gender_min_p) {
            return Err((
                "gender_min_p",
                format!(
                    "{} is not between 0.5 and 1 (the more likely gender's probability is ≥ 0.5)",
                    self.gender_min_p
                ),
            ));
        }
        unit("bucket_min_p", self.bucket_min_p)?;
        for (key, v) in [
            ("min_dwell_s", self.min_dwell_s),
            ("visit_end_s", self.visit_end_s),
            ("counts_interval_s", self.counts_interval_s),
        ] {
            if !(v.is_finite() && (0.0..=86_400.0).contains(&v)) {
                return Err((key, format!("{v} is not a number of seconds in 0..=86400")));
            }
        }
        self.validate_mqtt()?;
        if !(self.gender_logodds_clamp > 0.0 && self.gender_logodds_clamp.is_finite()) {
            return Err((
                "gender_logodds_clamp",
                format!("{} is not > 0", self.gender_logodds_clamp),
            ));
        }
        if !(self.status_interval_s.is_finite() && self.status_interval_s >= 0.0) {
            return Err((
                "status_interval_s",
                format!("{} is not ≥ 0", self.status_interval_s),
            ));
        }
        if self.detect_every == 0 {
            return Err(("detect_every", "must be ≥ 1".into()));
        }
        if !(0.0..=1.0).contains(&self.motion_threshold) {
            return Err((
                "motion_threshold",
                format!(
                    "{} is not a fraction of the grid between 0 and 1 (0: off)",
                    self.motion_threshold
                ),
            ));
        }
        if !(self.detect_max_interval_s.is_finite()
            && self.detect_max_interval_s > 0.0
            && self.detect_max_interval_s <= 3600.0)
        {
            return Err((
                "detect_max_interval_s",
                format!(
                    "{} is not a number of seconds in (0, 3600]",
                    self.detect_max_interval_s
                ),
            ));
        }
        if !(self.full_detect_interval_s.is_finite()
            && (0.0..=3600.0).contains(&self.full_detect_interval_s))
        {
            return Err((
                "full_detect_interval_s",
                format!(
                    "{} is not a number of seconds in [0, 3600] (0: off)",
                    self.full_detect_interval_s
                ),
            ));
        }
        if !(1..=3600).contains(&self.watchdog_timeout_s) {
            return Err((
                "watchdog_timeout_s",
                format!("{} is not in 1..=3600", self.watchdog_timeout_s),
            ));
        }
        if !(1..=64).contains(&self.threads) {
            return Err(("threads", format!("{} is not in 1..=64", self.threads)));
        }
        if let Workers::Count(n) = self.workers {
            if !(1..=64).contains(&n) {
                return Err(("workers", format!("{n} is not \"auto\" or in 1..=64")));
            }
        }
        if !(self.display == "none"
            || self.display.starts_with("png:")
            || self.display.starts_with("fb:")
            || self.display.starts_with("spi"))
        {
            return Err((
                "display",
                format!(
                    "`{}` is not one of none, png:DIR, fb:PATH, spi:",
                    self.display
                ),
            ));
        }
        Ok(())
    }
}

impl Config {
    /// The MQTT keys (only `mqtt`'s own syntax and the others' ranges; files are read when the
    /// publisher starts).
    fn validate_mqtt(&self) -> Result<(), (&'static str, String)> {
        use crate::mqtt::{check_topic_part, BrokerUrl};
        let url = match &self.mqtt {
            Some(u) => Some(BrokerUrl::parse(u).map_err(|e| ("mqtt", e))?),
            None => None,
        };
        check_topic_part(&self.mqtt_topic_prefix, true).map_err(|e| ("mqtt_topic_prefix", e))?;
        if let Some(id) = &self.mqtt_client_id {
            check_topic_part(id, false).map_err(|e| ("mqtt_client_id", e))?;
            if id.len() > 64 {
                return Err(("mqtt_client_id", format!("`{id}` is longer than 64 bytes")));
            }
        }
        for (key, q) in [
            ("mqtt_qos_face", self.mqtt_qos_face),
            ("mqtt_qos_visit", self.mqtt_qos_visit),
            ("mqtt_qos_counts", self.mqtt_qos_counts),
            ("mqtt_qos_status", self.mqtt_qos_status),
        ] {
            if q > 1 {
                return Err((key, format!("{q} is not a QoS of 0 or 1")));
            }
        }
        if !(1..=100_000).contains(&self.mqtt_queue) {
            return Err((
                "mqtt_queue",
                format!("{} is not in 1..=100000", self.mqtt_queue),
            ));
        }
        if !(5..=3600).contains(&self.mqtt_keep_alive_s) {
            return Err((
                "mqtt_keep_alive_s",
                format!("{} is not in 5..=3600 seconds", self.mqtt_keep_alive_s),
            ));
        }
        if self.mqtt_cert.is_some() != self.mqtt_key.is_some() {
            return Err((
                if self.mqtt_cert.is_some() {
                    "mqtt_key"
                } else {
                    "mqtt_cert"
                },
                "a client certificate needs both mqtt_cert and mqtt_key".into(),
            ));
        }
        if self.mqtt_password_file.is_some() && self.mqtt_user.is_none() {
            return Err((
                "mqtt_user",
                "mqtt_password_file is set without a user name".into(),
            ));
        }
        let plain = url.as_ref().is_some_and(|u| !u.tls);
        for (key, set) in [
            ("mqtt_ca", self.mqtt_ca.is_some()),
            ("mqtt_cert", self.mqtt_cert.is_some()),
        ] {
            if set && plain {
                return Err((
                    key,
                    "is set but `mqtt` is mqtt:// (plain): use mqtts://".into(),
                ));
            }
        }
        Ok(())
    }
}

/// Seconds as whole milliseconds, as the stages count time.
pub fn ms(seconds: f32) -> u64 {
    (seconds as f64 * 1000.0).round() as u64
}

/// Each stage's own settings, from the file + flags: the stages know nothing of [`Config`].
impl Config {
    /// The tracker's (src/track.rs).
    pub fn tracker(&self) -> crate::track::TrackerConfig {
        crate::track::TrackerConfig {
            max_faces: self.max_faces,
            iou_threshold: self.track_iou,
            max_missed: self.max_missed,
            age_alpha: self.age_alpha,
            gender_alpha: self.gender_alpha,
            logodds_clamp: self.gender_logodds_clamp,
            abstention: self.abstention(),
            end_after_ms: ms(self.visit_end_s),
            classify_budget: self.classify_budget,
            classify_grow: self.classify_grow,
            classify_quality_gain: self.classify_quality_gain,
            classify_refresh_ms: ms(self.classify_refresh_s),
            uniform_weights: false,
        }
    }

    /// Visits and counts' (src/visits.rs).
    pub fn visits(&self) -> crate::visits::VisitConfig {
        crate::visits::VisitConfig {
            min_dwell_ms: ms(self.min_dwell_s),
            counts_interval_ms: ms(self.counts_interval_s),
            abstention: self.abstention(),
        }
    }

    /// The motion gate's (src/motion.rs).
    pub fn motion(&self) -> crate::motion::MotionConfig {
        crate::motion::MotionConfig {
            threshold: self.motion_threshold,
            max_interval_ms: ms(self.detect_max_interval_s),
        }
    }

    /// The MQTT publisher's (src/mqtt/), `None` when `mqtt` is not set (no network at all).
    pub fn mqtt(&self) -> anyhow::Result<Option<crate::mqtt::MqttSettings>> {
        use crate::mqtt::{default_client_id, BrokerUrl, MqttSettings};
        let Some(url) = &self.mqtt else {
            return Ok(None);
        };
        let url = BrokerUrl::parse(url).map_err(|e| anyhow::anyhow!("mqtt: {e}"))?;
        let client_id = match &self.mqtt_client_id {
            Some(id) => id.clone(),
            None => default_client_id()?,
        };
        Ok(Some(MqttSettings {
            url,
            client_id,
            prefix: self.mqtt_topic_prefix.clone(),
            faces: self.mqtt_faces,
            qos: [
                self.mqtt_qos_face,
                self.mqtt_qos_visit,
                self.mqtt_qos_counts,
                self.mqtt_qos_status,
            ],
            ca: self.mqtt_ca.clone(),
            cert: self.mqtt_cert.clone(),
            key: self.mqtt_key.clone(),
            user: self.mqtt_user.clone(),
            password_file: self.mqtt_password_file.clone(),
            queue: self.mqtt_queue,
            keep_alive: std::time::Duration::from_secs(self.mqtt_keep_alive_s as u64),
        }))
    }
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
