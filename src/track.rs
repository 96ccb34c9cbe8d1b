//! Track: associate faces across frames by IoU, give each a stable id and smooth its labels.
//!
//! Association is greedy: every (track, detection) pair with IoU ≥ the threshold, best
//! first. Smoothing: an exponential average of age; gender as an average of the (calibrated)
//! log-odds of "female" over the track's frames — the plain mean over the first frames, then
//! an exponential average with weight `gender_alpha`, clamped — so the smoothed probability
//! stays what one frame's calibrated probability says: frames of one face are not independent
//! evidence, and summing their log-odds would turn a face the model is unsure of (say 0.7 on
//! every frame) into a confident answer after a few frames. The age bucket follows the smoothed
//! age with hysteresis (it changes only once the age is [`BUCKET_HYSTERESIS_YEARS`] past the
//! current bucket's edge), so an age hovering at a boundary does not flicker between two
//! buckets. Abstention ([`crate::classify::Abstention`]) is decided on the smoothed
//! probabilities, with hysteresis too: a track's gender (bucket) is answered once its smoothed
//! probability reaches the threshold and withdrawn (`U`, `?`) once it falls more than
//! [`ABSTAIN_HYSTERESIS`] below it. A track unseen for more than `max_missed` detection frames
//! is forgotten (and, when [`TrackerConfig::end_after_ms`] is set, also unseen for that long).
//! A forgotten track's [`TrackSummary`] (first and last time and frame, views, the sums its
//! means come from) goes to [`Tracker::ended`], where `src/visits.rs` turns it into a visit.
//! Every buffer is allocated in [`Tracker::new`]; [`Tracker::update`] allocates nothing.

use crate::classify::{Abstention, Attributes, Gender, AGE_BUCKETS};
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
    /// Least weight of a new gender log-odds in the track's average (1 = no smoothing).
    pub gender_alpha: f32,
    /// Bound on |smoothed gender log-odds|.
    pub logodds_clamp: f32,
    /// When a track's smoothed gender or bucket is reported as unknown.
    pub abstention: Abstention,
    /// A missed track is also kept until it has gone unseen this long (milliseconds of the
    /// times given to [`Tracker::update_at`]; 0: `max_missed` alone decides).
    pub end_after_ms: u64,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            max_faces: 8,
            iou_threshold: 0.3,
            max_missed: 5,
            age_alpha: 0.3,
            gender_alpha: 0.2,
            logodds_clamp: 6.0,
            abstention: Abstention::default(),
            end_after_ms: 0,
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
            gender_alpha: c.gender_alpha,
            logodds_clamp: c.gender_logodds_clamp,
            abstention: c.abstention(),
            end_after_ms: (c.visit_end_s as f64 * 1000.0).round() as u64,
        }
    }
}

/// What a track saw over its life: the raw (per-frame, unsmoothed) estimates summed, so the
/// visit can use their means.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrackSummary {
    pub id: u64,
    /// Frame number and time (ms) of the first and the last detection frame that saw it.
    pub first_frame: u64,
    pub last_frame: u64,
    pub first_ms: u64,
    pub last_ms: u64,
    /// Detection frames that saw it (each one classified view).
    pub views: u32,
    /// Sums over the views of the calibrated probability of female, and of the age.
    pub sum_p_female: f32,
    pub sum_age: f32,
    /// Per bucket: the sum over views of `bucket_p` where the view's best bucket is that one.
    pub bucket_mass: [f32; AGE_BUCKETS.len()],
}

impl TrackSummary {
    fn start(id: u64, frame: u64, ms: u64) -> Self {
        TrackSummary {
            id,
            first_frame: frame,
            last_frame: frame,
            first_ms: ms,
            last_ms: ms,
            views: 0,
            sum_p_female: 0.0,
            sum_age: 0.0,
            bucket_mass: [0.0; AGE_BUCKETS.len()],
        }
    }

    fn add(&mut self, a: &Attributes, frame: u64, ms: u64) {
        self.last_frame = frame;
        self.last_ms = ms;
        self.views = self.views.saturating_add(1);
        self.sum_p_female += a.p_female;
        self.sum_age += a.age;
        if let Some(m) = self.bucket_mass.get_mut(a.bucket) {
            *m += a.bucket_p;
        }
    }

    /// Milliseconds from the first to the last view.
    pub fn dwell_ms(&self) -> u64 {
        self.last_ms.saturating_sub(self.first_ms)
    }
}

#[derive(Clone, Copy, Debug)]
struct Track {
    face: TrackedFace,
    summary: TrackSummary,
    missed: u32,
    /// Smoothed log-odds that the face is female.
    logodds: f32,
    /// Whether the gender / the bucket is answered now (abstention with hysteresis).
    gender_known: bool,
    bucket_known: bool,
    /// Smoothed age in years.
    age: f32,
    /// The reported bucket (index into [`AGE_BUCKETS`]), with hysteresis.
    bucket: usize,
    bucket_p: f32,
}

/// How far (years) the smoothed age must go past the current bucket's edge before a track's
/// bucket changes.
pub const BUCKET_HYSTERESIS_YEARS: f32 = 2.0;

/// How far below its threshold a track's smoothed probability must fall before an answered
/// gender or bucket is withdrawn again (a new track, or an unknown one, needs the threshold).
pub const ABSTAIN_HYSTERESIS: f32 = 0.05;

/// Answered now, given whether it was answered before (see [`ABSTAIN_HYSTERESIS`]).
fn answered(p: f32, min_p: f32, before: bool) -> bool {
    if before {
        p >= min_p - ABSTAIN_HYSTERESIS
    } else {
        p >= min_p
    }
}

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
    /// Tracks forgotten in the latest update (or [`Tracker::end_all`]), reused.
    ended: Vec<TrackSummary>,
    /// Frame number and time of the latest update.
    frame: u64,
    now_ms: u64,
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
            // every live track, plus the ones replaced by new faces
            ended: Vec::with_capacity(slots + n),
            frame: 0,
            now_ms: 0,
        }
    }

    pub fn config(&self) -> &TrackerConfig {
        &self.cfg
    }

    /// Feed one detection frame: `detections[i]` was classified as `attributes[i]`.
    /// Returns the faces seen in this frame with their track ids and smoothed labels, in
    /// detection order. Allocates nothing. The frame number is one more than the previous
    /// update's and the time does not move ([`Tracker::update_at`] gives both).
    pub fn update(
        &mut self,
        detections: &[Detection],
        attributes: &[Attributes],
    ) -> &[TrackedFace] {
        let (frame, ms) = (self.frame + 1, self.now_ms);
        self.update_at(detections, attributes, frame, ms)
    }

    /// [`Tracker::update`] for frame number `frame` taken at `now_ms` (milliseconds, any
    /// origin, not decreasing): the times and frames in [`TrackSummary`]. Tracks forgotten
    /// here are in [`Tracker::ended`] until the next update.
    pub fn update_at(
        &mut self,
        detections: &[Detection],
        attributes: &[Attributes],
        frame: u64,
        now_ms: u64,
    ) -> &[TrackedFace] {
        self.frame = frame;
        self.now_ms = now_ms;
        self.ended.clear();
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
            self.tracks[ti].summary.add(&attributes[di], frame, now_ms);
        }

        // Age out unmatched tracks (swap_remove keeps this allocation-free; the
        // `track_taken` flags move along with the tracks).
        let mut i = 0;
        while i < self.tracks.len() {
            if !self.track_taken[i] {
                self.tracks[i].missed += 1;
                let unseen_ms = now_ms.saturating_sub(self.tracks[i].summary.last_ms);
                if self.tracks[i].missed > self.cfg.max_missed && unseen_ms >= self.cfg.end_after_ms
                {
                    let gone = self.tracks.swap_remove(i);
                    self.ended.push(gone.summary);
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
                        let gone = self.tracks.swap_remove(w);
                        self.ended.push(gone.summary);
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
                summary: TrackSummary::start(id, frame, now_ms),
                missed: 0,
                logodds: 0.0,
                gender_known: false,
                bucket_known: false,
                age: a.age,
                bucket: bucket_for_age(a.age),
                bucket_p: a.bucket_p,
            };
            let cfg = self.cfg;
            observe_first(&mut t, &detections[di], &a, &cfg);
            t.summary.add(&a, frame, now_ms);
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

    /// The faces seen in the latest update are still in view at `frame`, `now_ms` without a
    /// detection (motion gating found the scene unchanged, `src/motion.rs`): their last frame
    /// and time move on, so a still visitor's dwell counts to the frame they were last shown;
    /// no view is added and nothing is missed. Allocates nothing.
    pub fn hold_at(&mut self, frame: u64, now_ms: u64) {
        for t in self.tracks.iter_mut() {
            if self.out.iter().any(|f| f.id == t.face.id) {
                t.summary.last_frame = t.summary.last_frame.max(frame);
                t.summary.last_ms = t.summary.last_ms.max(now_ms);
            }
        }
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
        self.ended.clear();
    }

    /// End every track now (the source ended, the camera was lost): their summaries are in
    /// [`Tracker::ended`], which this replaces. Allocates nothing.
    pub fn end_all(&mut self) {
        self.ended.clear();
        for t in &self.tracks {
            self.ended.push(t.summary);
        }
        self.tracks.clear();
        self.out.clear();
    }

    /// Summaries of the tracks forgotten in the latest [`Tracker::update_at`] or
    /// [`Tracker::end_all`].
    pub fn ended(&self) -> &[TrackSummary] {
        &self.ended
    }
}

fn observe_first(t: &mut Track, d: &Detection, a: &Attributes, cfg: &TrackerConfig) {
    t.logodds = logit(a.p_female).clamp(-cfg.logodds_clamp, cfg.logodds_clamp);
    t.age = a.age;
    t.bucket = bucket_for_age(a.age);
    t.bucket_p = a.bucket_p;
    t.face.detection = *d;
    t.face.hits = 1;
    t.gender_known = false;
    t.bucket_known = false;
    publish(t, cfg);
}

fn observe(t: &mut Track, d: &Detection, a: &Attributes, cfg: &TrackerConfig) {
    // The mean of the frames' log-odds while there are few, then an exponential average.
    let n = t.face.hits.saturating_add(1) as f32;
    let w = (1.0 / n).max(cfg.gender_alpha).min(1.0);
    t.logodds = (t.logodds + w * (logit(a.p_female) - t.logodds))
        .clamp(-cfg.logodds_clamp, cfg.logodds_clamp);
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
    publish(t, cfg);
}

/// Write the smoothed state into the face's public attributes, deciding abstention on the
/// smoothed probabilities.
fn publish(t: &mut Track, cfg: &TrackerConfig) {
    let p_female = sigmoid(t.logodds);
    let (best, gender_p) = if p_female >= 0.5 {
        (Gender::Female, p_female)
    } else {
        (Gender::Male, 1.0 - p_female)
    };
    let bucket_p = t.bucket_p.clamp(0.0, 1.0);
    let ab = &cfg.abstention;
    t.gender_known = answered(gender_p, ab.gender_min_p, t.gender_known);
    t.bucket_known = answered(bucket_p, ab.bucket_min_p, t.bucket_known);
    t.face.attributes = Attributes {
        gender: if t.gender_known {
            best
        } else {
            Gender::Unknown
        },
        gender_p,
        p_female,
        age: t.age,
        bucket: t.bucket,
        bucket_p,
        bucket_known: t.bucket_known,
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
