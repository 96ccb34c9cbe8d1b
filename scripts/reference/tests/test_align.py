"""The Python reference of the face crop (agegender_reference.align): the similarity estimate, and
the crop reproducing the committed parity fixture (tests/fixtures/align, which tests/align_parity.rs
checks src/align.rs against), with OpenCV's fast path close to it."""

import json
from pathlib import Path

import numpy as np
from PIL import Image

from agegender_reference.align import align_fast, align_reference, crop_to_image_matrix, estimate_similarity, invert

ROOT = Path(__file__).resolve().parents[3]


def test_similarity_round_trip():
    src = np.array([[10, 20], [50, 22], [30, 40], [31, 60]], np.float32)
    s = np.array([0.8, 0.3, 12.0, -4.0])
    a, b, tx, ty = s
    dst = np.stack([a * src[:, 0] - b * src[:, 1] + tx, b * src[:, 0] + a * src[:, 1] + ty], 1)
    e = estimate_similarity(src, dst)
    assert np.allclose(e, s, atol=1e-5)
    assert np.allclose(invert(invert(e)), e)
    assert estimate_similarity(np.ones((4, 2)), dst) is None


def test_reference_crop_reproduces_the_committed_fixture_and_fast_path_agrees():
    fixture = ROOT / "tests/fixtures/align"
    cases = json.loads((fixture / "cases.json").read_text())
    for case in cases["cases"]:
        image = np.asarray(Image.open(fixture / case["image"]).convert("RGB"))
        expected = np.asarray(Image.open(fixture / case["expected"]).convert("RGB")).astype(np.float32)
        lm = np.array(case["landmarks"], np.float32)
        ref = align_reference(image, lm).transpose(1, 2, 0)
        # the fixture stores 8-bit pixels and landmarks rounded to 1/1000 px
        assert np.abs(ref - expected).max() <= 1.0 and np.abs(ref - expected).mean() < 0.3
        fast = align_fast(image, crop_to_image_matrix(lm)).astype(np.float32)
        # OpenCV's fixed-point bilinear: within half a level on average
        assert np.abs(fast - ref).mean() < 0.5
