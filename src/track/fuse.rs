//! Fusion: a track's classified views become its labels. The quality-weighted mean of the
//! views' calibrated log-odds of "female" and of their ages (and bucket mass), clamped; the
//! bucket follows the fused age with hysteresis, and abstention is decided on the fused
//! probabilities with hysteresis too (the module docs of [`super`] say why a mean, not a sum).

use super::{Track, TrackerConfig};
use crate::classify::{bucket_of, Attributes, Gender, AGE_BUCKETS};
use crate::detect::Detection;

/// One classified view of a detection: the classifier's labels and the view's quality
/// ([`crate::quality::view_quality`]), its weight in the track's fused labels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct View {
    pub attributes: Attributes,
    pub quality: f32,
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
        bucket_of(age)
    }
}

pub(super) fn logit(p: f32) -> f32 {
    let p = p.clamp(1e-4, 1.0 - 1e-4);
    (p / (1.0 - p)).ln()
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// The weight of view `v` in the fusion.
fn weight_of(v: &View, cfg: &TrackerConfig) -> f32 {
    if cfg.uniform_weights {
        1.0
    } else {
        v.quality.clamp(crate::quality::MIN_QUALITY, 1.0)
    }
}

pub(super) fn observe_first(
    t: &mut Track,
    d: &Detection,
    v: &View,
    now_ms: u64,
    cfg: &TrackerConfig,
) {
    let a = &v.attributes;
    let q = weight_of(v, cfg);
    t.weight = q;
    t.best_side = d.face_side();
    t.best_quality = v.quality;
    t.last_view_ms = now_ms;
    t.logodds = logit(a.p_female).clamp(-cfg.logodds_clamp, cfg.logodds_clamp);
    t.age = a.age;
    t.bucket = bucket_of(a.age);
    t.bucket_p = a.bucket_p;
    t.face.detection = *d;
    t.face.hits = 1;
    t.gender_known = false;
    t.bucket_known = false;
    publish(t, cfg);
}

/// Fuse one more view into the track: each estimate moves towards the view's by the view's
/// share `max(q / W, alpha · q)`, where `W` is the sum of the quality weights so far (this
/// view's included). While `W` is small this is exactly the quality-weighted mean of the views
/// (`Σ qᵢ xᵢ / Σ qᵢ`); on a long track (many refreshes, or `classify_budget = 0`) a view of
/// full quality still gets at least the share `alpha` (`gender_alpha`, `age_alpha`), so the
/// labels can follow a changed estimate, and a poor view proportionally less. With every
/// `q = 1` this is the tracker's earlier smoothing for gender (the mean over the first
/// `1 / alpha` views, then an exponential average).
pub(super) fn observe(t: &mut Track, d: &Detection, v: &View, now_ms: u64, cfg: &TrackerConfig) {
    let a = &v.attributes;
    let q = weight_of(v, cfg);
    t.weight += q;
    let mean_share = q / t.weight;
    let sg = mean_share.max(cfg.gender_alpha * q).min(1.0);
    let sa = mean_share.max(cfg.age_alpha * q).min(1.0);
    t.logodds = (t.logodds + sg * (logit(a.p_female) - t.logodds))
        .clamp(-cfg.logodds_clamp, cfg.logodds_clamp);
    t.age += sa * (a.age - t.age);
    t.bucket = bucket_with_hysteresis(t.bucket, t.age);
    // bucket_p is the observed mass in the observed bucket; when the reported bucket is
    // another one, 1 - that mass bounds what the observation gives to ours.
    let target = if a.bucket == t.bucket {
        a.bucket_p
    } else {
        1.0 - a.bucket_p
    };
    t.bucket_p += sa * (target - t.bucket_p);
    t.best_side = t.best_side.max(d.face_side());
    t.best_quality = t.best_quality.max(v.quality);
    t.last_view_ms = now_ms;
    moved(t, d);
    publish(t, cfg);
}

/// The track was seen again at `d` (classified or not): its box follows, it is not missed.
pub(super) fn moved(t: &mut Track, d: &Detection) {
    t.face.detection = *d;
    t.face.hits = t.face.hits.saturating_add(1);
    t.missed = 0;
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
