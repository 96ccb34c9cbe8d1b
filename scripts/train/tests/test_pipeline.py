"""Unit tests of the training pipeline's data handling: file names, the split, the age buckets.
(The alignment recipe it shares with the benchmarks is tested in scripts/reference/tests.)"""

from pathlib import Path

import numpy as np
import pytest

from dataset import AGE_BUCKETS, Face, bucket_of, parse_name, split

ROOT = Path(__file__).resolve().parents[3]

SHARED = ROOT.parent / "shared/data/utkface"


def test_parse_names_including_the_odd_ones():
    assert parse_name("26_1_2_20170116174525125.jpg.chip.jpg") == Face(
        "26_1_2_20170116174525125.jpg.chip.jpg", 26, 1, 2
    )
    # no race field
    assert parse_name("39_1_20170116174525125.jpg.chip.jpg").race == -1
    # a space before .jpg, and a name missing the dot
    assert parse_name("24_0_1_20170116220224657 .jpg.chip.jpg").age == 24
    assert parse_name("55_0_0_20170116232725357jpg.chip.jpg").age == 55
    assert parse_name("README.md") is None
    assert parse_name("12_3_0_20170116232725357.jpg.chip.jpg") is None  # gender must be 0 or 1


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/data/utkface")
def test_every_shared_face_parses():
    names = [p.name for p in SHARED.iterdir()]
    assert len(names) > 20000
    assert all(parse_name(n) for n in names), [n for n in names if not parse_name(n)][:5]


def test_split_is_deterministic_stratified_and_disjoint():
    rng = np.random.default_rng(0)
    faces = [Face(f"{i}", int(rng.integers(0, 100)), int(rng.integers(0, 2)), 0) for i in range(5000)]
    a, b = split(faces, seed=7), split(faces, seed=7)
    assert a == b
    assert a != split(faces, seed=8)
    counts = {s: a.count(s) for s in ("train", "val", "test")}
    assert abs(counts["test"] - 500) < 25 and abs(counts["val"] - 500) < 25
    # every (decade, gender) group is represented in test in proportion
    for dec in range(0, 10):
        for g in (0, 1):
            idx = [i for i, f in enumerate(faces) if min(f.age // 10, 9) == dec and f.gender == g]
            if len(idx) >= 50:
                frac = sum(a[i] == "test" for i in idx) / len(idx)
                assert 0.07 < frac < 0.13, (dec, g, frac)


def test_buckets_cover_every_age_once():
    for age in range(0, 101):
        assert sum(lo <= age <= hi for _, lo, hi in AGE_BUCKETS) == 1
    assert bucket_of(27.4) == 4 and bucket_of(1.2) == 0 and bucket_of(99) == 7 and bucket_of(130) == 7


def test_age_buckets_are_the_runtimes():
    """dataset.AGE_BUCKETS (training, calibration) is src/classify/labels.rs's AGE_BUCKETS."""
    import re

    src = (ROOT / "src/classify/labels.rs").read_text()
    table = re.search(r"pub const AGE_BUCKETS: \[\(&str, u32, u32\); \d+\] = \[(.*?)\];", src, re.S)
    assert table, "AGE_BUCKETS not found in src/classify/labels.rs"
    rust = [(n, int(lo), int(hi)) for n, lo, hi in re.findall(r'\("([^"]+)", (\d+), (\d+)\)', table.group(1))]
    assert rust == AGE_BUCKETS
