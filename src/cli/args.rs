//! The command line's flags: the clap definitions of every subcommand, and their overlay on
//! the configuration (defaults < `--config` file < flags).

use std::path::PathBuf;

use agegender::config::{Config, Layered};
use clap::Args;

use crate::Fail;

/// Flags every subcommand takes (they override the config file).
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct CommonArgs {
    /// TOML file with any of the `run` settings (flags override it).
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Age/gender classifier ONNX [default: the file of the form chosen (`--model-form`):
    /// models/agegender_f32.onnx for f32 and f16, models/agegender_int8.onnx for int8].
    #[arg(long, value_name = "PATH")]
    pub(crate) model: Option<PathBuf>,
    /// Face detector ONNX [default: models/detector/blazeface_back_256.onnx].
    #[arg(long, value_name = "PATH")]
    pub(crate) detector: Option<PathBuf>,
    /// The window search's detector of track-guided detection, a BlazeFace ONNX [default:
    /// models/detector/blazeface_front_128.onnx].
    #[arg(long, value_name = "PATH")]
    pub(crate) window_detector: Option<PathBuf>,
    /// Minimum detector score for a face (0..1).
    #[arg(long, value_name = "P")]
    pub(crate) score_threshold: Option<f32>,
    /// IoU above which overlapping detections are merged (0..1).
    #[arg(long, value_name = "IOU")]
    pub(crate) nms_iou: Option<f32>,
    /// Most faces handled per frame.
    #[arg(long, value_name = "N")]
    pub(crate) max_faces: Option<usize>,
    /// A face that fills the frame or runs off its edge is detected again with this much
    /// context (frame sizes per side; 0: never).
    #[arg(long, value_name = "M")]
    pub(crate) closeup_margin: Option<f32>,
    /// Threads for tract's matrix products (1: everything on the frame-loop thread).
    #[arg(long, value_name = "N")]
    pub(crate) threads: Option<usize>,
    /// Detector workers of the frame loop: auto (one per core) or N; 1 runs every stage on
    /// one thread.
    #[arg(long, value_name = "N|auto")]
    pub(crate) workers: Option<agegender::config::Workers>,
    /// Classifier form: auto (from this CPU's features), f32, f16 or int8. `--model` names
    /// a file instead (a quantized file runs as int8; a float file in f16 if the form is f16).
    #[arg(long, value_name = "FORM")]
    pub(crate) model_form: Option<agegender::classify::FormSetting>,
    /// Report the gender as "U" (drawn `?`) below this calibrated probability of the more
    /// likely gender (0.5..=1; 0.5: always answer); the default is chosen on validation by the
    /// rule in models/README.md.
    #[arg(long, value_name = "P")]
    pub(crate) gender_min_p: Option<f32>,
    /// Report the age bucket as "?" below this calibrated bucket probability (0..=1; 0: always
    /// answer); the default is chosen on validation by the rule in models/README.md.
    #[arg(long, value_name = "P")]
    pub(crate) bucket_min_p: Option<f32>,
    /// Classified views a track may have before only the refresh classifies it again
    /// (0: classify every detection).
    #[arg(long, value_name = "N")]
    pub(crate) classify_budget: Option<u32>,
    /// Within the budget, classify again when the face grew to this many times its best
    /// view's side.
    #[arg(long, value_name = "FACTOR")]
    pub(crate) classify_grow: Option<f32>,
    /// Within the budget, classify again when the view's quality is this many times the best
    /// view's.
    #[arg(long, value_name = "FACTOR")]
    pub(crate) classify_quality_gain: Option<f32>,
    /// Past the budget, classify a track again once its latest view is this old (0: never).
    #[arg(long, value_name = "SECONDS")]
    pub(crate) classify_refresh: Option<f32>,
}

#[derive(Args, Debug)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) common: CommonArgs,
    /// /dev/videoN, a directory of images, or an .mjpeg file.
    #[arg(long)]
    pub(crate) source: Option<String>,
    /// Capture rate, or replay rate of a file source (0: as fast as possible).
    #[arg(long)]
    pub(crate) fps: Option<f32>,
    #[arg(long)]
    pub(crate) width: Option<u32>,
    #[arg(long)]
    pub(crate) height: Option<u32>,
    /// Replay a file source from the start when it ends.
    #[arg(long = "loop")]
    pub(crate) loop_source: bool,
    /// Replay a file source at --fps as a live camera delivers frames, dropping (and counting)
    /// those the loop has no room for. By default a file is never dropped from: a machine
    /// slower than the clip reports every frame, only later.
    #[arg(long)]
    pub(crate) as_camera: bool,
    /// none | png:DIR | fb:/dev/fb0 | spi:
    #[arg(long)]
    pub(crate) display: Option<String>,
    /// One line of text along the bottom of the screen on every frame (the SD-card image's debug
    /// shell says it is on).
    #[arg(long, value_name = "TEXT")]
    pub(crate) screen_notice: Option<String>,
    /// Also save every frame that shows a face, annotated, as a PNG in DIR (off by default:
    /// no frame is written to disk unless asked).
    #[arg(long, value_name = "DIR")]
    pub(crate) save_frames: Option<PathBuf>,
    /// Where JSON lines go: - (stdout), a file, or a serial device.
    #[arg(long, value_name = "PATH")]
    pub(crate) serial: Option<String>,
    #[arg(long)]
    pub(crate) baud: Option<u32>,
    /// Stop after N frames (0: until the source ends).
    #[arg(long, value_name = "N")]
    pub(crate) max_frames: Option<u64>,
    #[command(flatten)]
    pub(crate) detection: DetectionArgs,
    /// Feed this hardware watchdog (/dev/watchdog) while the frame loop runs: a hung loop
    /// resets the board.
    #[arg(long, value_name = "PATH")]
    pub(crate) watchdog_device: Option<PathBuf>,
    /// The hardware watchdog's timeout.
    #[arg(long, value_name = "SECONDS")]
    pub(crate) watchdog_timeout: Option<u32>,
    /// Seconds between status lines.
    #[arg(long, value_name = "SECONDS")]
    pub(crate) status_interval: Option<f32>,
    /// Least IoU for a detection to continue a track.
    #[arg(long, value_name = "IOU")]
    pub(crate) track_iou: Option<f32>,
    /// Detection frames a track may be missed before it is forgotten.
    #[arg(long, value_name = "N")]
    pub(crate) max_missed: Option<u32>,
    /// Weight of a new age estimate in the running average (0..1].
    #[arg(long, value_name = "ALPHA")]
    pub(crate) age_alpha: Option<f32>,
    // --- visits and counts ---
    /// A track shorter than this (first to last view) is not a visit.
    #[arg(long, value_name = "SECONDS")]
    pub(crate) min_dwell: Option<f32>,
    /// A visit ends once its face has gone unseen for --max-missed detection frames and at
    /// least this long (0: --max-missed alone).
    #[arg(long, value_name = "SECONDS")]
    pub(crate) visit_end: Option<f32>,
    /// Seconds between `counts` lines (0: none).
    #[arg(long, value_name = "SECONDS")]
    pub(crate) counts_interval: Option<f32>,
    // --- end of visits and counts ---
    #[command(flatten)]
    pub(crate) mqtt: MqttArgs,
    /// Take update commands on PREFIX/ID/cmd/update and hand an accepted URL over in FILE, then
    /// end the run with exit status 4 (the SD-card image's /init installs it; docs/updates.md).
    #[arg(long, value_name = "FILE")]
    pub(crate) mqtt_update_request: Option<PathBuf>,
    /// Publish this update-state file's line, retained, on PREFIX/ID/update (the SD-card
    /// image's update-state.txt).
    #[arg(long, value_name = "FILE")]
    pub(crate) mqtt_update_state: Option<PathBuf>,
}

/// When the detector runs (`run`, `bench`).
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct DetectionArgs {
    /// Detect on every k-th frame, track in between.
    #[arg(long, value_name = "K")]
    pub(crate) detect_every: Option<u32>,
    /// Motion gating: on a frame due for detection, detect only when at least this fraction
    /// of a small luma grid changed since the last detection (0..=1; 0: off); the default is
    /// chosen by measurement (docs/performance.md, "Motion gating").
    #[arg(long, value_name = "F")]
    pub(crate) motion_threshold: Option<f32>,
    /// With motion gating on, detect at least this often even in a still scene.
    #[arg(long, value_name = "SECONDS")]
    pub(crate) detect_max_interval: Option<f32>,
    /// Track-guided detection: between whole-frame detections at most this far apart, search
    /// only windows around the tracked faces (0: always the whole frame).
    #[arg(long, value_name = "SECONDS")]
    pub(crate) full_detect_interval: Option<f32>,
    /// Following: skip due detections for up to this long while the tracked faces are
    /// followed surely by their templates and nothing else moves (0: off).
    #[arg(long, value_name = "SECONDS")]
    pub(crate) follow_interval: Option<f32>,
}

impl DetectionArgs {
    pub(crate) fn apply(&self, cfg: &mut Layered) {
        let a = self.clone();
        overlay!(cfg, a.detect_every, detect_every, "--detect-every");
        overlay!(
            cfg,
            a.motion_threshold,
            motion_threshold,
            "--motion-threshold"
        );
        overlay!(
            cfg,
            a.detect_max_interval,
            detect_max_interval_s,
            "--detect-max-interval"
        );
        overlay!(
            cfg,
            a.full_detect_interval,
            full_detect_interval_s,
            "--full-detect-interval"
        );
        overlay!(
            cfg,
            a.follow_interval,
            follow_interval_s,
            "--follow-interval"
        );
    }
}

/// MQTT flags (`run`, `bench`); each is also a config key (`--mqtt-ca` is `mqtt_ca`).
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct MqttArgs {
    /// Also publish the lines to an MQTT broker: mqtt://HOST[:PORT] or mqtts://HOST[:PORT]
    /// (off by default: no network at all).
    #[arg(long, value_name = "URL")]
    pub(crate) mqtt: Option<String>,
    /// MQTT client id and topic level [default: derived from /etc/machine-id].
    #[arg(long, value_name = "ID")]
    pub(crate) mqtt_client_id: Option<String>,
    /// Topic prefix: topics are PREFIX/ID/{face,visit,counts,status,availability} (and
    /// update, cmd/update with --mqtt-update-request).
    #[arg(long, value_name = "PREFIX")]
    pub(crate) mqtt_topic_prefix: Option<String>,
    /// Also publish every face line (per frame).
    #[arg(long)]
    pub(crate) mqtt_faces: bool,
    /// QoS (0 or 1) of face lines.
    #[arg(long, value_name = "Q")]
    pub(crate) mqtt_qos_face: Option<u8>,
    /// QoS of visit lines.
    #[arg(long, value_name = "Q")]
    pub(crate) mqtt_qos_visit: Option<u8>,
    /// QoS of counts lines.
    #[arg(long, value_name = "Q")]
    pub(crate) mqtt_qos_counts: Option<u8>,
    /// QoS of status lines.
    #[arg(long, value_name = "Q")]
    pub(crate) mqtt_qos_status: Option<u8>,
    /// PEM CA certificate for mqtts:// [default: the system's].
    #[arg(long, value_name = "FILE")]
    pub(crate) mqtt_ca: Option<PathBuf>,
    /// PEM client certificate (with --mqtt-key).
    #[arg(long, value_name = "FILE")]
    pub(crate) mqtt_cert: Option<PathBuf>,
    /// PEM private key of --mqtt-cert.
    #[arg(long, value_name = "FILE")]
    pub(crate) mqtt_key: Option<PathBuf>,
    /// MQTT user name (the password comes from --mqtt-password-file, never from a flag).
    #[arg(long, value_name = "NAME")]
    pub(crate) mqtt_user: Option<String>,
    /// File holding the MQTT password (the whole file less its trailing newline).
    #[arg(long, value_name = "FILE")]
    pub(crate) mqtt_password_file: Option<PathBuf>,
    /// Lines queued for the broker before new ones are dropped (and counted).
    #[arg(long, value_name = "N")]
    pub(crate) mqtt_queue: Option<usize>,
    /// Seconds between MQTT keep-alive pings.
    #[arg(long, value_name = "SECONDS")]
    pub(crate) mqtt_keep_alive: Option<u32>,
}

impl MqttArgs {
    pub(crate) fn apply(&self, cfg: &mut Layered) {
        let a = self.clone();
        overlay!(cfg, a.mqtt.map(Some), mqtt, "--mqtt");
        overlay!(
            cfg,
            a.mqtt_client_id.map(Some),
            mqtt_client_id,
            "--mqtt-client-id"
        );
        overlay!(
            cfg,
            a.mqtt_topic_prefix,
            mqtt_topic_prefix,
            "--mqtt-topic-prefix"
        );
        overlay!(
            cfg,
            a.mqtt_faces.then_some(true),
            mqtt_faces,
            "--mqtt-faces"
        );
        overlay!(cfg, a.mqtt_qos_face, mqtt_qos_face, "--mqtt-qos-face");
        overlay!(cfg, a.mqtt_qos_visit, mqtt_qos_visit, "--mqtt-qos-visit");
        overlay!(cfg, a.mqtt_qos_counts, mqtt_qos_counts, "--mqtt-qos-counts");
        overlay!(cfg, a.mqtt_qos_status, mqtt_qos_status, "--mqtt-qos-status");
        overlay!(cfg, a.mqtt_ca.map(Some), mqtt_ca, "--mqtt-ca");
        overlay!(cfg, a.mqtt_cert.map(Some), mqtt_cert, "--mqtt-cert");
        overlay!(cfg, a.mqtt_key.map(Some), mqtt_key, "--mqtt-key");
        overlay!(
            cfg,
            a.mqtt_password_file.map(Some),
            mqtt_password_file,
            "--mqtt-password-file"
        );
        overlay!(cfg, a.mqtt_user.map(Some), mqtt_user, "--mqtt-user");
        overlay!(cfg, a.mqtt_queue, mqtt_queue, "--mqtt-queue");
        overlay!(
            cfg,
            a.mqtt_keep_alive,
            mqtt_keep_alive_s,
            "--mqtt-keep-alive"
        );
    }
}

#[derive(Args, Debug)]
pub(crate) struct ImageArgs {
    #[command(flatten)]
    pub(crate) common: CommonArgs,
    /// Pictures to label (JPEG, PNG).
    #[arg(required = true, value_name = "FILE")]
    pub(crate) files: Vec<PathBuf>,
    /// Directory for the annotated PNGs.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub(crate) out: PathBuf,
}

#[derive(Args, Debug)]
pub(crate) struct EvalArgs {
    #[command(flatten)]
    pub(crate) common: CommonArgs,
    /// Directory of UTKFace-named face images (`AGE_GENDER_RACE_*.jpg`).
    #[arg(long, value_name = "DIR")]
    pub(crate) faces: PathBuf,
    /// Only the faces of one subset of a split CSV (`file,split`, as the training pipeline
    /// writes to models/split.csv).
    #[arg(long, value_name = "CSV")]
    pub(crate) split: Option<PathBuf>,
    /// The subset of `--split` to evaluate.
    #[arg(long, value_name = "NAME", default_value = "test", requires = "split")]
    pub(crate) subset: String,
    /// Use at most N images.
    #[arg(long, value_name = "N")]
    pub(crate) limit: Option<usize>,
    /// Also write one JSON line per face to FILE: file name, true age and gender, and the
    /// network's outputs before calibration (`p_female`, the 101-way `age_dist`), for
    /// scripts/train/calibrate.py.
    #[arg(long, value_name = "FILE")]
    pub(crate) dump: Option<PathBuf>,
    /// Render each face over --frames frames with jitter (scale, shift, rotation, blur,
    /// brightness, JPEG quality) and run them through the frame loop: single-frame against
    /// fused labels, and classifier calls per frame; a table on stderr, one JSON object on
    /// stdout. --limit faces (default 300), picked with --seed.
    #[arg(long, conflicts_with = "dump")]
    pub(crate) sequences: bool,
    /// With --sequences: frames per face.
    #[arg(long, value_name = "N", default_value_t = 12, requires = "sequences")]
    pub(crate) frames: usize,
    /// With --sequences: frames per second of the rendered stream.
    #[arg(
        long,
        value_name = "FPS",
        default_value_t = 15.0,
        requires = "sequences"
    )]
    pub(crate) fps: f32,
    /// With --sequences: seed of the face pick and the jitter.
    #[arg(long, value_name = "N", default_value_t = 1, requires = "sequences")]
    pub(crate) seed: u64,
}

#[derive(Args, Debug)]
pub(crate) struct BenchArgs {
    #[command(flatten)]
    pub(crate) common: CommonArgs,
    /// An .mjpeg file or a directory of images, replayed in a loop as fast as possible.
    #[arg(long)]
    pub(crate) source: String,
    /// The replay's own clock: frame n is at n / FPS seconds, the camera's time that the
    /// loop's timed choices read (motion gating's longest wait, the whole-frame refresh,
    /// following), while the frames run as fast as they go. 0: the loop's own clock, so those
    /// choices see the bench's speed (at 1,000 fps, 0.25 s of following spans 250 frames).
    #[arg(long, value_name = "FPS", default_value_t = 30.0)]
    pub(crate) clock_fps: f32,
    /// Frames to measure.
    #[arg(long, value_name = "N", default_value_t = 300)]
    pub(crate) frames: u64,
    /// Frames run before measuring.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub(crate) warmup: u64,
    /// Loop an .mjpeg file forward and back instead of from the start again: a run longer
    /// than the file then has no seam where every face jumps back to where it started (a
    /// scene cut, which sends the tracker back to whole-frame detections).
    #[arg(long)]
    pub(crate) bounce: bool,
    #[command(flatten)]
    pub(crate) detection: DetectionArgs,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) mqtt: MqttArgs,
}

/// `overlay!(layered, value, key, "--flag")`: `key` takes the flag's value when the flag was
/// given, and a bad value is reported as the flag's.
macro_rules! overlay {
    ($cfg:expr, $value:expr, $key:ident, $flag:literal) => {
        $cfg.set(|c| &mut c.$key, stringify!($key), $flag, $value)
    };
}
pub(crate) use overlay;

/// The config file (if any) with the common flags applied.
pub(crate) fn base_config(c: &CommonArgs) -> Result<Layered, Fail> {
    let mut cfg = Layered::new(c.config.as_deref()).map_err(|e| Fail::Usage(e.into()))?;
    overlay!(cfg, c.model.clone().map(Some), model, "--model");
    overlay!(cfg, c.detector.clone().map(Some), detector, "--detector");
    overlay!(
        cfg,
        c.window_detector.clone().map(Some),
        window_detector,
        "--window-detector"
    );
    overlay!(cfg, c.score_threshold, score_threshold, "--score-threshold");
    overlay!(cfg, c.nms_iou, nms_iou, "--nms-iou");
    overlay!(cfg, c.max_faces, max_faces, "--max-faces");
    overlay!(cfg, c.closeup_margin, closeup_margin, "--closeup-margin");
    overlay!(cfg, c.threads, threads, "--threads");
    overlay!(cfg, c.workers, workers, "--workers");
    overlay!(cfg, c.model_form, model_form, "--model-form");
    overlay!(cfg, c.gender_min_p, gender_min_p, "--gender-min-p");
    overlay!(cfg, c.bucket_min_p, bucket_min_p, "--bucket-min-p");
    overlay!(cfg, c.classify_budget, classify_budget, "--classify-budget");
    overlay!(cfg, c.classify_grow, classify_grow, "--classify-grow");
    overlay!(
        cfg,
        c.classify_quality_gain,
        classify_quality_gain,
        "--classify-quality-gain"
    );
    overlay!(
        cfg,
        c.classify_refresh,
        classify_refresh_s,
        "--classify-refresh"
    );
    Ok(cfg)
}

/// The whole config checked: a bad value names the flag that set it, or the file.
pub(crate) fn check(cfg: Layered) -> Result<Config, Fail> {
    cfg.check().map_err(|e| Fail::Usage(e.into()))
}
