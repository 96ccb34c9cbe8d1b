//! A frame resampled into a detector's input ([`super::Letterbox`]'s placement): a separable
//! filter whose taps are worked out once per output column and row, so the per-pixel loop is
//! multiply-adds over row slices (no clamping, flooring or index arithmetic per pixel). It runs
//! before every detection: on the 640×480 → 256×192 whole frame this loop was 6 ms of a 24 ms
//! detection on the x86 machine it was measured on, before it was made separable.

use crate::rgb::RgbImage;

use super::Letterbox;

/// The source pixels one output column (or row) reads, and their weights: two per sub-sample
/// ([`offsets`]); with one sub-sample the last two are unused.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Taps {
    at: [u32; 4],
    w: [f32; 4],
}

/// Scratch for [`Letterbox::sample`]: the taps of the last placement's columns and rows.
/// Grows on the first use for an input size, then is reused (no allocation once warm).
#[derive(Clone, Debug, Default)]
pub(crate) struct Resampler {
    cols: Vec<Taps>,
    rows: Vec<Taps>,
}

/// Sub-sample offsets (in output pixels) averaged per output pixel along one axis: one
/// bilinear tap when enlarging or shrinking by up to 2×, two (at ±¼, so a 2×2 grid per pixel)
/// beyond, to limit aliasing.
fn offsets(inv: f32) -> &'static [f32] {
    if inv > 2.0 {
        &[-0.25, 0.25]
    } else {
        &[0.0]
    }
}

/// The taps of output coordinates `lo..hi` along an axis of `n` source pixels: for each
/// sub-sample, the two source pixels around `(o + 0.5 + d - off) * inv - 0.5` (clamped to the
/// edge) with their bilinear weights, scaled by the sub-samples' share.
fn axis_taps(out: &mut Vec<Taps>, lo: usize, hi: usize, off: f32, inv: f32, n: usize) {
    out.clear();
    let last = n.saturating_sub(1);
    let subs = offsets(inv);
    let share = 1.0 / subs.len() as f32;
    for o in lo..hi {
        let mut t = Taps::default();
        for (k, &d) in subs.iter().enumerate() {
            let s = ((o as f32 + 0.5 + d - off) * inv - 0.5).clamp(0.0, last as f32);
            let s0 = s.floor() as usize;
            let f = s - s0 as f32;
            t.at[2 * k] = s0 as u32;
            t.w[2 * k] = share * (1.0 - f);
            t.at[2 * k + 1] = (s0 + 1).min(last) as u32;
            t.w[2 * k + 1] = share * f;
        }
        out.push(t);
    }
}

impl Letterbox {
    /// Sample `image` into an `iw`×`ih` input. `put(x, y, [r,g,b])` receives each input pixel
    /// (0..255 floats; padding is black). Bilinear when enlarging or mildly shrinking; when
    /// shrinking by more than 2× each sample averages a 2×2 grid of bilinear taps to limit
    /// aliasing. `scratch` keeps the taps (no allocation once warm).
    pub(crate) fn sample(
        &self,
        scratch: &mut Resampler,
        image: &RgbImage,
        iw: usize,
        ih: usize,
        put: impl FnMut(usize, usize, [f32; 3]),
    ) {
        let (w, h) = (image.width as usize, image.height as usize);
        let inv = 1.0 / self.scale;
        let x_lo = (self.off_x.max(0.0) as usize).min(iw);
        let x_hi = ((self.off_x + w as f32 * self.scale).ceil().max(0.0) as usize).min(iw);
        let y_lo = (self.off_y.max(0.0) as usize).min(ih);
        let y_hi = ((self.off_y + h as f32 * self.scale).ceil().max(0.0) as usize).min(ih);
        axis_taps(&mut scratch.cols, x_lo, x_hi, self.off_x, inv, w);
        axis_taps(&mut scratch.rows, y_lo, y_hi, self.off_y, inv, h);
        // one sub-sample per axis fills two taps, two fill four: only those are read
        if offsets(inv).len() == 1 {
            resample::<2>(scratch, image, iw, ih, (x_lo, y_lo), put);
        } else {
            resample::<4>(scratch, image, iw, ih, (x_lo, y_lo), put);
        }
    }
}

/// The pixel loop of [`Letterbox::sample`] over the first `N` taps of each column and row.
fn resample<const N: usize>(
    scratch: &Resampler,
    image: &RgbImage,
    iw: usize,
    ih: usize,
    (x_lo, y_lo): (usize, usize),
    mut put: impl FnMut(usize, usize, [f32; 3]),
) {
    let stride = image.width as usize * 3;
    for y in 0..ih {
        let Some(ty) = y.checked_sub(y_lo).and_then(|i| scratch.rows.get(i)) else {
            (0..iw).for_each(|x| put(x, y, [0.0; 3]));
            continue;
        };
        for x in 0..iw {
            let Some(tx) = x.checked_sub(x_lo).and_then(|i| scratch.cols.get(i)) else {
                put(x, y, [0.0; 3]);
                continue;
            };
            let mut acc = [0.0f32; 3];
            for (&r, &wy) in ty.at[..N].iter().zip(&ty.w[..N]) {
                let start = r as usize * stride;
                let row = &image.data[start..start + stride];
                let mut across = [0.0f32; 3];
                for (&c, &wx) in tx.at[..N].iter().zip(&tx.w[..N]) {
                    let p = &row[c as usize * 3..c as usize * 3 + 3];
                    across[0] += wx * p[0] as f32;
                    across[1] += wx * p[1] as f32;
                    across[2] += wx * p[2] as f32;
                }
                acc[0] += wy * across[0];
                acc[1] += wy * across[1];
                acc[2] += wy * across[2];
            }
            put(x, y, acc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sampler's definition, pixel by pixel: the mean of the sub-samples' bilinear
    /// values, each clamped to the image.
    fn reference(lb: &Letterbox, image: &RgbImage, iw: usize, ih: usize) -> Vec<[f32; 3]> {
        let (w, h) = (image.width as i64, image.height as i64);
        let inv = 1.0 / lb.scale;
        let subs = offsets(inv);
        let px = |x: i64, y: i64, c: usize| image.data[((y * w + x) * 3) as usize + c] as f32;
        let x_lo = lb.off_x.max(0.0) as usize;
        let x_hi = ((lb.off_x + w as f32 * lb.scale).ceil() as usize).min(iw);
        let y_lo = lb.off_y.max(0.0) as usize;
        let y_hi = ((lb.off_y + h as f32 * lb.scale).ceil() as usize).min(ih);
        let mut out = vec![[0.0; 3]; iw * ih];
        for y in 0..ih {
            for x in 0..iw {
                let (fx_in, fy_in) = (x as f32 + 0.5, y as f32 + 0.5);
                if y < y_lo || y >= y_hi || x < x_lo || x >= x_hi {
                    continue;
                }
                let mut acc = [0.0f32; 3];
                for &dy in subs {
                    for &dx in subs {
                        let sx = ((fx_in + dx - lb.off_x) * inv - 0.5).clamp(0.0, (w - 1) as f32);
                        let sy = ((fy_in + dy - lb.off_y) * inv - 0.5).clamp(0.0, (h - 1) as f32);
                        let (x0, y0) = (sx.floor() as i64, sy.floor() as i64);
                        let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
                        let (ax, ay) = (sx - x0 as f32, sy - y0 as f32);
                        for (c, a) in acc.iter_mut().enumerate() {
                            let top = px(x0, y0, c) * (1.0 - ax) + px(x1, y0, c) * ax;
                            let bot = px(x0, y1, c) * (1.0 - ax) + px(x1, y1, c) * ax;
                            *a += (top * (1.0 - ay) + bot * ay) / (subs.len() * subs.len()) as f32;
                        }
                    }
                }
                out[y * iw + x] = acc;
            }
        }
        out
    }

    fn noise(w: u32, h: u32) -> RgbImage {
        let mut s = 0x9e37_79b9u32;
        let data = (0..w * h * 3)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s >> 24) as u8
            })
            .collect();
        RgbImage {
            width: w,
            height: h,
            data,
        }
    }

    #[test]
    fn separable_taps_match_the_bilinear_definition() {
        let mut scratch = Resampler::default();
        let cases = [
            // (frame, input, placement)
            (
                (640, 480),
                (256, 192),
                Letterbox::fit(640, 480, 256, 192, true),
            ), // 2.5× shrink
            (
                (640, 480),
                (256, 256),
                Letterbox::fit(640, 480, 256, 256, true),
            ), // letterboxed
            (
                (200, 150),
                (256, 256),
                Letterbox::fit(200, 150, 256, 256, false),
            ), // enlarged
            (
                (300, 300),
                (256, 256),
                Letterbox::fit(300, 300, 256, 256, true),
            ), // mild shrink
            (
                (640, 480),
                (320, 240),
                Letterbox::fit_with_margin(640, 480, 320, 240, true, 0.2),
            ),
            // a window running off the frame's top-left corner
            (
                (640, 480),
                (128, 128),
                Letterbox::window(
                    super::super::Window {
                        x0: -40.0,
                        y0: -25.0,
                        side: 300.0,
                    },
                    128,
                ),
            ),
        ];
        for ((w, h), (iw, ih), lb) in cases {
            let image = noise(w, h);
            let mut got = vec![[f32::NAN; 3]; iw * ih];
            lb.sample(&mut scratch, &image, iw, ih, |x, y, p| got[y * iw + x] = p);
            let want = reference(&lb, &image, iw, ih);
            let mut inside = 0;
            for (i, (g, r)) in got.iter().zip(&want).enumerate() {
                for c in 0..3 {
                    assert!(
                        (g[c] - r[c]).abs() < 1e-3 || (g[c] == 0.0 && r[c] == 0.0),
                        "{w}x{h} -> {iw}x{ih} {lb:?}: pixel ({}, {}) channel {c}: {} against {}",
                        i % iw,
                        i / iw,
                        g[c],
                        r[c]
                    );
                }
                inside += (g != &[0.0; 3]) as usize;
            }
            assert!(
                inside > iw * ih / 3,
                "{w}x{h} -> {iw}x{ih}: only {inside} pixels sampled"
            );
        }
    }
}
