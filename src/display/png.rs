//! Headless displays: PNG files into a directory, or nothing at all.
//!
//! [`PngDisplay`] composes each frame and its overlay in a canvas allocated once, then
//! encodes `frame_000001.png`, ... (PNG encoding itself allocates; it is a debugging and
//! headless aid, not the kiosk path — use `none`, `fb:` or `spi:` for a zero-allocation loop).

use std::path::{Path, PathBuf};

use anyhow::Context;
use embedded_graphics::prelude::Point;

use super::Display;
use crate::rgb::RgbImage;
use crate::track::TrackedFace;

/// Writes each shown frame, annotated, as a PNG file in a directory.
pub struct PngDisplay {
    dir: PathBuf,
    canvas: RgbImage,
    shown: u64,
    path: PathBuf,
}

impl PngDisplay {
    /// Create `dir` if needed. `width`/`height` size the canvas (it grows if a frame is larger).
    pub fn open(dir: &Path, width: u32, height: u32) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create PNG output directory {}", dir.display()))?;
        Ok(PngDisplay {
            dir: dir.to_path_buf(),
            canvas: RgbImage::new(width, height),
            shown: 0,
            path: PathBuf::new(),
        })
    }

    /// Frames written so far.
    pub fn shown(&self) -> u64 {
        self.shown
    }
}

/// Draw `faces` over a copy of `frame` in `canvas` (resized to the frame, reusing its buffer).
pub fn annotate_into(frame: &RgbImage, faces: &[TrackedFace], canvas: &mut RgbImage) {
    canvas.resize(frame.width, frame.height);
    canvas.data.copy_from_slice(&frame.data);
    let _ = crate::draw::draw_faces(canvas, faces, 1.0, Point::zero());
}

/// Encode an [`RgbImage`] as a PNG file.
pub fn save_png(img: &RgbImage, path: &Path) -> anyhow::Result<()> {
    let f =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut w = std::io::BufWriter::new(f);
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut w),
        &img.data,
        img.width,
        img.height,
        image::ExtendedColorType::Rgb8,
    )
    .with_context(|| format!("cannot write PNG {}", path.display()))?;
    std::io::Write::flush(&mut w).with_context(|| format!("cannot write PNG {}", path.display()))
}

impl Display for PngDisplay {
    fn show(&mut self, frame: &RgbImage, faces: &[TrackedFace]) -> anyhow::Result<()> {
        annotate_into(frame, faces, &mut self.canvas);
        self.shown += 1;
        self.path = self.dir.join(format!("frame_{:06}.png", self.shown));
        save_png(&self.canvas, &self.path)
    }

    fn describe(&self) -> String {
        format!("PNG files in {}", self.dir.display())
    }
}

/// `--save-frames DIR`: shows each frame on another display and also writes the frames that
/// show at least one face, annotated, as `face_000001.png`, ... in `DIR`. A write error is
/// returned (the pipeline logs and counts it) and the next frame is tried again.
pub struct SaveFrames {
    inner: Box<dyn Display>,
    png: PngDisplay,
    saved: u64,
}

impl SaveFrames {
    pub fn open(
        dir: &Path,
        inner: Box<dyn Display>,
        width: u32,
        height: u32,
    ) -> anyhow::Result<Self> {
        Ok(SaveFrames {
            inner,
            png: PngDisplay::open(dir, width, height)?,
            saved: 0,
        })
    }

    /// Frames saved so far.
    pub fn saved(&self) -> u64 {
        self.saved
    }
}

impl Display for SaveFrames {
    fn show(&mut self, frame: &RgbImage, faces: &[TrackedFace]) -> anyhow::Result<()> {
        let shown = self.inner.show(frame, faces);
        if !faces.is_empty() {
            annotate_into(frame, faces, &mut self.png.canvas);
            self.saved += 1;
            self.png.path = self.png.dir.join(format!("face_{:06}.png", self.saved));
            save_png(&self.png.canvas, &self.png.path)?;
        }
        shown
    }

    fn describe(&self) -> String {
        format!(
            "{}, and frames with faces saved as PNG in {}",
            self.inner.describe(),
            self.png.dir.display()
        )
    }
}

/// Shows nothing (`--display none`).
#[derive(Debug, Default)]
pub struct NullDisplay;

impl Display for NullDisplay {
    fn show(&mut self, _frame: &RgbImage, _faces: &[TrackedFace]) -> anyhow::Result<()> {
        Ok(())
    }
    fn describe(&self) -> String {
        "no display".into()
    }
}
