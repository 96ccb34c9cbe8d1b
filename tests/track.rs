//! Tracker behaviour: one id per moving face, stable labels, new faces get new ids, tracks
//! are forgotten after `max_missed` detection frames without a match.

use agegender::classify::{Abstention, Attributes, Gender, AGE_BUCKETS};
use agegender::detect::Detection;
use agegender::track::{Tracker, TrackerConfig};

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
    let bucket = agegender::classify::bucket_of(age);
    let gender = if p_female >= 0.5 {
        Gender::Female
    } else {
        Gender::Male
    };
    Attributes {
        gender,
        gender_p: if p_female >= 0.5 {
            p_female
        } else {
            1.0 - p_female
        },
        p_female,
        age,
        bucket,
        bucket_p: 0.6,
        bucket_known: true,
    }
}

fn cfg() -> TrackerConfig {
    TrackerConfig {
        max_faces: 4,
        iou_threshold: 0.3,
        max_missed: 3,
        age_alpha: 0.3,
        gender_alpha: 0.2,
        logodds_clamp: 6.0,
        abstention: Abstention::NONE,
        end_after_ms: 0,
        ..agegender::config::Config::default().tracker()
    }
}

#[test]
fn moving_face_keeps_one_id_and_stable_labels() {
    let mut t = Tracker::new(cfg());
    // A face moving right 6 px per frame; the classifier is noisy: gender flips on some
    // frames (p_female 0.4 against a usual 0.85), age jumps between 22 and 34.
    let mut ids = Vec::new();
    let mut genders = Vec::new();
    let mut ages = Vec::new();
    for i in 0..40 {
        let p = if i % 5 == 3 { 0.4 } else { 0.85 };
        let age = if i % 2 == 0 { 22.0 } else { 34.0 };
        let faces = t.update(&[det(20.0 + 6.0 * i as f32, 50.0, 100.0)], &[attrs(p, age)]);
        assert_eq!(faces.len(), 1);
        ids.push(faces[0].id);
        genders.push(faces[0].attributes.gender);
        ages.push(faces[0].attributes.age);
        assert_eq!(faces[0].hits, i + 1);
    }
    assert!(ids.iter().all(|&id| id == ids[0]), "ids changed: {ids:?}");
    // The raw gender flipped 8 times; the smoothed one never does.
    assert!(
        genders.iter().all(|&g| g == Gender::Female),
        "gender flickered: {genders:?}"
    );
    // After warm-up the smoothed age stays within a few years of the mean (28) while the
    // raw estimate swings ±6, and its bucket does not flicker.
    for &a in &ages[10..] {
        assert!((a - 28.0).abs() < 3.0, "smoothed age {a} (all: {ages:?})");
        assert_eq!(AGE_BUCKETS[agegender::classify::bucket_of(a)].0, "25-32");
    }
    let last = t.faces()[0];
    assert_eq!(AGE_BUCKETS[last.attributes.bucket].0, "25-32");
    // The smoothed probability is an average of the frames' (calibrated) log-odds, not their
    // sum: about what one frame says (0.85 on four frames of five, 0.4 on the fifth), not
    // more sure with every frame.
    let p = last.attributes.gender_p;
    assert!(p > 0.7 && p < 0.85, "smoothed gender_p {p}");
}

/// A face the model is unsure of on every frame stays unsure: frames of one face are not
/// independent evidence, so smoothing must not turn "U" into M or F by accumulating them.
#[test]
fn an_unsure_face_stays_unknown_over_many_frames_and_a_sure_one_is_answered() {
    let mut c = cfg();
    c.abstention = Abstention {
        gender_min_p: 0.8,
        bucket_min_p: 0.5,
    };
    let mut t = Tracker::new(c);
    for i in 0..60 {
        let faces = t.update(
            &[det(10.0, 10.0, 80.0), det(300.0, 10.0, 80.0)],
            &[attrs(0.7, 30.0), attrs(0.05, 50.0)],
        );
        // 0.7 on every frame: below 0.8 now and after 60 frames.
        assert_eq!(faces[0].attributes.gender, Gender::Unknown, "frame {i}");
        assert!(
            (faces[0].attributes.gender_p - 0.7).abs() < 1e-3,
            "frame {i}"
        );
        // 0.95 male: answered from the first frame.
        assert_eq!(faces[1].attributes.gender, Gender::Male, "frame {i}");
        // bucket_p 0.6 ≥ 0.5: the bucket is answered.
        assert!(faces[1].attributes.bucket_known);
    }
    // With the bucket threshold above its probability the bucket is withdrawn.
    let mut c = cfg();
    c.abstention.bucket_min_p = 0.7;
    let mut t = Tracker::new(c);
    let f = t.update(&[det(10.0, 10.0, 80.0)], &[attrs(0.9, 30.0)])[0];
    assert!(!f.attributes.bucket_known);
    assert_eq!(f.attributes.gender, Gender::Female);
}

/// Around the threshold a track's answer holds (hysteresis of 0.05): it is given at the
/// threshold and withdrawn only well below it, so the label does not flicker between F and ?.
#[test]
fn abstention_on_a_track_has_hysteresis() {
    let mut c = cfg();
    c.abstention.gender_min_p = 0.8;
    c.gender_alpha = 1.0; // no smoothing: the track follows each frame
    let mut t = Tracker::new(c);
    let mut g = |p: f32| t.update(&[det(10.0, 10.0, 80.0)], &[attrs(p, 30.0)])[0].attributes;
    assert_eq!(g(0.78).gender, Gender::Unknown); // new track, below the threshold
    assert_eq!(g(0.81).gender, Gender::Female); // reaches it
    assert_eq!(g(0.77).gender, Gender::Female); // within 0.05 below: holds
    assert_eq!(g(0.74).gender, Gender::Unknown); // further: withdrawn
    assert_eq!(g(0.78).gender, Gender::Unknown); // must reach 0.8 again
    assert_eq!(g(0.805).gender, Gender::Female);
}

#[test]
fn a_new_face_gets_a_new_id_and_ids_follow_their_faces() {
    let mut t = Tracker::new(cfg());
    let a = t
        .update(&[det(10.0, 10.0, 80.0)], &[attrs(0.9, 30.0)])
        .to_vec();
    assert_eq!(a.len(), 1);
    let id_a = a[0].id;
    // A second face appears far away; it is listed first this time.
    let b = t
        .update(
            &[det(300.0, 200.0, 90.0), det(14.0, 12.0, 80.0)],
            &[attrs(0.1, 60.0), attrs(0.9, 30.0)],
        )
        .to_vec();
    assert_eq!(b.len(), 2);
    assert_eq!(b[1].id, id_a, "the first face keeps its id");
    assert_ne!(b[0].id, id_a, "a new face gets a new id");
    assert_eq!(b[0].attributes.gender, Gender::Male);
    let id_b = b[0].id;
    // They move towards each other a little; still matched correctly.
    let c = t
        .update(
            &[det(20.0, 14.0, 80.0), det(290.0, 196.0, 90.0)],
            &[attrs(0.9, 30.0), attrs(0.1, 60.0)],
        )
        .to_vec();
    assert_eq!((c[0].id, c[1].id), (id_a, id_b));
    assert_eq!(c[1].attributes.gender, Gender::Male);
    assert_eq!(AGE_BUCKETS[c[1].attributes.bucket].0, "60+");
}

#[test]
fn tracks_are_forgotten_after_max_missed_frames() {
    let mut t = Tracker::new(cfg());
    let id = t.update(&[det(10.0, 10.0, 80.0)], &[attrs(0.9, 30.0)])[0].id;
    // Missed for max_missed (3) detection frames: still remembered.
    for _ in 0..3 {
        assert!(t.update(&[], &[]).is_empty());
        assert_eq!(t.live_tracks(), 1);
    }
    let back = t.update(&[det(12.0, 10.0, 80.0)], &[attrs(0.9, 30.0)]);
    assert_eq!(back[0].id, id, "a face back within max_missed keeps its id");
    // Missed for max_missed + 1 frames: forgotten, and the face comes back as a new track.
    for _ in 0..4 {
        t.update(&[], &[]);
    }
    assert_eq!(t.live_tracks(), 0);
    let again = t.update(&[det(12.0, 10.0, 80.0)], &[attrs(0.9, 30.0)]);
    assert_ne!(again[0].id, id);
    assert_eq!(again[0].hits, 1);
}

#[test]
fn at_most_max_faces_are_tracked() {
    let mut t = Tracker::new(cfg());
    let dets: Vec<Detection> = (0..6).map(|i| det(i as f32 * 100.0, 0.0, 50.0)).collect();
    let at: Vec<Attributes> = (0..6).map(|_| attrs(0.2, 40.0)).collect();
    let faces = t.update(&dets, &at);
    assert_eq!(faces.len(), 4);
    let mut ids: Vec<u64> = faces.iter().map(|f| f.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4, "distinct ids");
}

/// A forgotten track hands over its summary once: first and last frame and time, views, and
/// the sums of its raw (unsmoothed) estimates; with `end_after_ms`, a missed track also waits
/// that long; `end_all` ends every live track.
#[test]
fn ended_tracks_carry_their_summary() {
    let c = TrackerConfig {
        end_after_ms: 1000,
        ..cfg()
    };
    let mut t = Tracker::new(c);
    // frames 10..=14 at 100 ms: seen, with raw p_female 0.6 and 0.8 alternating
    for f in 10..15u64 {
        let p = if f % 2 == 0 { 0.6 } else { 0.8 };
        t.update_at(
            &[det(10.0, 10.0, 80.0)],
            &[attrs(p, 20.0 + f as f32)],
            f,
            f * 100,
        );
        assert!(t.ended().is_empty());
    }
    // unseen for 4 frames (> max_missed 3) but only 400 ms: kept
    for f in 15..19u64 {
        t.update_at(&[], &[], f, f * 100);
        assert!(t.ended().is_empty(), "frame {f}");
    }
    // a second face appears; the first has been unseen 1000 ms at frame 24
    for f in 19..24u64 {
        t.update_at(&[det(300.0, 10.0, 80.0)], &[attrs(0.1, 60.0)], f, f * 100);
        assert!(t.ended().is_empty(), "frame {f}");
    }
    t.update_at(&[det(300.0, 10.0, 80.0)], &[attrs(0.1, 60.0)], 24, 2400);
    let s = t.ended().to_vec();
    assert_eq!(s.len(), 1, "{s:?}");
    let s = s[0];
    assert_eq!((s.first_frame, s.last_frame), (10, 14));
    assert_eq!((s.first_ms, s.last_ms, s.dwell_ms()), (1000, 1400, 400));
    assert_eq!(s.views, 5);
    assert!(
        (s.sum_p_female - (0.6 * 3.0 + 0.8 * 2.0)).abs() < 1e-5,
        "{s:?}"
    );
    assert!((s.sum_age - (30.0 + 31.0 + 32.0 + 33.0 + 34.0)).abs() < 1e-4);
    let b = agegender::classify::bucket_of(32.0);
    assert!((s.bucket_mass[b] - 3.0).abs() < 1e-5, "{s:?}");
    // the next update forgets it (once)
    t.update_at(&[det(300.0, 10.0, 80.0)], &[attrs(0.1, 60.0)], 25, 2500);
    assert!(t.ended().is_empty());
    t.end_all();
    assert_eq!(t.ended().len(), 1);
    assert_eq!((t.ended()[0].first_frame, t.ended()[0].views), (19, 7));
    assert_eq!(t.live_tracks(), 0);
}
