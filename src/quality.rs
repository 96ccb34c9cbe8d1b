//! How much a view of a face is worth: the weight of one classified view in its track's fused
//! labels (`src/track/`), and one of the reasons to classify a face again.
//!
//! `q = size × frontal × sharpness × detector score`, each term in [0, 1], so `q` is in
//! (0, 1]. Why these terms (each is a known cause of the classifier's errors, and each is
//! cheap to get from what the loop already has):
//! - **size** `min(1, side / 112)`: the classifier sees a 112×112 crop; a face whose box is
//!   smaller is upscaled into it and carries less detail than the model was trained on.
//! - **frontal** from the four landmarks: the nose tip's offset from the eye midpoint, along
//!   the eye axis, relative to the inter-eye distance. 0 for a frontal face, about 0.5 for a
//!   profile (the nose reaches the far eye's line); the term is `1 − 2·offset`, floored at 0.1.
//!   UTKFace (the training set) is mostly frontal, so turned faces are out of distribution.
//! - **sharpness**: the variance of a 4-neighbour Laplacian of the aligned crop's luma
//!   (centre 80×80, away from the black border a warp can leave), `v / (v + SHARP_HALF)`.
//!   Motion or focus blur removes the texture (wrinkles, skin) that age estimates lean on.
//! - **detector score**: a doubtful detection (partly occluded, odd light) is a doubtful crop.
//!
//! Nothing here allocates.

use crate::detect::Detection;

/// Face side (pixels) from which the size term is 1: the classifier's input side.
pub const FULL_SIZE_SIDE: f32 = 112.0;
/// Laplacian variance (luma, 0..255 scale) at which the sharpness term is one half: a
/// mid-point between the crop of a sharp face at full size and that of a visibly blurred or
/// upscaled one (first choice; the `eval --sequences` figures in docs/architecture.md test the weighting
/// as a whole against uniform weights).
pub const SHARP_HALF: f32 = 60.0;
/// Least value of the frontal term (a profile is still a view, just a poor one).
pub const MIN_FRONTAL: f32 = 0.1;
/// Least quality of any view (keeps every weight positive).
pub const MIN_QUALITY: f32 = 1e-3;

/// The size term: `min(1, side / FULL_SIZE_SIDE)`.
pub fn size_term(d: &Detection) -> f32 {
    (d.face_side() / FULL_SIZE_SIDE).clamp(0.0, 1.0)
}

/// The frontal term from the landmarks (right eye, left eye, nose, mouth).
pub fn frontal_term(d: &Detection) -> f32 {
    let [re, le, nose, _] = d.landmarks;
    let (ex, ey) = (le[0] - re[0], le[1] - re[1]);
    let eye_dist = (ex * ex + ey * ey).sqrt();
    if eye_dist.is_nan() || eye_dist <= 1e-3 {
        return MIN_FRONTAL;
    }
    let mid = [(re[0] + le[0]) * 0.5, (re[1] + le[1]) * 0.5];
    // offset of the nose from the eye midpoint along the eye axis, in eye distances
    let along = ((nose[0] - mid[0]) * ex + (nose[1] - mid[1]) * ey) / (eye_dist * eye_dist);
    (1.0 - 2.0 * along.abs()).clamp(MIN_FRONTAL, 1.0)
}

/// Variance of the 4-neighbour Laplacian of the luma of an aligned planar RGB crop
/// (`3 × size²`, values 0..255) over its centre (a margin of `size / 7` on each side).
pub fn laplacian_variance(chw: &[f32], size: usize) -> f32 {
    let plane = size * size;
    if size < 8 || chw.len() < 3 * plane {
        return 0.0;
    }
    let luma = |i: usize| 0.299 * chw[i] + 0.587 * chw[plane + i] + 0.114 * chw[2 * plane + i];
    let m = (size / 7).max(1);
    let (mut sum, mut sum2, mut n) = (0.0f64, 0.0f64, 0.0f64);
    for y in m..size - m {
        for x in m..size - m {
            let i = y * size + x;
            let l = luma(i - 1) + luma(i + 1) + luma(i - size) + luma(i + size) - 4.0 * luma(i);
            let l = l as f64;
            sum += l;
            sum2 += l * l;
            n += 1.0;
        }
    }
    let mean = sum / n;
    ((sum2 / n - mean * mean).max(0.0)) as f32
}

/// The sharpness term of an aligned crop: `v / (v + SHARP_HALF)`.
pub fn sharpness_term(chw: &[f32], size: usize) -> f32 {
    let v = laplacian_variance(chw, size);
    v / (v + SHARP_HALF)
}

/// The quality of a view: the detection and its aligned crop (`3 × size²`, values 0..255).
pub fn view_quality(d: &Detection, chw: &[f32], size: usize) -> f32 {
    let q = size_term(d) * frontal_term(d) * sharpness_term(chw, size) * d.score.clamp(0.0, 1.0);
    if q.is_finite() {
        q.clamp(MIN_QUALITY, 1.0)
    } else {
        MIN_QUALITY
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(side: f32, nose_dx: f32) -> Detection {
        let (x, y) = (10.0, 10.0);
        Detection {
            bbox: [x, y, x + side, y + side],
            score: 1.0,
            landmarks: [
                [x + 0.3 * side, y + 0.4 * side],
                [x + 0.7 * side, y + 0.4 * side],
                [x + (0.5 + nose_dx) * side, y + 0.6 * side],
                [x + 0.5 * side, y + 0.8 * side],
            ],
        }
    }

    #[test]
    fn size_and_frontal_terms() {
        assert!((size_term(&det(56.0, 0.0)) - 0.5).abs() < 1e-6);
        assert_eq!(size_term(&det(200.0, 0.0)), 1.0);
        assert!((frontal_term(&det(100.0, 0.0)) - 1.0).abs() < 1e-6);
        // nose a quarter of the eye distance (0.4 side) off centre: half
        assert!((frontal_term(&det(100.0, 0.1)) - 0.5).abs() < 1e-4);
        assert!((frontal_term(&det(100.0, -0.1)) - 0.5).abs() < 1e-4);
        assert_eq!(frontal_term(&det(100.0, 0.3)), MIN_FRONTAL);
    }

    #[test]
    fn blur_lowers_sharpness() {
        let size = 112;
        let plane = size * size;
        let mut sharp = vec![0.0f32; 3 * plane];
        for y in 0..size {
            for x in 0..size {
                let v = if (x / 3 + y / 3) % 2 == 0 {
                    200.0
                } else {
                    60.0
                };
                for c in 0..3 {
                    sharp[c * plane + y * size + x] = v;
                }
            }
        }
        // a 5×5 box blur of the same pattern
        let mut blurred = sharp.clone();
        for c in 0..3 {
            for y in 2..size - 2 {
                for x in 2..size - 2 {
                    let mut s = 0.0;
                    for dy in 0..5 {
                        for dx in 0..5 {
                            s += sharp[c * plane + (y + dy - 2) * size + x + dx - 2];
                        }
                    }
                    blurred[c * plane + y * size + x] = s / 25.0;
                }
            }
        }
        let flat = vec![128.0f32; 3 * plane];
        let (s, b, f) = (
            sharpness_term(&sharp, size),
            sharpness_term(&blurred, size),
            sharpness_term(&flat, size),
        );
        assert!(
            s > 0.9 && b < s && f == 0.0,
            "sharp {s}, blurred {b}, flat {f}"
        );
        let d = det(112.0, 0.0);
        assert!(view_quality(&d, &sharp, size) > view_quality(&d, &blurred, size));
        assert_eq!(view_quality(&d, &flat, size), MIN_QUALITY);
    }
}
