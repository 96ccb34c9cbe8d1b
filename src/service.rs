//! systemd integration: `READY=1` and `WATCHDOG=1` notifications sent from a timer thread.
//!
//! The frame loop never talks to systemd. It calls [`Heartbeat::beat`] once per iteration (also
//! while waiting for a camera to come back); the timer thread only sends `WATCHDOG=1` while those
//! beats keep coming. If the loop hangs, the pings stop, and systemd (`WatchdogSec=`) kills and
//! restarts the service (`Restart=always`).
//!
//! Notifications are single datagrams to `$NOTIFY_SOCKET` (a path or, with a leading `@`, an
//! abstract socket name), as sd_notify(3) describes. Without `$NOTIFY_SOCKET` (not under systemd),
//! [`Watchdog::start`] returns `None` and nothing is sent.

use std::os::unix::net::{SocketAddr, UnixDatagram};
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

/// The notifier thread. Dropping it sends `STOPPING=1` and stops the thread.
pub struct Watchdog {
    heartbeat: Heartbeat,
    stop: Arc<AtomicBool>,
    status: Arc<Mutex<Option<String>>>,
    interval: Option<Duration>,
    socket: Arc<Notifier>,
    thread: Option<JoinHandle<()>>,
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
    /// Under systemd (`$NOTIFY_SOCKET` set): send `READY=1` and, when `$WATCHDOG_USEC` is set for
    /// this process, start pinging at half that interval while the heartbeat advances.
    /// Returns `None` when not run by systemd or when the socket cannot be used (logged once).
    pub fn start() -> Option<Watchdog> {
        let socket = std::env::var("NOTIFY_SOCKET").ok()?;
        let interval = watchdog_interval_from_env();
        match Watchdog::start_with(&socket, interval) {
            Ok(w) => Some(w),
            Err(e) => {
                eprintln!("systemd notify: {e:#}; running without watchdog");
                None
            }
        }
    }

    /// As [`Watchdog::start`], with the socket and the watchdog interval given explicitly.
    pub fn start_with(socket: &str, interval: Option<Duration>) -> anyhow::Result<Watchdog> {
        let notifier = Arc::new(
            Notifier::connect(socket)
                .with_context(|| format!("NOTIFY_SOCKET {socket}: bad address"))?,
        );
        notifier
            .send("READY=1")
            .with_context(|| format!("NOTIFY_SOCKET {socket}: cannot send READY=1"))?;
        let heartbeat = Heartbeat::new();
        let stop = Arc::new(AtomicBool::new(false));
        let status = Arc::new(Mutex::new(None::<String>));
        let thread = match interval {
            Some(iv) if !iv.is_zero() => {
                let (hb, st, n, s) = (
                    heartbeat.clone(),
                    stop.clone(),
                    notifier.clone(),
                    status.clone(),
                );
                Some(
                    std::thread::Builder::new()
                        .name("watchdog".into())
                        .spawn(move || timer_loop(iv, &hb, &st, &n, &s))
                        .context("cannot start watchdog thread")?,
                )
            }
            _ => None,
        };
        Ok(Watchdog {
            heartbeat,
            stop,
            status,
            interval,
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
        } else {
            let _ = self.socket.send(&format!("STATUS={line}"));
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
        let _ = self.socket.send("STOPPING=1");
    }
}

fn timer_loop(
    interval: Duration,
    heartbeat: &Heartbeat,
    stop: &AtomicBool,
    notifier: &Notifier,
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
            let _ = notifier.send("WATCHDOG=1");
        } else if !warned {
            eprintln!(
                "watchdog: frame loop silent for {:?}; withholding WATCHDOG=1 so systemd restarts us",
                last_change.elapsed()
            );
            warned = true;
        }
        if let Some(line) = status.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = notifier.send(&format!("STATUS={line}"));
        }
        std::thread::park_timeout(tick);
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
        let wd = Watchdog::start_with(&path, Some(Duration::from_millis(200))).unwrap();
        let hb = wd.heartbeat();

        // Loop alive: beats every 10 ms for 600 ms.
        let mut got = Vec::new();
        let end = Instant::now() + Duration::from_millis(600);
        while Instant::now() < end {
            hb.beat();
            got.extend(collect(&sock, Duration::from_millis(10)));
        }
        assert_eq!(got.first().map(String::as_str), Some("READY=1"));
        let pings = got.iter().filter(|m| *m == "WATCHDOG=1").count();
        assert!(
            pings >= 4,
            "expected regular pings while alive, got {got:?}"
        );

        // Loop hung: after the stale period no more pings arrive.
        let _ = collect(&sock, Duration::from_millis(150));
        let after = collect(&sock, Duration::from_millis(500));
        assert!(
            !after.iter().any(|m| m == "WATCHDOG=1"),
            "pings continued with a hung loop: {after:?}"
        );

        // It comes back: pings resume.
        let mut back = Vec::new();
        let end = Instant::now() + Duration::from_millis(300);
        while Instant::now() < end {
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
    fn no_interval_means_ready_only() {
        let (_dir, path, sock) = listener();
        let wd = Watchdog::start_with(&path, None).unwrap();
        wd.set_status("starting");
        let got = collect(&sock, Duration::from_millis(200));
        assert_eq!(
            got,
            vec!["READY=1".to_string(), "STATUS=starting".to_string()]
        );
    }

    #[test]
    fn missing_socket_is_a_clear_error() {
        let err = Watchdog::start_with("/nonexistent/notify.sock", None)
            .err()
            .unwrap();
        assert!(
            format!("{err:#}").contains("/nonexistent/notify.sock"),
            "{err:#}"
        );
    }
}
