"""Synthetic kiosk streams for scripts/bench/compare, and an MJPEG frame reader.

A stream is a 640x480 `.mjpeg` file (concatenated baseline JPEG frames, quality 85, OpenCV's
default 4:2:0 sampling): faces pasted at 110-180 px onto a wall-like background (a smooth gradient
with soft blobs, plus a little sensor noise that changes every frame), each drifting 0.6-2 px per
frame and bouncing off the edges of its area (the whole frame for one face, a quadrant each for
four), like people standing in front of a kiosk. Two more kinds for the motion gating measure
(scripts/bench/motion.py): `still` (the same faces, not moving; only the sensor noise changes) and
`enter` (the faces drift as in `moving`, but each is in view only for a window of the stream:
face k of n from frame (k + 1) / (2n + 2) to (k + n + 2) / (2n + 2) of the stream, so people
enter and leave, one at a time).

Faces come from a folder of UTKFace-style aligned chips (default ../shared/data/utkface, env FACES
overrides), chosen deterministically from the seed: candidates are taken in a seeded order and
kept only if BlazeFace finds exactly that one face when it is pasted alone. Without the folder the
faces are cut from tests/fixtures/demo/crew.jpg around its BlazeFace detections (3 faces; the
four-face stream then repeats one), with a warning.

The streams contain the face photos, so they live in the gitignored cache and are never committed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from pathlib import Path

import cv2
import numpy as np

from agegender_reference.align import align_fast, crop_to_image_matrix, dataset_landmarks

REPO = Path(__file__).resolve().parents[2]

# Bump when the picture of a stream changes, so that cached streams are remade.
GEN_VERSION = 2
WIDTH, HEIGHT = 640, 480
JPEG_QUALITY = 85
FACE_SIZES = (110, 180)
DEFAULT_FACES = REPO.parent / "shared" / "data" / "utkface"
DEMO_PICTURE = REPO / "tests" / "fixtures" / "demo" / "crew.jpg"


def log(msg: str) -> None:
    print(f"[compare] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Reading concatenated JPEGs


# In entropy-coded data a 0xFF byte is followed by 0x00 (stuffing) or a restart marker; anything
# else is the next marker (EOI, normally).
_MARKER_AFTER_SCAN = re.compile(rb"\xff[^\x00\xd0-\xd7]")


def next_jpeg(data: bytes, pos: int) -> tuple[int, int] | None:
    """(start, end) of the next JPEG at or after `pos` in `data`, or None at the end. Walks the
    marker segments up to each scan and skips the scan's entropy-coded data, so a 0xFFD9 pair
    inside a table or a thumbnail cannot cut a frame short."""
    n = len(data)
    start = data.find(b"\xff\xd8", pos)
    if start < 0:
        return None
    i = start + 2
    while i + 1 < n:
        if data[i] != 0xFF:
            raise ValueError(f"JPEG at byte {start}: no marker at byte {i}")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0xD9:  # EOI
            return start, i + 2
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            i += 2
            continue
        if i + 4 > n:
            break
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
        if marker == 0xDA:  # start of scan: skip the entropy-coded data
            m = _MARKER_AFTER_SCAN.search(data, i)
            if m is None:
                break
            i = m.start()
    raise ValueError(f"JPEG at byte {start}: truncated")


def count_frames(data: bytes) -> int:
    n, pos = 0, 0
    while (f := next_jpeg(data, pos)) is not None:
        n, pos = n + 1, f[1]
    return n


# ---------------------------------------------------------------------------------------------
# Face pictures


def faces_folder() -> Path:
    return Path(os.environ.get("FACES") or DEFAULT_FACES)


def face_files(folder: Path) -> list[Path]:
    exts = {".jpg", ".jpeg", ".png"}
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in exts)


def read_rgb(path: Path) -> np.ndarray | None:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def demo_chips(detector) -> list[np.ndarray]:
    """Square crops around the faces BlazeFace finds in the demo picture (fallback source)."""
    rgb = read_rgb(DEMO_PICTURE)
    if rgb is None:
        raise SystemExit(f"compare: cannot read {DEMO_PICTURE}")
    chips = []
    for _score, box, _kp in detector.detect(rgb):
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        side = 1.8 * max(box[2] - box[0], box[3] - box[1])
        m = np.array([[side / 200, 0, cx - side / 2], [0, side / 200, cy - side / 2]], np.float64)
        chip = cv2.warpAffine(rgb, m, (200, 200), flags=cv2.INTER_AREA | cv2.WARP_INVERSE_MAP)
        chips.append(chip)
    if not chips:
        raise SystemExit(f"compare: BlazeFace finds no face in {DEMO_PICTURE}")
    return chips


class FaceSource:
    """Candidate face chips in a deterministic (seeded) order, and aligned faces for calibration."""

    def __init__(self, detector, seed: int):
        self.folder = faces_folder()
        self.detector = detector
        self.seed = seed
        if self.folder.is_dir() and (files := face_files(self.folder)):
            self.files = files
            self.kind = f"faces from {self.folder} ({len(files)} files)"
            self.key = hashlib.sha256(f"{self.folder.resolve()}|{len(files)}".encode()).hexdigest()[:10]
        else:
            log(
                f"warning: face folder {self.folder} is missing or empty (set FACES=DIR to a folder of "
                f"UTKFace-style face chips); using the faces of {DEMO_PICTURE.relative_to(REPO)} instead"
            )
            self.files = None
            self.kind = f"faces cut from {DEMO_PICTURE.relative_to(REPO)} (no face folder)"
            self.key = "demo"

    def candidates(self, salt: int):
        """(name, RGB chip) in seeded order."""
        if self.files is None:
            chips = demo_chips(self.detector)
            order = np.random.default_rng([self.seed, salt]).permutation(len(chips))
            for k in range(10_000):  # repeats: the demo picture has few faces
                i = int(order[k % len(chips)])
                yield f"crew.jpg#{i}", chips[i]
            return
        order = np.random.default_rng([self.seed, salt]).permutation(len(self.files))
        for i in order:
            rgb = read_rgb(self.files[i])
            if rgb is not None and min(rgb.shape[:2]) >= 64:
                yield self.files[i].name, rgb

    def calibration_faces(self, n: int, size: int = 112) -> np.ndarray:
        """n aligned faces, N x 3 x size x size float32 0..255 (the classifier's input)."""
        out = []
        if self.files is not None:
            for _name, rgb in self.candidates(salt=7):
                m = crop_to_image_matrix(dataset_landmarks(rgb.shape[1], rgb.shape[0]), size)
                out.append(align_fast(rgb, m, size))
                if len(out) == n:
                    break
        else:
            rng = np.random.default_rng([self.seed, 7])
            rgb = read_rgb(DEMO_PICTURE)
            dets = self.detector.detect(rgb)
            for k in range(n):  # jitter the landmarks: shift, scale and turn a little
                kp = dets[k % len(dets)][2].astype(np.float64)
                c = kp.mean(0)
                a, s = rng.uniform(-0.15, 0.15), rng.uniform(0.9, 1.1)
                rot = s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
                kp = (kp - c) @ rot.T + c + rng.uniform(-3, 3, size=2)
                out.append(align_fast(rgb, crop_to_image_matrix(kp, size), size))
        return np.stack(out).transpose(0, 3, 1, 2).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Composing frames


def background(rng: np.random.Generator) -> np.ndarray:
    """A lit wall: smooth gradient plus a few soft blobs (float32 H x W x 3, 0..255)."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    base = rng.uniform(120, 200, size=3).astype(np.float32)
    grad = rng.uniform(-50, 50, size=(2, 3)).astype(np.float32)
    img = base + (x[..., None] / WIDTH - 0.5) * grad[0] + (y[..., None] / HEIGHT - 0.5) * grad[1]
    for _ in range(6):
        cx, cy = rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT)
        r = rng.uniform(40, 160)
        amp = rng.uniform(-25, 25, size=3).astype(np.float32)
        img += amp * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))[..., None]
    return np.clip(img, 0, 255).astype(np.float32)


def ellipse_mask(size: int) -> np.ndarray:
    """A feathered ellipse (size x size x 1, 0..1) that keeps the face, hair and chin of a chip."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    c = (size - 1) / 2
    d = np.sqrt(((x - c) / (0.47 * size)) ** 2 + ((y - c) / (0.5 * size)) ** 2)
    return np.clip((1.0 - d) / 0.12, 0, 1)[..., None]


class Face:
    def __init__(self, name: str, chip: np.ndarray, size: int, area, rng: np.random.Generator):
        self.name, self.size = name, size
        self.chip = cv2.resize(chip, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
        self.mask = ellipse_mask(size)
        self.x0, self.y0, self.x1, self.y1 = area[0], area[1], area[2] - size, area[3] - size
        if self.x1 < self.x0 or self.y1 < self.y0:
            raise ValueError(f"a {size} px face does not fit in {area}")
        self.x = rng.uniform(self.x0, self.x1)
        self.y = rng.uniform(self.y0, self.y1)
        angle, speed = rng.uniform(0, 2 * np.pi), rng.uniform(0.6, 2.0)
        self.vx, self.vy = speed * np.cos(angle), speed * np.sin(angle)

    def paste(self, img: np.ndarray) -> tuple[int, int, int, int]:
        x, y, s = int(round(self.x)), int(round(self.y)), self.size
        roi = img[y : y + s, x : x + s]
        roi += (self.chip - roi) * self.mask
        return x, y, x + s, y + s

    def step(self) -> None:
        self.x += self.vx
        self.y += self.vy
        if not self.x0 <= self.x <= self.x1:
            self.vx = -self.vx
            self.x = min(max(self.x, self.x0), self.x1)
        if not self.y0 <= self.y <= self.y1:
            self.vy = -self.vy
            self.y = min(max(self.y, self.y0), self.y1)


def inside(det_box, box) -> bool:
    """Whether a detection's centre lies in the middle half of a pasted chip."""
    cx, cy = (det_box[0] + det_box[2]) / 2, (det_box[1] + det_box[3]) / 2
    qw, qh = (box[2] - box[0]) / 4, (box[3] - box[1]) / 4
    return box[0] + qw <= cx <= box[2] - qw and box[1] + qh <= cy <= box[3] - qh


def areas(n_faces: int) -> list[tuple[int, int, int, int]]:
    m = 8
    if n_faces == 1:
        return [(m, m, WIDTH - m, HEIGHT - m)]
    if n_faces <= 4:
        hw, hh = WIDTH // 2, HEIGHT // 2
        cells = [(0, 0), (1, 0), (0, 1), (1, 1)][:n_faces]
        return [(cx * hw + m, cy * hh + m, (cx + 1) * hw - m, (cy + 1) * hh - m) for cx, cy in cells]
    raise ValueError("streams have 1 to 4 faces")


def choose_faces(source: FaceSource, n_faces: int, bg: np.ndarray, rng: np.random.Generator) -> list[Face]:
    """The first n_faces candidates that BlazeFace finds, alone and at their size, in their area."""
    faces: list[Face] = []
    tried = 0
    for name, chip in source.candidates(salt=1):
        if len(faces) == n_faces:
            break
        tried += 1
        if tried > 400:
            raise SystemExit(f"compare: BlazeFace found fewer than {n_faces} usable faces in 400 candidates")
        area = areas(n_faces)[len(faces)]
        size = int(rng.integers(FACE_SIZES[0], min(FACE_SIZES[1], area[3] - area[1]) + 1))
        face = Face(name, chip, size, area, rng)
        img = bg.copy()
        box = face.paste(img)
        dets = source.detector.detect(img.astype(np.uint8))
        if len(dets) == 1 and inside(dets[0][1], box):
            faces.append(face)
    return faces


KINDS = ("moving", "still", "enter")


def in_view(kind: str, k: int, n_faces: int, i: int, frames: int) -> bool:
    """Whether face k of n_faces is in frame i of a stream of this kind (see the module doc)."""
    if kind != "enter":
        return True
    parts = 2 * n_faces + 2
    return (k + 1) * frames // parts <= i < (k + n_faces + 2) * frames // parts


def make_stream(path: Path, source: FaceSource, n_faces: int, frames: int, seed: int, kind: str = "moving") -> dict:
    if kind not in KINDS:
        raise ValueError(f"stream kind {kind!r} is not one of {KINDS}")
    rng = np.random.default_rng([seed, n_faces])
    bg = background(rng)
    faces = choose_faces(source, n_faces, bg, rng)
    if kind == "still":
        for face in faces:
            face.vx = face.vy = 0.0
    tmp = path.with_suffix(".part")
    total = 0
    boxes: list[list[list[int]]] = []
    with open(tmp, "wb") as f:
        for i in range(frames):
            img = bg + rng.normal(0, 2.0, size=bg.shape).astype(np.float32)
            boxes.append([])
            for k, face in enumerate(faces):
                if in_view(kind, k, n_faces, i, frames):
                    boxes[-1].append(list(face.paste(img)))
                face.step()
            rgb = np.clip(img + 0.5, 0, 255).astype(np.uint8)
            ok, jpg = cv2.imencode(
                ".jpg",
                cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY, cv2.IMWRITE_JPEG_PROGRESSIVE, 0],
            )
            if not ok:
                raise RuntimeError("cv2.imencode failed")
            f.write(jpg.tobytes())
            total += len(jpg)
    os.replace(tmp, path)
    meta = {
        "path": str(path),
        "frames": frames,
        "faces": n_faces,
        "kind": kind,
        # per face: the first frame it is in view and one past the last
        "in_view": [
            [min(v), max(v) + 1]
            for v in ([i for i in range(frames) if in_view(kind, k, n_faces, i, frames)] for k in range(n_faces))
        ],
        "width": WIDTH,
        "height": HEIGHT,
        "quality": JPEG_QUALITY,
        "kb_per_frame": round(total / frames / 1024, 1),
        "face_files": [f.name for f in faces],
        "face_sizes": [f.size for f in faces],
        "source": source.kind,
        # per frame, the pasted chips in view: [x0, y0, x1, y1] (the truth motion.py checks
        # reported boxes against, besides every-frame detection)
        "boxes": boxes,
    }
    path.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    return meta


def stream(cache: Path, source: FaceSource, n_faces: int, frames: int, seed: int, kind: str = "moving") -> dict:
    """The cached stream for these parameters, made if missing; its metadata (with `path`)."""
    cache.mkdir(parents=True, exist_ok=True)
    suffix = "" if kind == "moving" else f"_{kind}"
    path = cache / f"stream_{n_faces}face{suffix}_{frames}f_seed{seed}_{source.key}_v{GEN_VERSION}.mjpeg"
    meta_path = path.with_suffix(".json")
    if path.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        # (metadata from before the truth boxes were kept: made again, the same frames)
        if meta.get("frames") == frames and "boxes" in meta and count_frames(path.read_bytes()) == frames:
            return meta
    log(f"making {path.relative_to(REPO) if path.is_relative_to(REPO) else path} ({n_faces} face(s), {frames} frames)")
    return make_stream(path, source, n_faces, frames, seed, kind)
