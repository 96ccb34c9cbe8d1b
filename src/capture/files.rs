//! Replayed sources: a directory of images, or an `.mjpeg` file of concatenated JPEG frames.
//!
//! Both hand out borrowed bytes: [`MjpegFileSource`] lends slices of the file it read once
//! at open; [`DirSource`] reads each file into one reused buffer (JPEG files go out as
//! [`PixelFormat::Mjpeg`]; other formats are decoded into a reused RGB buffer and go out as
//! [`PixelFormat::Rgb24`]). Neither allocates per frame once its buffers have grown.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::{CaptureError, Frame, FrameSource, PixelFormat};

/// Paces a replay at a fixed rate (or not at all when `fps` is 0).
#[derive(Debug)]
struct Pacer {
    period: Option<Duration>,
    next: Option<Instant>,
    /// Sleep to keep the rate (false: frames keep their stream times but come at once).
    sleeps: bool,
    /// Deliver frames as a camera does: the loop drops the ones it has no room for
    /// ([`FrameSource::is_live`]). Off by default: a file is never dropped from.
    camera: bool,
}

impl Pacer {
    fn new(fps: f32) -> Self {
        let period =
            (fps > 0.0 && fps.is_finite()).then(|| Duration::from_secs_f64(1.0 / fps as f64));
        Pacer {
            period,
            next: None,
            sleeps: true,
            camera: false,
        }
    }

    /// Time of frame `sequence` from the first at this rate (`None` when not paced).
    fn stream_time(&self, sequence: u64) -> Option<Duration> {
        self.period.map(|p| p.mul_f64(sequence as f64))
    }

    /// Whether frames come as a camera's do (they are then dropped, not waited for, by a loop
    /// that has no room for them): only a paced replay asked to ([`MjpegFileSource::as_camera`]).
    fn live(&self) -> bool {
        self.period.is_some() && self.sleeps && self.camera
    }

    /// Sleep until the next frame is due.
    fn wait(&mut self) {
        let Some(period) = self.period.filter(|_| self.sleeps) else {
            return;
        };
        let now = Instant::now();
        match self.next {
            None => self.next = Some(now + period),
            Some(due) => {
                if due > now {
                    std::thread::sleep(due - now);
                    self.next = Some(due + period);
                } else {
                    // Behind schedule: do not try to catch up with a burst.
                    self.next = Some(now + period);
                }
            }
        }
    }
}

/// Where one JPEG image lies in a byte stream, and its size from the frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JpegSpan {
    pub start: usize,
    pub end: usize,
    pub width: u32,
    pub height: u32,
}

/// Read width and height from a JPEG's SOFn segment; walks the marker segments.
pub fn jpeg_dimensions(data: &[u8]) -> Option<(u32, u32)> {
    if data.len() < 4 || data[0] != 0xFF || data[1] != 0xD8 {
        return None;
    }
    let mut i = 2;
    while i + 4 <= data.len() {
        if data[i] != 0xFF {
            return None;
        }
        let marker = data[i + 1];
        if marker == 0xFF {
            i += 1; // fill byte
            continue;
        }
        if marker == 0x01 || (0xD0..=0xD7).contains(&marker) {
            i += 2;
            continue;
        }
        let len = u16::from_be_bytes([data[i + 2], data[i + 3]]) as usize;
        let is_sof = matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
        if is_sof {
            if i + 9 > data.len() {
                return None;
            }
            let h = u16::from_be_bytes([data[i + 5], data[i + 6]]) as u32;
            let w = u16::from_be_bytes([data[i + 7], data[i + 8]]) as u32;
            return (w > 0 && h > 0).then_some((w, h));
        }
        if marker == 0xDA || len < 2 {
            return None;
        }
        i += 2 + len;
    }
    None
}

/// Find the end (one past EOI) of the JPEG that starts with SOI at `start`, by walking its
/// marker segments (so an EOI inside an EXIF thumbnail or in segment payload is not taken
/// for the end) and then scanning entropy-coded data, where `FF 00` is a stuffed byte and
/// `FF D0..D7` are restart markers. Returns `None` for a truncated or malformed image.
fn jpeg_end(data: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 2;
    loop {
        // Marker segments before (and between) scans.
        while i < data.len() && data[i] == 0xFF && i + 1 < data.len() && data[i + 1] == 0xFF {
            i += 1;
        }
        if i + 2 > data.len() || data[i] != 0xFF {
            return None;
        }
        let marker = data[i + 1];
        match marker {
            0xD9 => return Some(i + 2),
            0xD8 | 0x00 => return None,
            0x01 | 0xD0..=0xD7 => {
                i += 2;
                continue;
            }
            _ => {}
        }
        if i + 4 > data.len() {
            return None;
        }
        let len = u16::from_be_bytes([data[i + 2], data[i + 3]]) as usize;
        if len < 2 {
            return None;
        }
        i += 2 + len;
        if marker == 0xDA {
            // Entropy-coded data: runs to the next marker that is not stuffing or RSTn.
            loop {
                let rel = data.get(i..)?.iter().position(|&b| b == 0xFF)?;
                i += rel;
                let next = *data.get(i + 1)?;
                match next {
                    0x00 | 0xD0..=0xD7 | 0xFF => i += if next == 0xFF { 1 } else { 2 },
                    _ => break, // a real marker: EOI, or another segment (progressive)
                }
            }
        }
    }
}

/// Split a stream of concatenated JPEG images. Garbage between images and images that are
/// truncated or malformed are skipped (scanning resumes at the next SOI marker `FF D8 FF`).
pub fn split_jpegs(data: &[u8]) -> Vec<JpegSpan> {
    let mut spans = Vec::new();
    let mut i = 0;
    while let Some(rel) = data
        .get(i..)
        .and_then(|d| d.windows(3).position(|w| w == [0xFF, 0xD8, 0xFF]))
    {
        let start = i + rel;
        match jpeg_end(data, start) {
            Some(end) => {
                if let Some((width, height)) = jpeg_dimensions(&data[start..end]) {
                    spans.push(JpegSpan {
                        start,
                        end,
                        width,
                        height,
                    });
                }
                i = end;
            }
            None => i = start + 2,
        }
    }
    spans
}

/// An `.mjpeg` file (concatenated JPEG frames, as USB cameras send them), read once and
/// replayed as borrowed slices at a fixed rate or as fast as possible, optionally looping.
pub struct MjpegFileSource {
    path: PathBuf,
    data: Vec<u8>,
    spans: Vec<JpegSpan>,
    next: usize,
    sequence: u64,
    looping: bool,
    /// Looping forward and back ([`MjpegFileSource::bouncing`]); then `next` counts frames
    /// played since the start.
    bounce: bool,
    pacer: Pacer,
    fps: f32,
}

impl MjpegFileSource {
    /// Open and index `path`. `fps` 0 replays as fast as possible.
    pub fn open(path: &Path, fps: f32, looping: bool) -> anyhow::Result<Self> {
        let data =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        Self::from_bytes(path, data, fps, looping)
    }

    /// Index frames already in memory (`path` is only used to describe the source).
    pub fn from_bytes(path: &Path, data: Vec<u8>, fps: f32, looping: bool) -> anyhow::Result<Self> {
        let mut spans = split_jpegs(&data);
        anyhow::ensure!(
            !spans.is_empty(),
            "{} holds no JPEG frame (expected concatenated JPEG images)",
            path.display()
        );
        // Buffers are sized from the largest frame: a frame whose header claims a size the
        // decoder refuses is left out (one warning), and a file of only such frames is an error.
        let before = spans.len();
        let largest = spans.iter().map(|s| (s.width, s.height)).max();
        spans.retain(|s| super::frame_size_fits(s.width, s.height));
        if spans.is_empty() {
            let (w, h) = largest.unwrap_or((0, 0));
            anyhow::bail!(
                "{}: its frames are {w}x{h}, outside the {}-pixel limit on either side",
                path.display(),
                super::MAX_FRAME_SIDE
            );
        }
        if spans.len() < before {
            eprintln!(
                "agegender: warning: {}: {} of its {before} frames claim a size outside the {}-pixel limit on either side; left out",
                path.display(),
                before - spans.len(),
                super::MAX_FRAME_SIDE
            );
        }
        Ok(MjpegFileSource {
            path: path.to_path_buf(),
            data,
            spans,
            next: 0,
            sequence: 0,
            looping,
            bounce: false,
            pacer: Pacer::new(fps),
            fps,
        })
    }

    /// Deliver frames as fast as they are asked for, each still timed by the stream's clock
    /// (frame n at n / fps, [`FrameSource::stream_time`]): a replay whose timing must not
    /// depend on the machine, without waiting for it (evaluations, instruction counts).
    pub fn unpaced(mut self) -> Self {
        self.pacer.sleeps = false;
        self
    }

    /// Replay as a live camera delivers frames: at `fps`, and a frame the stage-parallel loop
    /// has no free slot for is dropped (and counted, `busy_dropped`) instead of waited for. By
    /// default a file is never dropped from: a machine slower than the clip replays every frame,
    /// only later. For measuring what a camera at this rate would cost (`--as-camera`).
    pub fn as_camera(mut self) -> Self {
        self.pacer.camera = true;
        self
    }

    /// Boxed, replayed as a camera when `as_camera` ([`MjpegFileSource::as_camera`]).
    pub fn boxed(self, as_camera: bool) -> Box<dyn FrameSource> {
        Box::new(if as_camera { self.as_camera() } else { self })
    }

    /// Loop forward and back (frames 0, 1, …, n−1, n−2, …, 1, 0, 1, …) instead of from the
    /// start again: a replay longer than the file has no seam where every face jumps back to
    /// where it started (a scene cut, which a camera does not show: `agegender bench --bounce`).
    pub fn bouncing(mut self) -> Self {
        self.looping = true;
        self.bounce = true;
        self
    }

    /// Number of frames found in the file.
    pub fn frame_count(&self) -> usize {
        self.spans.len()
    }

    /// The index of the next frame to play, and the one after it (`None`: the end).
    fn advance(&mut self) -> Option<usize> {
        let n = self.spans.len();
        if self.bounce {
            if n < 2 {
                return Some(0);
            }
            // one period plays n − 1 frames forward and n − 1 back
            let period = 2 * (n - 1);
            let k = self.next % period;
            self.next = (self.next + 1) % period;
            return Some(if k < n { k } else { period - k });
        }
        if self.next >= n {
            if !self.looping {
                return None;
            }
            self.next = 0;
        }
        self.next += 1;
        Some(self.next - 1)
    }
}

impl FrameSource for MjpegFileSource {
    fn next_frame(&mut self) -> Result<Option<Frame<'_>>, CaptureError> {
        let Some(i) = self.advance() else {
            return Ok(None);
        };
        self.pacer.wait();
        let s = self.spans[i];
        let sequence = self.sequence;
        self.sequence += 1;
        Ok(Some(Frame {
            data: &self.data[s.start..s.end],
            format: PixelFormat::Mjpeg,
            width: s.width,
            height: s.height,
            sequence,
        }))
    }

    fn stream_time(&self, sequence: u64) -> Option<Duration> {
        self.pacer.stream_time(sequence)
    }

    fn is_live(&self) -> bool {
        self.pacer.live()
    }

    fn frame_size(&self) -> (u32, u32) {
        let w = self.spans.iter().map(|s| s.width).max().unwrap_or(0);
        let h = self.spans.iter().map(|s| s.height).max().unwrap_or(0);
        (w, h)
    }

    fn describe(&self) -> String {
        let (w, h) = self.frame_size();
        format!(
            "mjpeg file {}: {} frames, up to {w}x{h}, {}{}",
            self.path.display(),
            self.spans.len(),
            if self.fps > 0.0 {
                format!("{} fps", self.fps)
            } else {
                "as fast as possible".into()
            },
            match (self.bounce, self.looping) {
                (true, _) => ", looping forward and back",
                (false, true) => ", looping",
                (false, false) => "",
            }
        )
    }
}

/// File extensions a [`DirSource`] picks up.
const IMAGE_EXTENSIONS: [&str; 6] = ["jpg", "jpeg", "png", "bmp", "ppm", "pgm"];

fn is_jpeg_name(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("jpeg"))
}

/// A directory of images, in file-name order, read lazily one per frame.
pub struct DirSource {
    dir: PathBuf,
    files: Vec<PathBuf>,
    next: usize,
    sequence: u64,
    looping: bool,
    pacer: Pacer,
    /// File bytes of the current JPEG frame (reused).
    bytes: Vec<u8>,
    /// Decoded pixels of the current non-JPEG frame (reused).
    rgb: crate::rgb::RgbImage,
    /// Decoder for the non-JPEG frames' loader (unused for PNG, which the image crate reads).
    still: crate::decode::Decoder,
    size: (u32, u32),
}

impl DirSource {
    pub fn open(dir: &Path, fps: f32, looping: bool) -> anyhow::Result<Self> {
        let rd = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read directory {}", dir.display()))?;
        let mut files: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && p.extension()
                        .and_then(|e| e.to_str())
                        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
            })
            .collect();
        files.sort();
        anyhow::ensure!(
            !files.is_empty(),
            "directory {} holds no image ({})",
            dir.display(),
            IMAGE_EXTENSIONS.join(", ")
        );
        // Size every buffer from the largest image (headers only). An image whose header claims
        // a size the decoder refuses does not count (it fails, named, when its turn comes).
        let (mut w, mut h) = (0, 0);
        let mut too_large = None;
        for f in &files {
            if let Ok((fw, fh)) = image::image_dimensions(f) {
                if super::frame_size_fits(fw, fh) {
                    w = w.max(fw);
                    h = h.max(fh);
                } else {
                    too_large.get_or_insert((f.clone(), fw, fh));
                }
            }
        }
        if let (0, Some((f, fw, fh))) = (w, &too_large) {
            anyhow::bail!(
                "{}: {fw}x{fh}, outside the {}-pixel limit on either side, and no image in {} fits it",
                f.display(),
                super::MAX_FRAME_SIDE,
                dir.display()
            );
        }
        anyhow::ensure!(w > 0 && h > 0, "no readable image in {}", dir.display());
        Ok(DirSource {
            dir: dir.to_path_buf(),
            files,
            next: 0,
            sequence: 0,
            looping,
            pacer: Pacer::new(fps),
            bytes: Vec::new(),
            rgb: crate::rgb::RgbImage::new(0, 0),
            still: crate::decode::Decoder::new(),
            size: (w, h),
        })
    }

    /// Replay as a live camera delivers frames: see [`MjpegFileSource::as_camera`].
    pub fn as_camera(mut self) -> Self {
        self.pacer.camera = true;
        self
    }

    /// Deliver frames as fast as they are asked for, keeping the replay's clock: see
    /// [`MjpegFileSource::unpaced`].
    pub fn unpaced(mut self) -> Self {
        self.pacer.sleeps = false;
        self
    }

    /// Boxed, replayed as a camera when `as_camera` ([`DirSource::as_camera`]).
    pub fn boxed(self, as_camera: bool) -> Box<dyn FrameSource> {
        Box::new(if as_camera { self.as_camera() } else { self })
    }

    /// The images, in replay order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }
}

impl FrameSource for DirSource {
    fn next_frame(&mut self) -> Result<Option<Frame<'_>>, CaptureError> {
        if self.next >= self.files.len() {
            if !self.looping {
                return Ok(None);
            }
            self.next = 0;
        }
        self.pacer.wait();
        let path = &self.files[self.next];
        self.next += 1;
        let sequence = self.sequence;
        self.sequence += 1;
        if is_jpeg_name(path) {
            self.bytes.clear();
            std::fs::File::open(path)
                .and_then(|mut f| f.read_to_end(&mut self.bytes))
                .with_context(|| format!("cannot read {}", path.display()))?;
            let (width, height) = jpeg_dimensions(&self.bytes).ok_or_else(|| {
                anyhow::anyhow!("{} is not a readable JPEG image", path.display())
            })?;
            Ok(Some(Frame {
                data: &self.bytes,
                format: PixelFormat::Mjpeg,
                width,
                height,
                sequence,
            }))
        } else {
            // The still-picture loader: the same size limit, EXIF orientation and errors.
            crate::decode::load_image_into(path, &mut self.still, &mut self.rgb)?;
            let (w, h) = (self.rgb.width, self.rgb.height);
            Ok(Some(Frame {
                data: &self.rgb.data,
                format: PixelFormat::Rgb24,
                width: w,
                height: h,
                sequence,
            }))
        }
    }

    fn frame_size(&self) -> (u32, u32) {
        self.size
    }

    fn stream_time(&self, sequence: u64) -> Option<Duration> {
        self.pacer.stream_time(sequence)
    }

    fn is_live(&self) -> bool {
        self.pacer.live()
    }

    fn describe(&self) -> String {
        format!(
            "image directory {}: {} images, up to {}x{}{}",
            self.dir.display(),
            self.files.len(),
            self.size.0,
            self.size.1,
            if self.looping { ", looping" } else { "" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_jpeg(w: u32, h: u32, shade: u8) -> Vec<u8> {
        let img = image::RgbImage::from_pixel(w, h, image::Rgb([shade, 100, 200]));
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
            .encode_image(&img)
            .unwrap();
        out
    }

    #[test]
    fn splits_concatenated_jpegs_with_garbage_and_truncation() {
        let a = tiny_jpeg(32, 16, 10);
        let b = tiny_jpeg(40, 24, 250);
        let mut stream = b"junk".to_vec();
        stream.extend_from_slice(&a);
        stream.extend_from_slice(&[0, 1, 2]);
        stream.extend_from_slice(&b[..b.len() / 2]); // truncated frame
        stream.extend_from_slice(&b);
        let spans = split_jpegs(&stream);
        assert_eq!(spans.len(), 2, "{spans:?}");
        assert_eq!(&stream[spans[0].start..spans[0].end], &a[..]);
        assert_eq!(&stream[spans[1].start..spans[1].end], &b[..]);
        assert_eq!((spans[0].width, spans[0].height), (32, 16));
        assert_eq!((spans[1].width, spans[1].height), (40, 24));
    }

    #[test]
    fn mjpeg_source_replays_and_loops() {
        let mut data = tiny_jpeg(8, 8, 1);
        data.extend(tiny_jpeg(8, 8, 2));
        let mut src = MjpegFileSource::from_bytes(Path::new("x.mjpeg"), data, 0.0, true).unwrap();
        let mut seqs = Vec::new();
        for _ in 0..5 {
            let f = src.next_frame().unwrap().unwrap();
            assert_eq!(f.format, PixelFormat::Mjpeg);
            seqs.push(f.sequence);
        }
        assert_eq!(seqs, [0, 1, 2, 3, 4]);
        let mut once =
            MjpegFileSource::from_bytes(Path::new("x"), tiny_jpeg(8, 8, 3), 0.0, false).unwrap();
        assert!(once.next_frame().unwrap().is_some());
        assert!(once.next_frame().unwrap().is_none());
        assert!(
            MjpegFileSource::from_bytes(Path::new("e.mjpeg"), b"nothing".to_vec(), 0.0, false)
                .is_err()
        );
    }

    #[test]
    fn a_bouncing_mjpeg_source_plays_forward_and_back() {
        let frames: Vec<Vec<u8>> = (1..=3).map(|shade| tiny_jpeg(8, 8, 40 * shade)).collect();
        let mut src = MjpegFileSource::from_bytes(Path::new("x"), frames.concat(), 0.0, false)
            .unwrap()
            .bouncing();
        let mut order = Vec::new();
        for seq in 0..9 {
            let f = src.next_frame().unwrap().unwrap();
            assert_eq!(f.sequence, seq);
            order.push(frames.iter().position(|j| j[..] == *f.data).unwrap());
        }
        assert_eq!(order, [0, 1, 2, 1, 0, 1, 2, 1, 0]);
        // one frame: that frame, again and again
        let one = MjpegFileSource::from_bytes(Path::new("x"), frames[0].clone(), 0.0, false);
        let mut one = one.unwrap().bouncing();
        for _ in 0..3 {
            assert_eq!(one.next_frame().unwrap().unwrap().data, &frames[0][..]);
        }
    }
}
