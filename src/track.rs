//! Track: associate faces across frames by IoU, give each a stable id and smooth its labels.
//!
//! Association is greedy: every (track, detection) pair with IoU ≥ the threshold, best
//! first. Smoothing: an exponential average of age; gender as accumulated log-odds of
//! "female", clamped so a track can change its mind; the age bucket follows the smoothed
//! age with hysteresis (it changes only once the age is [`BUCKET_HYSTERESIS_YEARS`] past the
//! current bucket's edge), so an age hovering at a boundary does not flicker between two
//! buckets. A track unseen for more than `max_missed` detection frames is forgotten.
//! Every buffer is allocated in [`Tracker::new`]; [`Tracker::update`] allocates nothing.

use crate::classify::{Attributes, Gender, AGE_BUCKETS};
use crate::detect::Detection;

/// A face as the rest of the program sees it: where it is, who it is, and smoothed labels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrackedFace {
    pub id: u64,
    pub detection: Detection,
    /// Smoothed labels (what is drawn and reported).
    pub attributes: Attributes,
    /// Frames this track has been seen.
    pub hits: u32,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrackerConfig {
    /// Most faces tracked at once (detections beyond this are ignored).
    pub max_faces: usize,
    /// Least IoU for a detection to continue a track.
    pub iou_threshold: f32,
    /// Detection frames a track may be missed before it is forgotten.
    pub max_missed: u32,
    /// Weight of a new age estimate (1 = no smoothing).
    pub age_alpha: f32,
    /// Bound on |accumulated gender log-odds|.
    pub logodds_clamp: f32,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            max_faces: 8,
            iou_threshold: 0.3,
            max_missed: 5,
            age_alpha: 0.3,
            logodds_clamp: 6.0,
        }
    }
}

impl TrackerConfig {
    pub fn from_config(c: &crate::config::Config) -> Self {
        TrackerConfig {
            max_faces: c.max_faces,
            iou_threshold: c.track_iou,
            max_missed: c.max_missed,
            age_alpha: c.age_alpha,
            logodds_clamp: c.gender_logodds_clamp,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Track {
    face: TrackedFace,
    missed: u32,
    /// Accumulated log-odds that the face is female.
    logodds: f32,
    /// Smoothed age in years.
    age: f32,
    /// The reported bucket (index into [`AGE_BUCKETS`]), with hysteresis.
    bucket: usize,
    bucket_p: f32,
}

/// How far (years) the smoothed age must go past the current bucket's edge before a track's
/// bucket changes.
pub const BUCKET_HYSTERESIS_YEARS: f32 = 2.0;

/// The bucket to report for `age` when `current` is reported now: `current` while the age
/// stays within its years widened by [`BUCKET_HYSTERESIS_YEARS`] on both sides.
pub fn bucket_with_hysteresis(current: usize, age: f32) -> usize {
    let (_, lo, hi) = AGE_BUCKETS[current.min(AGE_BUCKETS.len() - 1)];
    let (lo, hi) = (lo as f32 - 0.5, hi as f32 + 0.5);
    if age >= lo - BUCKET_HYSTERESIS_YEARS && age < hi + BUCKET_HYSTERESIS_YEARS {
        current
    } else {
        bucket_for_age(age)
    }
}

/// Intersection over union of two `[x0, y0, x1, y1]` boxes (0 when either is empty).
pub fn box_iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let area = |r: &[f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

/// The index into [`AGE_BUCKETS`] for an age in years.
pub fn bucket_for_age(age: f32) -> usize {
    let a = age.round().clamp(0.0, 100.0) as u32;
    AGE_BUCKETS
        .iter()
        .position(|&(_, lo, hi)| a >= lo && a <= hi)
        .unwrap_or(AGE_BUCKETS.len() - 1)
}

fn logit(p: f32) -> f32 {
    let p = p.clamp(1e-4, 1.0 - 1e-4);
    (p / (1.0 - p)).ln()
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

pub struct Tracker {
    cfg: TrackerConfig,
    /// Live tracks, at most `2 * max_faces` (seen ones and recently missed ones).
    tracks: Vec<Track>,
    next_id: u64,
    /// Candidate pairs (iou, track index, detection index), reused.
    pairs: Vec<(f32, u16, u16)>,
    det_taken: Vec<bool>,
    /// Track id each detection of the latest update went to (0: none).
    det_id: Vec<u64>,
    track_taken: Vec<bool>,
    /// Faces seen in the latest update, reused.
    out: Vec<TrackedFace>,
}

impl Tracker {
    pub fn new(cfg: TrackerConfig) -> Self {
        let n = cfg.max_faces.max(1);
        let slots = 2 * n;
        Tracker {
            cfg,
            tracks: Vec::with_capacity(slots),
            next_id: 1,
            pairs: Vec::with_capacity(slots * n),
            det_taken: Vec::with_capacity(n),
            det_id: Vec::with_capacity(n),
            track_taken: Vec::with_capacity(slots),
            out: Vec::with_capacity(n),
        }
    }

    pub fn config(&self) -> &TrackerConfig {
        &self.cfg
    }

    /// Feed one detection frame: `detections[i]` was classified as `attributes[i]`.
    /// Returns the faces seen in this frame with their track ids and smoothed labels, in
    /// detection order. Allocates nothing.
    pub fn update(
        &mut self,
        detections: &[Detection],
        attributes: &[Attributes],
    ) -> &[TrackedFace] {
        let n = detections
            .len()
            .min(attributes.len())
            .min(self.cfg.max_faces);
        let (detections, attributes) = (&detections[..n], &attributes[..n]);

        self.pairs.clear();
        for (ti, t) in self.tracks.iter().enumerate() {
            for (di, d) in detections.iter().enumerate() {
                let iou = box_iou(&t.face.detection.bbox, &d.bbox);
                if iou >= self.cfg.iou_threshold && iou > 0.0 {
                    self.pairs.push((iou, ti as u16, di as u16));
                }
            }
        }
        // Best overlap first; ties by older track (lower index) for determinism.
        self.pairs
            .sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));

        self.det_taken.clear();
        self.det_taken.resize(n, false);
        self.track_taken.clear();
        self.track_taken.resize(self.tracks.len(), false);
        self.det_id.clear();
        self.det_id.resize(n, 0);
        for k in 0..self.pairs.len() {
            let (_, ti, di) = self.pairs[k];
            let (ti, di) = (ti as usize, di as usize);
            if self.track_taken[ti] || self.det_taken[di] {
                continue;
            }
            self.track_taken[ti] = true;
            self.det_taken[di] = true;
            self.det_id[di] = self.tracks[ti].face.id;
            let cfg = self.cfg;
            observe(&mut self.tracks[ti], &detections[di], &attributes[di], &cfg);
        }

        // Age out unmatched tracks (swap_remove keeps this allocation-free; the
        // `track_taken` flags move along with the tracks).
        let mut i = 0;
        while i < self.tracks.len() {
            if !self.track_taken[i] {
                self.tracks[i].missed += 1;
                if self.tracks[i].missed > self.cfg.max_missed {
                    self.tracks.swap_remove(i);
                    self.track_taken.swap_remove(i);
                    continue;
                }
            }
            i += 1;
        }

        // New tracks for unmatched detections, while there is room.
        for di in 0..n {
            if self.det_taken[di] {
                continue;
            }
            if self.tracks.len() == self.tracks.capacity() {
                // Full: replace the most-missed track if any is missed, else drop the face.
                let worst = self
                    .tracks
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| t.missed > 0)
                    .max_by_key(|(_, t)| t.missed)
                    .map(|(i, _)| i);
                match worst {
                    Some(w) => {
                        self.tracks.swap_remove(w);
                    }
                    None => continue,
                }
            }
            let a = attributes[di];
            let id = self.next_id;
            self.next_id += 1;
            let mut t = Track {
                face: TrackedFace {
                    id,
                    detection: detections[di],
                    attributes: a,
                    hits: 0,
                },
                missed: 0,
                logodds: 0.0,
                age: a.age,
                bucket: bucket_for_age(a.age),
                bucket_p: a.bucket_p,
            };
            let cfg = self.cfg;
            observe_first(&mut t, &detections[di], &a, &cfg);
            self.tracks.push(t);
            self.det_taken[di] = true;
            self.det_id[di] = id;
        }

        // Faces seen this frame, in detection order.
        self.out.clear();
        for &id in &self.det_id {
            if let Some(t) = self.tracks.iter().find(|t| id != 0 && t.face.id == id) {
                self.out.push(t.face);
            }
        }
        &self.out
    }

    /// Faces seen in the latest [`Tracker::update`].
    pub fn faces(&self) -> &[TrackedFace] {
        &self.out
    }

    /// Tracks alive (seen or recently missed).
    pub fn live_tracks(&self) -> usize {
        self.tracks.len()
    }

    /// Forget every track (ids keep increasing).
    pub fn clear(&mut self) {
        self.tracks.clear();
        self.out.clear();
    }
}

fn observe_first(t: &mut Track, d: &Detection, a: &Attributes, cfg: &TrackerConfig) {
    t.logodds = logit(a.p_female).clamp(-cfg.logodds_clamp, cfg.logodds_clamp);
    t.age = a.age;
    t.bucket = bucket_for_age(a.age);
    t.bucket_p = a.bucket_p;
    t.face.detection = *d;
    t.face.hits = 1;
    publish(t);
}

fn observe(t: &mut Track, d: &Detection, a: &Attributes, cfg: &TrackerConfig) {
    t.logodds = (t.logodds + logit(a.p_female)).clamp(-cfg.logodds_clamp, cfg.logodds_clamp);
    t.age += cfg.age_alpha * (a.age - t.age);
    t.bucket = bucket_with_hysteresis(t.bucket, t.age);
    // bucket_p is the observed mass in the observed bucket; when the reported bucket is
    // another one, 1 - that mass bounds what the observation gives to ours.
    let target = if a.bucket == t.bucket {
        a.bucket_p
    } else {
        1.0 - a.bucket_p
    };
    t.bucket_p += cfg.age_alpha * (target - t.bucket_p);
    t.face.detection = *d;
    t.face.hits = t.face.hits.saturating_add(1);
    t.missed = 0;
    publish(t);
}

/// Write the smoothed state into the face's public attributes.
fn publish(t: &mut Track) {
    let p_female = sigmoid(t.logodds);
    let gender = if p_female >= 0.5 {
        Gender::Female
    } else {
        Gender::Male
    };
    t.face.attributes = Attributes {
        gender,
        gender_p: if gender == Gender::Female {
            p_female
        } else {
            1.0 - p_female
        },
        p_female,
        age: t.age,
        bucket: t.bucket,
        bucket_p: t.bucket_p.clamp(0.0, 1.0),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_hysteresis_holds_at_a_boundary_and_follows_real_changes() {
        let b48 = 6; // "48-53": 45..=55
        assert_eq!(AGE_BUCKETS[b48].0, "48-53");
        // hovering around the 55/56 edge: stays
        for age in [55.2, 55.8, 56.4, 57.0, 55.1] {
            assert_eq!(bucket_with_hysteresis(b48, age), b48, "{age}");
        }
        // clearly older: moves, and then holds the new bucket on the way back to the edge
        let b60 = bucket_with_hysteresis(b48, 58.0);
        assert_eq!(AGE_BUCKETS[b60].0, "60+");
        assert_eq!(bucket_with_hysteresis(b60, 54.0), b60);
        assert_eq!(bucket_with_hysteresis(b60, 53.0), b48);
        // far away: straight to the right bucket
        assert_eq!(AGE_BUCKETS[bucket_with_hysteresis(b48, 27.0)].0, "25-32");
    }

    #[test]
    fn iou_and_buckets() {
        assert_eq!(box_iou(&[0., 0., 10., 10.], &[0., 0., 10., 10.]), 1.0);
        assert_eq!(box_iou(&[0., 0., 10., 10.], &[20., 20., 30., 30.]), 0.0);
        assert!((box_iou(&[0., 0., 10., 10.], &[5., 0., 15., 10.]) - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(AGE_BUCKETS[bucket_for_age(27.4)].0, "25-32");
        assert_eq!(AGE_BUCKETS[bucket_for_age(3.4)].0, "0-2");
        assert_eq!(AGE_BUCKETS[bucket_for_age(90.0)].0, "60+");
    }
}
