//! systemd integration: `READY=1` and `WATCHDOG=1` notifications sent from a timer thread.
//!
//! The frame loop never talks to systemd. It calls [`Heartbeat::beat`] once per iteration (also
//! while waiting for a camera to come back); the timer thread only sends `WATCHDOG=1` while those
//! beats keep coming. If the loop hangs, the pings stop, and systemd (`WatchdogSec=`) kills and
//! restarts the service (`Restart=always`).
//!
//! Notifications are single datagrams to `$NOTIFY_SOCKET` (a path or, with a leading `@`, an
//! abstract socket name), as sd_notify(3) describes.
//!
//! Without systemd (the SD-card image, where a busybox `/init` supervises the program), the same
//! thread feeds a hardware watchdog instead ([`HardwareWatchdog`], `watchdog_device`): a write
//! resets its countdown only while the loop beats, so a hung loop resets the board. A clean exit
//! disarms it (the magic close); a killed process leaves it armed, and the supervisor disarms it
//! before restarting the program. With neither, [`Watchdog::start`] returns `None`.

use std::io::Write;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;

/// A cheap, cloneable handle the frame loop uses to say "still alive".
#[derive(Clone, Debug, Default)]
pub struct Heartbeat(Arc<AtomicU64>);

impl Heartbeat {
    pub fn new() -> Self {
        Self::default()
    }
    /// Record one iteration of the loop. Lock-free, allocation-free.
    #[inline]
    pub fn beat(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    /// Beats so far.
    pub fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The notifier thread. Dropping it sends `STOPPING=1`, disarms a hardware watchdog and stops
/// the thread.
pub struct Watchdog {
    heartbeat: Heartbeat,
    stop: Arc<AtomicBool>,
    status: Arc<Mutex<Option<String>>>,
    interval: Option<Duration>,
    socket: Option<Arc<Notifier>>,
    thread: Option<JoinHandle<()>>,
}

/// A hardware watchdog device (`/dev/watchdog`, Linux's watchdog API): opening it arms it, any
/// write restarts its countdown, and writing `V` just before closing disarms it (the "magic
/// close"; without it the countdown goes on and the board resets when it runs out).
pub struct HardwareWatchdog {
    file: std::fs::File,
    path: PathBuf,
    timeout: Duration,
}

impl HardwareWatchdog {
    /// Open (and so arm) `path` and ask its driver for `timeout_s` seconds; the driver may round
    /// or clamp it (bcm2835: at most 15 s), and the timeout it reports back is the one used.
    pub fn open(path: &Path, timeout_s: u32) -> anyhow::Result<HardwareWatchdog> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .with_context(|| format!("watchdog_device {}: cannot open", path.display()))?;
        let timeout = set_timeout(&file, timeout_s).map_err(|e| {
            // Not a watchdog (or one without a settable timeout): leave it disarmed.
            let _ = (&file).write_all(b"V");
            anyhow::anyhow!(
                "watchdog_device {}: cannot set a {timeout_s} s timeout: {e}",
                path.display()
            )
        })?;
        Ok(HardwareWatchdog::from_file(file, path, timeout))
    }

    /// An already open watchdog (or anything that takes writes, in tests) with its timeout.
    pub fn from_file(file: std::fs::File, path: &Path, timeout: Duration) -> HardwareWatchdog {
        HardwareWatchdog {
            file,
            path: path.to_path_buf(),
            timeout,
        }
    }

    /// The countdown after which the board resets unless fed.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn feed(&mut self) -> std::io::Result<()> {
        self.file.write_all(b"\0")
    }

    /// The magic close: `V`, then close. The driver stops the countdown.
    fn disarm(mut self) {
        if let Err(e) = self.file.write_all(b"V") {
            eprintln!("watchdog: {}: cannot disarm: {e}", self.path.display());
        }
    }
}

/// WDIOC_SETTIMEOUT (`_IOWR('W', 6, int)`): set, and read back, the timeout in seconds.
#[cfg(target_os = "linux")]
fn set_timeout(file: &std::fs::File, timeout_s: u32) -> std::io::Result<Duration> {
    use rustix::ioctl::{ioctl, opcode, Updater};
    const WDIOC_SETTIMEOUT: rustix::ioctl::Opcode = opcode::read_write::<std::ffi::c_int>(b'W', 6);
    let mut secs = std::ffi::c_int::try_from(timeout_s).unwrap_or(std::ffi::c_int::MAX);
    // SAFETY: WDIOC_SETTIMEOUT reads and writes one C int, which `secs` is.
    unsafe {
        ioctl(
            file,
            Updater::<WDIOC_SETTIMEOUT, std::ffi::c_int>::new(&mut secs),
        )
    }?;
    Ok(Duration::from_secs(secs.max(1) as u64))
}

#[cfg(not(target_os = "linux"))]
fn set_timeout(_file: &std::fs::File, _timeout_s: u32) -> std::io::Result<Duration> {
    Err(std::io::Error::other(
        "hardware watchdogs are only supported on Linux",
    ))
}

struct Notifier {
    sock: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    fn connect(target: &str) -> anyhow::Result<Notifier> {
        let addr = if let Some(name) = target.strip_prefix('@') {
            #[cfg(target_os = "linux")]
            {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(name.as_bytes())?
            }
            #[cfg(not(target_os = "linux"))]
            anyhow::bail!("abstract socket {name} is only supported on Linux")
        } else {
            SocketAddr::from_pathname(target)?
        };
        let sock = UnixDatagram::unbound()?;
        Ok(Notifier { sock, addr })
    }

    fn send(&self, msg: &str) -> std::io::Result<()> {
        self.sock
            .send_to_addr(msg.as_bytes(), &self.addr)
            .map(|_| ())
    }
}

impl Watchdog {
    /// Start the notifier thread for whatever is there to notify: systemd (`$NOTIFY_SOCKET`:
    /// `READY=1` now and, when `$WATCHDOG_USEC` is set for this process, `WATCHDOG=1` pings) and
    /// a hardware watchdog (`hw`). Returns `None` when there is neither; a systemd socket that
    /// cannot be used is logged once and left out.
    pub fn start(hw: Option<HardwareWatchdog>) -> Option<Watchdog> {
        let socket = std::env::var("NOTIFY_SOCKET").ok();
        if socket.is_none() && hw.is_none() {
            return None;
        }
        let interval = watchdog_interval_from_env();
        match Watchdog::start_with(socket.as_deref(), interval, hw) {
            Ok(w) => Some(w),
            Err(e) => {
                eprintln!("systemd notify: {e:#}; running without watchdog");
                None
            }
        }
    }

    /// As [`Watchdog::start`], with the socket, systemd's watchdog interval and the hardware
    /// watchdog given explicitly. The thread ticks at a quarter of the shorter of the two
    /// intervals and calls the loop hung after half of it without a beat.
    pub fn start_with(
        socket: Option<&str>,
        interval: Option<Duration>,
        hw: Option<HardwareWatchdog>,
    ) -> anyhow::Result<Watchdog> {
        let notifier = match socket {
            Some(socket) => {
                let n = Notifier::connect(socket)
                    .with_context(|| format!("NOTIFY_SOCKET {socket}: bad address"))?;
                n.send("READY=1")
                    .with_context(|| format!("NOTIFY_SOCKET {socket}: cannot send READY=1"))?;
                Some(Arc::new(n))
            }
            None => None,
        };
        let systemd_interval = interval.filter(|iv| !iv.is_zero() && notifier.is_some());
        let tick_basis = match (systemd_interval, hw.as_ref().map(|h| h.timeout())) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let heartbeat = Heartbeat::new();
        let stop = Arc::new(AtomicBool::new(false));
        let status = Arc::new(Mutex::new(None::<String>));
        let thread = match tick_basis {
            Some(iv) => {
                let (hb, st, s) = (heartbeat.clone(), stop.clone(), status.clone());
                let pinger = Pinger {
                    notifier: notifier.clone(),
                    systemd_pings: systemd_interval.is_some(),
                    hw,
                };
                Some(
                    std::thread::Builder::new()
                        .name("watchdog".into())
                        .spawn(move || timer_loop(iv, &hb, &st, pinger, &s))
                        .context("cannot start watchdog thread")?,
                )
            }
            None => None,
        };
        Ok(Watchdog {
            heartbeat,
            stop,
            status,
            interval: systemd_interval,
            socket: notifier,
            thread,
        })
    }

    /// The handle for the frame loop.
    pub fn heartbeat(&self) -> Heartbeat {
        self.heartbeat.clone()
    }

    /// Record one loop iteration (same as `self.heartbeat().beat()`).
    #[inline]
    pub fn beat(&self) {
        self.heartbeat.beat();
    }

    /// The watchdog interval systemd asked for, if any.
    pub fn interval(&self) -> Option<Duration> {
        self.interval
    }

    /// A one-line status for `systemctl status` (sent with the next timer tick, or now without one).
    pub fn set_status(&self, line: &str) {
        let line: String = line.chars().filter(|c| *c != '\n').collect();
        if self.thread.is_some() {
            *self.status.lock().unwrap_or_else(|p| p.into_inner()) = Some(line);
        } else if let Some(socket) = &self.socket {
            let _ = socket.send(&format!("STATUS={line}"));
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
        if let Some(socket) = &self.socket {
            let _ = socket.send("STOPPING=1");
        }
    }
}

/// What the timer thread keeps alive.
struct Pinger {
    notifier: Option<Arc<Notifier>>,
    /// Send `WATCHDOG=1` (systemd asked for it).
    systemd_pings: bool,
    hw: Option<HardwareWatchdog>,
}

impl Pinger {
    fn ping(&mut self) {
        if let (Some(n), true) = (&self.notifier, self.systemd_pings) {
            let _ = n.send("WATCHDOG=1");
        }
        if let Some(hw) = &mut self.hw {
            if let Err(e) = hw.feed() {
                eprintln!("watchdog: {}: cannot feed: {e}", hw.path.display());
            }
        }
    }
}

fn timer_loop(
    interval: Duration,
    heartbeat: &Heartbeat,
    stop: &AtomicBool,
    mut pinger: Pinger,
    status: &Mutex<Option<String>>,
) {
    // Ping at half the interval; call the loop hung when it has not beaten for half the interval.
    let tick = interval / 4;
    let stale_after = interval / 2;
    let mut last = heartbeat.count();
    let mut last_change = Instant::now();
    let mut warned = false;
    while !stop.load(Ordering::Relaxed) {
        let now_count = heartbeat.count();
        if now_count != last {
            last = now_count;
            last_change = Instant::now();
            warned = false;
        }
        if last_change.elapsed() <= stale_after {
            pinger.ping();
        } else if !warned {
            eprintln!(
                "watchdog: frame loop silent for {:?}; no more pings, so the watchdog resets us",
                last_change.elapsed()
            );
            warned = true;
        }
        if let Some(line) = status.lock().unwrap_or_else(|p| p.into_inner()).take() {
            if let Some(n) = &pinger.notifier {
                let _ = n.send(&format!("STATUS={line}"));
            }
        }
        std::thread::park_timeout(tick);
    }
    // A clean stop: the loop ended on purpose, so the board must not reset.
    if let Some(hw) = pinger.hw.take() {
        hw.disarm();
    }
}

/// `$WATCHDOG_USEC`, when `$WATCHDOG_PID` is unset or names this process.
fn watchdog_interval_from_env() -> Option<Duration> {
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    Some(Duration::from_micros(usec))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener() -> (tempfile::TempDir, String, UnixDatagram) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        (dir, path.to_str().unwrap().to_string(), sock)
    }

    /// Every message received during `dur`.
    fn collect(sock: &UnixDatagram, dur: Duration) -> Vec<String> {
        let end = Instant::now() + dur;
        let mut out = Vec::new();
        let mut buf = [0u8; 256];
        while Instant::now() < end {
            if let Ok(n) = sock.recv(&mut buf) {
                out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
        out
    }

    #[test]
    fn ready_then_pings_while_the_loop_beats_and_none_once_it_hangs() {
        let (_dir, path, sock) = listener();
        let wd = Watchdog::start_with(Some(&path), Some(Duration::from_millis(200)), None).unwrap();
        let hb = wd.heartbeat();

        // Loop alive: beats every 10 ms; pings come (a deadline far beyond the 4 pings'
        // 0.4-0.8 s, so a loaded machine only makes the test slower, never fail).
        let mut got = Vec::new();
        let end = Instant::now() + Duration::from_secs(30);
        let pings = |got: &[String]| got.iter().filter(|m| *m == "WATCHDOG=1").count();
        while Instant::now() < end && pings(&got) < 4 {
            hb.beat();
            got.extend(collect(&sock, Duration::from_millis(10)));
        }
        assert_eq!(got.first().map(String::as_str), Some("READY=1"));
        assert!(
            pings(&got) >= 4,
            "expected regular pings while alive, got {got:?}"
        );

        // Loop hung: once the beat is stale (200 ms; 1 s allowed for a ping already under
        // way), no more pings arrive.
        let _ = collect(&sock, Duration::from_secs(1));
        let after = collect(&sock, Duration::from_millis(500));
        assert!(
            !after.iter().any(|m| m == "WATCHDOG=1"),
            "pings continued with a hung loop: {after:?}"
        );

        // It comes back: pings resume.
        let mut back = Vec::new();
        let end = Instant::now() + Duration::from_secs(30);
        while Instant::now() < end && pings(&back) == 0 {
            hb.beat();
            back.extend(collect(&sock, Duration::from_millis(10)));
        }
        assert!(back.iter().any(|m| m == "WATCHDOG=1"), "{back:?}");

        wd.set_status("fps 12.0");
        drop(wd);
        let tail = collect(&sock, Duration::from_millis(100));
        assert_eq!(
            tail.last().map(String::as_str),
            Some("STOPPING=1"),
            "{tail:?}"
        );
    }

    #[test]
    fn hardware_watchdog_is_fed_while_the_loop_beats_and_disarmed_on_a_clean_stop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("watchdog");
        let file = std::fs::File::create(&path).unwrap();
        let hw = HardwareWatchdog::from_file(file, &path, Duration::from_millis(200));
        let wd = Watchdog::start_with(None, None, Some(hw)).unwrap();
        let hb = wd.heartbeat();
        let written = || std::fs::read(&path).unwrap();

        // Alive: fed every 50 ms.
        let end = Instant::now() + Duration::from_millis(500);
        while Instant::now() < end {
            hb.beat();
            std::thread::sleep(Duration::from_millis(10));
        }
        let fed = written();
        assert!(fed.len() >= 4, "{fed:?}");
        assert!(
            fed.iter().all(|b| *b == 0),
            "only feeds while running: {fed:?}"
        );

        // Hung: after half the timeout without a beat, no more feeds (the board would reset).
        std::thread::sleep(Duration::from_millis(150));
        let before = written().len();
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(written().len(), before, "fed while the loop was hung");

        // A clean stop: the magic close, last.
        hb.beat();
        drop(wd);
        assert_eq!(written().last(), Some(&b'V'));
    }

    #[test]
    fn a_file_that_is_not_a_watchdog_is_named_and_left_disarmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("not-a-watchdog");
        std::fs::write(&path, b"").unwrap();
        let err = HardwareWatchdog::open(&path, 15).err().unwrap();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("watchdog_device") && msg.contains("not-a-watchdog"),
            "{msg}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"V");
        let err = HardwareWatchdog::open(&dir.path().join("missing"), 15)
            .err()
            .unwrap();
        assert!(format!("{err:#}").contains("missing"), "{err:#}");
    }

    #[test]
    fn no_interval_means_ready_only() {
        let (_dir, path, sock) = listener();
        let wd = Watchdog::start_with(Some(&path), None, None).unwrap();
        wd.set_status("starting");
        let got = collect(&sock, Duration::from_millis(200));
        assert_eq!(
            got,
            vec!["READY=1".to_string(), "STATUS=starting".to_string()]
        );
    }

    #[test]
    fn missing_socket_is_a_clear_error() {
        let err = Watchdog::start_with(Some("/nonexistent/notify.sock"), None, None)
            .err()
            .unwrap();
        assert!(
            format!("{err:#}").contains("/nonexistent/notify.sock"),
            "{err:#}"
        );
    }
}
