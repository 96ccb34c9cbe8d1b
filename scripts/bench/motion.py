"""Motion gating and track-guided detection (issue 16): recall and false boxes against
every-frame detection.

For each replay stream (streams.py: 1 and 4 moving faces, 2 still faces, 2 faces that enter and
leave one at a time; 640x480, cached) `agegender run` replays the stream at --fps (its clock is
the stream's, so the forced refresh `detect_max_interval_s` is deterministic) once with the gate
off and detection on every frame (the reference), then once per (motion_threshold,
detect_max_interval_s, full_detect_interval_s) triple (the last: track-guided detection, windows
around the tracked faces through the 128x128 front model between whole-frame detections; 0: off).
For every frame, the boxes a gated run reports (its face lines) are matched to the reference
run's boxes of that frame, greedily by IoU >= 0.5:

  recall       matched reference boxes / reference boxes (percent)
  false boxes  reported boxes that match no reference box of their frame
  det/frame    detector runs per frame (the status line's `detections` / `frames`), and in
               brackets those that searched only windows (`window_detections` / `frames`)

Every-frame detection misses a face now and then, so a box it lacks is not always a false one.
A second table checks every run, the reference too, against the faces pasted into each frame
(the streams' metadata): a reported box finds a face when its centre lies in the middle half of
the pasted chip, one box per face; recall is the faces found, false boxes those that find none.

Run from the repository root after `cargo build --release --locked`:

  /path/to/python scripts/bench/motion.py [--frames 300] [--thresholds 0.002,0.005,...]

It prints a Markdown table and, as the last line, one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
import streams  # noqa: E402

DETECTOR = REPO / "models/detector/blazeface_back_256.onnx"
WINDOW_DETECTOR = REPO / "models/detector/blazeface_front_128.onnx"
CLASSIFIER = REPO / "models/agegender_int8.onnx"
# (label, faces, kind)
STREAMS = (
    ("moving, 1 face", 1, "moving"),
    ("moving, 4 faces", 4, "moving"),
    ("still, 2 faces", 2, "still"),
    ("enter/leave, 2 faces", 2, "enter"),
)
IOU = 0.5


def iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def run(
    binary: Path,
    stream: Path,
    frames: int,
    fps: float,
    workers: str,
    threshold: float,
    interval: float,
    every: int,
    full: float,
    follow: float,
) -> dict:
    """One `agegender run`: per frame the reported boxes, and the last status line."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.jsonl"
        cmd = [
            str(binary),
            "run",
            "--source",
            str(stream),
            "--fps",
            str(fps),
            "--max-frames",
            str(frames),
            "--display",
            "none",
            "--serial",
            str(out),
            "--status-interval",
            "0",
            "--detect-every",
            str(every),
            "--motion-threshold",
            str(threshold),
            "--detect-max-interval",
            str(interval),
            "--full-detect-interval",
            str(full),
            "--follow-interval",
            str(follow),
            "--window-detector",
            str(WINDOW_DETECTOR),
            "--model",
            str(CLASSIFIER),
            "--detector",
            str(DETECTOR),
            "--threads",
            "1",
            # default 1, the one-thread loop: a paced replay is never dropped at capture there,
            # so every run reports every frame (the stage-parallel loop may drop frames it has
            # no room for when runs share the cores); the detection policy is the same
            "--workers",
            workers,
        ]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"motion: {' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()[-500:]}")
        boxes: dict[int, list] = {}
        status = None
        for line in out.read_text().splitlines():
            v = json.loads(line)
            if v["type"] == "face":
                boxes.setdefault(v["frame"], []).append(v["box"])
            elif v["type"] == "status":
                status = v
    if status is None or status["frames"] != frames:
        raise SystemExit(f"motion: {stream}: expected {frames} frames, the status line says {status}")
    return {"boxes": boxes, "status": status}


def setting(v: float) -> str:
    """A gate setting for the tables: 0 turns it off."""
    return "0 (off)" if v == 0 else f"{v:g}"


def against_truth(got: dict, truth: list, frames: int) -> tuple[float, int]:
    """Recall (percent) of the faces pasted in each frame and the reported boxes that match
    none: a box matches a face when its centre lies in the middle half of the pasted chip
    (streams.inside, the rule the streams' faces were chosen by), one box per face."""
    n = found = false = 0
    for f in range(frames):
        faces, boxes = truth[f], got["boxes"].get(f, [])
        n += len(faces)
        used: set = set()
        for face in faces:
            j = next((j for j, b in enumerate(boxes) if j not in used and streams.inside(b, face)), None)
            if j is not None:
                used.add(j)
        found += len(used)
        false += len(boxes) - len(used)
    return (round(100.0 * found / n, 2) if n else 100.0), false


def compare(ref: dict, got: dict, frames: int, truth: list) -> dict:
    n_ref = matched = false = 0
    for f in range(frames):
        r = ref["boxes"].get(f, [])
        g = got["boxes"].get(f, [])
        n_ref += len(r)
        pairs = sorted(((iou(a, b), i, j) for i, a in enumerate(r) for j, b in enumerate(g)), reverse=True)
        used_r, used_g = set(), set()
        for v, i, j in pairs:
            if v < IOU:
                break
            if i in used_r or j in used_g:
                continue
            used_r.add(i)
            used_g.add(j)
        matched += len(used_r)
        false += len(g) - len(used_g)
    st = got["status"]
    truth_recall, truth_false = against_truth(got, truth, frames)
    return {
        "truth_recall": truth_recall,
        "truth_false_boxes": truth_false,
        "ref_boxes": n_ref,
        "recall": round(100.0 * matched / n_ref, 2) if n_ref else 100.0,
        "false_boxes": false,
        "det_per_frame": round(st["detections"] / st["frames"], 3),
        "window_per_frame": round(st.get("window_detections", 0) / st["frames"], 3),
        "detect_skipped": st.get("detect_skipped", 0),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=300, help="frames per stream")
    p.add_argument("--fps", type=float, default=30.0, help="replay rate: the stream's clock")
    p.add_argument("--seed", type=int, default=0, help="chooses the faces and their motion")
    p.add_argument("--thresholds", default="0.001,0.002,0.005,0.01,0.02", help="motion_threshold values")
    p.add_argument("--intervals", default="1,2", help="detect_max_interval_s values")
    p.add_argument(
        "--full-intervals", default="0,1", help="full_detect_interval_s values (track-guided detection; 0: off)"
    )
    p.add_argument("--follow-intervals", default="0,0.2", help="follow_interval_s values (following; 0: off)")
    p.add_argument("--detect-every", type=int, default=1, help="the gated runs' schedule (the reference: every frame)")
    p.add_argument("--jobs", type=int, default=3, help="runs at once (gated runs mostly wait for the replay clock)")
    p.add_argument(
        "--workers",
        default="1",
        help="the runs' detector workers (auto: the stage-parallel loop, whose window searches may be a "
        "detection behind; use --jobs 1 so that it is not starved of cores and drops no frame)",
    )
    p.add_argument("--bin", default=os.environ.get("AGEGENDER_BIN", str(REPO / "target/release/agegender")))
    p.add_argument("--cache", default=os.environ.get("BENCH_CACHE", str(HERE / ".cache")))
    args = p.parse_args()
    binary = Path(args.bin)
    if not binary.is_file():
        raise SystemExit(f"motion: {binary} does not exist: build it with `cargo build --release --locked`")
    for m in (DETECTOR, WINDOW_DETECTOR, CLASSIFIER):
        if not m.is_file():
            raise SystemExit(f"motion: {m} is missing")

    import onnxruntime

    onnxruntime.set_default_logger_severity(3)
    from agegender_reference import blazeface

    det = blazeface.BlazeFace(str(DETECTOR), score_threshold=0.6, threads=1)
    source = streams.FaceSource(det, args.seed)
    cache = Path(args.cache)
    metas = {label: streams.stream(cache, source, n, args.frames, args.seed, kind) for label, n, kind in STREAMS}

    # (motion_threshold, detect_max_interval_s, detect_every, full_detect_interval_s); the
    # reference is always the whole frame through the detector on every frame, and with
    # --detect-every N > 1 the schedule alone is a row too
    every = args.detect_every
    reference = (0.0, 1.0, 1, 0.0, 0.0)
    configs = [reference] if every == 1 else [reference, (0.0, 1.0, every, 0.0, 0.0)]
    configs += [
        (float(t), float(i), every, float(f), float(g))
        for g in args.follow_intervals.split(",")
        for f in args.full_intervals.split(",")
        for t in args.thresholds.split(",")
        for i in args.intervals.split(",")
    ]
    jobs = [(label, cfg) for label in metas for cfg in configs]
    with ThreadPoolExecutor(args.jobs) as ex:
        outs = list(
            ex.map(
                lambda j: run(binary, Path(metas[j[0]]["path"]), args.frames, args.fps, args.workers, *j[1]),
                jobs,
            )
        )
    runs = dict(zip(jobs, outs, strict=True))
    res: dict = {
        "frames": args.frames,
        "fps": args.fps,
        "seed": args.seed,
        "detect_every": args.detect_every,
        "workers": args.workers,
    }
    res["streams"] = {label: {"path": Path(m["path"]).name, "in_view": m.get("in_view")} for label, m in metas.items()}
    rows = []
    for t, i, e, f, g in configs:
        row = {
            "motion_threshold": t,
            "detect_max_interval_s": i,
            "detect_every": e,
            "full_detect_interval_s": f,
            "follow_interval_s": g,
            "streams": {},
        }
        for label in metas:
            row["streams"][label] = compare(
                runs[(label, reference)], runs[(label, (t, i, e, f, g))], args.frames, metas[label]["boxes"]
            )
        rows.append(row)
    res["rows"] = rows

    labels = list(metas)
    print(f"{args.frames} frames per stream at {args.fps:g} fps, detect_every {args.detect_every}, seed {args.seed}")
    print(
        "recall % / false boxes / detections per frame (of which window searches), against whole-frame "
        "detection on every frame (IoU >= 0.5)\n"
    )
    print(
        "| detect_every | motion_threshold | detect_max_interval_s | full_detect_interval_s | follow_interval_s | "
        + " | ".join(labels)
        + " | worst recall | all false |"
    )
    print("|---|---|---|---|---|" + "---|" * len(labels) + "---|---|")
    for row in rows:
        cells = [
            f"{s['recall']:.1f} / {s['false_boxes']} / {s['det_per_frame']:.2f} ({s['window_per_frame']:.2f})"
            for s in (row["streams"][lb] for lb in labels)
        ]
        worst = min(row["streams"][lb]["recall"] for lb in labels)
        false = sum(row["streams"][lb]["false_boxes"] for lb in labels)
        off, full = setting(row["motion_threshold"]), setting(row["full_detect_interval_s"])
        follow = setting(row["follow_interval_s"])
        print(
            f"| {row['detect_every']} | {off} | {row['detect_max_interval_s']:g} | {full} | {follow} | "
            + " | ".join(cells)
            + f" | {worst:.1f} | {false} |"
        )
    print(
        "\nagainst the faces pasted into the streams (a box whose centre lies in the middle half of a "
        "pasted face finds it): recall % / false boxes\n"
    )
    print(
        "| detect_every | motion_threshold | full_detect_interval_s | follow_interval_s | "
        + " | ".join(labels)
        + " | all false |"
    )
    print("|---|---|---|---|" + "---|" * len(labels) + "---|")
    for row in rows:
        cells = [f"{s['truth_recall']:.1f} / {s['truth_false_boxes']}" for s in (row["streams"][lb] for lb in labels)]
        false = sum(row["streams"][lb]["truth_false_boxes"] for lb in labels)
        off, full = setting(row["motion_threshold"]), setting(row["full_detect_interval_s"])
        follow = setting(row["follow_interval_s"])
        print(f"| {row['detect_every']} | {off} | {full} | {follow} | " + " | ".join(cells) + f" | {false} |")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
