//! Motion gating: whether the scene changed enough since the last detection to detect again.
//!
//! Each frame the detector would run on, [`MotionGate::should_detect`] box-averages the frame's
//! luma onto a small grid (about 80×60 cells, every other pixel of every other row sampled:
//! ~77 000 pixels for 640×480) and compares it with the grid of the frame the detector last
//! ran on: the measure is the fraction of cells whose mean luma moved by more than
//! [`CELL_NOISE`] levels. Averaging 16 samples per cell takes sensor noise and JPEG ringing
//! down below that level; a face that moves, appears or leaves changes the cells along its
//! edges by tens of levels. The detector runs when that fraction exceeds `motion_threshold`,
//! when no detection happened for `detect_max_interval_s` (a forced refresh, so slow drifts
//! and faces a detection missed are picked up), or when there is no reference yet. Between
//! detections the tracks keep their boxes and labels (the pipeline shows the last faces).
//!
//! Every buffer is sized in [`MotionGate::new`] from the frame size; measuring allocates
//! nothing (a frame of another size re-sizes them once, and counts as a change).

use crate::rgb::RgbImage;

/// Cells across and down the grid (the cell size is the frame size divided by these, rounded
/// down, at least one pixel).
pub const GRID_W: u32 = 80;
pub const GRID_H: u32 = 60;
/// A cell changed when its mean luma moved by more than this (0..=255 levels).
pub const CELL_NOISE: u16 = 10;

/// The gate's settings (`motion_threshold`, `detect_max_interval_s`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MotionConfig {
    /// Fraction of grid cells that must change for the detector to run again; 0: off (the
    /// detector runs on every scheduled frame).
    pub threshold: f32,
    /// Longest time (ms) without a detection while the gate is on.
    pub max_interval_ms: u64,
}

impl MotionConfig {
    pub fn enabled(&self) -> bool {
        self.threshold > 0.0
    }
}

/// A small luma picture of a frame: per-cell mean over a fixed grid.
#[derive(Clone, Debug, Default)]
pub struct LumaGrid {
    width: u32,
    height: u32,
    cols: usize,
    rows: usize,
    /// Grid column of each sampled x (every other pixel), and grid row of each sampled y.
    col_of: Vec<u16>,
    row_of: Vec<u16>,
    /// Samples per cell (fixed by the frame size).
    count: Vec<u32>,
    sums: Vec<u32>,
    /// Mean luma per cell, row-major, `cols × rows`.
    pub cells: Vec<u16>,
}

impl LumaGrid {
    /// A grid for `width`×`height` frames.
    pub fn new(width: u32, height: u32) -> Self {
        let mut g = LumaGrid::default();
        g.configure(width, height);
        g
    }

    fn configure(&mut self, width: u32, height: u32) {
        let cw = (width / GRID_W).max(1);
        let ch = (height / GRID_H).max(1);
        self.width = width;
        self.height = height;
        self.cols = width.div_ceil(cw).max(1) as usize;
        self.rows = height.div_ceil(ch).max(1) as usize;
        self.col_of = (0..width).step_by(2).map(|x| (x / cw) as u16).collect();
        self.row_of = (0..height).step_by(2).map(|y| (y / ch) as u16).collect();
        let n = self.cols * self.rows;
        self.count = vec![0; n];
        for &r in &self.row_of {
            for &c in &self.col_of {
                self.count[r as usize * self.cols + c as usize] += 1;
            }
        }
        self.sums = vec![0; n];
        self.cells = vec![0; n];
    }

    /// Cells across and down.
    pub fn dims(&self) -> (usize, usize) {
        (self.cols, self.rows)
    }

    /// Fill the grid from `frame` (re-sized first, allocating, if the frame's size changed).
    pub fn compute(&mut self, frame: &RgbImage) {
        if frame.width != self.width || frame.height != self.height {
            self.configure(frame.width, frame.height);
        }
        self.sums.fill(0);
        let stride = frame.width as usize * 3;
        for (sy, &r) in self.row_of.iter().enumerate() {
            let row = &frame.data[2 * sy * stride..(2 * sy + 1) * stride];
            let sums = &mut self.sums[r as usize * self.cols..(r as usize + 1) * self.cols];
            for (sx, &c) in self.col_of.iter().enumerate() {
                let p = &row[6 * sx..6 * sx + 3];
                // BT.601 luma, 8-bit fixed point
                let y = (77 * p[0] as u32 + 150 * p[1] as u32 + 29 * p[2] as u32) >> 8;
                sums[c as usize] += y;
            }
        }
        for ((cell, &s), &n) in self.cells.iter_mut().zip(&self.sums).zip(&self.count) {
            *cell = s.checked_div(n).unwrap_or(0) as u16;
        }
    }

    /// [`LumaGrid::changed_fraction`] counting only the cells whose centre lies outside every
    /// box of `boxes` (`[x0, y0, x1, y1]`, frame pixels), still as a fraction of all cells:
    /// whether anything moved away from the faces already tracked (someone coming in).
    pub fn changed_fraction_outside(&self, other: &LumaGrid, boxes: &[[f32; 4]]) -> f32 {
        if self.cells.len() != other.cells.len()
            || self.width != other.width
            || self.height != other.height
            || self.cells.is_empty()
        {
            return 1.0;
        }
        let cw = (self.width / GRID_W).max(1) as f32;
        let ch = (self.height / GRID_H).max(1) as f32;
        let mut changed = 0usize;
        for (i, (a, b)) in self.cells.iter().zip(&other.cells).enumerate() {
            if a.abs_diff(*b) <= CELL_NOISE {
                continue;
            }
            let x = ((i % self.cols) as f32 + 0.5) * cw;
            let y = ((i / self.cols) as f32 + 0.5) * ch;
            if !boxes
                .iter()
                .any(|b| x >= b[0] && x < b[2] && y >= b[1] && y < b[3])
            {
                changed += 1;
            }
        }
        changed as f32 / self.cells.len() as f32
    }

    /// Fraction of cells whose mean differs from `other`'s by more than [`CELL_NOISE`]; 1 when
    /// the two grids are of different frame sizes.
    pub fn changed_fraction(&self, other: &LumaGrid) -> f32 {
        self.changed_fraction_outside(other, &[])
    }
}

/// The gate: the grid of the current frame, the grid at the last detection, and when that was.
pub struct MotionGate {
    cfg: MotionConfig,
    current: LumaGrid,
    reference: LumaGrid,
    /// Time (ms) of the last detection; `None` before the first.
    last_detect_ms: Option<u64>,
    /// The measure of the latest [`MotionGate::should_detect`] (0 when it did not measure).
    pub last_change: f32,
}

impl MotionGate {
    pub fn new(cfg: MotionConfig, width: u32, height: u32) -> Self {
        let (current, reference) = if cfg.enabled() {
            (LumaGrid::new(width, height), LumaGrid::new(width, height))
        } else {
            (LumaGrid::default(), LumaGrid::default())
        };
        MotionGate {
            cfg,
            current,
            reference,
            last_detect_ms: None,
            last_change: 0.0,
        }
    }

    pub fn config(&self) -> &MotionConfig {
        &self.cfg
    }

    /// Whether the detector should run on `frame` (a frame the schedule would detect on),
    /// taken at `now_ms`. Always true with the gate off.
    pub fn should_detect(&mut self, frame: &RgbImage, now_ms: u64) -> bool {
        self.last_change = 0.0;
        if !self.cfg.enabled() {
            return true;
        }
        self.current.compute(frame);
        let Some(last) = self.last_detect_ms else {
            self.last_change = 1.0;
            return true;
        };
        self.last_change = self.current.changed_fraction(&self.reference);
        // Frame times are whole milliseconds, truncated (30 frames at 30 fps: 999 ms): a
        // millisecond short of the interval counts as the interval.
        self.last_change > self.cfg.threshold
            || now_ms.saturating_sub(last) + 1 >= self.cfg.max_interval_ms
    }

    /// Whether the frame last given to [`MotionGate::should_detect`] changed, outside `boxes`,
    /// by more than the threshold since the last detection (always false with the gate off:
    /// it measures nothing then).
    pub fn changed_outside(&self, boxes: &[[f32; 4]]) -> bool {
        self.cfg.enabled()
            && self.last_detect_ms.is_some()
            && self
                .current
                .changed_fraction_outside(&self.reference, boxes)
                > self.cfg.threshold
    }

    /// Time (ms) of the last detection ([`MotionGate::detected`]); `None` before the first and
    /// after [`MotionGate::reset`].
    pub fn last_detect_ms(&self) -> Option<u64> {
        self.last_detect_ms
    }

    /// Forget the reference: the next frame due for detection is detected (the camera came
    /// back, and whoever was in view was ended with it).
    pub fn reset(&mut self) {
        self.last_detect_ms = None;
    }

    /// The detector ran on the frame last given to [`MotionGate::should_detect`] at `now_ms`:
    /// it becomes the reference.
    pub fn detected(&mut self, now_ms: u64) {
        self.last_detect_ms = Some(now_ms);
        if self.cfg.enabled() {
            std::mem::swap(&mut self.current, &mut self.reference);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wall-like 640×480 frame: a smooth gradient with a few soft blobs.
    fn background() -> RgbImage {
        let mut im = RgbImage::new(640, 480);
        for y in 0..480u32 {
            for x in 0..640u32 {
                let i = (y as usize * 640 + x as usize) * 3;
                let g = 90.0 + 60.0 * x as f32 / 640.0 + 30.0 * y as f32 / 480.0;
                let blob = 25.0
                    * (-(((x as f32 - 200.0).powi(2) + (y as f32 - 300.0).powi(2)) / 5000.0)).exp();
                let v = (g + blob) as u8;
                im.data[i..i + 3].copy_from_slice(&[v, v.saturating_sub(10), v / 2 + 40]);
            }
        }
        im
    }

    /// Paste a textured "face" (an ellipse of skin tone with darker eyes) at (x, y), side s.
    fn paste_face(im: &mut RgbImage, x: u32, y: u32, s: u32) {
        for dy in 0..s {
            for dx in 0..s {
                let (u, v) = (
                    dx as f32 / s as f32 * 2.0 - 1.0,
                    dy as f32 / s as f32 * 2.0 - 1.0,
                );
                if u * u + v * v > 1.0 {
                    continue;
                }
                let eye = ((u.abs() - 0.35).powi(2) + (v + 0.2).powi(2)) < 0.02;
                let c = if eye { [40, 30, 30] } else { [220, 170, 140] };
                let i = ((y + dy) as usize * 640 + (x + dx) as usize) * 3;
                im.data[i..i + 3].copy_from_slice(&c);
            }
        }
    }

    /// Deterministic ±`amp` noise on every channel of every pixel.
    fn jitter(im: &mut RgbImage, amp: i32, seed: u64) {
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        for p in im.data.iter_mut() {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let r = ((s >> 33) % (2 * amp as u64 + 1)) as i32 - amp;
            *p = (*p as i32 + r).clamp(0, 255) as u8;
        }
    }

    fn change(a: &RgbImage, b: &RgbImage) -> f32 {
        let (mut ga, mut gb) = (LumaGrid::new(640, 480), LumaGrid::new(640, 480));
        ga.compute(a);
        gb.compute(b);
        ga.changed_fraction(&gb)
    }

    #[test]
    fn grid_is_80_by_60_for_vga() {
        assert_eq!(LumaGrid::new(640, 480).dims(), (80, 60));
        assert_eq!(LumaGrid::new(1280, 720).dims(), (80, 60));
        // a frame smaller than the grid: one pixel per cell
        assert_eq!(LumaGrid::new(40, 30).dims(), (40, 30));
    }

    #[test]
    fn same_frame_is_no_change() {
        let mut f = background();
        paste_face(&mut f, 200, 100, 150);
        assert_eq!(change(&f, &f), 0.0);
    }

    #[test]
    fn sensor_noise_is_no_change() {
        let mut a = background();
        paste_face(&mut a, 200, 100, 150);
        let mut b = a.clone();
        jitter(&mut a, 12, 1);
        jitter(&mut b, 12, 2);
        assert_eq!(change(&a, &b), 0.0, "±12 levels of noise per pixel");
    }

    #[test]
    fn a_face_appearing_or_moving_is_a_change() {
        let empty = background();
        let mut here = empty.clone();
        paste_face(&mut here, 200, 100, 150);
        let appeared = change(&empty, &here);
        assert!(appeared > 0.03, "a 150 px face appeared: {appeared}");
        // a small face (60 px) far away
        let mut small = empty.clone();
        paste_face(&mut small, 500, 60, 60);
        let small_change = change(&empty, &small);
        assert!(
            small_change > 0.005,
            "a 60 px face appeared: {small_change}"
        );
        // the 150 px face moved 8 px right
        let mut moved = empty.clone();
        paste_face(&mut moved, 208, 100, 150);
        let m = change(&here, &moved);
        assert!(m > 0.002, "a face moved 8 px: {m}");
    }

    #[test]
    fn gate_skips_a_still_scene_and_refreshes_on_time() {
        let cfg = MotionConfig {
            threshold: 0.002,
            max_interval_ms: 1000,
        };
        let mut gate = MotionGate::new(cfg, 640, 480);
        let mut f = background();
        paste_face(&mut f, 200, 100, 150);
        assert!(gate.should_detect(&f, 0), "first frame: no reference yet");
        gate.detected(0);
        for t in [33, 66, 500, 998] {
            let mut g = f.clone();
            jitter(&mut g, 6, t);
            assert!(!gate.should_detect(&g, t), "still scene at {t} ms");
        }
        assert!(
            gate.should_detect(&f, 999),
            "forced refresh after 1 s (less the clock's ms)"
        );
        gate.detected(1000);
        let mut moved = background();
        paste_face(&mut moved, 230, 100, 150);
        assert!(gate.should_detect(&moved, 1033), "the face moved");
        // not marked as detected: the reference stays the old frame, so a slow drift adds up
        assert!(gate.should_detect(&moved, 1066));
        gate.detected(1066);
        assert!(!gate.should_detect(&moved, 1100));
        gate.reset();
        assert!(gate.should_detect(&moved, 1133), "after a reset: detect");
    }

    #[test]
    fn gate_off_always_detects_and_measures_nothing() {
        let mut gate = MotionGate::new(
            MotionConfig {
                threshold: 0.0,
                max_interval_ms: 1000,
            },
            640,
            480,
        );
        let f = background();
        for t in 0..5 {
            assert!(gate.should_detect(&f, t));
            gate.detected(t);
        }
        assert_eq!(gate.last_change, 0.0);
    }

    #[test]
    fn a_new_frame_size_is_a_change() {
        let mut gate = MotionGate::new(
            MotionConfig {
                threshold: 0.01,
                max_interval_ms: 10_000,
            },
            640,
            480,
        );
        let f = background();
        assert!(gate.should_detect(&f, 0));
        gate.detected(0);
        assert!(!gate.should_detect(&f, 10));
        let small = RgbImage::new(320, 240);
        assert!(gate.should_detect(&small, 20));
    }
}
