//! What the commands open from the configuration: the classifier in the form chosen for this
//! CPU, the detectors, the workers' detectors, the reporter (with its MQTT publisher); errors
//! carry their exit code.

use agegender::classify::{choose_form, Classifier, CpuFacts, FormChoice, ModelForm};
use agegender::config::Config;
use agegender::model_files::{resolve_classifier, resolve_model_path, ModelKind};
use agegender::pipeline::{self, FrameDetector, Perception};
use agegender::report::Reporter;

use crate::Fail;

/// The reporter for `sink`, publishing to MQTT too when `mqtt` is set (a bad TLS or password
/// file is a configuration error, exit 2; the broker itself may be away: it connects later).
/// With it, the frame loop's side of updates over MQTT (`mqtt` set).
pub(crate) fn reporter_for(
    cfg: &Config,
    sink: Box<dyn agegender::report::Sink>,
) -> Result<(Reporter, Option<agegender::mqtt::UpdateHandle>), Fail> {
    let mut reporter = Reporter::new(sink);
    let mut updates = None;
    if let Some(s) = cfg.mqtt().map_err(Fail::Usage)? {
        let topics = s.topic("*");
        let commands = s.update_request.as_ref().map(|_| s.topic("cmd/update"));
        let p = agegender::mqtt::MqttPublisher::start(s).map_err(Fail::Usage)?;
        eprintln!("agegender: mqtt: publishing to {} on {topics}", p.url());
        if let Some(t) = commands {
            eprintln!("agegender: mqtt: taking update commands on {t}");
        }
        updates = Some(p.updates());
        reporter.set_publisher(Box::new(p));
    }
    Ok((reporter, updates))
}

/// The classifier the config names, in the form chosen for this CPU (or set), and what runs
/// and why. Errors are model errors (exit 3).
pub(crate) fn load_classifier(cfg: &Config) -> Result<(Classifier, FormChoice), Fail> {
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
pub(crate) fn load_perception(cfg: &Config, live: bool) -> Result<(Perception, FormChoice), Fail> {
    agegender::tract_runner::set_inference_threads(cfg.threads).map_err(Fail::Usage)?;
    let detect = load_frame_detector(cfg, live)?;
    let (classifier, choice) = load_classifier(cfg)?;
    Ok((
        Perception::with_detect(detect, Box::new(classifier), cfg.max_faces),
        choice,
    ))
}

/// The detect stage the config names (see [`load_perception`]).
pub(crate) fn load_frame_detector(cfg: &Config, live: bool) -> Result<FrameDetector, Fail> {
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
pub(crate) fn load_workers(cfg: &Config, own: &FrameDetector) -> Result<Vec<FrameDetector>, Fail> {
    own.forks(cfg.workers.count() - 1).map_err(Fail::Model)
}
