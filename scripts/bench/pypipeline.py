"""The pipeline a Python user would write instead of agegender, timed stage by stage.

    python scripts/bench/pypipeline.py --source STREAM.mjpeg --frames 300 [--warmup 20]

Reads a concatenated-JPEG stream frame by frame (looping, like `agegender bench`), decodes with
OpenCV (cv2.imdecode, then BGR to RGB), detects with BlazeFace through onnxruntime
(agegender_reference.blazeface, scripts/reference: letterbox, 1 thread), aligns with
agegender_reference.align (the same template as src/align.rs), classifies every face with the f32
classifier through onnxruntime (1 thread), keeps greedy IoU tracks with a smoothed age, draws boxes
and labels on a copy of the frame with OpenCV, and serialises one JSON line per face. The detector runs on every frame.
With --pace FPS each frame waits for its time, as from a camera (scripts/bench/compare's
real-time runs, which read the CPU time the process used).
OpenCV is held to one thread, as the Rust frame loop is single-threaded.

Prints one JSON object shaped like `agegender bench --json` (frames, faces, fps, stages, ...).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
from agegender_reference import blazeface  # noqa: E402
from agegender_reference.align import INPUT_SIZE, align_fast, crop_to_image_matrix  # noqa: E402
from streams import next_jpeg  # noqa: E402

STAGES = ("capture", "decode", "detect", "align", "classify_per_face", "track", "display", "report", "frame")


def stats(samples: list[float]) -> dict:
    """Same quantiles as src/bench.rs (nearest rank on the sorted samples)."""
    if not samples:
        return {"median_ms": 0.0, "p10_ms": 0.0, "p90_ms": 0.0, "mean_ms": 0.0, "n": 0}
    s = sorted(samples)
    q = lambda p: s[int(round((len(s) - 1) * p))]
    return {"median_ms": q(0.5), "p10_ms": q(0.1), "p90_ms": q(0.9), "mean_ms": sum(s) / len(s), "n": len(s)}


def peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Classifier:
    def __init__(self, path: str):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        inp = self.sess.get_inputs()[0]
        self.name = inp.name
        self.nchw = list(inp.shape[1:]) == [3, INPUT_SIZE, INPUT_SIZE]
        if not self.nchw and list(inp.shape[1:]) != [INPUT_SIZE, INPUT_SIZE, 3]:
            raise SystemExit(f"classifier {path}: input {inp.shape} is neither N x 3 x 112 x 112 nor N x 112 x 112 x 3")
        self.outputs = [o.name for o in self.sess.get_outputs()]
        self.ages = np.arange(101, dtype=np.float32)

    def __call__(self, face_hwc: np.ndarray) -> tuple[float, float]:
        """(P female, expected age) of one aligned face (H x W x 3 uint8)."""
        x = face_hwc.transpose(2, 0, 1) if self.nchw else face_hwc
        out = dict(zip(self.outputs, self.sess.run(None, {self.name: x[None].astype(np.float32)}), strict=True))
        gender, age = out["gender"][0], out["age"][0]
        return float(gender[1]), float(age @ self.ages[: age.shape[0]])


class Tracker:
    """Greedy IoU matching; a track keeps its id, smooths the age and is dropped after misses."""

    def __init__(self, iou_min: float = 0.3, max_missed: int = 5, alpha: float = 0.3):
        self.iou_min, self.max_missed, self.alpha = iou_min, max_missed, alpha
        self.tracks: list[dict] = []
        self.next_id = 1

    def update(self, faces: list[dict]) -> list[dict]:
        free = list(range(len(self.tracks)))
        for f in faces:
            best, best_iou = None, self.iou_min
            for i in free:
                v = blazeface.iou(self.tracks[i]["box"], f["box"])
                if v >= best_iou:
                    best, best_iou = i, v
            if best is None:
                self.tracks.append({"id": self.next_id, "box": f["box"], "age": f["age"], "female": f["female"]})
                self.next_id += 1
                continue
            free.remove(best)
            t = self.tracks[best]
            t["box"], t["missed"] = f["box"], 0
            t["age"] += self.alpha * (f["age"] - t["age"])
            t["female"] += self.alpha * (f["female"] - t["female"])
        for i in free:
            self.tracks[i]["missed"] = self.tracks[i].get("missed", 0) + 1
        self.tracks = [t for t in self.tracks if t.get("missed", 0) <= self.max_missed]
        return [t for t in self.tracks if t.get("missed", 0) == 0]


def frames_of(data: bytes):
    """JPEG frames of the stream, looping forever."""
    pos = 0
    while True:
        f = next_jpeg(data, pos)
        if f is None:
            if pos == 0:
                raise SystemExit("the stream holds no JPEG frame")
            pos = 0
            continue
        pos = f[1]
        yield memoryview(data)[f[0] : f[1]]


def run(args) -> dict:
    cv2.setNumThreads(1)
    ort.set_default_logger_severity(3)
    if args.nms_iou != 0.3:  # the reference BlazeFace merges at IoU 0.3; use the configured value instead
        plain = blazeface.nms
        blazeface.nms = lambda dets, _iou: plain(dets, args.nms_iou)
    det = blazeface.BlazeFace(args.detector, score_threshold=args.score_threshold, threads=1)
    clf = Classifier(args.model)
    tracker = Tracker(iou_min=args.track_iou)
    data = Path(args.source).read_bytes()
    frames = frames_of(data)
    canvas = None
    t = {s: [] for s in STAGES}
    faces_total = 0
    faces_shown = 0
    wall_start = None
    loop_start = time.perf_counter()
    for k in range(args.warmup + args.frames):
        if args.pace > 0:
            # a camera's rate: frame k is there at loop start + k / pace, not before
            due = loop_start + k / args.pace
            while (now := time.perf_counter()) < due:
                time.sleep(due - now)
        if k == args.warmup:
            t = {s: [] for s in STAGES}
            faces_total = faces_shown = 0
            wall_start = time.perf_counter()
        t0 = time.perf_counter()
        jpg = next(frames)
        t1 = time.perf_counter()
        bgr = cv2.imdecode(np.frombuffer(jpg, np.uint8), cv2.IMREAD_COLOR)
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        t2 = time.perf_counter()
        dets = det.detect(rgb)[: args.max_faces]  # letterbox, ORT, decode, NMS
        t3 = time.perf_counter()
        crops = [align_fast(rgb, crop_to_image_matrix(kp)) for _s, _b, kp in dets]
        t4 = time.perf_counter()
        faces = []
        for (score, box, _kp), crop in zip(dets, crops, strict=True):
            c0 = time.perf_counter()
            female, age = clf(crop)
            t["classify_per_face"].append((time.perf_counter() - c0) * 1e3)
            faces.append({"box": [float(v) for v in box], "score": score, "female": female, "age": age})
        t5 = time.perf_counter()
        shown = tracker.update(faces)
        t6 = time.perf_counter()
        if canvas is None:
            canvas = np.empty_like(rgb)
        np.copyto(canvas, rgb)
        for tr in shown:
            x0, y0, x1, y1 = (int(round(v)) for v in tr["box"])
            label = f"#{tr['id']} {'F' if tr['female'] >= 0.5 else 'M'} {tr['age']:.0f}"
            cv2.rectangle(canvas, (x0, y0), (x1, y1), (0, 255, 0), 2)
            cv2.putText(canvas, label, (x0, max(12, y0 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 255, 0), 1)
        t7 = time.perf_counter()
        lines = [
            json.dumps(
                {
                    "v": 1,
                    "frame": k,
                    "track": tr["id"],
                    "box": [round(v, 1) for v in tr["box"]],
                    "gender": "female" if tr["female"] >= 0.5 else "male",
                    "p_female": round(tr["female"], 3),
                    "age": round(tr["age"], 1),
                }
            ).encode()
            + b"\n"
            for tr in shown
        ]
        del lines
        t8 = time.perf_counter()
        for name, a, b in (
            ("capture", t0, t1),
            ("decode", t1, t2),
            ("detect", t2, t3),
            ("align", t3, t4),
            ("track", t5, t6),
            ("display", t6, t7),
            ("report", t7, t8),
            ("frame", t0, t8),
        ):
            t[name].append((b - a) * 1e3)
        faces_total += len(faces)
        faces_shown += len(shown)
    wall = time.perf_counter() - wall_start
    return {
        "frames": args.frames,
        "faces": faces_total,
        "faces_per_frame": faces_shown / args.frames,
        "fps": args.frames / wall,
        "wall_s": wall,
        "detect_every": 1,
        "stages": {s: stats(v) for s, v in t.items()},
        "peak_rss_mb": peak_rss_mb(),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", required=True)
    p.add_argument("--detector", default=str(REPO / "models/detector/blazeface_back_256.onnx"))
    p.add_argument("--model", default=str(REPO / "models/agegender_f32.onnx"))
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--score-threshold", type=float, default=0.6)
    p.add_argument("--nms-iou", type=float, default=0.3)
    p.add_argument("--track-iou", type=float, default=0.3)
    p.add_argument("--max-faces", type=int, default=8)
    p.add_argument("--pace", type=float, default=0.0, help="frames per second as a camera gives them (0: no wait)")
    args = p.parse_args(argv)
    if args.frames < 1:
        p.error("--frames must be at least 1")
    print(json.dumps(run(args)))


if __name__ == "__main__":
    main()
