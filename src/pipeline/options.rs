//! The frame loop's settings, taken from the [`Config`].

use std::time::Duration;

use crate::config::Config;
use crate::motion::MotionConfig;
use crate::track::TrackerConfig;
use crate::visits::VisitConfig;

/// Loop settings taken from the [`Config`].
#[derive(Clone, Debug)]
pub struct LoopOptions {
    pub max_faces: usize,
    pub detect_every: u32,
    /// 0: until the source ends.
    pub max_frames: u64,
    /// Zero: only the last status line (and camera events).
    pub status_interval: Duration,
    pub status_every_frames: u64,
    pub tracker: TrackerConfig,
    pub visits: VisitConfig,
    pub motion: MotionConfig,
    /// Track-guided detection: whole-frame detections at most this far apart (ms) while the
    /// tracked faces are searched in windows between them; 0: off.
    pub full_detect_interval_ms: u64,
    /// Following: due detections are skipped while the follower follows every tracked face
    /// surely and only they move, for at most this long after a detection (ms); 0: off.
    pub follow_interval_ms: u64,
}

impl LoopOptions {
    pub fn from_config(c: &Config) -> Self {
        LoopOptions {
            max_faces: c.max_faces,
            detect_every: c.detect_every.max(1),
            max_frames: c.max_frames,
            status_interval: Duration::from_secs_f32(c.status_interval_s),
            status_every_frames: c.status_every_frames,
            tracker: c.tracker(),
            visits: c.visits(),
            motion: c.motion(),
            full_detect_interval_ms: crate::config::ms(c.full_detect_interval_s),
            follow_interval_ms: crate::config::ms(c.follow_interval_s),
        }
    }
}

impl Default for LoopOptions {
    fn default() -> Self {
        LoopOptions::from_config(&Config::default())
    }
}
