//! Opening the stages from the settings: the frame source, the display, the report sink and
//! the models, each error naming what could not be opened.

use std::path::Path;

use anyhow::Context;

use crate::capture::files::{DirSource, MjpegFileSource};
use crate::capture::FrameSource;
use crate::classify::Attributes;
use crate::config::Config;
use crate::detect::blazeface::BlazeFace;
use crate::detect::FaceDetector;
use crate::display::png::{NullDisplay, PngDisplay};
use crate::display::Display;
use crate::report::{FileSink, Sink, StdoutSink};

use super::FaceClassifier;

/// Open the frame source named by `cfg.source`: a V4L2 device (`/dev/...`, or `v4l2:NAME`
/// for a camera chosen by card name or bus info), a directory of
/// images, or an `.mjpeg` file (a single `.jpg` is a one-frame stream).
pub fn open_source(cfg: &Config) -> anyhow::Result<Box<dyn FrameSource>> {
    let s = cfg.source.as_str();
    let path = Path::new(s);
    if s.starts_with("/dev/") || s.starts_with("v4l2:") {
        return open_v4l2(cfg);
    }
    if path.is_dir() {
        let dir = DirSource::open(path, cfg.fps, cfg.loop_source)?;
        return Ok(dir.boxed(cfg.replay_as_camera));
    }
    if !path.exists() {
        anyhow::bail!("source {s} does not exist (expected a /dev/video device, a directory of images or an .mjpeg file)");
    }
    let file = MjpegFileSource::open(path, cfg.fps, cfg.loop_source)
        .with_context(|| format!("source {s}"))?;
    Ok(file.boxed(cfg.replay_as_camera))
}

fn open_v4l2(cfg: &Config) -> anyhow::Result<Box<dyn FrameSource>> {
    #[cfg(target_os = "linux")]
    {
        // `/dev/videoN`, or `v4l2:NAME` for a camera selected by card name or bus info.
        let device = cfg.source.strip_prefix("v4l2:").unwrap_or(&cfg.source);
        let fps = if cfg.fps > 0.0 {
            cfg.fps.round().max(1.0) as u32
        } else {
            30
        };
        Ok(Box::new(crate::capture::v4l2::V4l2Source::open(
            device, cfg.width, cfg.height, fps,
        )?))
    }
    #[cfg(not(target_os = "linux"))]
    anyhow::bail!("source {}: V4L2 capture needs Linux", cfg.source)
}

/// Open the display named by `cfg.display`. `width`/`height`: the frame size.
pub fn open_display(cfg: &Config, width: u32, height: u32) -> anyhow::Result<Box<dyn Display>> {
    let d = cfg.display.as_str();
    if d == "none" {
        return Ok(Box::new(NullDisplay));
    }
    if let Some(dir) = d.strip_prefix("png:") {
        anyhow::ensure!(
            !dir.is_empty(),
            "display png: needs a directory, e.g. png:out/"
        );
        return Ok(Box::new(PngDisplay::open(
            Path::new(dir),
            width,
            height,
            cfg.save_limits(),
        )?));
    }
    #[cfg(target_os = "linux")]
    {
        if let Some(path) = d.strip_prefix("fb:") {
            return Ok(Box::new(crate::display::fb::FbDisplay::open(path)?));
        }
        if d == "spi" || d.starts_with("spi:") {
            use crate::display::spi::{SpiConfig, SpiDisplay};
            let mut spi = match &cfg.spi {
                Some(t) => SpiConfig::from_table(t)?,
                None => SpiConfig::default(),
            };
            // `spi:/dev/spidevB.C` overrides the table's device
            if let Some(dev) = d.strip_prefix("spi:").filter(|p| !p.is_empty()) {
                spi.device = dev.to_string();
            }
            return Ok(Box::new(SpiDisplay::open(&spi)?));
        }
    }
    #[cfg(not(target_os = "linux"))]
    if d.starts_with("fb:") || d.starts_with("spi") {
        anyhow::bail!("display {d}: framebuffer and SPI displays need Linux");
    }
    anyhow::bail!("display {d}: expected none, png:DIR, fb:PATH or spi:")
}

/// Open the report sink: `-` is stdout, `/dev/...` a serial port, anything else a file
/// (appended to).
pub fn open_sink(cfg: &Config) -> anyhow::Result<Box<dyn Sink>> {
    let s = cfg.serial.as_str();
    if s == "-" {
        return Ok(Box::new(StdoutSink));
    }
    if s.starts_with("/dev/") {
        #[cfg(target_os = "linux")]
        {
            return Ok(Box::new(crate::serial::SerialSink::open(
                s,
                cfg.baud,
                cfg.serial_queue,
            )?));
        }
    }
    Ok(Box::new(FileSink::open(
        Path::new(s),
        cfg.report_max_mb as u64 * 1024 * 1024,
    )?))
}

/// Load the face detector at `path` with the thresholds of `cfg`, for pictures of any shape.
pub fn load_detector(path: &Path, cfg: &Config) -> anyhow::Result<Box<dyn FaceDetector>> {
    crate::detect::load_detector(path, detector_config(cfg))
}

/// Load the frame loop's face detector at `path` with the thresholds of `cfg`, its input cut
/// to the aspect of the frames `cfg` asks the camera for (`width`×`height`: a 256×192 BlazeFace
/// input for 4:3, a quarter less work than the square one; frames of another size are still
/// letterboxed into it).
pub fn load_live_detector(path: &Path, cfg: &Config) -> anyhow::Result<Box<dyn FaceDetector>> {
    let frame = Some((cfg.width, cfg.height));
    crate::detect::load_detector_for_frames(path, detector_config(cfg), frame)
}

fn detector_config(cfg: &Config) -> crate::detect::DetectorConfig {
    crate::detect::DetectorConfig {
        score_threshold: cfg.score_threshold,
        nms_iou: cfg.nms_iou,
        max_faces: cfg.max_faces,
    }
}

/// Load the window detector of track-guided detection at `path`: a BlazeFace model (the
/// 128×128 front one is the cheap one), with the config's score threshold.
pub fn load_window_detector(path: &Path, cfg: &Config) -> anyhow::Result<BlazeFace> {
    let dc = crate::detect::DetectorConfig {
        score_threshold: cfg.score_threshold,
        nms_iou: cfg.nms_iou,
        max_faces: 4,
    };
    BlazeFace::load(path, dc)
        .map_err(|e| anyhow::anyhow!("window_detector / --window-detector: {e:#}"))
}

/// Load the age/gender classifier at `path`.
pub fn load_classifier(path: &Path) -> anyhow::Result<Box<dyn FaceClassifier>> {
    Ok(Box::new(crate::classify::Classifier::load(path)?))
}

impl FaceClassifier for crate::classify::Classifier {
    fn classify(&mut self, chw_input: &[f32]) -> anyhow::Result<Attributes> {
        crate::classify::Classifier::classify(self, chw_input)
    }
}
