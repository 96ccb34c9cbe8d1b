//! Capture: where frames come from. A [`FrameSource`] lends out its current buffer
//! (a V4L2 mmap buffer, a slice of a replayed `.mjpeg` file, a decoded image) without copying.

use std::time::Duration;

/// How the bytes of a [`Frame`] are encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PixelFormat {
    /// One complete JPEG image (USB cameras' MJPEG; may lack Huffman tables).
    Mjpeg,
    /// Packed YUV 4:2:2, Y0 U Y1 V.
    Yuyv,
    /// Packed 8-bit RGB.
    Rgb24,
}

/// A frame borrowed from its source until the next call to [`FrameSource::next_frame`].
#[derive(Debug)]
pub struct Frame<'a> {
    pub data: &'a [u8],
    pub format: PixelFormat,
    pub width: u32,
    pub height: u32,
    /// Sequence number as counted by the source (gaps mean dropped frames).
    pub sequence: u64,
}

/// Why a source produced no frame this time.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// No frame arrived within the timeout; try again.
    #[error("timed out waiting for a frame after {0:?}")]
    Timeout(Duration),
    /// The device went away (ENODEV, unplugged); reopen with backoff.
    #[error("camera disconnected: {0}")]
    Disconnected(String),
    /// Anything else; the loop counts it and carries on.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// A source of frames: a camera, a directory of images, a replayed MJPEG stream.
pub trait FrameSource: Send {
    /// The next frame, or `Ok(None)` at the end of a finite stream.
    fn next_frame(&mut self) -> Result<Option<Frame<'_>>, CaptureError>;
    /// Frame size the source delivers (used to size every buffer at start-up).
    fn frame_size(&self) -> (u32, u32);
    /// One line for the log: what was opened and what was negotiated.
    fn describe(&self) -> String;
    /// When frame `sequence` was taken, counted from the first frame, where the source itself
    /// says (a replay at a set rate: `sequence / fps`); `None`: the time it arrives is its time.
    /// The frame loop times visits and counts by this, so a replayed stream's dwell times do
    /// not depend on how fast the machine runs the models.
    fn stream_time(&self, _sequence: u64) -> Option<Duration> {
        None
    }
    /// Whether frames come in real time and are lost if not taken (a camera): the
    /// stage-parallel loop then drops a frame it has no room for instead of waiting. A source
    /// that can wait (a file, even one replayed at a set rate) says no, and loses nothing.
    fn is_live(&self) -> bool {
        false
    }
    /// Try to reopen after [`CaptureError::Disconnected`]; sources that cannot reconnect return an error.
    fn reconnect(&mut self) -> anyhow::Result<()> {
        anyhow::bail!("this source cannot reconnect")
    }
}

pub mod files;
pub mod v4l2;

/// Whether a frame of `w`×`h` fits the decoder: both sides in 1..=[`MAX_FRAME_SIDE`]. Every
/// source checks the size it announces with this before anything is sized from it, so a
/// frame header or a driver that claims a huge size is an error naming the source, not an
/// allocation of w·h·3 bytes per buffer at start-up.
pub fn frame_size_fits(w: u32, h: u32) -> bool {
    (1..=MAX_FRAME_SIDE).contains(&w) && (1..=MAX_FRAME_SIDE).contains(&h)
}

/// The largest frame side any source may deliver; the decoder refuses larger pictures too
/// ([`crate::decode::MAX_JPEG_SIDE`] is this).
pub const MAX_FRAME_SIDE: u32 = 8192;
