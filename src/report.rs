//! Report: one JSON line per face result and a periodic status line, written to a [`Sink`].
//!
//! Lines follow `src/report.schema.json`. Every line carries `"schema"` (`agegender/face/v1`,
//! `agegender/status/v1`, `agegender/visit/v1`, `agegender/counts/v1`), `"type"` (`face`,
//! `status`, `visit`, `counts`) and `"ts"`: **Unix time in
//! milliseconds, UTC** (an integer: cheap to produce without allocating, unambiguous, and
//! any log tool converts it). Lines are formatted into one reused buffer, so the steady
//! state allocates nothing.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use crate::classify::{Gender, AGE_BUCKETS};
use crate::track::TrackedFace;
use crate::visits::{Counts, Visit, BUCKET_LABELS, GENDER_LABELS};

/// Schema id of a face line.
pub const FACE_SCHEMA: &str = "agegender/face/v1";
/// Schema id of a status line.
pub const STATUS_SCHEMA: &str = "agegender/status/v1";
/// Schema id of a visit line (one per ended track that lasted the minimum dwell).
pub const VISIT_SCHEMA: &str = "agegender/visit/v1";
/// Schema id of a counts line (visits per window by gender × age bucket).
pub const COUNTS_SCHEMA: &str = "agegender/counts/v1";

/// Where report lines go: stdout, a file, a serial port. A sink must not block the frame loop.
pub trait Sink {
    /// Write one line (without its newline). Returns Ok(false) if the line was dropped
    /// (for example a full queue to a slow serial port).
    fn write_line(&mut self, line: &[u8]) -> anyhow::Result<bool>;
    fn flush(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
}

/// The type of a report line (the MQTT topic it goes to).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineKind {
    Face = 0,
    Visit = 1,
    Counts = 2,
    Status = 3,
}

/// A second output beside the sink, that sorts lines by type: the MQTT publisher
/// (`src/mqtt/`). Must not block the frame loop.
pub trait Publish {
    /// Hand over one line (without newline); a line that cannot be queued is dropped and counted.
    fn publish(&mut self, kind: LineKind, line: &[u8]);
    /// For the status line: `connected` / `disconnected`, and lines dropped so far.
    fn state(&self) -> (&'static str, u64);
}

/// Lines to standard output (`--serial -`).
#[derive(Debug, Default)]
pub struct StdoutSink;

impl Sink for StdoutSink {
    fn write_line(&mut self, line: &[u8]) -> anyhow::Result<bool> {
        let mut out = std::io::stdout().lock();
        out.write_all(line)
            .and_then(|_| out.write_all(b"\n"))
            .context("cannot write to standard output")?;
        Ok(true)
    }
    fn flush(&mut self) -> anyhow::Result<()> {
        std::io::stdout()
            .flush()
            .context("cannot write to standard output")
    }
}

/// Lines appended to a file, flushed at every [`Sink::flush`] (once per frame).
pub struct FileSink {
    path: std::path::PathBuf,
    file: Option<std::fs::File>,
    /// Bytes in the file: whole lines only (a write that fails is cut back off).
    size: u64,
    max_bytes: u64,
    /// A write failed and was reported; the next one that succeeds says so.
    failing: bool,
    /// The line and its newline, written with one call.
    buf: Vec<u8>,
}

impl FileSink {
    /// Open for appending (create if missing): earlier lines are never lost. At `max_bytes`
    /// the file is renamed to `FILE.1` (replacing an older one) and started again. Each line is
    /// one write (report lines are a few per frame), so the file holds whole lines only.
    pub fn open(path: &Path, max_bytes: u64) -> anyhow::Result<Self> {
        let f = Self::append(path)?;
        Ok(FileSink {
            path: path.to_path_buf(),
            size: f.metadata().map(|m| m.len()).unwrap_or(0),
            file: Some(f),
            max_bytes,
            failing: false,
            buf: Vec::with_capacity(1024),
        })
    }

    fn append(path: &Path) -> anyhow::Result<std::fs::File> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open report file {}", path.display()))
    }

    /// The file renamed to `FILE.1`, and a new one opened.
    fn rotate(&mut self) -> anyhow::Result<()> {
        self.file = None;
        let mut old = self.path.clone().into_os_string();
        old.push(".1");
        std::fs::rename(&self.path, &old)
            .with_context(|| format!("cannot rename {} to .1", self.path.display()))?;
        self.file = Some(Self::append(&self.path)?);
        self.size = 0;
        Ok(())
    }

    fn try_write(&mut self) -> anyhow::Result<()> {
        let n = self.buf.len() as u64;
        if self.size > 0 && self.size + n > self.max_bytes {
            self.rotate()?;
        }
        if self.file.is_none() {
            let f = Self::append(&self.path)?;
            self.size = f.metadata().map(|m| m.len()).unwrap_or(self.size);
            self.file = Some(f);
        }
        let f = self.file.as_mut().unwrap();
        if let Err(e) = f.write_all(&self.buf) {
            // a line cut short by a full disk is taken back: the file ends with a whole line
            let _ = f.set_len(self.size);
            return Err(e.into());
        }
        self.size += n;
        Ok(())
    }
}

impl Sink for FileSink {
    /// A line that cannot be written is dropped (and counted: `serial_dropped`), with one
    /// warning until writing works again; the run goes on (a full disk is not a crash loop).
    fn write_line(&mut self, line: &[u8]) -> anyhow::Result<bool> {
        self.buf.clear();
        self.buf.extend_from_slice(line);
        self.buf.push(b'\n');
        match self.try_write() {
            Ok(()) => {
                if self.failing {
                    eprintln!("agegender: {}: writing again", self.path.display());
                    self.failing = false;
                }
                Ok(true)
            }
            Err(e) => {
                if !self.failing {
                    eprintln!(
                        "agegender: warning: cannot write to {}: {e:#}; lines are dropped (and counted) until it can",
                        self.path.display()
                    );
                    self.failing = true;
                }
                Ok(false)
            }
        }
    }
}

/// State of the frame source as shown in status lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CameraState {
    /// Frames are arriving.
    #[default]
    Ok,
    /// The device went away; reconnecting with backoff.
    Lost,
    /// Back after a loss (shown in the first status line after reconnecting).
    Resumed,
    /// A finite source (file, directory) has no more frames.
    Ended,
    /// The run was asked to stop (SIGTERM, SIGINT): the last status line of a stopped kiosk.
    Stopped,
}

/// Counters for a status line.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Status {
    /// Frames taken from the source so far.
    pub frames: u64,
    /// Frames per second since the previous status line.
    pub fps: f32,
    /// Faces in the latest processed frame.
    pub faces: u32,
    /// Face lines written so far.
    pub faces_total: u64,
    /// Classifier runs so far (a track is classified on first sight and then only when a
    /// view is worth it: src/track/).
    pub classifier_calls: u64,
    /// `classifier_calls` per frame taken, over the run.
    pub classifier_calls_per_frame: f32,
    /// Time from a frame's arrival to its report lines flushed, over the last
    /// [`crate::pipeline::LATENCY_WINDOW`] frames: median and 95th percentile (ms; 0 before
    /// the first frame).
    pub latency_p50_ms: f32,
    pub latency_p95_ms: f32,
    /// Frames the source skipped (gaps in its sequence numbers).
    pub dropped_frames: u64,
    /// Frames taken from the source and dropped at capture because every frame slot of the
    /// stage-parallel loop was in use (back-pressure instead of growing latency).
    pub busy_dropped: u64,
    /// Detector workers of the frame loop (1: the one-thread loop).
    pub workers: u32,
    /// Frames that could not be decoded (skipped).
    pub decode_errors: u64,
    /// Errors from the source other than timeouts (and lost-camera events).
    pub capture_errors: u64,
    /// Waits for a frame that timed out.
    pub capture_timeouts: u64,
    /// Errors in detection or classification (frame skipped).
    pub inference_errors: u64,
    /// Frames the detector ran on.
    pub detections: u64,
    /// Of those, the ones searched only in windows around the tracked faces (track-guided
    /// detection, `full_detect_interval_s`).
    pub window_detections: u64,
    /// Frames due for detection (`detect_every`) on which motion gating skipped the detector
    /// (the scene had not changed; the last faces were reported again).
    pub detect_skipped: u64,
    /// Frames due for detection on which the detector did not run because the tracked faces
    /// were followed surely by their templates and nothing else moved (`follow_interval_s`).
    pub followed: u64,
    /// Report lines the sink dropped (a full serial queue).
    pub serial_dropped: u64,
    pub camera: CameraState,
    /// Seconds since the loop started.
    pub uptime_s: f32,
    /// The classifier's form (`f32`, `f16`, `int8`) and why it was chosen; absent when the
    /// classifier does not say.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub model_form: &'static str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub model_form_why: &'static str,
    /// With MQTT on: `connected` or `disconnected`, and the lines it dropped (full queue, or
    /// QoS 0 lines while the broker was away).
    #[serde(skip_serializing_if = "str::is_empty")]
    pub mqtt: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mqtt_dropped: Option<u64>,
    /// With `save_frames` or `png:`: `ok`, or `stopped` once a write failed (a full disk).
    #[serde(skip_serializing_if = "str::is_empty")]
    pub saving: &'static str,
}

impl Default for Status {
    /// Nothing counted yet, in the one-thread loop.
    fn default() -> Self {
        Status {
            frames: 0,
            fps: 0.0,
            faces: 0,
            faces_total: 0,
            classifier_calls: 0,
            classifier_calls_per_frame: 0.0,
            latency_p50_ms: 0.0,
            latency_p95_ms: 0.0,
            dropped_frames: 0,
            busy_dropped: 0,
            workers: 1,
            decode_errors: 0,
            capture_errors: 0,
            capture_timeouts: 0,
            inference_errors: 0,
            detections: 0,
            window_detections: 0,
            detect_skipped: 0,
            followed: 0,
            serial_dropped: 0,
            camera: CameraState::default(),
            uptime_s: 0.0,
            model_form: "",
            model_form_why: "",
            mqtt: "",
            mqtt_dropped: None,
            saving: "",
        }
    }
}

#[derive(Serialize)]
struct FaceLine<'a> {
    schema: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    ts: u64,
    frame: u64,
    track_id: u64,
    #[serde(rename = "box")]
    bbox: [i32; 4],
    score: f32,
    gender: Gender,
    gender_p: f32,
    age: f32,
    age_bucket: &'static str,
    bucket_p: f32,
    latency_ms: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'a str>,
}

#[derive(Serialize)]
struct StatusLine<'a> {
    schema: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    ts: u64,
    #[serde(flatten)]
    status: &'a Status,
}

#[derive(Serialize)]
struct VisitLine {
    schema: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    ts: u64,
    track_id: u64,
    first_ts: u64,
    last_ts: u64,
    first_frame: u64,
    last_frame: u64,
    dwell_s: f32,
    views: u32,
    gender: Gender,
    gender_p: f32,
    age: f32,
    age_bucket: &'static str,
    bucket_p: f32,
    confidence: f32,
}

/// `{"M": {"0-2": n, ...}, "F": {...}, "U": {...}}`, written without allocating.
struct Table<'a>(&'a [[u32; BUCKET_LABELS.len()]; GENDER_LABELS.len()]);
struct Row<'a>(&'a [u32; BUCKET_LABELS.len()]);

impl Serialize for Table<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(GENDER_LABELS.len()))?;
        for (g, row) in GENDER_LABELS.iter().zip(self.0) {
            m.serialize_entry(g, &Row(row))?;
        }
        m.end()
    }
}

impl Serialize for Row<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(BUCKET_LABELS.len()))?;
        for (b, n) in BUCKET_LABELS.iter().zip(self.0) {
            m.serialize_entry(b, n)?;
        }
        m.end()
    }
}

#[derive(Serialize)]
struct CountsLine<'a> {
    schema: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    ts: u64,
    from_ts: u64,
    visits: u32,
    in_view: u32,
    mean_dwell_s: Option<f32>,
    by_gender_age: Table<'a>,
}

/// Round for the log: fewer digits, same meaning.
fn round(x: f32, digits: i32) -> f32 {
    let m = 10f32.powi(digits);
    (x * m).round() / m
}

/// Milliseconds since the Unix epoch (UTC).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Formats lines into one reused buffer and hands them to the sink.
pub struct Reporter {
    sink: Box<dyn Sink>,
    publisher: Option<Box<dyn Publish>>,
    buf: Vec<u8>,
    lines: u64,
    dropped: u64,
    /// Added to the loop's times (visits, counts) to give the wall clock's: the frame loop
    /// counts on a monotonic clock, and the wall clock may be set while it runs.
    wall_shift_ms: i64,
}

impl Reporter {
    pub fn new(sink: Box<dyn Sink>) -> Self {
        Reporter {
            sink,
            publisher: None,
            buf: Vec::with_capacity(4096),
            lines: 0,
            dropped: 0,
            wall_shift_ms: 0,
        }
    }

    /// From now on, a visit's or counts window's time `t` of the frame loop is written as
    /// `t + shift_ms`: the wall clock's time of that moment (the loop sets it before it writes).
    pub fn set_wall_shift(&mut self, shift_ms: i64) {
        self.wall_shift_ms = shift_ms;
    }

    fn wall(&self, t_ms: u64) -> u64 {
        t_ms.saturating_add_signed(self.wall_shift_ms)
    }

    /// Also hand every line to `p` (MQTT).
    pub fn set_publisher(&mut self, p: Box<dyn Publish>) {
        self.publisher = Some(p);
    }

    /// One face line. `source` names the input file in `agegender image` (else `None`).
    pub fn face(
        &mut self,
        ts_ms: u64,
        frame: u64,
        face: &TrackedFace,
        latency_ms: f32,
        source: Option<&str>,
    ) -> anyhow::Result<()> {
        let a = &face.attributes;
        let b = face.detection.bbox;
        let line = FaceLine {
            schema: FACE_SCHEMA,
            kind: "face",
            ts: ts_ms,
            frame,
            track_id: face.id,
            bbox: [
                b[0].round() as i32,
                b[1].round() as i32,
                b[2].round() as i32,
                b[3].round() as i32,
            ],
            score: round(face.detection.score, 3),
            gender: a.gender,
            gender_p: round(a.gender_p, 3),
            age: round(a.age, 1),
            // `?`: not sure of the bucket (bucket_p below bucket_min_p).
            age_bucket: match AGE_BUCKETS.get(a.bucket) {
                _ if !a.bucket_known => "?",
                Some(b) => b.0,
                None => "60+",
            },
            bucket_p: round(a.bucket_p, 3),
            latency_ms: round(latency_ms, 2),
            source,
        };
        self.buf.clear();
        serde_json::to_writer(&mut self.buf, &line)?;
        self.emit(LineKind::Face)
    }

    /// One status line.
    pub fn status(&mut self, ts_ms: u64, status: &Status) -> anyhow::Result<()> {
        let mut s = *status;
        s.fps = round(s.fps, 2);
        s.uptime_s = round(s.uptime_s, 1);
        s.serial_dropped = s.serial_dropped.max(self.dropped);
        if let Some(p) = &self.publisher {
            let (state, dropped) = p.state();
            s.mqtt = state;
            s.mqtt_dropped = Some(dropped);
        }
        let line = StatusLine {
            schema: STATUS_SCHEMA,
            kind: "status",
            ts: ts_ms,
            status: &s,
        };
        self.buf.clear();
        serde_json::to_writer(&mut self.buf, &line)?;
        self.emit(LineKind::Status)
    }

    /// One visit line at `ts_ms` (when the visit was found to have ended). Its times are the
    /// frame loop's, written on the wall clock ([`Reporter::set_wall_shift`]).
    pub fn visit(&mut self, ts_ms: u64, v: &Visit) -> anyhow::Result<()> {
        let line = VisitLine {
            schema: VISIT_SCHEMA,
            kind: "visit",
            ts: self.wall(ts_ms),
            track_id: v.track_id,
            first_ts: self.wall(v.first_ms),
            last_ts: self.wall(v.last_ms),
            first_frame: v.first_frame,
            last_frame: v.last_frame,
            dwell_s: round(v.dwell_ms() as f32 / 1000.0, 2),
            views: v.views,
            gender: v.gender,
            gender_p: round(v.gender_p, 3),
            age: round(v.age, 1),
            age_bucket: v.bucket_label(),
            bucket_p: round(v.bucket_p, 3),
            confidence: round(v.confidence, 3),
        };
        self.buf.clear();
        serde_json::to_writer(&mut self.buf, &line)?;
        self.emit(LineKind::Visit)
    }

    /// One counts line closing the window `c` at `ts_ms`, with `in_view` faces in view now.
    pub fn counts(&mut self, ts_ms: u64, c: &Counts, in_view: u32) -> anyhow::Result<()> {
        let line = CountsLine {
            schema: COUNTS_SCHEMA,
            kind: "counts",
            ts: self.wall(ts_ms),
            from_ts: self.wall(c.from_ms),
            visits: c.visits,
            in_view,
            mean_dwell_s: c.mean_dwell_s().map(|d| round(d, 2)),
            by_gender_age: Table(&c.table),
        };
        self.buf.clear();
        serde_json::to_writer(&mut self.buf, &line)?;
        self.emit(LineKind::Counts)
    }

    fn emit(&mut self, kind: LineKind) -> anyhow::Result<()> {
        if let Some(p) = self.publisher.as_mut() {
            p.publish(kind, &self.buf);
        }
        if self.sink.write_line(&self.buf)? {
            self.lines += 1;
        } else {
            self.dropped += 1;
        }
        Ok(())
    }

    pub fn flush(&mut self) -> anyhow::Result<()> {
        self.sink.flush()
    }

    /// Lines written / dropped by the sink so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_file_rotates_at_its_size() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("report.jsonl");
        std::fs::write(&path, "earlier\n").unwrap();
        // 8 bytes there; lines of 10 bytes with the newline; at most 30 bytes a file
        let mut sink = FileSink::open(&path, 30).unwrap();
        for i in 0..5 {
            assert!(sink.write_line(format!("line {i:04}").as_bytes()).unwrap());
        }
        sink.flush().unwrap();
        drop(sink);
        let old = std::fs::read_to_string(tmp.path().join("report.jsonl.1")).unwrap();
        let new = std::fs::read_to_string(&path).unwrap();
        // nothing lost: the earlier line and the first two in .1, the other three after it
        assert_eq!(old, "earlier\nline 0000\nline 0001\n");
        assert_eq!(new, "line 0002\nline 0003\nline 0004\n");
        assert!(old.len() <= 30 && new.len() <= 30);
    }

    #[test]
    fn a_report_file_that_cannot_be_written_drops_lines_and_goes_on() {
        // /dev/full: every write fails with ENOSPC, as a full disk does
        let mut sink = FileSink::open(Path::new("/dev/full"), 1 << 20).unwrap();
        for _ in 0..3 {
            assert!(!sink.write_line(b"{}").unwrap(), "dropped, not an error");
        }
        sink.flush().unwrap();
    }
}
