//! Align: map a face's landmarks onto a fixed template with a least-squares similarity
//! transform, and warp the frame into the classifier's input tensor with bilinear sampling.
//!
//! The recipe is implemented twice, here and in `scripts/reference/agegender_reference/align.py`, and the two are
//! parity-tested (`tests/align_parity.rs`). Change one, change both.
//!
//! Conventions: continuous image coordinates, pixel `k` covers `[k, k+1)` (its centre is
//! `k + 0.5`); samples outside the image read as 0 (black).

use crate::detect::Landmarks;
use crate::rgb::RgbImage;

/// Side of the square classifier input, pixels.
pub const INPUT_SIZE: usize = 112;

/// Template, in units of the crop side: right eye, left eye, nose tip, mouth centre
/// (subject's right eye is on the image's left).
pub const TEMPLATE: Landmarks = [
    [0.3115, 0.3135],
    [0.6885, 0.3135],
    [0.5000, 0.5282],
    [0.5000, 0.7248],
];

/// Where the landmarks sit in a UTKFace "aligned & cropped" image, in units of its side:
/// the crop used when no face is found (the dataset's own alignment).
pub const DATASET_LANDMARKS: Landmarks = [
    [0.2875, 0.2899],
    [0.6853, 0.2907],
    [0.4843, 0.5173],
    [0.4842, 0.7260],
];

/// A 2-D similarity transform `p' = [a -b; b a] p + t`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Similarity {
    pub a: f32,
    pub b: f32,
    pub tx: f32,
    pub ty: f32,
}

impl Similarity {
    /// Least-squares similarity taking `src` points onto `dst` points (no reflection).
    /// Returns `None` when the source points coincide.
    pub fn estimate(src: &Landmarks, dst: &Landmarks) -> Option<Similarity> {
        let n = src.len() as f32;
        let (mut sx, mut sy, mut dx, mut dy) = (0.0f32, 0.0f32, 0.0f32, 0.0f32);
        for (p, q) in src.iter().zip(dst) {
            sx += p[0];
            sy += p[1];
            dx += q[0];
            dy += q[1];
        }
        let (sx, sy, dx, dy) = (sx / n, sy / n, dx / n, dy / n);
        let (mut num_a, mut num_b, mut den) = (0.0f32, 0.0f32, 0.0f32);
        for (p, q) in src.iter().zip(dst) {
            let (px, py) = (p[0] - sx, p[1] - sy);
            let (qx, qy) = (q[0] - dx, q[1] - dy);
            num_a += px * qx + py * qy;
            num_b += px * qy - py * qx;
            den += px * px + py * py;
        }
        if den <= f32::EPSILON || !den.is_finite() {
            return None;
        }
        let a = num_a / den;
        let b = num_b / den;
        Some(Similarity {
            a,
            b,
            tx: dx - (a * sx - b * sy),
            ty: dy - (b * sx + a * sy),
        })
    }

    pub fn apply(&self, p: [f32; 2]) -> [f32; 2] {
        [
            self.a * p[0] - self.b * p[1] + self.tx,
            self.b * p[0] + self.a * p[1] + self.ty,
        ]
    }

    pub fn inverse(&self) -> Option<Similarity> {
        let d = self.a * self.a + self.b * self.b;
        if d <= f32::EPSILON || !d.is_finite() {
            return None;
        }
        let (a, b) = (self.a / d, -self.b / d);
        Some(Similarity {
            a,
            b,
            tx: -(a * self.tx - b * self.ty),
            ty: -(b * self.tx + a * self.ty),
        })
    }
}

/// The template in crop pixels for a crop of side `size`.
pub fn template_pixels(size: usize) -> Landmarks {
    let s = size as f32;
    TEMPLATE.map(|p| [p[0] * s, p[1] * s])
}

/// Landmarks of the dataset's own alignment scaled to an image of the given size: the
/// "standard crop" used when the detector finds no face.
pub fn dataset_landmarks(width: u32, height: u32) -> Landmarks {
    DATASET_LANDMARKS.map(|p| [p[0] * width as f32, p[1] * height as f32])
}

/// Warp `image` so that `landmarks` land on the template, writing planar CHW f32 in 0..=255
/// (R, G, B planes) into `out`, which must hold `3 * size * size` values. Allocates nothing.
pub fn align_into(
    image: &RgbImage,
    landmarks: &Landmarks,
    size: usize,
    out: &mut [f32],
) -> anyhow::Result<()> {
    anyhow::ensure!(
        out.len() == 3 * size * size,
        "aligned-face buffer holds {} values, {} needed",
        out.len(),
        3 * size * size
    );
    let to_crop = Similarity::estimate(landmarks, &template_pixels(size))
        .ok_or_else(|| anyhow::anyhow!("degenerate landmarks {landmarks:?}"))?;
    let inv = to_crop
        .inverse()
        .ok_or_else(|| anyhow::anyhow!("degenerate landmarks {landmarks:?}"))?;
    warp_into(image, &inv, size, out);
    Ok(())
}

/// Bilinear warp with an inverse map (crop → image), black outside.
pub fn warp_into(image: &RgbImage, inv: &Similarity, size: usize, out: &mut [f32]) {
    let (w, h) = (image.width as i64, image.height as i64);
    let plane = size * size;
    let px = |x: i64, y: i64, c: usize| -> f32 {
        if x < 0 || y < 0 || x >= w || y >= h {
            0.0
        } else {
            image.data[((y * w + x) * 3) as usize + c] as f32
        }
    };
    for v in 0..size {
        for u in 0..size {
            let [sx, sy] = inv.apply([u as f32 + 0.5, v as f32 + 0.5]);
            let (fx, fy) = (sx - 0.5, sy - 0.5);
            let (x0, y0) = (fx.floor(), fy.floor());
            let (wx, wy) = (fx - x0, fy - y0);
            let (x0, y0) = (x0 as i64, y0 as i64);
            let i = v * size + u;
            for c in 0..3 {
                let top = px(x0, y0, c) * (1.0 - wx) + px(x0 + 1, y0, c) * wx;
                let bottom = px(x0, y0 + 1, c) * (1.0 - wx) + px(x0 + 1, y0 + 1, c) * wx;
                out[c * plane + i] = top * (1.0 - wy) + bottom * wy;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_recovers_a_known_similarity() {
        let t = Similarity {
            a: 0.8,
            b: 0.3,
            tx: 12.0,
            ty: -4.0,
        };
        let src: Landmarks = [[10.0, 20.0], [50.0, 22.0], [30.0, 40.0], [31.0, 60.0]];
        let dst = src.map(|p| t.apply(p));
        let e = Similarity::estimate(&src, &dst).unwrap();
        for (x, y) in [(e.a, t.a), (e.b, t.b), (e.tx, t.tx), (e.ty, t.ty)] {
            assert!((x - y).abs() < 1e-3, "{e:?} vs {t:?}");
        }
        let back = e.inverse().unwrap().apply(e.apply([7.0, 9.0]));
        assert!((back[0] - 7.0).abs() < 1e-3 && (back[1] - 9.0).abs() < 1e-3);
    }

    #[test]
    fn degenerate_landmarks_are_an_error_not_a_panic() {
        let img = RgbImage::new(8, 8);
        let mut out = vec![0.0; 3 * 16 * 16];
        assert!(align_into(&img, &[[1.0, 1.0]; 4], 16, &mut out).is_err());
        assert!(align_into(&img, &TEMPLATE, 16, &mut out[..10]).is_err());
    }

    #[test]
    fn identity_warp_reproduces_the_image() {
        let mut img = RgbImage::new(16, 16);
        for (i, v) in img.data.iter_mut().enumerate() {
            *v = (i * 7 % 251) as u8;
        }
        let lm = template_pixels(16);
        let mut out = vec![0.0; 3 * 16 * 16];
        align_into(&img, &lm, 16, &mut out).unwrap();
        for y in 0..16u32 {
            for x in 0..16u32 {
                let p = img.pixel(x, y);
                for c in 0..3 {
                    let got = out[c * 256 + (y * 16 + x) as usize];
                    assert!(
                        (got - p[c] as f32).abs() < 1e-2,
                        "({x},{y},{c}) {got} vs {}",
                        p[c]
                    );
                }
            }
        }
    }
}
