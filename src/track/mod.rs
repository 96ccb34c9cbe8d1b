//! Track: associate faces across frames by IoU, give each a stable id, decide which views of
//! it to classify, and fuse the classified views into its labels.
//!
//! Association is greedy: every (track, detection) pair with IoU ≥ the threshold, best
//! first. Classification follows the track, not the frame ([`Tracker::wants_view`]): a new face
//! is classified on first sight; after that only when it is worth it (its face grew, the view
//! is better by [`crate::quality::view_quality`], or its fused gender or bucket is still
//! abstaining), up to `classify_budget` views, then once every `classify_refresh_ms`. A
//! detection that is not classified moves its track's box and keeps the fused labels.
//! Fusion: the quality-weighted mean of the views' calibrated log-odds of "female" and of their
//! ages (and bucket mass), clamped; on a long track a full-quality view keeps at least the
//! share `gender_alpha` (`age_alpha`) so the labels can still move (see [`observe`]). A mean,
//! not a sum, of log-odds, so the fused probability stays what one view's calibrated probability
//! says: views of one face are not independent evidence, and summing their log-odds would turn
//! a face the model is unsure of (say 0.7 on every view) into a confident answer after a few
//! views. The age bucket follows the fused age with hysteresis (it changes only once the age is
//! [`BUCKET_HYSTERESIS_YEARS`] past the current bucket's edge), so an age hovering at a boundary
//! does not flicker between two buckets. Abstention ([`crate::classify::Abstention`]) is
//! decided on the fused probabilities, with hysteresis too: a track's gender (bucket) is
//! answered once its fused probability reaches the threshold and withdrawn (`U`, `?`) once it
//! falls more than [`ABSTAIN_HYSTERESIS`] below it. A track unseen for more than `max_missed`
//! detection frames is forgotten (and, when [`TrackerConfig::end_after_ms`] is set, also unseen
//! for that long). A forgotten track's [`TrackSummary`] (first and last time and frame,
//! classified views, the sums its means come from) goes to [`Tracker::ended`], where
//! `src/visits.rs` turns it into a visit. Every buffer is allocated in [`Tracker::new`]; the
//! updates allocate nothing.

use crate::classify::{bucket_of, Abstention, Attributes, AGE_BUCKETS};
use crate::detect::{iou, Detection};

mod follow;
mod fuse;

pub use follow::Follower;

pub use fuse::{bucket_with_hysteresis, View, ABSTAIN_HYSTERESIS, BUCKET_HYSTERESIS_YEARS};
use fuse::{moved, observe, observe_first};

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
    /// Classified views a track may have before only the refresh classifies it again
    /// (0: classify every detection).
    pub classify_budget: u32,
    /// Within the budget, classify again when the face's side is at least this many times
    /// its side in the best view so far (1.2: grew by 20%).
    pub classify_grow: f32,
    /// Within the budget, classify again when the view's quality is at least this many times
    /// the best view's so far.
    pub classify_quality_gain: f32,
    /// Past the budget, classify again once the latest view is this old (ms; 0: never).
    pub classify_refresh_ms: u64,
    /// Fuse the views with equal weights instead of their quality (for comparison:
    /// `agegender eval --sequences`; no configuration key).
    pub uniform_weights: bool,
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
    /// Classified views of it (the detection frames where the classifier ran on it).
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

    /// Seen (with or without a classified view) in `frame` at `ms`.
    fn seen(&mut self, frame: u64, ms: u64) {
        self.last_frame = frame;
        self.last_ms = ms;
    }

    fn add(&mut self, a: &Attributes, frame: u64, ms: u64) {
        self.seen(frame, ms);
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
    /// Sum of the quality weights of the views fused so far.
    weight: f32,
    /// The largest face side and the best quality among the classified views.
    best_side: f32,
    best_quality: f32,
    /// Time (ms) of the latest classified view.
    last_view_ms: u64,
}

/// [`Tracker::associate`]: no track for this detection.
const NO_TRACK: u16 = u16::MAX;

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
    /// Index of the track each detection of the latest [`Tracker::associate`] continues
    /// ([`NO_TRACK`]: a new face).
    matched: Vec<u16>,
    /// Whether `matched` belongs to the current tracks (set by [`Tracker::associate`], used up
    /// by the update that follows).
    associated: bool,
    /// [`Tracker::searched_only`]: the ids of the tracks the latest associated detections
    /// looked for, when `search_limited`; used up by the update that follows.
    searched: Vec<u64>,
    search_limited: bool,
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
            matched: Vec::with_capacity(n),
            associated: false,
            searched: Vec::with_capacity(slots),
            search_limited: false,
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

    /// Feed one detection frame: `detections[i]` was classified as `attributes[i]`, every
    /// view with the same weight. Returns the faces seen in this frame with their track ids
    /// and fused labels, in detection order. Allocates nothing. The frame number is one more
    /// than the previous update's and the time does not move ([`Tracker::update_at`] gives
    /// both).
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
        let n = detections.len().min(attributes.len());
        let detections = &detections[..n];
        self.associate(detections);
        self.apply(
            detections,
            |i| {
                Some(View {
                    attributes: attributes[i],
                    quality: 1.0,
                })
            },
            frame,
            now_ms,
        )
    }

    /// The frame loop's update, step 1: match `detections` (best first) to the live tracks.
    /// Then ask [`Tracker::wants_view`] for each detection whether to classify it, and give
    /// the views to [`Tracker::update_views`] with the same detections. Allocates nothing.
    pub fn associate(&mut self, detections: &[Detection]) {
        let n = detections.len().min(self.cfg.max_faces);
        let detections = &detections[..n];
        self.pairs.clear();
        for (ti, t) in self.tracks.iter().enumerate() {
            for (di, d) in detections.iter().enumerate() {
                let iou = iou(&t.face.detection.bbox, &d.bbox);
                if iou >= self.cfg.iou_threshold && iou > 0.0 {
                    self.pairs.push((iou, ti as u16, di as u16));
                }
            }
        }
        // Best overlap first; ties by older track (lower index) for determinism.
        self.pairs
            .sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        self.track_taken.clear();
        self.track_taken.resize(self.tracks.len(), false);
        self.matched.clear();
        self.matched.resize(n, NO_TRACK);
        for k in 0..self.pairs.len() {
            let (_, ti, di) = self.pairs[k];
            if self.track_taken[ti as usize] || self.matched[di as usize] != NO_TRACK {
                continue;
            }
            self.track_taken[ti as usize] = true;
            self.matched[di as usize] = ti;
        }
        self.associated = true;
        self.search_limited = false;
    }

    /// Step 1b, only for a window search placed before some of the tracks were made or seen
    /// (the stage-parallel loop's, a detection or two behind): the detections given to
    /// [`Tracker::associate`] looked only for the tracks with these ids. A track they did not
    /// look for is not missed by the update that follows: it keeps its box and labels, and if
    /// it was seen at its latest update it is among the faces seen (as
    /// [`Tracker::hold_at`] keeps faces through a skipped detection). Allocates nothing (ids
    /// beyond `2 * max_faces` are not kept).
    pub fn searched_only(&mut self, ids: &[u64]) {
        self.searched.clear();
        let room = self.searched.capacity();
        self.searched.extend(ids.iter().take(room));
        self.search_limited = true;
    }

    /// Whether the update under way looked for track `id` (see [`Tracker::searched_only`]).
    fn looked_for(&self, id: u64) -> bool {
        !self.search_limited || self.searched.contains(&id)
    }

    /// Step 2: whether detection `di` of the latest [`Tracker::associate`] is worth a
    /// classifier run, given the quality its view would have, at `now_ms`. A new face: yes.
    /// A tracked one: with `classify_budget` 0, always; while it has fewer classified views
    /// than the budget, when its face grew (`classify_grow`), the view is better
    /// (`classify_quality_gain`) or its fused gender or bucket is still unknown (abstaining);
    /// after that, once its latest view is `classify_refresh_ms` old.
    pub fn wants_view(&self, di: usize, detection: &Detection, quality: f32, now_ms: u64) -> bool {
        let Some(&ti) = self.matched.get(di) else {
            return false;
        };
        let Some(t) = self.tracks.get(ti as usize).filter(|_| ti != NO_TRACK) else {
            return true;
        };
        let c = &self.cfg;
        if c.classify_budget == 0 || t.summary.views == 0 {
            return true;
        }
        if t.summary.views < c.classify_budget {
            let grew = detection.face_side() >= c.classify_grow * t.best_side;
            let better = quality >= c.classify_quality_gain * t.best_quality;
            let unsure = !t.gender_known || !t.bucket_known;
            if grew || better || unsure {
                return true;
            }
        }
        c.classify_refresh_ms > 0 && now_ms.saturating_sub(t.last_view_ms) >= c.classify_refresh_ms
    }

    /// Step 3: the views of the detections given to [`Tracker::associate`] (`views[i]` for
    /// `detections[i]`; `None`: not classified this time). A tracked face without a view moves
    /// and keeps its fused labels; a new face without one is not tracked yet (nothing to say
    /// about it). Returns the faces seen, as [`Tracker::update_at`].
    pub fn update_views(
        &mut self,
        detections: &[Detection],
        views: &[Option<View>],
        frame: u64,
        now_ms: u64,
    ) -> &[TrackedFace] {
        if !self.associated {
            self.associate(detections);
        }
        self.apply(
            detections,
            |i| views.get(i).copied().flatten(),
            frame,
            now_ms,
        )
    }

    fn apply(
        &mut self,
        detections: &[Detection],
        view: impl Fn(usize) -> Option<View>,
        frame: u64,
        now_ms: u64,
    ) -> &[TrackedFace] {
        self.frame = frame;
        self.now_ms = now_ms;
        self.ended.clear();
        self.associated = false;
        let n = detections.len().min(self.matched.len());
        let detections = &detections[..n];

        self.det_taken.clear();
        self.det_taken.resize(n, false);
        self.det_id.clear();
        self.det_id.resize(n, 0);
        for (di, d) in detections.iter().enumerate() {
            let ti = self.matched[di];
            if ti == NO_TRACK {
                continue;
            }
            let t = &mut self.tracks[ti as usize];
            self.det_taken[di] = true;
            self.det_id[di] = t.face.id;
            let cfg = self.cfg;
            match view(di) {
                Some(v) => {
                    observe(t, d, &v, now_ms, &cfg);
                    t.summary.add(&v.attributes, frame, now_ms);
                }
                None => {
                    moved(t, d);
                    t.summary.seen(frame, now_ms);
                }
            }
        }

        // Age out unmatched tracks (swap_remove keeps this allocation-free; the
        // `track_taken` flags move along with the tracks).
        let mut i = 0;
        while i < self.tracks.len() {
            if !self.track_taken[i] && self.looked_for(self.tracks[i].face.id) {
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

        // New tracks for unmatched detections with a view, while there is room.
        for (di, d) in detections.iter().enumerate() {
            if self.det_taken[di] {
                continue;
            }
            let Some(v) = view(di) else {
                continue;
            };
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
            let a = v.attributes;
            let id = self.next_id;
            self.next_id += 1;
            let mut t = Track {
                face: TrackedFace {
                    id,
                    detection: *d,
                    attributes: a,
                    hits: 0,
                },
                summary: TrackSummary::start(id, frame, now_ms),
                missed: 0,
                logodds: 0.0,
                gender_known: false,
                bucket_known: false,
                age: a.age,
                bucket: bucket_of(a.age),
                bucket_p: a.bucket_p,
                weight: 0.0,
                best_side: 0.0,
                best_quality: 0.0,
                last_view_ms: now_ms,
            };
            let cfg = self.cfg;
            observe_first(&mut t, d, &v, now_ms, &cfg);
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
        // ... and the ones not looked for that were seen at their latest update
        if self.search_limited {
            let room = self.cfg.max_faces.max(1);
            for t in self.tracks.iter_mut() {
                let id = t.face.id;
                if self.out.len() < room
                    && t.missed == 0
                    && !self.searched.contains(&id)
                    && !self.det_id.contains(&id)
                {
                    t.summary.last_frame = t.summary.last_frame.max(frame);
                    t.summary.last_ms = t.summary.last_ms.max(now_ms);
                    self.out.push(t.face);
                }
            }
            self.search_limited = false;
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

    /// Move track `id`'s box and landmarks by (`dx`, `dy`) pixels (a face followed between
    /// detections, [`Follower`]); its box in [`Tracker::faces`] too. Allocates nothing.
    pub fn shift(&mut self, id: u64, dx: f32, dy: f32) {
        if let Some(t) = self.tracks.iter_mut().find(|t| t.face.id == id) {
            t.face.detection.translate(dx, dy);
        }
        if let Some(f) = self.out.iter_mut().find(|f| f.id == id) {
            f.detection.translate(dx, dy);
        }
    }

    /// Ids of the tracks the latest update's detections saw (0: a detection no track took).
    pub fn detected_ids(&self) -> &[u64] {
        &self.det_id
    }

    /// Faces seen in the latest [`Tracker::update`].
    pub fn faces(&self) -> &[TrackedFace] {
        &self.out
    }

    /// Tracks alive (seen or recently missed).
    pub fn live_tracks(&self) -> usize {
        self.tracks.len()
    }

    /// Live tracks missed by at most `looks` updates in a row (seen ones included): the faces
    /// still worth looking for (one missed more often has left or turned away, and is only
    /// kept until `max_missed` ends its visit).
    pub fn sought_tracks(&self, looks: u32) -> usize {
        self.tracks.iter().filter(|t| t.missed <= looks).count()
    }

    /// Forget every track (ids keep increasing).
    pub fn clear(&mut self) {
        self.tracks.clear();
        self.out.clear();
        self.ended.clear();
        self.associated = false;
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
        self.associated = false;
    }

    /// Summaries of the tracks forgotten in the latest [`Tracker::update_at`] or
    /// [`Tracker::end_all`].
    pub fn ended(&self) -> &[TrackSummary] {
        &self.ended
    }
}

#[cfg(test)]
mod tests {
    use super::fuse::logit;
    use super::*;
    use crate::classify::Gender;

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
        assert_eq!(iou(&[0., 0., 10., 10.], &[0., 0., 10., 10.]), 1.0);
        assert_eq!(iou(&[0., 0., 10., 10.], &[20., 20., 30., 30.]), 0.0);
        assert!((iou(&[0., 0., 10., 10.], &[5., 0., 15., 10.]) - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(AGE_BUCKETS[bucket_of(27.4)].0, "25-32");
        assert_eq!(AGE_BUCKETS[bucket_of(3.4)].0, "0-2");
        assert_eq!(AGE_BUCKETS[bucket_of(90.0)].0, "60+");
    }

    fn det(x: f32, y: f32, side: f32) -> Detection {
        Detection {
            bbox: [x, y, x + side, y + side],
            score: 0.9,
            landmarks: [
                [x + 0.3 * side, y + 0.4 * side],
                [x + 0.7 * side, y + 0.4 * side],
                [x + 0.5 * side, y + 0.6 * side],
                [x + 0.5 * side, y + 0.8 * side],
            ],
        }
    }

    fn attrs(p_female: f32, age: f32) -> Attributes {
        let female = p_female >= 0.5;
        Attributes {
            gender: if female { Gender::Female } else { Gender::Male },
            gender_p: if female { p_female } else { 1.0 - p_female },
            p_female,
            age,
            bucket: bucket_of(age),
            bucket_p: 0.8,
            bucket_known: true,
        }
    }

    /// One detection frame of the loop's update: associate, ask for each detection whether
    /// it is worth a view (of quality `q[i]`), "classify" those as `labels[i]`, update.
    /// Returns which detections were classified.
    fn step(
        t: &mut Tracker,
        dets: &[Detection],
        q: &[f32],
        labels: &[Attributes],
        frame: u64,
        ms: u64,
    ) -> Vec<bool> {
        t.associate(dets);
        let views: Vec<Option<View>> = (0..dets.len())
            .map(|i| {
                t.wants_view(i, &dets[i], q[i], ms).then_some(View {
                    attributes: labels[i],
                    quality: q[i],
                })
            })
            .collect();
        t.update_views(dets, &views, frame, ms);
        views.iter().map(Option::is_some).collect()
    }

    fn policy_cfg() -> TrackerConfig {
        TrackerConfig {
            abstention: Abstention {
                gender_min_p: 0.8,
                bucket_min_p: 0.5,
            },
            classify_budget: 4,
            classify_grow: 1.2,
            classify_quality_gain: 1.25,
            classify_refresh_ms: 3000,
            ..crate::config::Config::default().tracker()
        }
    }

    #[test]
    fn a_still_sure_face_is_classified_once_then_at_the_refresh_rate() {
        let mut t = Tracker::new(policy_cfg());
        let sure = attrs(0.95, 30.0);
        let mut calls = Vec::new();
        // 10 s at 15 detection frames per second
        for f in 0..150u64 {
            let ms = f * 1000 / 15;
            let c = step(&mut t, &[det(100.0, 100.0, 120.0)], &[0.8], &[sure], f, ms);
            if c[0] {
                calls.push(ms);
            }
            let face = t.faces()[0];
            assert_eq!(face.id, 1);
            // labelled on every detection frame, classified or not
            assert_eq!(face.attributes.gender, Gender::Female, "frame {f}");
            assert_eq!(face.hits, f as u32 + 1);
        }
        // first sight, then every 3 s
        assert_eq!(calls, vec![0, 3000, 6000, 9000], "{calls:?}");
    }

    #[test]
    fn a_growing_face_is_classified_again_within_the_budget() {
        let mut t = Tracker::new(policy_cfg());
        let sure = attrs(0.05, 40.0);
        let mut calls = 0;
        let mut side = 60.0;
        for f in 0..40u64 {
            // grows 5% per detection frame: ≥ 20% over the best view every 4 frames
            side *= 1.05;
            let c = step(
                &mut t,
                &[det(100.0, 100.0, side)],
                &[0.5],
                &[sure],
                f,
                f * 66,
            );
            calls += c[0] as u32;
            if f == 4 {
                assert_eq!(calls, 2, "grew 21.6% by frame 4");
            }
        }
        // the budget: 4 views within 40 frames (2.6 s, before the first refresh)
        assert_eq!(calls, 4);
        assert_eq!(t.ended().len(), 0);
    }

    #[test]
    fn a_better_view_or_an_unsure_label_is_worth_a_view_until_the_budget() {
        let mut t = Tracker::new(policy_cfg());
        let d = [det(50.0, 50.0, 100.0)];
        let sure = [attrs(0.9, 30.0)];
        assert_eq!(step(&mut t, &d, &[0.4], &sure, 0, 0), [true]);
        assert_eq!(step(&mut t, &d, &[0.45], &sure, 1, 66), [false]);
        // 0.5 ≥ 1.25 × 0.4: a better view
        assert_eq!(step(&mut t, &d, &[0.5], &sure, 2, 132), [true]);
        assert_eq!(step(&mut t, &d, &[0.5], &sure, 3, 198), [false]);

        // an unsure face (0.7 on every view, below 0.8) is asked again on each detection
        // frame, but only up to the budget
        let mut t = Tracker::new(policy_cfg());
        let unsure = [attrs(0.7, 30.0)];
        let c: Vec<bool> = (0..8)
            .map(|f| step(&mut t, &d, &[0.5], &unsure, f, f * 66)[0])
            .collect();
        assert_eq!(c, [true, true, true, true, false, false, false, false]);
        assert_eq!(t.faces()[0].attributes.gender, Gender::Unknown);

        // budget 0: every detection
        let mut t = Tracker::new(TrackerConfig {
            classify_budget: 0,
            ..policy_cfg()
        });
        for f in 0..10 {
            assert_eq!(step(&mut t, &d, &[0.5], &sure, f, f * 66), [true]);
        }
    }

    #[test]
    fn fusion_is_the_quality_weighted_mean_of_the_views() {
        let mut t = Tracker::new(TrackerConfig {
            abstention: Abstention::NONE,
            classify_budget: 0,
            ..crate::config::Config::default().tracker()
        });
        let d = [det(50.0, 50.0, 100.0)];
        step(&mut t, &d, &[1.0], &[attrs(0.9, 30.0)], 0, 0);
        step(&mut t, &d, &[0.25], &[attrs(0.2, 60.0)], 1, 66);
        let a = t.faces()[0].attributes;
        let want = (logit(0.9) + 0.25 * logit(0.2)) / 1.25;
        assert!((logit(a.p_female) - want).abs() < 1e-3, "{a:?}");
        assert!((a.age - 36.0).abs() < 1e-3, "{a:?}");
        // with equal weights the poor view would have pulled it to the middle
        let mut u = Tracker::new(*t.config());
        step(&mut u, &d, &[1.0], &[attrs(0.9, 30.0)], 0, 0);
        step(&mut u, &d, &[1.0], &[attrs(0.2, 60.0)], 1, 66);
        assert!((u.faces()[0].attributes.age - 45.0).abs() < 1e-3);
        // a detection without a view moves the box and keeps the fused labels
        let moved = [det(55.0, 50.0, 100.0)];
        t.associate(&moved);
        let f = t.update_views(&moved, &[None], 2, 132)[0];
        assert_eq!(f.attributes, a);
        assert_eq!(f.detection.bbox, moved[0].bbox);
        assert_eq!(f.hits, 3);
        // a new face without a view is not tracked yet
        let two = [moved[0], det(400.0, 50.0, 100.0)];
        t.associate(&two);
        let faces = t.update_views(&two, &[None, None], 3, 198);
        assert_eq!(faces.len(), 1);
        assert_eq!(t.live_tracks(), 1);
    }

    #[test]
    fn a_search_that_did_not_look_for_a_track_does_not_miss_it() {
        let cfg = TrackerConfig {
            max_missed: 1,
            end_after_ms: 0,
            ..crate::config::Config::default().tracker()
        };
        let mut t = Tracker::new(cfg);
        let (a, b) = (det(50.0, 50.0, 100.0), det(400.0, 50.0, 100.0));
        let f = t.update_at(&[a, b], &[attrs(0.9, 30.0); 2], 0, 0).to_vec();
        let (ida, idb) = (f[0].id, f[1].id);
        // windows around A only (placed before B was tracked): B is not missed, and is shown
        // where it was, for as long as such searches go on
        let a2 = det(55.0, 50.0, 100.0);
        for frame in 1..5 {
            t.associate(&[a2]);
            t.searched_only(&[ida]);
            let faces = t.update_views(&[a2], &[None], frame, frame * 33);
            let ids: Vec<u64> = faces.iter().map(|f| f.id).collect();
            assert_eq!(ids, [ida, idb], "frame {frame}");
            assert_eq!(faces[0].detection.bbox, a2.bbox);
            assert_eq!(faces[1].detection.bbox, b.bbox);
        }
        assert_eq!(t.live_tracks(), 2);
        // a search that looked for B and did not find it misses it (and the limit was used up
        // by the update before: a plain update looks for every track)
        for frame in 5..7 {
            t.associate(&[a2]);
            if frame == 5 {
                t.searched_only(&[ida, idb]);
            }
            let faces = t.update_views(&[a2], &[None], frame, frame * 33);
            assert_eq!(faces.len(), 1, "frame {frame}");
        }
        assert_eq!(
            t.live_tracks(),
            1,
            "B missed twice (max_missed 1): forgotten"
        );
        assert_eq!(t.ended()[0].id, idb);
    }
}
