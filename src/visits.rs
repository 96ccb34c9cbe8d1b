//! Visits and counts: what the analytics side of a kiosk wants from the tracker.
//!
//! A **visit** is one ended track ([`crate::track::TrackSummary`]) that lasted at least
//! `min_dwell_s`: its first and last times, dwell, views, and the track's gender and age as the
//! **mean of its per-view estimates** (calibrated probability of female, age in years; the age
//! bucket is the mean age's, its probability the mean over views of the mass each view gave to
//! that bucket, 0 where a view's best bucket was another: a lower bound). Abstention as in the
//! face lines: `U` / `?` below `gender_min_p` / `bucket_min_p`. `confidence` is the chance
//! that both the gender and the bucket are right if the two were independent:
//! `gender_p × bucket_p`.
//!
//! **Counts**: every `counts_interval_s` a `counts` line with the visits that ended in the
//! window by gender (M, F, U) × age bucket (the eight buckets and `?`), people in view now and
//! the window's mean dwell. Fixed-size tables; nothing here allocates.
//!
//! Times are those the frame loop gives ([`crate::pipeline::Pipeline`]): a replayed file at a
//! set rate counts its own time (frame n at start + n / fps), so dwell does not depend on how
//! fast the models run; a camera, the time frames arrive.

use crate::classify::bucket_of;
use crate::classify::{Abstention, Gender, AGE_BUCKETS};
use crate::track::TrackSummary;

/// Age-bucket labels as reported, `?` last (the columns of [`Counts`]).
pub const BUCKET_LABELS: [&str; AGE_BUCKETS.len() + 1] = [
    AGE_BUCKETS[0].0,
    AGE_BUCKETS[1].0,
    AGE_BUCKETS[2].0,
    AGE_BUCKETS[3].0,
    AGE_BUCKETS[4].0,
    AGE_BUCKETS[5].0,
    AGE_BUCKETS[6].0,
    AGE_BUCKETS[7].0,
    "?",
];

/// Gender labels as reported (the rows of [`Counts`]).
pub const GENDER_LABELS: [&str; 3] = ["M", "F", "U"];

/// Settings of [`Visits`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VisitConfig {
    /// Tracks shorter than this (first to last view) are not visits.
    pub min_dwell_ms: u64,
    /// Between `counts` lines (0: none).
    pub counts_interval_ms: u64,
    pub abstention: Abstention,
}

/// One visit: an ended track, fused.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Visit {
    pub track_id: u64,
    pub first_ms: u64,
    pub last_ms: u64,
    pub first_frame: u64,
    pub last_frame: u64,
    pub views: u32,
    /// `U` below `gender_min_p`.
    pub gender: Gender,
    /// Probability of the more likely gender (≥ 0.5).
    pub gender_p: f32,
    pub age: f32,
    /// Index into [`AGE_BUCKETS`].
    pub bucket: usize,
    pub bucket_p: f32,
    pub bucket_known: bool,
    pub confidence: f32,
}

impl Visit {
    /// The visit a track makes (whatever its dwell).
    pub fn from_track(s: &TrackSummary, ab: &Abstention) -> Visit {
        let n = s.views.max(1) as f32;
        let p_female = (s.sum_p_female / n).clamp(0.0, 1.0);
        let age = (s.sum_age / n).clamp(0.0, 100.0);
        let (best, gender_p) = if p_female >= 0.5 {
            (Gender::Female, p_female)
        } else {
            (Gender::Male, 1.0 - p_female)
        };
        let bucket = bucket_of(age);
        let bucket_p = (s.bucket_mass[bucket] / n).clamp(0.0, 1.0);
        let bucket_known = ab.bucket_answered(bucket_p);
        Visit {
            track_id: s.id,
            first_ms: s.first_ms,
            last_ms: s.last_ms,
            first_frame: s.first_frame,
            last_frame: s.last_frame,
            views: s.views,
            gender: if ab.gender_answered(gender_p) {
                best
            } else {
                Gender::Unknown
            },
            gender_p,
            age,
            bucket,
            bucket_p,
            bucket_known,
            confidence: gender_p * bucket_p,
        }
    }

    pub fn dwell_ms(&self) -> u64 {
        self.last_ms.saturating_sub(self.first_ms)
    }

    /// The bucket's label as reported (`?` when not known).
    pub fn bucket_label(&self) -> &'static str {
        if self.bucket_known {
            BUCKET_LABELS[self.bucket.min(AGE_BUCKETS.len() - 1)]
        } else {
            "?"
        }
    }

    fn cell(&self) -> (usize, usize) {
        let g = match self.gender {
            Gender::Male => 0,
            Gender::Female => 1,
            Gender::Unknown => 2,
        };
        let b = if self.bucket_known {
            self.bucket.min(AGE_BUCKETS.len() - 1)
        } else {
            AGE_BUCKETS.len()
        };
        (g, b)
    }
}

/// Visits ended in one window, by gender × bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counts {
    /// Start of the window (ms).
    pub from_ms: u64,
    /// `[gender][bucket]`: rows [`GENDER_LABELS`], columns [`BUCKET_LABELS`].
    pub table: [[u32; BUCKET_LABELS.len()]; GENDER_LABELS.len()],
    pub visits: u32,
    pub dwell_sum_ms: u64,
}

impl Counts {
    fn new(from_ms: u64) -> Self {
        Counts {
            from_ms,
            table: [[0; BUCKET_LABELS.len()]; GENDER_LABELS.len()],
            visits: 0,
            dwell_sum_ms: 0,
        }
    }

    /// Mean dwell of the window's visits in seconds (`None` without visits).
    pub fn mean_dwell_s(&self) -> Option<f32> {
        (self.visits > 0).then(|| self.dwell_sum_ms as f32 / self.visits as f32 / 1000.0)
    }
}

/// Turns ended tracks into visits and keeps the current counts window.
#[derive(Clone, Debug)]
pub struct Visits {
    cfg: VisitConfig,
    window: Option<Counts>,
    /// Visits so far (all windows).
    pub total: u64,
    /// Ended tracks shorter than the minimum dwell.
    pub too_short: u64,
}

impl Visits {
    pub fn new(cfg: VisitConfig) -> Self {
        Visits {
            cfg,
            window: None,
            total: 0,
            too_short: 0,
        }
    }

    pub fn config(&self) -> &VisitConfig {
        &self.cfg
    }

    /// Start the first counts window at `now_ms` if none is open.
    pub fn start(&mut self, now_ms: u64) {
        if self.window.is_none() {
            self.window = Some(Counts::new(now_ms));
        }
    }

    /// The visit an ended track makes, if it lasted long enough; counted in the window.
    pub fn end_track(&mut self, s: &TrackSummary) -> Option<Visit> {
        if s.dwell_ms() < self.cfg.min_dwell_ms {
            self.too_short += 1;
            return None;
        }
        let v = Visit::from_track(s, &self.cfg.abstention);
        self.start(s.first_ms);
        if let Some(w) = self.window.as_mut() {
            let (g, b) = v.cell();
            w.table[g][b] += 1;
            w.visits += 1;
            w.dwell_sum_ms += v.dwell_ms();
        }
        self.total += 1;
        Some(v)
    }

    /// Whether the window that is open has lasted `counts_interval` by `now_ms`.
    pub fn counts_due(&self, now_ms: u64) -> bool {
        self.cfg.counts_interval_ms > 0
            && self
                .window
                .is_some_and(|w| now_ms.saturating_sub(w.from_ms) >= self.cfg.counts_interval_ms)
    }

    /// Close the window (its counts) and open the next at `now_ms`; `None` when counts are
    /// off or no window is open.
    pub fn take_counts(&mut self, now_ms: u64) -> Option<Counts> {
        if self.cfg.counts_interval_ms == 0 {
            return None;
        }
        let w = self.window.take()?;
        self.window = Some(Counts::new(now_ms));
        Some(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(
        id: u64,
        first_ms: u64,
        last_ms: u64,
        views: u32,
        pf: f32,
        age: f32,
    ) -> TrackSummary {
        let mut bucket_mass = [0.0; AGE_BUCKETS.len()];
        bucket_mass[bucket_of(age)] = 0.8 * views as f32;
        TrackSummary {
            id,
            first_frame: 0,
            last_frame: views as u64 - 1,
            first_ms,
            last_ms,
            views,
            sum_p_female: pf * views as f32,
            sum_age: age * views as f32,
            bucket_mass,
        }
    }

    #[test]
    fn visits_are_means_with_abstention_and_a_minimum_dwell() {
        let mut v = Visits::new(VisitConfig {
            min_dwell_ms: 1000,
            counts_interval_ms: 60_000,
            abstention: Abstention {
                gender_min_p: 0.7,
                bucket_min_p: 0.5,
            },
        });
        assert_eq!(v.end_track(&summary(1, 0, 999, 10, 0.9, 30.0)), None);
        assert_eq!(v.too_short, 1);
        let a = v.end_track(&summary(2, 0, 2500, 20, 0.9, 30.0)).unwrap();
        assert_eq!(a.gender, Gender::Female);
        assert!((a.gender_p - 0.9).abs() < 1e-5 && (a.age - 30.0).abs() < 1e-4);
        assert_eq!(a.bucket_label(), "25-32");
        assert!((a.confidence - 0.72).abs() < 1e-5, "{a:?}");
        let b = v.end_track(&summary(3, 100, 4100, 20, 0.4, 70.0)).unwrap();
        assert_eq!((b.gender, b.bucket_label()), (Gender::Unknown, "60+"));
        assert!(!v.counts_due(59_999));
        assert!(v.counts_due(60_000));
        let c = v.take_counts(60_000).unwrap();
        assert_eq!(c.visits, 2);
        assert_eq!(c.table[1][4], 1); // F, 25-32
        assert_eq!(c.table[2][7], 1); // U, 60+
        assert_eq!(c.mean_dwell_s(), Some(3.25));
        let next = v.take_counts(70_000).unwrap();
        assert_eq!(
            (next.from_ms, next.visits, next.mean_dwell_s()),
            (60_000, 0, None)
        );
    }
}
