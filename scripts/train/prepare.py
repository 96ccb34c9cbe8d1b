"""Decode UTKFace once, find each face's landmarks with the runtime's detector, split the data.

    python scripts/train/prepare.py --faces ../shared/data/utkface \
        --detector models/detector/blazeface_back_256.onnx --out scripts/train/work

Writes OUT/images.npy (N x 200 x 200 x 3 uint8), OUT/faces.csv (file, labels, split, the four
landmarks in image pixels, whether the detector found the face) and OUT/split.csv (file, split:
the audit trail). Faces the detector misses keep the dataset's own alignment (counted).
"""

from __future__ import annotations

import argparse
import csv
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

from agegender_reference.align import dataset_landmarks
from dataset import list_faces, split

SIDE = 200  # UTKFace crops are 200 x 200; others are resized to it
PAD = 100  # the face is letterboxed with this much black around it, as if further from the camera

_detector = None


def _init(path: str):
    global _detector
    from agegender_reference.blazeface import BlazeFace

    _detector = BlazeFace(path, score_threshold=0.5)


def _work(path: str):
    import cv2

    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        return None, None
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if img.shape[:2] != (SIDE, SIDE):
        img = cv2.resize(img, (SIDE, SIDE), interpolation=cv2.INTER_AREA)
    padded = cv2.copyMakeBorder(img, PAD, PAD, PAD, PAD, cv2.BORDER_CONSTANT, value=0)
    best = None
    for _score, box, kp in _detector.detect(padded):
        cx, cy = (box[0] + box[2]) / 2 - PAD, (box[1] + box[3]) / 2 - PAD
        # the labelled face is the one in the middle of the crop
        if abs(cx - SIDE / 2) < SIDE * 0.3 and abs(cy - SIDE / 2) < SIDE * 0.3:
            best = kp - PAD
            break
    return img, best


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--faces", default="../shared/data/utkface")
    p.add_argument("--detector", default="models/detector/blazeface_back_256.onnx")
    p.add_argument("--out", default="scripts/train/work")
    p.add_argument("--seed", type=int, default=20261128)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--limit", type=int, help="only the first N faces (smoke test)")
    args = p.parse_args(argv)

    if not Path(args.faces).is_dir():
        raise SystemExit(f"prepare: face folder {args.faces} does not exist")
    if not Path(args.detector).is_file():
        raise SystemExit(f"prepare: detector {args.detector} not found (run scripts/fetch-detector)")
    faces, skipped = list_faces(args.faces)
    if args.limit:
        faces = faces[: args.limit]
    splits = split(faces, args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    images = np.lib.format.open_memmap(
        out / "images.npy.tmp", mode="w+", dtype=np.uint8, shape=(len(faces), SIDE, SIDE, 3)
    )
    t0 = time.time()
    rows, missed, unreadable = [], 0, 0
    paths = [str(Path(args.faces) / f.file) for f in faces]
    with Pool(args.workers, initializer=_init, initargs=(args.detector,)) as pool:
        for i, (img, lm) in enumerate(pool.imap(_work, paths, chunksize=32)):
            f = faces[i]
            if img is None:
                unreadable += 1
                continue
            images[len(rows)] = img
            found = lm is not None
            if not found:
                missed += 1
                lm = dataset_landmarks(SIDE, SIDE)
            rows.append(
                {
                    "index": len(rows),
                    "file": f.file,
                    "age": f.age,
                    "gender": f.gender,
                    "race": f.race,
                    "split": splits[i],
                    "detected": int(found),
                    **{f"lm{k}": f"{v:.2f}" for k, v in enumerate(np.asarray(lm).reshape(-1))},
                }
            )
            if i % 2000 == 0:
                print(f"{i}/{len(faces)} {time.time() - t0:.0f}s missed {missed}", flush=True)
    images.flush()
    del images
    if unreadable:
        # keep only the rows written
        arr = np.load(out / "images.npy.tmp", mmap_mode="r")[: len(rows)]
        np.save(out / "images.npy", arr)
        (out / "images.npy.tmp").unlink()
    else:
        (out / "images.npy.tmp").rename(out / "images.npy")
    with open(out / "faces.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with open(out / "split.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "split"])
        w.writerows((r["file"], r["split"]) for r in rows)
    lms = np.array([[float(r[f"lm{k}"]) for k in range(8)] for r in rows if r["detected"] == 1]).reshape(-1, 4, 2)
    counts = {s: sum(r["split"] == s for r in rows) for s in ("train", "val", "test")}
    print(
        f"faces {len(rows)} {counts}; detector missed {missed} ({100 * missed / len(rows):.2f}%, dataset "
        f"alignment used); unreadable {unreadable}; skipped names {len(skipped)}; {time.time() - t0:.0f}s"
    )
    print("mean detected landmarks / side:", np.round(lms.mean(0) / SIDE, 4).tolist())


if __name__ == "__main__":
    main()
