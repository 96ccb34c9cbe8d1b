//! Headless displays: PNG files into a directory, or nothing at all.
//!
//! [`PngDisplay`] composes each frame and its overlay in a canvas allocated once, then
//! encodes `frame_000001.png`, ... (PNG encoding itself allocates; it is a debugging and
//! headless aid, not the kiosk path — use `none`, `fb:` or `spi:` for a zero-allocation loop).
//!
//! The disk is bounded ([`PngRing`]): a directory keeps at most [`FileLimits`] files and bytes,
//! the oldest removed first; numbering goes on from the highest number already there (a new run
//! never overwrites an earlier one's files); a full disk (or any write error) stops the saving,
//! with one warning and `"saving":"stopped"` in the status line, and the run goes on.

use std::path::{Path, PathBuf};

use anyhow::Context;
use embedded_graphics::prelude::Point;

use super::Display;
use crate::rgb::RgbImage;
use crate::track::TrackedFace;

/// How much a directory of PNG files may hold (`save_max_files`, `save_max_mb`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileLimits {
    pub max_files: usize,
    pub max_bytes: u64,
}

/// Numbered PNG files `PREFIX_000001.png`, ... in a directory, within [`FileLimits`].
pub struct PngRing {
    dir: PathBuf,
    prefix: &'static str,
    limits: FileLimits,
    /// The files there, oldest (lowest number) first: number and size.
    files: std::collections::VecDeque<(u64, u64)>,
    bytes: u64,
    next: u64,
    /// Why saving stopped (a write failed: the disk is full, or gone); nothing more is written.
    stopped: Option<String>,
    encoded: Vec<u8>,
}

impl PngRing {
    /// Create `dir` if needed; take the `PREFIX_N.png` files already there into the ring (the
    /// oldest removed at once if they are over the limits) and number on from the highest.
    pub fn open(dir: &Path, prefix: &'static str, limits: FileLimits) -> anyhow::Result<PngRing> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create PNG output directory {}", dir.display()))?;
        let mut files = Vec::new();
        for e in std::fs::read_dir(dir)
            .with_context(|| format!("cannot read PNG output directory {}", dir.display()))?
            .flatten()
        {
            let name = e.file_name();
            let Some(n) = name
                .to_str()
                .and_then(|n| {
                    n.strip_prefix(prefix)?
                        .strip_prefix('_')?
                        .strip_suffix(".png")
                })
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            files.push((n, e.metadata().map(|m| m.len()).unwrap_or(0)));
        }
        files.sort_unstable();
        let mut ring = PngRing {
            dir: dir.to_path_buf(),
            prefix,
            limits,
            next: files.last().map_or(1, |f| f.0 + 1),
            bytes: files.iter().map(|f| f.1).sum(),
            files: files.into(),
            stopped: None,
            encoded: Vec::new(),
        };
        ring.make_room(0, 0);
        Ok(ring)
    }

    fn path(&self, n: u64) -> PathBuf {
        self.dir.join(format!("{}_{n:06}.png", self.prefix))
    }

    /// Remove the oldest files until `files` more files of `bytes` more bytes fit the limits
    /// (or none is left).
    fn make_room(&mut self, files: usize, bytes: u64) {
        while !self.files.is_empty()
            && (self.files.len() + files > self.limits.max_files
                || self.bytes + bytes > self.limits.max_bytes)
        {
            let (n, size) = self.files.pop_front().unwrap();
            let _ = std::fs::remove_file(self.path(n));
            self.bytes = self.bytes.saturating_sub(size);
        }
    }

    /// Encode `img` as the next file, the oldest removed to make room. Once a write fails the
    /// ring stops (the file cut short is removed): the error is returned that once, and every
    /// later call does nothing.
    pub fn save(&mut self, img: &RgbImage) -> anyhow::Result<()> {
        if self.stopped.is_some() {
            return Ok(());
        }
        self.encoded.clear();
        image::ImageEncoder::write_image(
            image::codecs::png::PngEncoder::new(&mut self.encoded),
            &img.data,
            img.width,
            img.height,
            image::ExtendedColorType::Rgb8,
        )
        .context("cannot encode PNG")?;
        let size = self.encoded.len() as u64;
        // make room first: the new file must fit the limits with the ones kept
        self.make_room(1, size);
        let path = self.path(self.next);
        if let Err(e) = std::fs::write(&path, &self.encoded) {
            let _ = std::fs::remove_file(&path);
            let why = if e.kind() == std::io::ErrorKind::StorageFull {
                "the disk is full".to_string()
            } else {
                e.to_string()
            };
            self.stopped = Some(why.clone());
            anyhow::bail!(
                "cannot write {}: {why}; saving PNG files stopped (the run goes on)",
                path.display()
            );
        }
        self.files.push_back((self.next, size));
        self.bytes += size;
        self.next += 1;
        Ok(())
    }

    /// Files written by this ring so far and kept (all kept files, also earlier runs').
    pub fn kept(&self) -> usize {
        self.files.len()
    }

    /// Why saving stopped, if it did.
    pub fn stopped(&self) -> Option<&str> {
        self.stopped.as_deref()
    }

    /// The status line's `saving`: `ok`, or `stopped` once a write failed.
    pub fn state(&self) -> &'static str {
        if self.stopped.is_some() {
            "stopped"
        } else {
            "ok"
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Writes each shown frame, annotated, as a PNG file in a directory (`png:DIR`).
pub struct PngDisplay {
    ring: PngRing,
    canvas: RgbImage,
    shown: u64,
    notice: String,
}

impl PngDisplay {
    /// Create `dir` if needed. `width`/`height` size the canvas (it grows if a frame is larger).
    pub fn open(dir: &Path, width: u32, height: u32, limits: FileLimits) -> anyhow::Result<Self> {
        Ok(PngDisplay {
            ring: PngRing::open(dir, "frame", limits)?,
            canvas: RgbImage::new(width, height),
            shown: 0,
            notice: String::new(),
        })
    }

    /// Frames shown so far.
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
        let _ = crate::draw::draw_notice(&mut self.canvas, &self.notice);
        self.shown += 1;
        self.ring.save(&self.canvas)
    }

    fn set_notice(&mut self, text: &str) {
        self.notice = text.to_string();
    }

    fn describe(&self) -> String {
        format!("PNG files in {}", self.ring.dir().display())
    }

    fn saving(&self) -> Option<&'static str> {
        Some(self.ring.state())
    }
}

/// `--save-frames DIR`: shows each frame on another display and also writes the frames that
/// show at least one face, annotated, as `face_000001.png`, ... in `DIR`, within its
/// [`FileLimits`]. A write error stops the saving (returned once: the pipeline logs it); the
/// display goes on.
pub struct SaveFrames {
    inner: Box<dyn Display>,
    ring: PngRing,
    canvas: RgbImage,
    saved: u64,
    notice: String,
}

impl SaveFrames {
    pub fn open(
        dir: &Path,
        inner: Box<dyn Display>,
        width: u32,
        height: u32,
        limits: FileLimits,
    ) -> anyhow::Result<Self> {
        Ok(SaveFrames {
            inner,
            ring: PngRing::open(dir, "face", limits)?,
            canvas: RgbImage::new(width, height),
            saved: 0,
            notice: String::new(),
        })
    }

    /// Frames saved so far by this run.
    pub fn saved(&self) -> u64 {
        self.saved
    }
}

impl Display for SaveFrames {
    fn show(&mut self, frame: &RgbImage, faces: &[TrackedFace]) -> anyhow::Result<()> {
        let shown = self.inner.show(frame, faces);
        if !faces.is_empty() && self.ring.stopped().is_none() {
            annotate_into(frame, faces, &mut self.canvas);
            let _ = crate::draw::draw_notice(&mut self.canvas, &self.notice);
            self.ring.save(&self.canvas)?;
            self.saved += 1;
        }
        shown
    }

    fn describe(&self) -> String {
        format!(
            "{}, and frames with faces saved as PNG in {}",
            self.inner.describe(),
            self.ring.dir().display()
        )
    }

    fn saving(&self) -> Option<&'static str> {
        Some(self.ring.state())
    }

    fn set_notice(&mut self, text: &str) {
        self.notice = text.to_string();
        self.inner.set_notice(text);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_ring_keeps_its_limits_and_numbers_on_across_runs() {
        let tmp = tempfile::tempdir().unwrap();
        let img = RgbImage::new(8, 8);
        let few = FileLimits {
            max_files: 3,
            max_bytes: u64::MAX,
        };
        let mut ring = PngRing::open(tmp.path(), "face", few).unwrap();
        for _ in 0..5 {
            ring.save(&img).unwrap();
        }
        assert_eq!(
            names(tmp.path()),
            ["face_000003.png", "face_000004.png", "face_000005.png"]
        );
        // a file of another name is left alone
        std::fs::write(tmp.path().join("notes.txt"), "x").unwrap();
        // the next run numbers on, and never overwrites
        let mut ring = PngRing::open(tmp.path(), "face", few).unwrap();
        assert_eq!(ring.kept(), 3);
        ring.save(&img).unwrap();
        assert_eq!(
            names(tmp.path()),
            [
                "face_000004.png",
                "face_000005.png",
                "face_000006.png",
                "notes.txt"
            ]
        );
        // a byte limit of two files: the oldest go at once, and on every save
        let size = std::fs::metadata(tmp.path().join("face_000006.png"))
            .unwrap()
            .len();
        let two = FileLimits {
            max_files: 100,
            max_bytes: 2 * size,
        };
        let mut ring = PngRing::open(tmp.path(), "face", two).unwrap();
        assert_eq!(ring.kept(), 2);
        ring.save(&img).unwrap();
        assert_eq!(
            names(tmp.path()),
            ["face_000006.png", "face_000007.png", "notes.txt"]
        );
    }

    #[test]
    fn a_failed_write_stops_the_ring_once() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("frames");
        let limits = FileLimits {
            max_files: 10,
            max_bytes: u64::MAX,
        };
        let mut ring = PngRing::open(&dir, "frame", limits).unwrap();
        ring.save(&RgbImage::new(4, 4)).unwrap();
        // the directory goes away (a card pulled, a partition unmounted)
        std::fs::remove_dir_all(&dir).unwrap();
        let e = ring.save(&RgbImage::new(4, 4)).unwrap_err().to_string();
        assert!(
            e.contains("frame_000002.png") && e.contains("stopped"),
            "{e}"
        );
        assert!(ring.stopped().is_some());
        // nothing more is tried, and no error again
        ring.save(&RgbImage::new(4, 4)).unwrap();
        assert!(!dir.exists());
    }
}
