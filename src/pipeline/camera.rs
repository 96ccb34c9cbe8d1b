//! A camera that goes away and comes back: the loop says so in a status line, ends the visits
//! of whoever was in view, and reopens the source with backoff while keeping the watchdog fed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::Pipeline;
use crate::capture::FrameSource;
use crate::report::CameraState;

impl Pipeline {
    /// The camera went away: say so, then reopen with backoff ([`reopen`]) until it returns
    /// or the stop flag is set.
    pub(super) fn reconnect(&mut self, why: &str) -> anyhow::Result<()> {
        self.camera_lost(why)?;
        let hb = &self.heartbeat;
        let mut failures = 0;
        let back = reopen(
            self.source.as_mut(),
            &self.stop,
            &mut || hb.beat(),
            &mut || failures += 1,
        );
        self.status.capture_errors += failures;
        if back {
            self.last_sequence = None;
            self.camera_resumed(&self.source.describe())?;
        }
        Ok(())
    }

    /// The camera is lost: whoever was in view leaves with it (visits), and a status line says so.
    pub(super) fn camera_lost(&mut self, why: &str) -> anyhow::Result<()> {
        eprintln!("agegender: warning: camera lost ({why}); reconnecting");
        self.status.capture_errors += 1;
        self.status.camera = CameraState::Lost;
        self.tracker.end_all();
        self.follower.clear();
        self.write_visits()?;
        self.faces.clear();
        // no faces now: the first frame after the camera returns is detected, changed or not
        self.motion.reset();
        self.last_full_ms = None;
        self.write_status()?;
        self.reporter.flush()
    }

    /// The camera is back (`what`: its description): a status line says so.
    pub(super) fn camera_resumed(&mut self, what: &str) -> anyhow::Result<()> {
        eprintln!("agegender: camera resumed: {what}");
        self.status.camera = CameraState::Resumed;
        self.write_status()?;
        self.reporter.flush()
    }
}

/// Frames a source skipped before `sequence` (a gap in its numbers), given the last one seen.
pub(super) fn sequence_gap(last: &mut Option<u64>, sequence: u64) -> u64 {
    let gap = match *last {
        Some(prev) if sequence > prev.saturating_add(1) => sequence - prev - 1,
        _ => 0,
    };
    *last = Some(sequence);
    gap
}

/// Reopen a lost `source`: a try after 0.5 s, the wait doubling to 8 s, until it is back
/// (`true`) or `stop` is set (`false`). `tick` runs around each wait (the watchdog's heartbeat),
/// `failed` after each failed try (counted).
pub(super) fn reopen(
    source: &mut dyn FrameSource,
    stop: &AtomicBool,
    tick: &mut dyn FnMut(),
    failed: &mut dyn FnMut(),
) -> bool {
    let mut wait = Duration::from_millis(500);
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        // still alive while the camera is away: keep the watchdog fed
        tick();
        std::thread::sleep(wait);
        tick();
        match source.reconnect() {
            Ok(()) => return true,
            Err(e) => {
                failed();
                wait = (wait * 2).min(Duration::from_secs(8));
                eprintln!(
                    "agegender: warning: reconnect failed: {e:#}; next try in {:.1} s",
                    wait.as_secs_f32()
                );
            }
        }
    }
}
