//! Follow: move the tracked faces' boxes between detections with a template tracker, and say
//! whether every face was followed surely (issue 34: detect less in crowds).
//!
//! At each detection [`Follower::capture`] takes, for every face the detection saw, a template:
//! the face's box cut into [`CELLS`]×[`CELLS`] cells, each cell's mean luma (every other pixel
//! of every other row sampled, as the motion gate's grid is). On a frame without a detection
//! [`Follower::follow`] searches, for each face, the cells around its current box, shifted by
//! whole cells up to [`REACH`] cells each way, for the shift whose cells correlate best with the
//! template (normalised cross-correlation: brightness and contrast changes do not matter), refines
//! it to a fraction of a cell with a parabola through the neighbouring scores, and moves the
//! track's box and landmarks by it. A face whose best score is below [`MIN_SCORE`] (it turned,
//! was covered, left) is not moved, and the frame is not "surely followed": the pipeline then
//! detects on its next due frame.
//!
//! The cost is a small fraction of a detection: for a face of side `s` the search reads about
//! `(s · (CELLS + 2·REACH) / CELLS)² / 4` pixels and correlates (2·REACH+1)² shifts of
//! CELLS² cells (`scripts/bench/arm-cost` counts it inside the `loop` rows). The template is
//! the detection's, never updated by a follow, so a follow cannot drift away from what the
//! detector saw. Scale is not followed (a face walking towards the camera grows): the
//! detections the pipeline still runs correct it. Every buffer is allocated in
//! [`Follower::new`]; capturing and following allocate nothing.

use crate::detect::Detection;
use crate::rgb::RgbImage;

use super::{TrackedFace, Tracker};

/// Cells across and down a template.
pub const CELLS: usize = 12;
/// Whole cells a search shifts the template each way: two thirds of the face's side per frame,
/// a brisk walker's step at kiosk distance at 30 fps (the `crowd` input's walker moves 0.45
/// of its face a frame); a third (4) left such walkers "not sure", and each due frame of
/// their walk was detected.
pub const REACH: usize = 8;
/// Least correlation for a face to count as followed.
pub const MIN_SCORE: f32 = 0.75;
/// Cells across and down a search area.
const SPAN: usize = CELLS + 2 * REACH;
/// Shifts a search tries each way.
const SHIFTS: usize = 2 * REACH + 1;
/// Least cell side (pixels): a smaller face is not followed (too few pixels per cell).
const MIN_CELL: f32 = 2.0;

/// One face's template: its cells' mean luma, minus their mean, scaled to unit length.
#[derive(Clone, Copy, Debug)]
struct Template {
    id: u64,
    /// Cell side in pixels (the face's side at capture / CELLS).
    cell: f32,
    cells: [f32; CELLS * CELLS],
    /// The face as the detection saw it (where it was in the motion gate's reference frame).
    at: Detection,
    /// The latest follow's shift (pixels; 0 until one moved it).
    step: [f32; 2],
}

/// The template tracker of the faces in view (one per pipeline, beside its [`Tracker`]).
pub struct Follower {
    templates: Vec<Template>,
    /// The search area's cell means and the shifts' scores, reused.
    area: Vec<f32>,
    scores: Vec<f32>,
    /// Whether every face of every [`Follower::follow`] since the latest capture was followed.
    sure: bool,
    /// Ids of the faces the latest [`Follower::follow`] did not find.
    lost: Vec<u64>,
}

impl Follower {
    /// A follower for up to `max_faces` faces.
    pub fn new(max_faces: usize) -> Self {
        Follower {
            templates: Vec::with_capacity(max_faces.max(1)),
            area: vec![0.0; SPAN * SPAN],
            scores: vec![0.0; SHIFTS * SHIFTS],
            sure: false,
            lost: Vec::with_capacity(2 * max_faces.max(1)),
        }
    }

    /// Forget every template (the camera came back, the tracks were ended).
    pub fn clear(&mut self) {
        self.templates.clear();
        self.lost.clear();
        self.sure = false;
    }

    /// Whether every face was followed surely on every frame since the latest capture, and
    /// there is a template for each of `faces` (false with no faces: nothing to follow).
    pub fn sure(&self, faces: &[TrackedFace]) -> bool {
        self.sure
            && !faces.is_empty()
            && faces
                .iter()
                .all(|f| self.templates.iter().any(|t| t.id == f.id))
    }

    /// Where the latest capture saw face `id` (`None`: it has no template), before any
    /// follow moved it: with its box now, the two places its person's motion since that
    /// detection can show.
    pub fn captured(&self, id: u64) -> Option<&Detection> {
        self.templates.iter().find(|t| t.id == id).map(|t| &t.at)
    }

    /// The latest follow's shift of face `id` (pixels; 0 when none moved it since its
    /// capture): how far it may have gone again by the next frame.
    pub fn last_step(&self, id: u64) -> [f32; 2] {
        self.templates
            .iter()
            .find(|t| t.id == id)
            .map_or([0.0; 2], |t| t.step)
    }

    /// Whether the latest [`Follower::follow`] did not find face `id` (it turned, was covered
    /// or left: the pipeline does not show it until a detection sees it again).
    pub fn lost(&self, id: u64) -> bool {
        self.lost.contains(&id)
    }

    /// A detection just saw `faces` in `frame` (the ids in `fresh`; other faces kept boxes from
    /// an earlier frame and keep their templates): take their templates, and forget those of
    /// faces no longer in view.
    pub fn capture(&mut self, frame: &RgbImage, faces: &[TrackedFace], fresh: &[u64]) {
        self.templates
            .retain(|t| faces.iter().any(|f| f.id == t.id));
        self.lost.clear();
        for f in faces.iter().filter(|f| fresh.contains(&f.id)) {
            let b = f.detection.bbox;
            let cell = f.detection.face_side() / CELLS as f32;
            let slot = match self.templates.iter().position(|t| t.id == f.id) {
                Some(i) => i,
                None if self.templates.len() < self.templates.capacity() => {
                    self.templates.push(Template {
                        id: f.id,
                        cell,
                        cells: [0.0; CELLS * CELLS],
                        at: f.detection,
                        step: [0.0; 2],
                    });
                    self.templates.len() - 1
                }
                None => continue,
            };
            let t = &mut self.templates[slot];
            t.cell = cell;
            t.at = f.detection;
            t.step = [0.0; 2];
            if cell < MIN_CELL || !cell_means(frame, b[0], b[1], cell, CELLS, &mut t.cells) {
                // too small, or not wholly inside the frame: not followed
                self.templates.swap_remove(slot);
                continue;
            }
            normalise(&mut t.cells);
        }
        self.sure = true;
    }

    /// Follow the tracker's faces into `frame`: each face found surely has its box and
    /// landmarks moved ([`Tracker::shift`]); the others are [`Follower::lost`] until the next
    /// follow or capture. Returns whether every face was.
    pub fn follow(&mut self, frame: &RgbImage, tracker: &mut Tracker) -> bool {
        let mut all = !tracker.faces().is_empty();
        self.lost.clear();
        for i in 0..tracker.faces().len() {
            let face = tracker.faces()[i];
            let Some(t) = self.templates.iter_mut().find(|t| t.id == face.id) else {
                // no template (too small, or not wholly in the frame at capture): not
                // followed, but not lost either: shown where the detection put it
                all = false;
                continue;
            };
            match search(frame, t, &face, &mut self.area, &mut self.scores) {
                Some((dx, dy, sure)) => {
                    tracker.shift(face.id, dx, dy);
                    t.step = [dx, dy];
                    all &= sure;
                }
                None => {
                    all = false;
                    t.step = [0.0; 2];
                    if self.lost.len() < self.lost.capacity() {
                        self.lost.push(face.id);
                    }
                }
            }
        }
        self.sure &= all;
        all
    }
}

/// The best shift (pixels) of `face`'s box in `frame` for template `t`, and whether it is sure
/// (not at the edge of the search: the face may have moved further, as a fast walker does);
/// `None` if no shift scores [`MIN_SCORE`] (or the search area leaves the frame entirely).
fn search(
    frame: &RgbImage,
    t: &Template,
    face: &TrackedFace,
    area: &mut [f32],
    scores: &mut [f32],
) -> Option<(f32, f32, bool)> {
    let reach = REACH as f32 * t.cell;
    let (x0, y0) = (
        face.detection.bbox[0] - reach,
        face.detection.bbox[1] - reach,
    );
    // Cells outside the frame are NaN: a shift that needs one is not tried.
    cell_means(frame, x0, y0, t.cell, SPAN, area);
    let mut best = (f32::NEG_INFINITY, 0usize, 0usize);
    for sy in 0..SHIFTS {
        for sx in 0..SHIFTS {
            let s = correlate(&t.cells, area, sx, sy);
            scores[sy * SHIFTS + sx] = s;
            if s > best.0 {
                best = (s, sx, sy);
            }
        }
    }
    let (score, bx, by) = best;
    // (NaN-safe: a score that is not a number is no match)
    if score.is_nan() || score < MIN_SCORE {
        return None;
    }
    let at = |x: usize, y: usize| scores[y * SHIFTS + x];
    let fx = if bx > 0 && bx + 1 < SHIFTS {
        vertex(at(bx - 1, by), score, at(bx + 1, by))
    } else {
        0.0
    };
    let fy = if by > 0 && by + 1 < SHIFTS {
        vertex(at(bx, by - 1), score, at(bx, by + 1))
    } else {
        0.0
    };
    let edge = |b: usize| b == 0 || b + 1 == SHIFTS;
    Some((
        (bx as f32 - REACH as f32 + fx) * t.cell,
        (by as f32 - REACH as f32 + fy) * t.cell,
        !edge(bx) && !edge(by),
    ))
}

/// The peak's offset (−0.5..0.5) of the parabola through three scores around a maximum.
fn vertex(left: f32, mid: f32, right: f32) -> f32 {
    let d = left - 2.0 * mid + right;
    if !left.is_finite() || !right.is_finite() || d >= 0.0 {
        return 0.0;
    }
    (0.5 * (left - right) / d).clamp(-0.5, 0.5)
}

/// Normalised cross-correlation of the (normalised) template with the `CELLS`² cells of
/// `area` (`SPAN` wide) starting at cell (`sx`, `sy`); −∞ where a cell is outside the frame
/// or the cells are flat.
fn correlate(template: &[f32], area: &[f32], sx: usize, sy: usize) -> f32 {
    let (mut sum, mut sq, mut dot) = (0.0f32, 0.0f32, 0.0f32);
    for r in 0..CELLS {
        let row = &area[(sy + r) * SPAN + sx..][..CELLS];
        let tr = &template[r * CELLS..][..CELLS];
        for (&a, &t) in row.iter().zip(tr) {
            sum += a;
            sq += a * a;
            dot += a * t;
        }
    }
    let n = (CELLS * CELLS) as f32;
    // the template sums to 0, so Σ (a − mean)·t = Σ a·t
    let var = sq - sum * sum / n;
    if var.is_nan() || var <= 1e-3 {
        return f32::NEG_INFINITY;
    }
    dot / var.sqrt()
}

/// Subtract the mean and scale to unit length (a flat template stays all zero: it matches
/// nothing).
fn normalise(cells: &mut [f32]) {
    let n = cells.len() as f32;
    let mean = cells.iter().sum::<f32>() / n;
    let mut sq = 0.0;
    for c in cells.iter_mut() {
        *c -= mean;
        sq += *c * *c;
    }
    let scale = if sq > 1e-3 { sq.sqrt().recip() } else { 0.0 };
    for c in cells.iter_mut() {
        *c *= scale;
    }
}

/// Mean luma of the `n`×`n` cells of side `cell` whose top-left corner is (`x0`, `y0`) in
/// `frame`, into `out` (row-major), every other pixel of every other row sampled (at least
/// one per cell). A cell that is not wholly inside the frame is NaN. Returns whether every
/// cell is inside.
fn cell_means(frame: &RgbImage, x0: f32, y0: f32, cell: f32, n: usize, out: &mut [f32]) -> bool {
    let (w, h) = (frame.width as i64, frame.height as i64);
    let edge = |origin: f32, k: usize| (origin + k as f32 * cell).round() as i64;
    let step = if cell >= 4.0 { 2 } else { 1 };
    let mut inside = true;
    for cy in 0..n {
        let (ya, yb) = (edge(y0, cy), edge(y0, cy + 1).max(edge(y0, cy) + 1));
        for cx in 0..n {
            let (xa, xb) = (edge(x0, cx), edge(x0, cx + 1).max(edge(x0, cx) + 1));
            let o = &mut out[cy * n + cx];
            if xa < 0 || ya < 0 || xb > w || yb > h {
                *o = f32::NAN;
                inside = false;
                continue;
            }
            let (mut sum, mut count) = (0u32, 0u32);
            for y in (ya..yb).step_by(step) {
                let row = &frame.data[(y * w) as usize * 3..][..w as usize * 3];
                for x in (xa..xb).step_by(step) {
                    let p = &row[x as usize * 3..][..3];
                    sum += 77 * p[0] as u32 + 150 * p[1] as u32 + 29 * p[2] as u32;
                    count += 1;
                }
            }
            *o = sum as f32 / (256 * count) as f32;
        }
    }
    inside
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::{bucket_of, Attributes, Gender};
    use crate::detect::Detection;

    /// A textured background (deterministic) with a "face": a disc with two dark eyes and a
    /// mouth at (`x`, `y`) of side `s`.
    fn scene(x: i32, y: i32, s: i32) -> RgbImage {
        let (w, h) = (320u32, 240u32);
        let mut im = RgbImage::new(w, h);
        for py in 0..h as i32 {
            for px in 0..w as i32 {
                let v = 90 + ((px / 9 + py / 7) % 3) * 20 + ((px * 7 + py * 13) % 11);
                let mut v = v as u8;
                let (dx, dy) = (px - x - s / 2, py - y - s / 2);
                if dx * dx + dy * dy < s * s / 4 {
                    v = 200;
                    let eye = |ex: i32, ey: i32| {
                        let (a, b) = (px - x - ex, py - y - ey);
                        a * a + b * b < s * s / 64
                    };
                    if eye(s / 3, s * 2 / 5) || eye(s * 2 / 3, s * 2 / 5) {
                        v = 30;
                    }
                    if (py - y - s * 3 / 4).abs() < s / 20 && (px - x - s / 2).abs() < s / 5 {
                        v = 60;
                    }
                }
                let i = (py as u32 * w + px as u32) as usize * 3;
                im.data[i..i + 3].copy_from_slice(&[v, v, v.saturating_sub(10)]);
            }
        }
        im
    }

    fn det(x: f32, y: f32, s: f32) -> Detection {
        Detection {
            bbox: [x, y, x + s, y + s],
            score: 0.9,
            landmarks: [[x + s / 3.0, y + s * 0.4]; 4],
        }
    }

    fn tracker_with(d: Detection) -> Tracker {
        let mut t = Tracker::new(crate::config::Config::default().tracker());
        let a = Attributes {
            gender: Gender::Female,
            gender_p: 0.9,
            p_female: 0.9,
            age: 30.0,
            bucket: bucket_of(30.0),
            bucket_p: 0.8,
            bucket_known: true,
        };
        t.update(&[d], &[a]);
        t
    }

    /// A tracker with one face at (`x`, `y`) of side `s`, and a follower that took its template
    /// from [`scene`]; the face's id.
    fn captured(x: i32, y: i32, s: i32) -> (Tracker, Follower, Vec<u64>) {
        let tracker = tracker_with(det(x as f32, y as f32, s as f32));
        let mut f = Follower::new(4);
        let ids: Vec<u64> = tracker.faces().iter().map(|f| f.id).collect();
        f.capture(&scene(x, y, s), tracker.faces(), &ids);
        (tracker, f, ids)
    }

    #[test]
    fn a_moving_face_is_followed_to_within_two_pixels() {
        let s = 60;
        let (mut tracker, mut f, _) = captured(100, 80, s);
        // 3 px right and 2 px down a frame, 6 frames
        for k in 1..=6 {
            let (x, y) = (100 + 3 * k, 80 + 2 * k);
            assert!(
                f.follow(&scene(x, y, s), &mut tracker),
                "frame {k} not followed"
            );
            let b = tracker.faces()[0].detection.bbox;
            assert!(
                (b[0] - x as f32).abs() <= 2.0 && (b[1] - y as f32).abs() <= 2.0,
                "frame {k}: box at {b:?}, face at ({x}, {y})"
            );
            let l = tracker.faces()[0].detection.landmarks[0];
            assert!((l[0] - (b[0] + s as f32 / 3.0)).abs() < 1e-3);
        }
        assert!(f.sure(tracker.faces()));
    }

    #[test]
    fn a_face_faster_than_the_search_is_moved_toward_it_but_not_sure() {
        let s = 60;
        let (mut tracker, mut f, ids) = captured(100, 80, s);
        // most of a cell beyond the search's reach (cells of 5 px) in one frame
        let far = 5 * REACH as i32 + 4;
        assert!(!f.follow(&scene(100 + far, 80, s), &mut tracker));
        let b = tracker.faces()[0].detection.bbox;
        assert!(
            b[0] > 100.0 + far as f32 / 2.0,
            "moved toward the face: {b:?}"
        );
        assert!(!f.lost(ids[0]) && !f.sure(tracker.faces()));
    }

    #[test]
    fn where_a_followed_face_was_at_capture_and_its_latest_step_are_kept() {
        let s = 60;
        let (mut tracker, mut f, ids) = captured(100, 80, s);
        let at = tracker.faces()[0].detection;
        assert_eq!(f.last_step(ids[0]), [0.0; 2], "not moved yet");
        // a walker: 25 px a frame (five cells, beyond a third of the face)
        for k in 1..=3 {
            assert!(
                f.follow(&scene(100 + 25 * k, 80, s), &mut tracker),
                "frame {k}"
            );
            let [dx, dy] = f.last_step(ids[0]);
            assert!(
                (dx - 25.0).abs() <= 2.0 && dy.abs() <= 2.0,
                "frame {k}: ({dx}, {dy})"
            );
        }
        assert_eq!(
            f.captured(ids[0]),
            Some(&at),
            "the detection's box, not the followed one"
        );
        assert!(tracker.faces()[0].detection.bbox[0] > 170.0);
        assert_eq!(f.captured(ids[0] + 1), None);
        // a capture starts again from the detection
        f.capture(&scene(175, 80, s), tracker.faces(), &ids);
        assert_eq!(f.last_step(ids[0]), [0.0; 2]);
        assert_eq!(f.captured(ids[0]), Some(&tracker.faces()[0].detection));
    }

    #[test]
    fn a_face_that_left_is_not_followed_and_the_frame_is_not_sure() {
        let s = 60;
        let (mut tracker, mut f, ids) = captured(100, 80, s);
        let empty = scene(-200, -200, s);
        assert!(!f.follow(&empty, &mut tracker));
        assert!(f.lost(tracker.faces()[0].id));
        assert_eq!(
            tracker.faces()[0].detection.bbox[0],
            100.0,
            "an unfollowed box stays"
        );
        assert!(!f.sure(tracker.faces()));
        // a new capture makes it sure again
        f.capture(&scene(100, 80, s), tracker.faces(), &ids);
        assert!(f.sure(tracker.faces()));
        assert!(!f.lost(ids[0]));
    }

    #[test]
    fn a_face_without_a_template_is_not_sure_but_not_lost() {
        let (mut tracker, mut f, ids) = captured(300, 80, 60); // runs off the 320 px frame
        assert!(!f.sure(tracker.faces()));
        assert!(!f.follow(&scene(300, 80, 60), &mut tracker));
        assert!(!f.lost(ids[0]), "still shown where the detection put it");
        assert!(!f.sure(&[]), "no faces: nothing followed");
    }
}
