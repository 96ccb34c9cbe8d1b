"""Measure ONNX models on the held-out test split (once, at the end), overall and per group.

    python scripts/train/evaluate.py --data scripts/train/work models/agegender_f32.onnx models/agegender_int8.onnx

Faces are cropped exactly as in training (detector landmarks, or the dataset's alignment where the
detector missed), run through onnxruntime on 1 thread; prints one JSON object per model, and with
--plot writes a per-group accuracy chart.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from agegender_reference.align import align_fast, crop_to_image_matrix
from dataset import RACES, bucket_of, landmarks_of, read_meta


def metrics(rows, p_female, age):
    g = np.array([int(r["gender"]) for r in rows])
    a = np.array([int(r["age"]) for r in rows])
    pb = np.array([bucket_of(x) for x in age])
    tb = np.array([bucket_of(x) for x in a])
    return {
        "n": len(rows),
        "gender_acc": round(float(((p_female > 0.5).astype(int) == g).mean()), 4),
        "age_mae": round(float(np.abs(age - a).mean()), 3),
        "bucket_acc": round(float((pb == tb).mean()), 4),
        "bucket_1off_acc": round(float((np.abs(pb - tb) <= 1).mean()), 4),
    }


def groups(rows, p_female, age):
    def by(key):
        out = {}
        for name in sorted({key(r) for r in rows}, key=str):
            idx = [i for i, r in enumerate(rows) if key(r) == name]
            out[str(name)] = metrics([rows[i] for i in idx], p_female[idx], age[idx])
        return out

    race = lambda r: RACES[int(r["race"])] if int(r["race"]) >= 0 else "unknown"  # noqa: E731
    gender = lambda r: "female" if r["gender"] == "1" else "male"  # noqa: E731
    decade = lambda r: f"{min(int(r['age']) // 10 * 10, 80)}s" if int(r["age"]) < 80 else "80+"  # noqa: E731
    return {"race": by(race), "gender": by(gender), "age_decade": by(decade)}


def run(model: str, faces: np.ndarray):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    pf, ages = [], []
    t0 = time.perf_counter()
    for f in faces:
        g, a = sess.run(None, {"input": f[None]})
        pf.append(g[0, 1])
        ages.append(float((a[0] * np.arange(a.shape[1])).sum()))
    ms = 1000 * (time.perf_counter() - t0) / len(faces)
    return np.array(pf), np.array(ages), ms


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+")
    p.add_argument("--data", default="scripts/train/work")
    p.add_argument("--split", default="test")
    p.add_argument("--plot", help="write a per-group accuracy PNG here (first model)")
    args = p.parse_args(argv)

    rows = [r for r in read_meta(args.data) if r["split"] == args.split]
    images = np.load(Path(args.data) / "images.npy", mmap_mode="r")
    faces = np.stack(
        [
            align_fast(np.ascontiguousarray(images[int(r["index"])]), crop_to_image_matrix(landmarks_of(r))).transpose(
                2, 0, 1
            )
            for r in rows
        ]
    )
    faces = faces.astype(np.float32)
    results = {}
    for m in args.models:
        pf, age, ms = run(m, faces)
        res = {
            "model": m,
            "split": args.split,
            "ms_per_face_ort_1thread": round(ms, 2),
            **metrics(rows, pf, age),
            "no_detection": sum(r["detected"] == "0" for r in rows),
            "groups": groups(rows, pf, age),
        }
        results[m] = res
        print(json.dumps(res))
    if args.plot:
        plot(results[args.models[0]], args.plot)


def plot(res, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(14, 3.8))
    for a, key in zip(ax, ["race", "gender", "age_decade"], strict=True):
        names = list(res["groups"][key])
        a.bar(names, [100 * res["groups"][key][n]["gender_acc"] for n in names], color="#4c72b0", label="gender acc %")
        a2 = a.twinx()
        a2.plot(names, [res["groups"][key][n]["age_mae"] for n in names], "o-", color="#dd8452", label="age MAE")
        a.set_ylim(50, 100)
        a.set_title(f"test split by {key}")
        a.set_ylabel("gender accuracy %")
        a2.set_ylabel("age MAE (years)")
        a.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


if __name__ == "__main__":
    main()
