//! Serial-port sink: raw termios, a bounded queue and a writer thread so the frame loop never blocks.
//!
//! [`SerialSink::open`] opens a tty (`/dev/ttyAMA0`, `/dev/ttyS0`, `/dev/ttyGS0` for a USB gadget, a
//! pty…), puts it in raw mode at the requested baud rate, and starts one writer thread. The frame loop
//! calls [`Sink::write_line`], which only copies the line into one of `queue_lines` preallocated
//! buffers and hands it to the writer; when all buffers are in flight (a slow or stalled reader,
//! hardware flow control holding us back) the line is dropped and counted in [`SerialSink::dropped`].
//! Lines already queued are never lost: dropping the sink waits (bounded) for the writer to drain.
//!
//! A path that is not a tty (a plain file, `/dev/null`) is accepted and written the same way, without
//! termios, so the log can be pointed at a file for debugging.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::report::Sink;

/// Initial capacity of each queued line buffer (a face result is ~250 bytes; longer lines grow it once).
const LINE_CAPACITY: usize = 512;
/// How long dropping the sink waits for queued lines to reach the port.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Counters shared between the sink, its writer thread and whoever prints the status line.
#[derive(Debug, Default)]
pub struct SerialCounters {
    /// Lines dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Lines the writer thread finished writing.
    pub written: AtomicU64,
    /// Write errors (EIO when a USB gadget's host goes away, …); the writer keeps going.
    pub errors: AtomicU64,
}

/// A [`Sink`] writing newline-terminated lines to a serial port from a background thread.
pub struct SerialSink {
    path: String,
    /// Filled buffers to the writer; `None` once shutting down.
    to_writer: Option<SyncSender<Vec<u8>>>,
    /// Empty buffers back from the writer.
    free: Receiver<Vec<u8>>,
    counters: Arc<SerialCounters>,
    queued: u64,
    thread: Option<JoinHandle<()>>,
}

impl SerialSink {
    /// Open `path` in raw mode at `baud` with room for `queue_lines` lines in flight.
    pub fn open(path: &str, baud: u32, queue_lines: usize) -> anyhow::Result<SerialSink> {
        anyhow::ensure!(
            queue_lines > 0,
            "serial port {path}: queue length must be at least 1"
        );
        let file = std::fs::OpenOptions::new()
            .write(true)
            .read(true)
            .custom_flags(rustix::fs::OFlags::NOCTTY.bits() as i32)
            .open(path)
            .with_context(|| format!("serial port {path}: cannot open"))?;
        configure_tty(&file, baud).with_context(|| format!("serial port {path}"))?;

        let (to_writer, from_sink) = mpsc::sync_channel::<Vec<u8>>(queue_lines);
        let (to_free, free) = mpsc::sync_channel::<Vec<u8>>(queue_lines);
        for _ in 0..queue_lines {
            to_free
                .send(Vec::with_capacity(LINE_CAPACITY))
                .expect("receiver is alive");
        }
        let counters = Arc::new(SerialCounters::default());
        let thread_counters = counters.clone();
        let thread = std::thread::Builder::new()
            .name("serial-writer".into())
            .spawn(move || writer_loop(file, from_sink, to_free, &thread_counters))
            .with_context(|| format!("serial port {path}: cannot start writer thread"))?;
        Ok(SerialSink {
            path: path.to_string(),
            to_writer: Some(to_writer),
            free,
            counters,
            queued: 0,
            thread: Some(thread),
        })
    }

    /// Lines dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    /// Lines written to the port so far.
    pub fn written(&self) -> u64 {
        self.counters.written.load(Ordering::Relaxed)
    }

    /// Write errors so far.
    pub fn errors(&self) -> u64 {
        self.counters.errors.load(Ordering::Relaxed)
    }

    /// The counters, to read from elsewhere (the status line) after the sink is boxed.
    pub fn counters(&self) -> Arc<SerialCounters> {
        self.counters.clone()
    }

    /// The path this sink writes to.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Wait until every accepted line has been written, or `timeout` passes. Returns true if drained.
    pub fn drain(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let done = self.counters.written.load(Ordering::Acquire)
                + self.counters.errors.load(Ordering::Acquire);
            if done >= self.queued {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Sink for SerialSink {
    fn write_line(&mut self, line: &[u8]) -> anyhow::Result<bool> {
        let Ok(mut buf) = self.free.try_recv() else {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(false);
        };
        buf.clear();
        buf.extend_from_slice(line);
        buf.push(b'\n');
        let sender = self.to_writer.as_ref().expect("sender lives until drop");
        match sender.try_send(buf) {
            Ok(()) => {
                self.queued += 1;
                Ok(true)
            }
            // Cannot be full: there are exactly as many buffers as queue slots.
            Err(TrySendError::Full(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                Ok(false)
            }
            Err(TrySendError::Disconnected(_)) => {
                anyhow::bail!("serial port {}: writer thread has stopped", self.path)
            }
        }
    }

    /// Does not wait for the port (that could block the loop); the writer thread flushes each line.
    fn flush(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
}

impl Drop for SerialSink {
    fn drop(&mut self) {
        let drained = self.drain(DRAIN_TIMEOUT);
        self.to_writer = None; // the writer sees the channel close and exits
        if let Some(thread) = self.thread.take() {
            if drained {
                let _ = thread.join();
            }
            // Otherwise the writer is stuck in write(2) on a stalled port: leave it detached.
        }
    }
}

fn writer_loop(
    mut file: File,
    lines: Receiver<Vec<u8>>,
    free: SyncSender<Vec<u8>>,
    counters: &SerialCounters,
) {
    let mut reported = false;
    while let Ok(buf) = lines.recv() {
        match file.write_all(&buf) {
            Ok(()) => {
                counters.written.fetch_add(1, Ordering::Release);
            }
            Err(e) => {
                counters.errors.fetch_add(1, Ordering::Release);
                if !reported {
                    eprintln!("serial: write failed ({e}); counting errors and carrying on");
                    reported = true;
                }
                // Do not spin on a port that keeps failing (gadget unplugged).
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        if free.send(buf).is_err() {
            break;
        }
    }
}

/// Raw mode (no echo, no line discipline, no output processing, 8N1), `baud`, no modem control.
fn configure_tty(file: &File, baud: u32) -> anyhow::Result<()> {
    use rustix::termios::{self, ControlModes, OptionalActions};
    let mut tio = match termios::tcgetattr(file) {
        Ok(t) => t,
        // Not a terminal (a file, /dev/null): nothing to configure.
        Err(rustix::io::Errno::NOTTY) => return Ok(()),
        Err(e) => return Err(e).context("cannot read terminal settings"),
    };
    tio.make_raw();
    tio.control_modes |= ControlModes::CLOCAL | ControlModes::CREAD;
    tio.control_modes -= ControlModes::CRTSCTS | ControlModes::CSTOPB | ControlModes::PARENB;
    tio.set_speed(baud)
        .with_context(|| format!("baud rate {baud} is not supported"))?;
    termios::tcsetattr(file, OptionalActions::Now, &tio)
        .with_context(|| format!("cannot set raw mode at {baud} baud"))?;
    Ok(())
}
