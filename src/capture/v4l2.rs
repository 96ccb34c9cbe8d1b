//! V4L2 camera capture: mmap streaming through the `v4l` crate.
//!
//! [`V4l2Source::open`] opens a capture device, negotiates the pixel format (MJPEG preferred, then
//! YUYV), the frame size and the frame rate (what the driver actually chose is reported by
//! [`FrameSource::describe`]), maps several driver buffers and starts streaming. Each
//! [`FrameSource::next_frame`] dequeues one buffer and lends it, sliced to `bytesused`, to the
//! caller without copying; the buffer goes back to the driver on the next call.
//!
//! A dequeue that waits longer than the timeout gives [`CaptureError::Timeout`]. When the device
//! disappears (USB unplug, driver unbound or unloaded: `ENODEV`), everything is released and
//! [`CaptureError::Disconnected`] is returned; [`FrameSource::reconnect`] then reopens the same node,
//! or, when the camera was selected by name or bus info, whichever node now carries that camera.
//!
//! The queue/dequeue bookkeeping is done here rather than with `v4l::io::mmap::Stream`, whose
//! `next()` re-queues the previous buffer again after a timed-out dequeue (EINVAL from the driver) and
//! whose `Drop` panics on unexpected errors; device handling, format negotiation and the ioctl
//! wrappers are the crate's.

use std::fmt::Write as _;
use std::io;
use std::os::fd::BorrowedFd;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use v4l::buffer::Type;
use v4l::device::Handle;
use v4l::v4l2;
use v4l::v4l_sys::{v4l2_buffer, v4l2_requestbuffers};
use v4l::video::Capture;
use v4l::{Device, Format, FourCC};

use super::{CaptureError, Frame, FrameSource, PixelFormat};

/// Driver buffers to map (one lent to the caller, the rest being filled).
const BUFFERS: u32 = 4;
/// Default wait for one frame before [`CaptureError::Timeout`].
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
const ENODEV: i32 = 19;
const V4L2_MEMORY_MMAP: u32 = 1;
const V4L2_BUF_FLAG_ERROR: u32 = 0x0040;

/// A V4L2 capture device streaming into mmap buffers.
pub struct V4l2Source {
    /// What the user asked for: a `/dev/videoN` path or a name / bus-info selector.
    request: String,
    width: u32,
    height: u32,
    fps: u32,
    timeout: Duration,
    /// Added to the driver's sequence numbers so they keep increasing across reconnects.
    sequence_base: u64,
    last_sequence: u64,
    /// Frame size chosen by the driver at the first open (every buffer downstream has this size).
    negotiated: (u32, u32),
    stream: Option<Stream>,
}

/// One open, streaming device.
struct Stream {
    path: String,
    device: Device,
    handle: Arc<Handle>,
    buffers: Vec<Mapping>,
    /// Buffer lent to the caller, to queue again on the next call.
    lent: Option<u32>,
    format: PixelFormat,
    width: u32,
    height: u32,
    description: String,
}

/// One driver buffer mapped into our address space.
struct Mapping {
    ptr: *mut u8,
    len: usize,
}

// The mappings are only touched through `&self`/`&mut self` of the owning stream.
unsafe impl Send for Mapping {}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len come from a successful mmap and are unmapped exactly once.
        unsafe {
            let _ = rustix::mm::munmap(self.ptr.cast(), self.len);
        }
    }
}

impl V4l2Source {
    /// Open `device` — a path such as `/dev/video0`, or a camera name / bus-info substring such as
    /// `usb-0000:01:00.0-1.2` or `HD Pro Webcam` (see [`V4l2Source::find`]) — and start streaming
    /// at (close to) `width`×`height` and `fps`.
    pub fn open(device: &str, width: u32, height: u32, fps: u32) -> anyhow::Result<V4l2Source> {
        anyhow::ensure!(
            width > 0 && height > 0 && fps > 0,
            "camera {device}: width, height and fps must be positive (got {width}x{height} @ {fps})"
        );
        let mut src = V4l2Source {
            request: device.to_string(),
            width,
            height,
            fps,
            timeout: DEFAULT_TIMEOUT,
            sequence_base: 0,
            last_sequence: 0,
            negotiated: (width, height),
            stream: None,
        };
        let stream = src.start()?;
        // The driver's answer sizes every buffer: a size the decoder refuses is an error here.
        anyhow::ensure!(
            super::frame_size_fits(stream.width, stream.height),
            "camera {device}: the driver chose {}x{}, outside the {}-pixel limit on either side",
            stream.width,
            stream.height,
            super::MAX_FRAME_SIDE
        );
        src.negotiated = (stream.width, stream.height);
        src.stream = Some(stream);
        Ok(src)
    }

    /// The `/dev/videoN` node of the first capture device whose card name or bus info contains
    /// `name_or_bus` (case-insensitive), e.g. `"vivid"`, `"platform:vivid-000"`, `"usb-0000:01:00.0-1"`.
    pub fn find(name_or_bus: &str) -> anyhow::Result<String> {
        let needle = name_or_bus.to_lowercase();
        let mut seen = String::new();
        for path in video_nodes() {
            let Ok(dev) = Device::with_path(&path) else {
                continue;
            };
            let Ok(caps) = dev.query_caps() else { continue };
            if !caps
                .capabilities
                .contains(v4l::capability::Flags::VIDEO_CAPTURE)
            {
                continue;
            }
            let _ = write!(seen, "{path} ({}, {}); ", caps.card, caps.bus);
            if caps.card.to_lowercase().contains(&needle)
                || caps.bus.to_lowercase().contains(&needle)
                || caps.driver.to_lowercase() == needle
            {
                return Ok(path);
            }
        }
        if seen.is_empty() {
            bail!("no V4L2 capture device matches {name_or_bus:?}: no capture devices found under /dev")
        }
        bail!("no V4L2 capture device matches {name_or_bus:?}; found: {seen}")
    }

    /// How long [`FrameSource::next_frame`] waits for a frame before [`CaptureError::Timeout`].
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// The device node currently streaming, if any.
    pub fn path(&self) -> Option<&str> {
        self.stream.as_ref().map(|s| s.path.as_str())
    }

    fn resolve(&self) -> anyhow::Result<String> {
        if self.request.starts_with('/') {
            Ok(self.request.clone())
        } else {
            V4l2Source::find(&self.request)
        }
    }

    fn start(&self) -> anyhow::Result<Stream> {
        let path = self.resolve()?;
        Stream::open(&path, self.width, self.height, self.fps)
            .with_context(|| format!("camera {path}"))
    }

    fn disconnect(&mut self, why: &io::Error) -> CaptureError {
        let path = self
            .stream
            .take()
            .map(|s| s.path.clone())
            .unwrap_or_else(|| self.request.clone());
        // Numbers continue after the reconnect instead of starting again at 0.
        self.sequence_base = self.last_sequence + 1;
        CaptureError::Disconnected(format!("{path}: {why}"))
    }
}

impl FrameSource for V4l2Source {
    /// A camera does not wait: a frame not taken in time is lost at the driver anyway.
    fn is_live(&self) -> bool {
        true
    }

    fn next_frame(&mut self) -> Result<Option<Frame<'_>>, CaptureError> {
        let timeout = self.timeout;
        let Some(stream) = self.stream.as_mut() else {
            return Err(CaptureError::Disconnected(format!(
                "{}: not open (waiting to reconnect)",
                self.request
            )));
        };
        let (index, bytesused, sequence, flags) = match stream.dequeue(timeout) {
            Ok(v) => v,
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                return Err(CaptureError::Timeout(timeout))
            }
            Err(e) if e.raw_os_error() == Some(ENODEV) => return Err(self.disconnect(&e)),
            Err(e) => {
                return Err(CaptureError::Other(
                    anyhow::Error::new(e).context(format!("camera {}: dequeue", stream.path)),
                ))
            }
        };
        let seq = self.sequence_base + u64::from(sequence);
        self.last_sequence = seq;
        let stream = self.stream.as_ref().expect("checked above");
        let buf = &stream.buffers[index as usize];
        let used = (bytesused as usize).min(buf.len);
        if used == 0 || flags & V4L2_BUF_FLAG_ERROR != 0 {
            return Err(CaptureError::Other(anyhow::anyhow!(
                "camera {}: driver returned a corrupt or empty buffer (frame {seq})",
                stream.path
            )));
        }
        // SAFETY: the mapping is valid for `buf.len` bytes while `stream` lives, and the driver does
        // not write into a dequeued buffer until we queue it again, which happens only on the next
        // call (`&mut self`), after this borrow has ended.
        let data = unsafe { std::slice::from_raw_parts(buf.ptr, used) };
        Ok(Some(Frame {
            data,
            format: stream.format,
            width: stream.width,
            height: stream.height,
            sequence: seq,
        }))
    }

    fn frame_size(&self) -> (u32, u32) {
        match &self.stream {
            Some(s) => (s.width, s.height),
            None => self.negotiated,
        }
    }

    fn describe(&self) -> String {
        match &self.stream {
            Some(s) => s.description.clone(),
            None => format!("V4L2 {} (disconnected)", self.request),
        }
    }

    fn reconnect(&mut self) -> anyhow::Result<()> {
        if self.stream.is_some() {
            self.sequence_base = self.last_sequence + 1;
        }
        self.stream = None;
        let stream = self.start()?;
        let (w, h) = (stream.width, stream.height);
        if (w, h) != self.negotiated {
            // Buffers downstream were sized for the first negotiation; a different size is an error
            // the user must act on rather than a silent corruption.
            bail!(
                "camera {}: came back as {w}x{h}, but the pipeline was set up for {}x{}",
                stream.path,
                self.negotiated.0,
                self.negotiated.1
            );
        }
        self.stream = Some(stream);
        Ok(())
    }
}

impl Stream {
    fn open(path: &str, width: u32, height: u32, fps: u32) -> anyhow::Result<Stream> {
        if !Path::new(path).exists() {
            bail!("no such device");
        }
        let device = Device::with_path(path).context("cannot open")?;
        let caps = device.query_caps().context("VIDIOC_QUERYCAP failed")?;
        use v4l::capability::Flags;
        if !caps.capabilities.contains(Flags::VIDEO_CAPTURE) {
            bail!(
                "{} ({}) is not a single-planar video capture device",
                caps.card,
                caps.driver
            );
        }
        if !caps.capabilities.contains(Flags::STREAMING) {
            bail!(
                "{} ({}) does not support streaming I/O",
                caps.card,
                caps.driver
            );
        }

        // Pixel format: MJPEG (what USB cameras send at high resolution), then YUYV.
        let offered: Vec<FourCC> = device
            .enum_formats()
            .context("VIDIOC_ENUM_FMT failed")?
            .into_iter()
            .map(|d| d.fourcc)
            .collect();
        let mjpg = FourCC::new(b"MJPG");
        let yuyv = FourCC::new(b"YUYV");
        let fourcc = if offered.contains(&mjpg) {
            mjpg
        } else if offered.contains(&yuyv) {
            yuyv
        } else {
            let list: Vec<String> = offered.iter().map(|f| f.to_string()).collect();
            bail!(
                "offers none of MJPG, YUYV (it offers {})",
                if list.is_empty() {
                    "nothing".to_string()
                } else {
                    list.join(", ")
                }
            );
        };
        let mut want = Format::new(width, height, fourcc);
        // Whole frames, not fields: interlaced capture would halve the detector's vertical resolution.
        want.field_order = v4l::format::FieldOrder::Progressive;
        let got = device
            .set_format(&want)
            .with_context(|| format!("VIDIOC_S_FMT {fourcc} {width}x{height} failed"))?;
        if got.fourcc != fourcc {
            bail!("asked for {fourcc}, the driver chose {}", got.fourcc);
        }
        let format = if fourcc == mjpg {
            PixelFormat::Mjpeg
        } else {
            if got.stride != 0 && got.stride != got.width * 2 {
                bail!(
                    "YUYV rows are padded ({} bytes for {} pixels); unsupported",
                    got.stride,
                    got.width
                );
            }
            PixelFormat::Yuyv
        };
        // Frame rate: not every driver supports VIDIOC_S_PARM; report what we got.
        let rate = match device.set_params(&v4l::video::capture::Parameters::with_fps(fps)) {
            Ok(p) if p.interval.numerator > 0 => format!(
                "{:.2} fps",
                f64::from(p.interval.denominator) / f64::from(p.interval.numerator)
            ),
            Ok(_) => "driver-chosen fps".to_string(),
            Err(e) => format!("fps not settable ({e})"),
        };

        let handle = device.handle();
        let buffers = map_buffers(&handle, BUFFERS).context("mapping buffers")?;
        let mut stream = Stream {
            path: path.to_string(),
            description: format!(
                "V4L2 {path} ({} '{}', {}): {fourcc} {}x{} @ {rate} (asked {width}x{height} @ {fps}), {} mmap buffers",
                caps.driver,
                caps.card,
                caps.bus,
                got.width,
                got.height,
                buffers.len()
            ),
            device,
            handle,
            buffers,
            lent: None,
            format,
            width: got.width,
            height: got.height,
        };
        for i in 0..stream.buffers.len() as u32 {
            stream.queue(i).context("VIDIOC_QBUF failed")?;
        }
        stream.stream_on(true).context("VIDIOC_STREAMON failed")?;
        Ok(stream)
    }

    fn buffer_desc(index: u32) -> v4l2_buffer {
        // SAFETY: v4l2_buffer is plain old data; all-zero is a valid value.
        let mut b: v4l2_buffer = unsafe { std::mem::zeroed() };
        b.type_ = Type::VideoCapture as u32;
        b.memory = V4L2_MEMORY_MMAP;
        b.index = index;
        b
    }

    fn queue(&mut self, index: u32) -> io::Result<()> {
        let mut b = Self::buffer_desc(index);
        // SAFETY: valid fd, pointer to a live, correctly typed struct.
        unsafe {
            v4l2::ioctl(
                self.handle.fd(),
                v4l2::vidioc::VIDIOC_QBUF,
                (&mut b as *mut v4l2_buffer).cast(),
            )
        }
    }

    /// Give back the lent buffer, wait up to `timeout`, and take the next filled one:
    /// (index, bytesused, sequence, flags).
    fn dequeue(&mut self, timeout: Duration) -> io::Result<(u32, u32, u32, u32)> {
        if let Some(i) = self.lent.take() {
            self.queue(i)?;
        }
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        if self.handle.poll(0x001 /* POLLIN */, ms)? == 0 {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "no frame"));
        }
        let mut b = Self::buffer_desc(0);
        // SAFETY: as in `queue`.
        unsafe {
            v4l2::ioctl(
                self.handle.fd(),
                v4l2::vidioc::VIDIOC_DQBUF,
                (&mut b as *mut v4l2_buffer).cast(),
            )?;
        }
        if b.index as usize >= self.buffers.len() {
            return Err(io::Error::other(format!(
                "driver returned buffer {}",
                b.index
            )));
        }
        self.lent = Some(b.index);
        Ok((b.index, b.bytesused, b.sequence, b.flags))
    }

    fn stream_on(&self, on: bool) -> io::Result<()> {
        let mut typ = Type::VideoCapture as u32;
        let req = if on {
            v4l2::vidioc::VIDIOC_STREAMON
        } else {
            v4l2::vidioc::VIDIOC_STREAMOFF
        };
        // SAFETY: valid fd, pointer to a live u32.
        unsafe { v4l2::ioctl(self.handle.fd(), req, (&mut typ as *mut u32).cast()) }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        // Errors are expected here when the device is gone (ENODEV); nothing to do about them.
        let _ = self.stream_on(false);
        self.buffers.clear(); // munmap before freeing the driver's buffers
        let mut req: v4l2_requestbuffers = unsafe { std::mem::zeroed() };
        req.type_ = Type::VideoCapture as u32;
        req.memory = V4L2_MEMORY_MMAP;
        req.count = 0;
        // SAFETY: valid fd, pointer to a live struct.
        unsafe {
            let _ = v4l2::ioctl(
                self.handle.fd(),
                v4l2::vidioc::VIDIOC_REQBUFS,
                (&mut req as *mut v4l2_requestbuffers).cast(),
            );
        }
        let _ = &self.device; // the fd closes when the last handle drops
    }
}

fn map_buffers(handle: &Handle, count: u32) -> anyhow::Result<Vec<Mapping>> {
    let mut req: v4l2_requestbuffers = unsafe { std::mem::zeroed() };
    req.type_ = Type::VideoCapture as u32;
    req.memory = V4L2_MEMORY_MMAP;
    req.count = count;
    // SAFETY: valid fd, pointer to a live struct.
    unsafe {
        v4l2::ioctl(
            handle.fd(),
            v4l2::vidioc::VIDIOC_REQBUFS,
            (&mut req as *mut v4l2_requestbuffers).cast(),
        )
        .context("VIDIOC_REQBUFS failed")?;
    }
    if req.count < 2 {
        bail!("driver granted only {} buffer(s)", req.count);
    }
    // SAFETY: the handle keeps the fd open for as long as it lives.
    let fd = unsafe { BorrowedFd::borrow_raw(handle.fd()) };
    let mut maps = Vec::with_capacity(req.count as usize);
    for index in 0..req.count {
        let mut b = Stream::buffer_desc(index);
        // SAFETY: as above.
        unsafe {
            v4l2::ioctl(
                handle.fd(),
                v4l2::vidioc::VIDIOC_QUERYBUF,
                (&mut b as *mut v4l2_buffer).cast(),
            )
            .context("VIDIOC_QUERYBUF failed")?;
        }
        let len = b.length as usize;
        // SAFETY: mapping a driver buffer at the offset the driver gave us.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::SHARED,
                fd,
                u64::from(b.m.offset),
            )
        }
        .with_context(|| format!("mmap of buffer {index} ({len} bytes) failed"))?;
        maps.push(Mapping {
            ptr: ptr.cast(),
            len,
        });
    }
    Ok(maps)
}

/// `/dev/video*` nodes, in numeric order.
fn video_nodes() -> Vec<String> {
    let mut nodes: Vec<(u32, String)> = std::fs::read_dir("/dev")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let n: u32 = name.strip_prefix("video")?.parse().ok()?;
            Some((n, format!("/dev/{name}")))
        })
        .collect();
    nodes.sort();
    nodes.into_iter().map(|(_, p)| p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_device_is_a_clear_error() {
        let err = V4l2Source::open("/dev/video-does-not-exist", 640, 480, 30)
            .err()
            .expect("must fail");
        let msg = format!("{err:#}");
        assert!(msg.contains("/dev/video-does-not-exist"), "{msg}");
        assert!(msg.contains("no such device"), "{msg}");
    }

    #[test]
    fn not_a_camera_is_a_clear_error() {
        let err = V4l2Source::open("/dev/null", 640, 480, 30)
            .err()
            .expect("must fail");
        assert!(format!("{err:#}").contains("/dev/null"), "{err:#}");
    }

    #[test]
    fn unknown_selector_names_the_selector() {
        let Err(err) = V4l2Source::find("no-such-camera-xyz") else {
            panic!("must fail");
        };
        assert!(format!("{err:#}").contains("no-such-camera-xyz"), "{err:#}");
    }

    #[test]
    fn zero_size_is_rejected() {
        let err = V4l2Source::open("/dev/video0", 0, 480, 30)
            .err()
            .expect("must fail");
        assert!(format!("{err:#}").contains("must be positive"), "{err:#}");
    }
}
