"""UTKFace reading, the deterministic split, and the prepared arrays train.py reads."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RACES = ["White", "Black", "Asian", "Indian", "Others"]
# The seed's eight Adience buckets with the ages assigned to each (gaps go to the nearest bucket).
# Must equal AGE_BUCKETS in src/classify/labels.rs (test_pipeline.py checks).
AGE_BUCKETS = [
    ("0-2", 0, 3),
    ("4-6", 4, 6),
    ("8-12", 7, 13),
    ("15-20", 14, 22),
    ("25-32", 23, 34),
    ("38-43", 35, 44),
    ("48-53", 45, 55),
    ("60+", 56, 100),
]
NAME = re.compile(r"^(\d+)_([01])_(?:([0-4])_)?(\d+)\s*\.?jpg\.chip\.jpg$")


@dataclass
class Face:
    file: str
    age: int
    gender: int  # 0 male, 1 female
    race: int  # -1 when the name has no race field


def parse_name(name: str) -> Face | None:
    m = NAME.match(name)
    if not m:
        return None
    race = int(m.group(3)) if m.group(3) is not None else -1
    return Face(name, int(m.group(1)), int(m.group(2)), race)


def list_faces(folder: str) -> tuple[list[Face], list[str]]:
    faces, skipped = [], []
    for p in sorted(Path(folder).iterdir()):
        f = parse_name(p.name)
        (faces.append(f) if f else skipped.append(p.name))
    return faces, skipped


def bucket_of(age: float) -> int:
    a = min(max(int(round(age)), 0), 100)
    return next(i for i, (_, lo, hi) in enumerate(AGE_BUCKETS) if lo <= a <= hi)


def split(faces: list[Face], seed: int, fractions=(0.8, 0.1, 0.1)) -> list[str]:
    """train/val/test per face, stratified by (age decade, gender), deterministic for a seed."""
    rng = np.random.default_rng(seed)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, f in enumerate(faces):
        groups.setdefault((min(f.age // 10, 9), f.gender), []).append(i)
    out = [""] * len(faces)
    for key in sorted(groups):
        idx = np.array(groups[key])
        rng.shuffle(idx)
        n_val = int(round(len(idx) * fractions[1]))
        n_test = int(round(len(idx) * fractions[2]))
        for j, i in enumerate(idx):
            out[i] = "val" if j < n_val else "test" if j < n_val + n_test else "train"
    return out


def read_meta(data: str) -> list[dict]:
    with open(Path(data) / "faces.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def landmarks_of(row: dict) -> np.ndarray:
    return np.array([float(row[f"lm{i}"]) for i in range(8)], np.float32).reshape(4, 2)


def aligned_faces(data: str, split: str, n: int, seed: int) -> np.ndarray:
    """n aligned faces of a split (N x 3 x S x S float32, 0..255), as the runtime would crop them."""
    from agegender_reference.align import align_fast, crop_to_image_matrix

    rows = [r for r in read_meta(data) if r["split"] == split]
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(rows), size=min(n, len(rows)), replace=False)
    images = np.load(Path(data) / "images.npy", mmap_mode="r")
    out = []
    for k in pick:
        r = rows[k]
        img = np.ascontiguousarray(images[int(r["index"])])
        out.append(align_fast(img, crop_to_image_matrix(landmarks_of(r))).transpose(2, 0, 1))
    return np.stack(out).astype(np.float32)
