"""The face crop shared with the runtime (src/align.rs): landmarks -> least-squares similarity onto
a fixed template -> bilinear warp, black outside. Change one, change both (tests/align_parity.rs).

Conventions: continuous image coordinates, pixel k covers [k, k+1); landmarks are right eye, left
eye, nose tip, mouth centre (the subject's right eye is on the image's left).
"""

from __future__ import annotations

import numpy as np

INPUT_SIZE = 112
# In units of the crop side. Must equal TEMPLATE in src/align.rs.
TEMPLATE = np.array([[0.3115, 0.3135], [0.6885, 0.3135], [0.5000, 0.5282], [0.5000, 0.7248]], np.float32)
# Where the landmarks sit in a UTKFace "aligned & cropped" image (units of its side): the crop used
# when the detector misses a face. Must equal DATASET_LANDMARKS in src/align.rs.
DATASET_LANDMARKS = np.array([[0.2875, 0.2899], [0.6853, 0.2907], [0.4843, 0.5173], [0.4842, 0.7260]], np.float32)


def estimate_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray | None:
    """(a, b, tx, ty) of the least-squares similarity p' = [a -b; b a] p + t taking src onto dst."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    sm, dm = src.mean(0), dst.mean(0)
    p, q = src - sm, dst - dm
    den = (p**2).sum()
    if not np.isfinite(den) or den <= 1e-7:
        return None
    a = (p[:, 0] * q[:, 0] + p[:, 1] * q[:, 1]).sum() / den
    b = (p[:, 0] * q[:, 1] - p[:, 1] * q[:, 0]).sum() / den
    return np.array([a, b, dm[0] - (a * sm[0] - b * sm[1]), dm[1] - (b * sm[0] + a * sm[1])])


def invert(s: np.ndarray) -> np.ndarray:
    a, b, tx, ty = s
    d = a * a + b * b
    ia, ib = a / d, -b / d
    return np.array([ia, ib, -(ia * tx - ib * ty), -(ib * tx + ia * ty)])


def template_pixels(size: int = INPUT_SIZE) -> np.ndarray:
    return TEMPLATE * size


def dataset_landmarks(width: int, height: int) -> np.ndarray:
    return DATASET_LANDMARKS * np.array([width, height], np.float32)


def crop_to_image_matrix(landmarks: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """2x3 matrix taking crop pixel *indices* (u, v) to image pixel *indices*, for cv2.warpAffine
    with WARP_INVERSE_MAP; includes the half-pixel shifts of the convention above."""
    s = estimate_similarity(landmarks, template_pixels(size))
    if s is None:
        raise ValueError(f"degenerate landmarks {landmarks.tolist()}")
    a, b, tx, ty = invert(s)
    lin = np.array([[a, -b], [b, a]])
    t = lin @ np.array([0.5, 0.5]) + np.array([tx, ty]) - 0.5
    return np.concatenate([lin, t[:, None]], axis=1)


def align_reference(image: np.ndarray, landmarks: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """Exact float implementation (what the Rust side computes): H x W x 3 uint8 in, 3 x S x S float32
    0..255 out. Slow; the parity fixture and tests use it."""
    m = crop_to_image_matrix(landmarks, size)
    v, u = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    fx = m[0, 0] * u + m[0, 1] * v + m[0, 2]
    fy = m[1, 0] * u + m[1, 1] * v + m[1, 2]
    x0, y0 = np.floor(fx).astype(np.int64), np.floor(fy).astype(np.int64)
    wx, wy = (fx - x0)[..., None], (fy - y0)[..., None]
    h, w = image.shape[:2]

    def px(x, y):
        inside = (x >= 0) & (y >= 0) & (x < w) & (y < h)
        vals = image[np.clip(y, 0, h - 1), np.clip(x, 0, w - 1)].astype(np.float64)
        return vals * inside[..., None]

    top = px(x0, y0) * (1 - wx) + px(x0 + 1, y0) * wx
    bottom = px(x0, y0 + 1) * (1 - wx) + px(x0 + 1, y0 + 1) * wx
    return (top * (1 - wy) + bottom * wy).transpose(2, 0, 1).astype(np.float32)


def align_fast(image: np.ndarray, matrix: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """The same warp through OpenCV (fixed-point bilinear, within a fraction of a level of the
    reference), H x W x 3 uint8 out; `matrix` from crop_to_image_matrix, possibly jittered."""
    import cv2

    return cv2.warpAffine(
        image,
        matrix,
        (size, size),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )
