//! `agegender`: the command line.
//!
//! Exit codes: 0 success; 1 runtime or input error (an unreadable image or source, a write
//! that failed); 2 usage or configuration error (bad flag, bad config file); 3 model error
//! (a model file missing, unreadable or not the expected network). Every error is one line
//! on stderr, `agegender: error: ...`, naming the input. JSON lines go to stdout only.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use agegender::bench::{CanvasDisplay, DiscardSink};
use agegender::classify::{choose_form, Classifier, CpuFacts, FormChoice, ModelForm};
use agegender::config::Config;
use agegender::display::png::{annotate_into, save_png, SaveFrames};
use agegender::heap::PoolAlloc;
use agegender::model_files::{resolve_classifier, resolve_model_path, ModelKind};
use agegender::pipeline::{self, FrameDetector, LoopOptions, Perception, Pipeline};
use agegender::report::{unix_ms, Reporter, StdoutSink};
use agegender::rgb::RgbImage;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

/// Serves tract's per-inference blocks from a pool (no page faults, no fragmentation) and
/// counts allocations per thread for `agegender bench`; see `agegender::heap`.
#[global_allocator]
static ALLOCATOR: PoolAlloc = PoolAlloc;

#[derive(Parser, Debug)]
#[command(
    name = "agegender",
    version,
    about = "Offline age/gender kiosk camera",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// The live loop: frames from a camera, a directory of images or an .mjpeg file.
    Run(RunArgs),
    /// Label still pictures: an annotated PNG per input (in --out), JSON lines on stdout.
    Image(ImageArgs),
    /// Measure the model on a directory of UTKFace-named faces; prints one JSON object.
    Eval(EvalArgs),
    /// Per-stage times, fps and allocations of the live loop on a replayed stream.
    Bench(BenchArgs),
}

/// Flags every subcommand takes (they override the config file).
#[derive(Args, Debug, Clone, Default)]
struct CommonArgs {
    /// TOML file with any of the `run` settings (flags override it).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Age/gender classifier ONNX [default: the file of the form chosen (`--model-form`):
    /// models/agegender_f32.onnx for f32 and f16, models/agegender_int8.onnx for int8].
    #[arg(long, value_name = "PATH")]
    model: Option<PathBuf>,
    /// Face detector ONNX [default: models/detector/blazeface_back_256.onnx].
    #[arg(long, value_name = "PATH")]
    detector: Option<PathBuf>,
    /// The window search's detector of track-guided detection, a BlazeFace ONNX [default:
    /// models/detector/blazeface_front_128.onnx].
    #[arg(long, value_name = "PATH")]
    window_detector: Option<PathBuf>,
    /// Minimum detector score for a face (0..1).
    #[arg(long, value_name = "P")]
    score_threshold: Option<f32>,
    /// IoU above which overlapping detections are merged (0..1).
    #[arg(long, value_name = "IOU")]
    nms_iou: Option<f32>,
    /// Most faces handled per frame.
    #[arg(long, value_name = "N")]
    max_faces: Option<usize>,
    /// A face that fills the frame or runs off its edge is detected again with this much
    /// context (frame sizes per side; 0: never).
    #[arg(long, value_name = "M")]
    closeup_margin: Option<f32>,
    /// Threads for tract's matrix products (1: everything on the frame-loop thread).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Detector workers of the frame loop: auto (one per core) or N; 1 runs every stage on
    /// one thread.
    #[arg(long, value_name = "N|auto")]
    workers: Option<agegender::config::Workers>,
    /// Classifier form: auto (from this CPU's features), f32, f16 or int8. `--model` names
    /// a file instead (a quantized file runs as int8; a float file in f16 if the form is f16).
    #[arg(long, value_name = "FORM")]
    model_form: Option<agegender::classify::FormSetting>,
    /// Report the gender as "U" (drawn `?`) below this calibrated probability of the more
    /// likely gender (0.5..=1; 0.5: always answer); the default is chosen on validation by the
    /// rule in models/README.md.
    #[arg(long, value_name = "P")]
    gender_min_p: Option<f32>,
    /// Report the age bucket as "?" below this calibrated bucket probability (0..=1; 0: always
    /// answer); the default is chosen on validation by the rule in models/README.md.
    #[arg(long, value_name = "P")]
    bucket_min_p: Option<f32>,
    /// Classified views a track may have before only the refresh classifies it again
    /// (0: classify every detection).
    #[arg(long, value_name = "N")]
    classify_budget: Option<u32>,
    /// Within the budget, classify again when the face grew to this many times its best
    /// view's side.
    #[arg(long, value_name = "FACTOR")]
    classify_grow: Option<f32>,
    /// Within the budget, classify again when the view's quality is this many times the best
    /// view's.
    #[arg(long, value_name = "FACTOR")]
    classify_quality_gain: Option<f32>,
    /// Past the budget, classify a track again once its latest view is this old (0: never).
    #[arg(long, value_name = "SECONDS")]
    classify_refresh: Option<f32>,
}

#[derive(Args, Debug)]
struct RunArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// /dev/videoN, a directory of images, or an .mjpeg file.
    #[arg(long)]
    source: Option<String>,
    /// Capture rate, or replay rate of a file source (0: as fast as possible).
    #[arg(long)]
    fps: Option<f32>,
    #[arg(long)]
    width: Option<u32>,
    #[arg(long)]
    height: Option<u32>,
    /// Replay a file source from the start when it ends.
    #[arg(long = "loop")]
    loop_source: bool,
    /// Replay a file source at --fps as a live camera delivers frames, dropping (and counting)
    /// those the loop has no room for. By default a file is never dropped from: a machine
    /// slower than the clip reports every frame, only later.
    #[arg(long)]
    as_camera: bool,
    /// none | png:DIR | fb:/dev/fb0 | spi:
    #[arg(long)]
    display: Option<String>,
    /// Also save every frame that shows a face, annotated, as a PNG in DIR (off by default:
    /// no frame is written to disk unless asked).
    #[arg(long, value_name = "DIR")]
    save_frames: Option<PathBuf>,
    /// Where JSON lines go: - (stdout), a file, or a serial device.
    #[arg(long, value_name = "PATH")]
    serial: Option<String>,
    #[arg(long)]
    baud: Option<u32>,
    /// Stop after N frames (0: until the source ends).
    #[arg(long, value_name = "N")]
    max_frames: Option<u64>,
    /// Detect on every k-th frame, track in between.
    #[arg(long, value_name = "K")]
    detect_every: Option<u32>,
    /// Motion gating: on a frame due for detection, detect only when at least this fraction
    /// of a small luma grid changed since the last detection (0..=1; 0: off); the default is
    /// chosen by measurement (docs/performance.md, "Motion gating").
    #[arg(long, value_name = "F")]
    motion_threshold: Option<f32>,
    /// With motion gating on, detect at least this often even in a still scene.
    #[arg(long, value_name = "SECONDS")]
    detect_max_interval: Option<f32>,
    /// Track-guided detection: between whole-frame detections at most this far apart, search
    /// only windows around the tracked faces (0: always the whole frame).
    #[arg(long, value_name = "SECONDS")]
    full_detect_interval: Option<f32>,
    /// Feed this hardware watchdog (/dev/watchdog) while the frame loop runs: a hung loop
    /// resets the board.
    #[arg(long, value_name = "PATH")]
    watchdog_device: Option<PathBuf>,
    /// The hardware watchdog's timeout.
    #[arg(long, value_name = "SECONDS")]
    watchdog_timeout: Option<u32>,
    /// Seconds between status lines.
    #[arg(long, value_name = "SECONDS")]
    status_interval: Option<f32>,
    /// Least IoU for a detection to continue a track.
    #[arg(long, value_name = "IOU")]
    track_iou: Option<f32>,
    /// Detection frames a track may be missed before it is forgotten.
    #[arg(long, value_name = "N")]
    max_missed: Option<u32>,
    /// Weight of a new age estimate in the running average (0..1].
    #[arg(long, value_name = "ALPHA")]
    age_alpha: Option<f32>,
    // --- visits and counts ---
    /// A track shorter than this (first to last view) is not a visit.
    #[arg(long, value_name = "SECONDS")]
    min_dwell: Option<f32>,
    /// A visit ends once its face has gone unseen for --max-missed detection frames and at
    /// least this long (0: --max-missed alone).
    #[arg(long, value_name = "SECONDS")]
    visit_end: Option<f32>,
    /// Seconds between `counts` lines (0: none).
    #[arg(long, value_name = "SECONDS")]
    counts_interval: Option<f32>,
    // --- end of visits and counts ---
    #[command(flatten)]
    mqtt: MqttArgs,
}

/// MQTT flags (`run`, `bench`); each is also a config key (`--mqtt-ca` is `mqtt_ca`).
#[derive(Args, Debug, Clone, Default)]
struct MqttArgs {
    /// Also publish the lines to an MQTT broker: mqtt://HOST[:PORT] or mqtts://HOST[:PORT]
    /// (off by default: no network at all).
    #[arg(long, value_name = "URL")]
    mqtt: Option<String>,
    /// MQTT client id and topic level [default: derived from /etc/machine-id].
    #[arg(long, value_name = "ID")]
    mqtt_client_id: Option<String>,
    /// Topic prefix: topics are PREFIX/ID/{face,visit,counts,status,availability}.
    #[arg(long, value_name = "PREFIX")]
    mqtt_topic_prefix: Option<String>,
    /// Also publish every face line (per frame).
    #[arg(long)]
    mqtt_faces: bool,
    /// QoS (0 or 1) of face lines.
    #[arg(long, value_name = "Q")]
    mqtt_qos_face: Option<u8>,
    /// QoS of visit lines.
    #[arg(long, value_name = "Q")]
    mqtt_qos_visit: Option<u8>,
    /// QoS of counts lines.
    #[arg(long, value_name = "Q")]
    mqtt_qos_counts: Option<u8>,
    /// QoS of status lines.
    #[arg(long, value_name = "Q")]
    mqtt_qos_status: Option<u8>,
    /// PEM CA certificate for mqtts:// [default: the system's].
    #[arg(long, value_name = "FILE")]
    mqtt_ca: Option<PathBuf>,
    /// PEM client certificate (with --mqtt-key).
    #[arg(long, value_name = "FILE")]
    mqtt_cert: Option<PathBuf>,
    /// PEM private key of --mqtt-cert.
    #[arg(long, value_name = "FILE")]
    mqtt_key: Option<PathBuf>,
    /// MQTT user name (the password comes from --mqtt-password-file, never from a flag).
    #[arg(long, value_name = "NAME")]
    mqtt_user: Option<String>,
    /// File holding the MQTT password (the whole file less its trailing newline).
    #[arg(long, value_name = "FILE")]
    mqtt_password_file: Option<PathBuf>,
    /// Lines queued for the broker before new ones are dropped (and counted).
    #[arg(long, value_name = "N")]
    mqtt_queue: Option<usize>,
    /// Seconds between MQTT keep-alive pings.
    #[arg(long, value_name = "SECONDS")]
    mqtt_keep_alive: Option<u32>,
}

impl MqttArgs {
    fn apply(&self, cfg: &mut Config) {
        let a = self.clone();
        if a.mqtt.is_some() {
            cfg.mqtt = a.mqtt;
        }
        if a.mqtt_client_id.is_some() {
            cfg.mqtt_client_id = a.mqtt_client_id;
        }
        set(&mut cfg.mqtt_topic_prefix, a.mqtt_topic_prefix);
        cfg.mqtt_faces |= a.mqtt_faces;
        set(&mut cfg.mqtt_qos_face, a.mqtt_qos_face);
        set(&mut cfg.mqtt_qos_visit, a.mqtt_qos_visit);
        set(&mut cfg.mqtt_qos_counts, a.mqtt_qos_counts);
        set(&mut cfg.mqtt_qos_status, a.mqtt_qos_status);
        for (slot, v) in [
            (&mut cfg.mqtt_ca, a.mqtt_ca),
            (&mut cfg.mqtt_cert, a.mqtt_cert),
            (&mut cfg.mqtt_key, a.mqtt_key),
            (&mut cfg.mqtt_password_file, a.mqtt_password_file),
        ] {
            if v.is_some() {
                *slot = v;
            }
        }
        if a.mqtt_user.is_some() {
            cfg.mqtt_user = a.mqtt_user;
        }
        set(&mut cfg.mqtt_queue, a.mqtt_queue);
        set(&mut cfg.mqtt_keep_alive_s, a.mqtt_keep_alive);
    }
}

/// The reporter for `sink`, publishing to MQTT too when `mqtt` is set (a bad TLS or password
/// file is a configuration error, exit 2; the broker itself may be away: it connects later).
fn reporter_for(cfg: &Config, sink: Box<dyn agegender::report::Sink>) -> Result<Reporter, Fail> {
    let mut reporter = Reporter::new(sink);
    if let Some(s) = cfg.mqtt().map_err(Fail::Usage)? {
        let topics = s.topic("*");
        let p = agegender::mqtt::MqttPublisher::start(s).map_err(Fail::Usage)?;
        eprintln!("agegender: mqtt: publishing to {} on {topics}", p.url());
        reporter.set_publisher(Box::new(p));
    }
    Ok(reporter)
}

#[derive(Args, Debug)]
struct ImageArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Pictures to label (JPEG, PNG).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Directory for the annotated PNGs.
    #[arg(long, value_name = "DIR", default_value = ".")]
    out: PathBuf,
}

#[derive(Args, Debug)]
struct EvalArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Directory of UTKFace-named face images (`AGE_GENDER_RACE_*.jpg`).
    #[arg(long, value_name = "DIR")]
    faces: PathBuf,
    /// Only the faces of one subset of a split CSV (`file,split`, as the training pipeline
    /// writes to models/split.csv).
    #[arg(long, value_name = "CSV")]
    split: Option<PathBuf>,
    /// The subset of `--split` to evaluate.
    #[arg(long, value_name = "NAME", default_value = "test", requires = "split")]
    subset: String,
    /// Use at most N images.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Also write one JSON line per face to FILE: file name, true age and gender, and the
    /// network's outputs before calibration (`p_female`, the 101-way `age_dist`), for
    /// scripts/train/calibrate.py.
    #[arg(long, value_name = "FILE")]
    dump: Option<PathBuf>,
    /// Render each face over --frames frames with jitter (scale, shift, rotation, blur,
    /// brightness, JPEG quality) and run them through the frame loop: single-frame against
    /// fused labels, and classifier calls per frame; a table on stderr, one JSON object on
    /// stdout. --limit faces (default 300), picked with --seed.
    #[arg(long, conflicts_with = "dump")]
    sequences: bool,
    /// With --sequences: frames per face.
    #[arg(long, value_name = "N", default_value_t = 12, requires = "sequences")]
    frames: usize,
    /// With --sequences: frames per second of the rendered stream.
    #[arg(
        long,
        value_name = "FPS",
        default_value_t = 15.0,
        requires = "sequences"
    )]
    fps: f32,
    /// With --sequences: seed of the face pick and the jitter.
    #[arg(long, value_name = "N", default_value_t = 1, requires = "sequences")]
    seed: u64,
}

#[derive(Args, Debug)]
struct BenchArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// An .mjpeg file or a directory of images, replayed in a loop as fast as possible.
    #[arg(long)]
    source: String,
    /// Frames to measure.
    #[arg(long, value_name = "N", default_value_t = 300)]
    frames: u64,
    /// Frames run before measuring.
    #[arg(long, value_name = "N", default_value_t = 20)]
    warmup: u64,
    /// Loop an .mjpeg file forward and back instead of from the start again: a run longer
    /// than the file then has no seam where every face jumps back to where it started (a
    /// scene cut, which sends the tracker back to whole-frame detections).
    #[arg(long)]
    bounce: bool,
    /// Detect faces on every N-th frame (tracking in between).
    #[arg(long, value_name = "N")]
    detect_every: Option<u32>,
    /// Motion gating threshold (as `run --motion-threshold`).
    #[arg(long, value_name = "F")]
    motion_threshold: Option<f32>,
    /// Longest time without a detection with motion gating on (as `run`).
    #[arg(long, value_name = "SECONDS")]
    detect_max_interval: Option<f32>,
    /// Whole-frame detections at most this far apart with track-guided detection (as `run`).
    #[arg(long, value_name = "SECONDS")]
    full_detect_interval: Option<f32>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    mqtt: MqttArgs,
}

/// An error with its exit code.
enum Fail {
    /// 1: runtime or input.
    Runtime(anyhow::Error),
    /// 2: usage or configuration.
    Usage(anyhow::Error),
    /// 3: a model.
    Model(anyhow::Error),
}

impl Fail {
    fn code(&self) -> u8 {
        match self {
            Fail::Runtime(_) => 1,
            Fail::Usage(_) => 2,
            Fail::Model(_) => 3,
        }
    }
    fn error(&self) -> &anyhow::Error {
        match self {
            Fail::Runtime(e) | Fail::Usage(e) | Fail::Model(e) => e,
        }
    }
}

/// Print one error line: the whole context chain, newlines folded.
fn print_error(e: &anyhow::Error) {
    let msg = format!("{e:#}");
    eprintln!("agegender: error: {}", agegender::one_line(&msg));
}

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "agegender: error: internal error{at}: {} (please report this)",
            agegender::one_line(&msg)
        );
    }));
    // `--version` also says which classifier form this CPU gets, and why.
    let long_version = match choose_form(Default::default(), CpuFacts::native()) {
        Ok(c) => format!(
            "{}\nclassifier form on this CPU ({}): {}: {}",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::ARCH,
            c.form.name(),
            c.why
        ),
        Err(e) => format!("{}\n{e}", env!("CARGO_PKG_VERSION")),
    };
    let parsed = with_config_defaults(Cli::command())
        .long_version(&*Box::leak(long_version.into_boxed_str()))
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m));
    let cli = match parsed {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return ExitCode::from(2);
            }
            // clap's first line is "error: ..."; keep it, drop the usage block.
            let rendered = e.render().to_string();
            let msg: Vec<&str> = rendered
                .lines()
                .take_while(|l| !l.starts_with("Usage:"))
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with("tip:"))
                .collect();
            let msg = msg.join(" ");
            eprintln!(
                "agegender: error: {} (see agegender --help)",
                msg.trim_start_matches("error: ")
            );
            return ExitCode::from(2);
        }
    };
    agegender::heap::fix_mmap_threshold();
    let result = match cli.cmd {
        Cmd::Run(a) => cmd_run(a),
        Cmd::Image(a) => cmd_image(a),
        Cmd::Eval(a) => cmd_eval(a),
        Cmd::Bench(a) => cmd_bench(a),
    };
    match result {
        Ok(code) => code,
        Err(f) => {
            print_error(f.error());
            ExitCode::from(f.code())
        }
    }
}

/// The config key a flag sets: its own name, or with `_s` for a flag in seconds
/// (`--min-dwell` sets `min_dwell_s`); `None` for a flag that is no config key.
fn config_key<'a>(
    defaults: &'a toml::Table,
    flag_id: &str,
) -> Option<(&'a String, &'a toml::Value)> {
    defaults
        .get_key_value(flag_id)
        .or_else(|| defaults.get_key_value(&format!("{flag_id}_s")))
}

/// Every flag that sets a config key says the key's default in its help, taken from
/// `Config::default()`, the one place a default is written (a flag whose default is "none" or
/// "off" says so in its own words).
fn with_config_defaults(cmd: clap::Command) -> clap::Command {
    let defaults = toml::Table::try_from(Config::default()).expect("the defaults serialize");
    cmd.mut_subcommands(|sc| {
        // (a flag with a default of its own, such as `eval --fps`, says that one)
        let ids: Vec<String> = sc
            .get_arguments()
            .filter(|a| a.get_default_values().is_empty())
            .map(|a| a.get_id().to_string())
            .collect();
        ids.into_iter().fold(sc, |sc, id| {
            let shown = match config_key(&defaults, &id) {
                Some((_, toml::Value::Boolean(_))) | None => return sc,
                Some((_, toml::Value::Float(f))) => (*f as f32).to_string(),
                Some((_, toml::Value::String(t))) => t.clone(),
                Some((_, v)) => v.to_string(),
            };
            sc.mut_arg(&id, |a| {
                let help = a.get_help().map(ToString::to_string).unwrap_or_default();
                let long = a.get_long_help().map(ToString::to_string);
                let a = a.help(format!("{help} [default: {shown}]"));
                match long {
                    Some(l) => a.long_help(format!("{l} [default: {shown}]")),
                    None => a,
                }
            })
        })
    })
}

/// The config file (if any) with the common flags applied.
fn base_config(c: &CommonArgs) -> Result<Config, Fail> {
    let mut cfg = match &c.config {
        Some(p) => Config::from_file(p).map_err(|e| Fail::Usage(e.into()))?,
        None => Config::default(),
    };
    if c.model.is_some() {
        cfg.model = c.model.clone();
    }
    if c.detector.is_some() {
        cfg.detector = c.detector.clone();
    }
    if c.window_detector.is_some() {
        cfg.window_detector = c.window_detector.clone();
    }
    set(&mut cfg.score_threshold, c.score_threshold);
    set(&mut cfg.nms_iou, c.nms_iou);
    set(&mut cfg.max_faces, c.max_faces);
    set(&mut cfg.closeup_margin, c.closeup_margin);
    set(&mut cfg.threads, c.threads);
    set(&mut cfg.workers, c.workers);
    set(&mut cfg.model_form, c.model_form);
    set(&mut cfg.gender_min_p, c.gender_min_p);
    set(&mut cfg.bucket_min_p, c.bucket_min_p);
    set(&mut cfg.classify_budget, c.classify_budget);
    set(&mut cfg.classify_grow, c.classify_grow);
    set(&mut cfg.classify_quality_gain, c.classify_quality_gain);
    set(&mut cfg.classify_refresh_s, c.classify_refresh);
    Ok(cfg)
}

fn set<T>(slot: &mut T, v: Option<T>) {
    if let Some(v) = v {
        *slot = v;
    }
}

fn check(cfg: &Config) -> Result<(), Fail> {
    cfg.validate().map_err(|(key, why)| {
        Fail::Usage(anyhow::anyhow!(
            "bad value for --{}: {why}",
            // `status_interval_s` is `--status-interval`: flags in seconds drop the `_s`
            key.strip_suffix("_s").unwrap_or(key).replace('_', "-")
        ))
    })
}

/// The classifier the config names, in the form chosen for this CPU (or set), and what runs
/// and why. Errors are model errors (exit 3).
fn load_classifier(cfg: &Config) -> Result<(Classifier, FormChoice), Fail> {
    let choice = choose_form(cfg.model_form, CpuFacts::native())
        .map_err(|e| Fail::Usage(anyhow::anyhow!("--model-form / model_form: {e}")))?;
    let path = resolve_classifier(cfg.model.as_deref(), &choice).map_err(Fail::Model)?;
    let classifier =
        Classifier::load_as(&path, choice.form == ModelForm::F16).map_err(Fail::Model)?;
    let choice = if classifier.form() == choice.form {
        choice
    } else {
        FormChoice {
            form: classifier.form(),
            why: "the model file given (--model or `model`) is quantized",
        }
    };
    eprintln!(
        "agegender: classifier: {} ({}): {}",
        choice.form.name(),
        path.display(),
        choice.why
    );
    Ok((classifier, choice))
}

/// Load the detector and classifier the config names, and for the frame loop (`live`) the
/// window detector of track-guided detection when it is on; errors are model errors (exit 3).
fn load_perception(cfg: &Config, live: bool) -> Result<(Perception, FormChoice), Fail> {
    agegender::detect::set_inference_threads(cfg.threads).map_err(Fail::Usage)?;
    let detect = load_frame_detector(cfg, live)?;
    let (classifier, choice) = load_classifier(cfg)?;
    Ok((
        Perception::with_detect(detect, Box::new(classifier), cfg.max_faces),
        choice,
    ))
}

/// The detect stage the config names (see [`load_perception`]).
fn load_frame_detector(cfg: &Config, live: bool) -> Result<FrameDetector, Fail> {
    let det_path =
        resolve_model_path(cfg.detector.as_deref(), ModelKind::Detector).map_err(Fail::Model)?;
    let detector = if live {
        pipeline::load_live_detector(&det_path, cfg)
    } else {
        pipeline::load_detector(&det_path, cfg)
    }
    .map_err(Fail::Model)?;
    let mut detect = FrameDetector::new(detector);
    detect.set_closeup_margin(cfg.closeup_margin);
    if live && cfg.full_detect_interval_s > 0.0 {
        let path = resolve_model_path(cfg.window_detector.as_deref(), ModelKind::WindowDetector)
            .map_err(Fail::Model)?;
        let window = pipeline::load_window_detector(&path, cfg).map_err(Fail::Model)?;
        detect.set_window_detector(window);
    }
    Ok(detect)
}

/// The detectors of the frame loop's detector workers beyond the perception's own
/// (`workers` - 1; none for 1: the one-thread loop): forks of `own`, sharing its models.
fn load_workers(cfg: &Config, own: &FrameDetector) -> Result<Vec<FrameDetector>, Fail> {
    own.forks(cfg.workers.count() - 1).map_err(Fail::Model)
}

fn cmd_run(a: RunArgs) -> Result<ExitCode, Fail> {
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
    let status = p.run().map_err(Fail::Runtime)?;
    eprintln!(
        "agegender: done: {} frames, {} faces reported, {} decode errors, {} capture errors",
        status.frames, status.faces_total, status.decode_errors, status.capture_errors
    );
    Ok(ExitCode::SUCCESS)
}

/// A PNG name for `input` in `out`, unique within this run.
fn png_name(input: &Path, used: &mut HashSet<String>) -> String {
    let stem = input
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("image")
        .to_string();
    let mut name = format!("{stem}.png");
    let mut k = 2;
    while !used.insert(name.clone()) {
        name = format!("{stem}_{k}.png");
        k += 1;
    }
    name
}

fn cmd_image(a: ImageArgs) -> Result<ExitCode, Fail> {
    let cfg = base_config(&a.common)?;
    check(&cfg)?;
    let (mut perception, _) = load_perception(&cfg, false)?;
    std::fs::create_dir_all(&a.out).map_err(|e| {
        Fail::Runtime(anyhow::anyhow!(
            "cannot create output directory {}: {e}",
            a.out.display()
        ))
    })?;
    let mut reporter = Reporter::new(Box::new(StdoutSink));
    let mut faces = Vec::new();
    let mut canvas = RgbImage::default();
    let mut used = HashSet::new();
    let mut failed = 0usize;
    for (i, file) in a.files.iter().enumerate() {
        let t0 = std::time::Instant::now();
        let result = (|| -> anyhow::Result<()> {
            let img = agegender::decode::load_image(file)?;
            perception
                .run_still(&img, cfg.nms_iou)
                .map_err(|e| e.context(format!("cannot analyse {}", file.display())))?;
            perception.faces_once(&mut faces);
            // One picture, no track: abstain on each face's own (calibrated) probabilities.
            let abstention = cfg.abstention();
            for f in faces.iter_mut() {
                f.attributes = abstention.apply(f.attributes);
            }
            let ms = t0.elapsed().as_secs_f32() * 1000.0;
            let name = file.to_string_lossy();
            for f in &faces {
                reporter.face(unix_ms(), i as u64, f, ms, Some(&name))?;
            }
            reporter.flush()?;
            annotate_into(&img, &faces, &mut canvas);
            save_png(&canvas, &a.out.join(png_name(file, &mut used)))?;
            Ok(())
        })();
        if let Err(e) = result {
            failed += 1;
            print_error(&e);
        }
    }
    if failed > 0 {
        eprintln!("agegender: {failed} of {} inputs failed", a.files.len());
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_eval(a: EvalArgs) -> Result<ExitCode, Fail> {
    let cfg = base_config(&a.common)?;
    check(&cfg)?;
    if !a.faces.is_dir() {
        return Err(Fail::Runtime(anyhow::anyhow!(
            "face directory {} does not exist",
            a.faces.display()
        )));
    }
    let only = match &a.split {
        Some(p) => Some(agegender::eval::read_split(p, &a.subset).map_err(Fail::Usage)?),
        None => None,
    };
    if a.sequences {
        if a.frames < 2 {
            return Err(Fail::Usage(anyhow::anyhow!(
                "bad value for --frames: {} (a sequence needs at least 2 frames)",
                a.frames
            )));
        }
        if !(a.fps.is_finite() && a.fps > 0.0) {
            return Err(Fail::Usage(anyhow::anyhow!(
                "bad value for --fps: {} is not > 0",
                a.fps
            )));
        }
        let (perception, _) = load_perception(&cfg, true)?;
        let opts = agegender::eval_seq::SeqOptions {
            only: only.as_ref(),
            limit: a.limit.unwrap_or(300),
            frames: a.frames,
            fps: a.fps,
            seed: a.seed,
            jitter: agegender::eval_seq::Jitter::default(),
        };
        let (report, _) = agegender::eval_seq::eval_sequences(&a.faces, perception, &cfg, &opts)
            .map_err(Fail::Runtime)?;
        eprint!("{}", report.table());
        let json = serde_json::to_string(&report).map_err(|e| Fail::Runtime(e.into()))?;
        println!("{json}");
        return Ok(ExitCode::SUCCESS);
    }
    let det_path =
        resolve_model_path(cfg.detector.as_deref(), ModelKind::Detector).map_err(Fail::Model)?;
    let mut detector = pipeline::load_detector(&det_path, &cfg).map_err(Fail::Model)?;
    let (mut classifier, _) = load_classifier(&cfg)?;
    let mut dump = match &a.dump {
        Some(p) => Some(std::io::BufWriter::new(std::fs::File::create(p).map_err(
            |e| {
                Fail::Runtime(anyhow::anyhow!(
                    "--dump {}: cannot create it: {e}",
                    p.display()
                ))
            },
        )?)),
        None => None,
    };
    let opts = agegender::eval::EvalOptions {
        only: only.as_ref(),
        limit: a.limit,
        abstention: cfg.abstention(),
        dump: dump.as_mut().map(|w| w as &mut dyn std::io::Write),
    };
    let report = agegender::eval::eval_faces_with(
        &a.faces,
        &mut *detector,
        &mut classifier,
        opts,
        &mut |e| print_error(e),
    )
    .map_err(Fail::Runtime)?;
    let json = serde_json::to_string(&report).map_err(|e| Fail::Runtime(e.into()))?;
    println!("{json}");
    if report.unreadable > 0 {
        // The measure stands for the faces that could be read; the run still says it was
        // not clean, as `image` does.
        eprintln!(
            "agegender: {} of {} faces could not be read (named above)",
            report.unreadable,
            report.images + report.unreadable
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_bench(a: BenchArgs) -> Result<ExitCode, Fail> {
    let mut cfg = base_config(&a.common)?;
    cfg.source = a.source;
    cfg.fps = 0.0;
    cfg.loop_source = true;
    cfg.max_frames = 0;
    set(&mut cfg.detect_every, a.detect_every);
    set(&mut cfg.motion_threshold, a.motion_threshold);
    set(&mut cfg.detect_max_interval_s, a.detect_max_interval);
    set(&mut cfg.full_detect_interval_s, a.full_detect_interval);
    a.mqtt.apply(&mut cfg);
    check(&cfg)?;
    if cfg.source.starts_with("/dev/") || cfg.source.starts_with("v4l2:") {
        return Err(Fail::Usage(anyhow::anyhow!(
            "bench --source {}: give an .mjpeg file or a directory of images (a camera cannot be replayed)",
            cfg.source
        )));
    }
    let (perception, form) = load_perception(&cfg, true)?;
    let workers = load_workers(&cfg, &perception.detect)?;
    agegender::heap::start_pooling(); // as `run` does
    let source: Box<dyn agegender::capture::FrameSource> = if a.bounce {
        let path = Path::new(&cfg.source);
        if path.is_dir() {
            return Err(Fail::Usage(anyhow::anyhow!(
                "bench --bounce --source {}: --bounce replays an .mjpeg file, not a directory",
                cfg.source
            )));
        }
        let src = agegender::capture::files::MjpegFileSource::open(path, 0.0, true)
            .map_err(|e| Fail::Runtime(e.context(format!("source {}", cfg.source))))?;
        Box::new(src.bouncing())
    } else {
        pipeline::open_source(&cfg).map_err(Fail::Runtime)?
    };
    let (w, h) = source.frame_size();
    let mut p = Pipeline::new(
        source,
        perception,
        Box::new(CanvasDisplay::new(w, h)),
        reporter_for(&cfg, Box::new(DiscardSink::default()))?,
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
