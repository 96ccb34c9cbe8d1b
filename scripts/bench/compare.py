"""agegender (Rust, tract) against the same work in Python (OpenCV + onnxruntime): one run, same
machine, same frames, same ONNX files. Run it through scripts/bench/compare (which sets up the
interpreter, the detector and the binary); see that file for the options and the output.

Steps:
  1. two replayed 640x480 MJPEG streams, 1 face and 4 faces, cached (streams.py);
  2. onnxruntime per-inference times, 1 thread: the detector, and the classifier per face in f32,
     the committed int8 and int8 forms quantized here (ort_bench.py);
  3. the Python pipeline over each stream, detecting on every frame (pypipeline.py, a child
     process so that its peak RSS is its own);
  4. `agegender bench --json` over each stream: the default configuration (what a board runs:
     the shipped board/config.toml, detection every 2nd frame) and the same on one worker,
     taking turns over --bench-rounds rounds (3, each run --bench-frames long: 1,500 frames,
     the stream looped forward and back, `bench --bounce`; the run of median fps of each, and
     the median of the rounds' speed-ups), `--detect-every 1` (the Python pipeline's work) when the
     default differs, and the f32 classifier;
  5. real time: each pipeline replays each stream at the camera's rate (--realtime-fps, 30) for N
     and 2N frames in child processes; the difference of the children's CPU time (user + system,
     getrusage) over N / fps seconds of video is CPU seconds per second of video, start-up
     (interpreter, model loading) cancelled out. The two pipelines take turns, in
     --realtime-rounds rounds (3); the figures are medians over the rounds and the ratio the
     median of the rounds' own ratios (the machine's speed drifts between minutes). Ours runs
     `agegender run` with the shipped board/config.toml; the Python pipeline detects and
     classifies every frame, as before;
  6. a table, then one JSON object as the last line of stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
import ort_bench  # noqa: E402
import streams  # noqa: E402
from agegender_reference.align import align_fast, crop_to_image_matrix  # noqa: E402
from streams import log  # noqa: E402

DETECTOR = REPO / "models/detector/blazeface_back_256.onnx"
F32 = REPO / "models/agegender_f32.onnx"
INT8 = REPO / "models/agegender_int8.onnx"
# What `agegender bench --json` must print (the contract this script reads).
CONTRACT_KEYS = ("frames", "faces", "fps", "wall_s", "detect_every", "stages", "allocations_per_frame")
CONTRACT_STAGES = ("decode", "detect", "align", "classify_per_face", "track", "display", "report", "frame")
STAGE_ROWS = ("capture",) + CONTRACT_STAGES


BOARD_CONFIG = REPO / "board" / "config.toml"


def rel(p: Path | str) -> str:
    p = Path(p)
    return str(p.relative_to(REPO)) if p.is_relative_to(REPO) else str(p)


def config_defaults() -> dict:
    """The defaults of src/config/mod.rs (impl Default for Config) that the Python side must match."""
    want = {"score_threshold": 0.6, "nms_iou": 0.3, "max_faces": 8, "track_iou": 0.3, "detect_every": 1}
    try:
        src = (REPO / "src/config/mod.rs").read_text()
        block = src[src.index("impl Default for Config") :]
        block = block[: block.index("\n}\n")]
    except (OSError, ValueError):
        log("warning: cannot read the defaults of src/config/mod.rs; assuming " + json.dumps(want))
        return want
    out = {}
    for key, fallback in want.items():
        m = re.search(rf"\b{key}:\s*([0-9_.]+)", block)
        if m is None:
            log(f"warning: src/config/mod.rs: no default for {key}; assuming {fallback}")
            out[key] = fallback
        else:
            out[key] = type(fallback)(float(m.group(1).replace("_", "")))
    return out


def check_binary(binary: Path) -> None:
    if not binary.is_file():
        raise SystemExit(f"compare: {binary} does not exist: build it with `cargo build --release --locked`")
    r = subprocess.run([str(binary), "bench", "--help"], capture_output=True, text=True)
    if r.returncode != 0 or "--json" not in r.stdout or "--bounce" not in r.stdout:
        raise SystemExit(
            f"compare: {binary} has no `bench` subcommand with --json and --bounce (an older build?): rebuild it with "
            f"`cargo build --release --locked`. Its answer: {(r.stderr or r.stdout).strip()[:300]}"
        )


def run_child(cmd: list[str], what: str) -> dict:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"compare: {what} failed (exit {r.returncode}): {' '.join(cmd)}\n{r.stderr.strip()[-2000:]}")
    lines = [line for line in r.stdout.splitlines() if line.strip()]
    try:
        out = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError) as e:
        tail = r.stdout[-500:]
        raise SystemExit(f"compare: {what}: no JSON object on the last line of stdout ({e}): {tail!r}") from e
    log(f"{what}: {out.get('fps', 0):.1f} fps ({time.perf_counter() - t0:.0f} s)")
    return out


def median_run(runs: list[dict]) -> dict:
    """Of several `agegender bench` runs of one configuration, the one of median fps."""
    return sorted(runs, key=lambda r: r["fps"])[(len(runs) - 1) // 2]


def run_ours(binary: Path, stream: Path, frames: int, warmup: int, extra: list[str], what: str) -> dict:
    # --bounce: a run longer than the stream loops it forward and back, without a seam where
    # every face jumps back to its start (a scene cut: whole-frame detections until the old
    # tracks end; 1 face, 1,500 frames: 0.023 whole-frame detections per frame with the seams,
    # 0.003 without)
    cmd = [str(binary), "bench", "--source", str(stream), "--json", "--bounce", "--frames", str(frames)]
    cmd += ["--warmup", str(warmup), "--detector", str(DETECTOR)] + extra
    out = run_child(cmd, what)
    missing = [k for k in CONTRACT_KEYS if k not in out]
    # the stage-parallel loop (workers > 1) is measured as a whole: stages only with one worker
    if out.get("workers", 1) == 1:
        missing += [f"stages.{s}" for s in CONTRACT_STAGES if s not in out.get("stages", {})]
    if missing:
        raise SystemExit(f"compare: `{' '.join(cmd)}` printed JSON without {', '.join(missing)}")
    return out


def run_python(stream: Path, frames: int, warmup: int, cfg: dict, what: str) -> dict:
    cmd = [sys.executable, str(HERE / "pypipeline.py"), "--source", str(stream), "--frames", str(frames)]
    cmd += ["--warmup", str(warmup), "--detector", str(DETECTOR), "--model", str(F32)]
    cmd += ["--score-threshold", str(cfg["score_threshold"]), "--nms-iou", str(cfg["nms_iou"])]
    cmd += ["--track-iou", str(cfg["track_iou"]), "--max-faces", str(cfg["max_faces"])]
    return run_child(cmd, what)


def child_cpu_s(cmd: list[str], what: str) -> float:
    """CPU seconds (user + system) a child process used; it must exit 0."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise SystemExit(f"compare: {what} failed (exit {r.returncode}): {' '.join(cmd)}\n{r.stderr.strip()[-2000:]}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def realtime(cmds: dict, frames: int, fps: float, rounds: int, what: str) -> dict:
    """CPU seconds per second of video at the camera's rate, for each pipeline of `cmds`
    (name -> `cmd_for(n)`, which replays n frames paced at `fps`): runs of N and 2N frames, so
    start-up cancels out. The pipelines take turns within each of `rounds` rounds (N frames of
    each, then 2N of each), so that every round compares them in the same stretch of the
    machine's speed, which drifts here by tens of percent within minutes; each pipeline's
    figure is its median over the rounds, and `ratio` (with two pipelines: the first over the
    second) is the median of the rounds' own ratios."""
    t0 = time.perf_counter()
    video_s = frames / fps
    per: dict = {name: [] for name in cmds}
    for _ in range(rounds):
        one = {name: child_cpu_s(cmd_for(frames), f"{what}, {name}") for name, cmd_for in cmds.items()}
        two = {name: child_cpu_s(cmd_for(2 * frames), f"{what}, {name}") for name, cmd_for in cmds.items()}
        for name in cmds:
            per[name].append((two[name] - one[name]) / video_s)
    out: dict = {name: {"cpu_s_per_video_s": statistics.median(v), "rounds": v} for name, v in per.items()}
    names = list(cmds)
    if len(names) == 2:
        out["ratio"] = median_ratio(zip(per[names[0]], per[names[1]], strict=True))
    figures = ", ".join(f"{name} {out[name]['cpu_s_per_video_s']:.3f}" for name in names)
    log(f"{what}: CPU-s per video-s {figures} (median of {rounds} round(s), {time.perf_counter() - t0:.0f} s)")
    return out


def first_frame_inputs(stream: Path, det) -> tuple[np.ndarray, np.ndarray]:
    """The detector's letterboxed input (1 x S x S x 3, -1..1, as agegender_reference.blazeface
    builds it) and the first face aligned (1 x 3 x 112 x 112, 0..255), from the stream's first frame."""
    data = stream.read_bytes()
    a, b = streams.next_jpeg(data, 0)
    rgb = cv2.cvtColor(cv2.imdecode(np.frombuffer(data[a:b], np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    h, w = rgb.shape[:2]
    s = det.size
    scale = s / max(h, w)
    nw, nh = round(w * scale), round(h * scale)
    canvas = np.zeros((s, s, 3), np.float32)
    ox, oy = (s - nw) // 2, (s - nh) // 2
    canvas[oy : oy + nh, ox : ox + nw] = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)
    x = (canvas / 127.5 - 1.0)[None].astype(np.float32)
    dets = det.detect(rgb)
    if not dets:
        raise SystemExit(f"compare: BlazeFace finds no face in the first frame of {stream}")
    face = align_fast(rgb, crop_to_image_matrix(dets[0][2]))
    return x, face.transpose(2, 0, 1)[None].astype(np.float32)


def med(run: dict | None, stage: str) -> float | None:
    if not run:
        return None
    s = run.get("stages", {}).get(stage)
    return None if not s or not s.get("n") else s["median_ms"]


def ratio(a, b) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def median_ratio(pairs) -> float | None:
    """The median of `a / b` over the (a, b) pairs of rounds in which the two runs took turns
    (pairs whose `b` is not positive skipped; None if none is left)."""
    ratios = [a / b for a, b in pairs if b > 0]
    return statistics.median(ratios) if ratios else None


def f(x, nd: int = 2, width: int = 9) -> str:
    if x is None:
        return "—".rjust(width)
    return f"{x:{width}.{nd}f}"


def rnd(x, sig: int = 4):
    if isinstance(x, float):
        return float(f"{x:.{sig}g}")
    if isinstance(x, dict):
        return {k: rnd(v, sig) for k, v in x.items()}
    return x


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"cpu": cpu, "nproc": os.cpu_count(), "load_avg_1m": load, "nice": os.nice(0)}


def table(res: dict) -> str:
    out = []
    m, ort, n1, n4 = res["machine"], res["ort"], res["streams"]["1"], res["streams"]["4"]
    out.append(
        f"agegender bench vs Python (OpenCV {cv2.__version__} + onnxruntime {ort['version']}, 1 thread): "
        f"{res['frames']} frames of 640x480 MJPEG per stream"
    )
    out.append(
        f"machine: {m['cpu']}, {m['nproc']} CPUs, load average {m['load_avg_1m']:.2f} at the start, "
        f"{m['load_avg_1m_end']:.2f} at the end, nice {m['nice']}"
    )
    out.append(f"streams: {n1['source']}; 1 face {n1['face_files']}, 4 faces {n4['face_files']}")
    ours_default = res["ours"].get("1_default")
    k = ours_default["detect_every"] if ours_default else None
    out.append("")
    out.append("Pipeline stages, median ms (ours: agegender bench --detect-every 1; Python: every frame)")
    head = f"{'':22}{'1 face':^30}{'4 faces':^30}"
    out.append(head)
    out.append(f"{'stage':22}" + f"{'ours':>9}{'python':>10}{'py/ours':>9}  " * 2)
    for st in STAGE_ROWS:
        row = f"{st:22}"
        for nf in ("1", "4"):
            o, p = med(res["ours"].get(f"{nf}_same"), st), med(res["python"][nf], st)
            row += f"{f(o, 3)}{f(p, 3, 10)}{f(ratio(p, o), 2)}  "
        out.append(row)

    def line(label: str, vals: list, nd=1):
        row = f"{label:22}"
        for o, p, r in vals:
            row += f"{f(o, nd)}{f(p, nd, 10)}{f(r, 2)}  "
        out.append(row)

    out.append("")
    out.append(f"{'':22}" + f"{'ours':>9}{'python':>10}{'ours/py':>9}  " * 2)
    fps = {nf: (res["ours"].get(f"{nf}_same"), res["ours"].get(f"{nf}_default"), res["python"][nf]) for nf in "14"}
    line(
        "fps, detect every 1",
        [(s and s["fps"], p["fps"], ratio(s and s["fps"], p["fps"])) for s, _d, p in fps.values()],
    )
    line(
        f"fps, default (every {k if k else '?'})",
        [(d and d["fps"], p["fps"], ratio(d and d["fps"], p["fps"])) for _s, d, p in fps.values()],
    )
    ones = [res["ours"].get(f"{nf}_default_1") for nf in "14"]
    line(
        "fps, default, 1 worker",
        [
            (o and o["fps"], p["fps"], ratio(o and o["fps"], p["fps"]))
            for o, (_s, _d, p) in zip(ones, fps.values(), strict=True)
        ],
    )
    line(
        "faces per frame",
        [(s and s.get("faces_per_frame"), p["faces_per_frame"], None) for s, _d, p in fps.values()],
        nd=2,
    )
    rt = res.get("realtime", {})
    cpu = [(rt.get(f"ours_{nf}"), rt.get(f"python_{nf}")) for nf in "14"]
    cpu = [(o and o["cpu_s_per_video_s"], p and p["cpu_s_per_video_s"]) for o, p in cpu]
    line(f"CPU-s per video-s, {rt.get('fps', 30):g} fps", [(o, p, ratio(o, p)) for o, p in cpu], nd=3)
    line(
        "peak RSS, MiB",
        [
            (d and d.get("peak_rss_mb"), p["peak_rss_mb"], ratio(d and d.get("peak_rss_mb"), p["peak_rss_mb"]))
            for _s, d, p in fps.values()
        ],
    )
    allocs = [
        f"{d['allocations_per_frame']:.1f} / {d.get('allocations_per_frame_ours', float('nan')):.1f}"
        f" / {d.get('system_allocations_per_frame', float('nan')):.2f}"
        if d
        else "—"
        for _s, d, _p in fps.values()
    ]
    out.append(
        f"{'allocations per frame':22}all / ours-only / from the system allocator: "
        f"1 face {allocs[0]}, 4 faces {allocs[1]}"
    )

    out.append("")
    out.append("Classifier per face, 112x112, batch 1, 1 thread (ms)")
    cols = f"{'median':>9}{'p10':>9}{'p90':>9}{'÷ ORT f32':>11}"
    out.append(f"{'runtime, form':40}{cols}  vs f32 (gender agree, age MAE)")
    base = ort["classifier"]["f32"]["median_ms"]
    rows = [(f"onnxruntime {k}", v, ort["agreement"].get(k)) for k, v in ort["classifier"].items() if k != "best"]
    t1 = res["ours"].get("1_same")
    if t1:
        rows.append(("tract int8 (agegender, 1-face stream)", t1["stages"]["classify_per_face"], None))
    t4 = res["ours"].get("4_same")
    if t4:
        rows.append(("tract int8 (agegender, 4-face stream)", t4["stages"]["classify_per_face"], None))
    tf = res["ours"].get("1_f32")
    if tf:
        rows.append(("tract f32 (agegender --model f32)", tf["stages"]["classify_per_face"], None))
    for name, s, agree in rows:
        extra = f"  {agree['gender_agree'] * 100:.0f} %, {agree['age_mae_years']:.2f} y" if agree else ""
        mark = " *" if name == f"onnxruntime {ort.get('best_form')}" else ""
        out.append(
            f"{name + mark:40}{f(s['median_ms'], 3)}{f(s['p10_ms'], 3)}{f(s['p90_ms'], 3)}"
            f"{f(ratio(s['median_ms'], base), 2, 11)}{extra}"
        )
    out.append(f"  * fastest onnxruntime int8 form ('best'): {ort.get('best_form')}")
    out.append("")
    out.append("Detector (BlazeFace back 256), ms")
    out.append(f"  onnxruntime, inference only (letterboxed input ready): {ort['detector']['median_ms']:.2f}")
    out.append(
        f"  detect stage (letterbox + inference + decode + NMS): ours {f(med(t1, 'detect'), 2, 0).strip()}, "
        f"Python {f(med(res['python']['1'], 'detect'), 2, 0).strip()}"
    )
    return "\n".join(out)


def summary(res: dict) -> dict:
    ort, ours, py = res["ort"], res["ours"], res["python"]
    cl = ort["classifier"]
    tract = med(ours.get("1_same"), "classify_per_face")
    tract_f32 = med(ours.get("1_f32"), "classify_per_face")
    best = cl.get("best", {}).get("median_ms")
    out = {
        "frames": res["frames"],
        "quick": res["quick"],
        "seed": res["seed"],
        "machine": res["machine"],
        "onnxruntime": ort["version"],
        "opencv": cv2.__version__,
        "detect_every_default": ours["1_default"]["detect_every"] if ours.get("1_default") else None,
        "ort_best_form": ort.get("best_form"),
        "classifier_ms": {k: v["median_ms"] for k, v in cl.items() if k != "best"}
        | {"tract_int8": tract, "tract_f32": tract_f32},
        "detector_ms": {
            "ort_inference": ort["detector"]["median_ms"],
            "ours_stage": med(ours.get("1_same"), "detect"),
            "python_stage": med(py["1"], "detect"),
        },
        "classifier_tract_over_ort_f32": ratio(tract, cl["f32"]["median_ms"]),
        "classifier_tract_f32_over_ort_f32": ratio(tract_f32, cl["f32"]["median_ms"]),
        "classifier_tract_over_ort_best": ratio(tract, best),
        "classifier_tract_over_ort_int8_committed": ratio(tract, cl.get("int8_committed", {}).get("median_ms")),
    }
    rt = res.get("realtime", {})
    for nf, sfx in (("1", ""), ("4", "_4faces")):
        same, default, p = ours.get(f"{nf}_same"), ours.get(f"{nf}_default"), py[nf]
        one = ours.get(f"{nf}_default_1")
        rt_ours, rt_py = rt.get(f"ours_{nf}"), rt.get(f"python_{nf}")
        cpu_ours = rt_ours and rt_ours["cpu_s_per_video_s"]
        cpu_py = rt_py and rt_py["cpu_s_per_video_s"]
        out |= {
            f"cpu_s_per_video_s_ours{sfx}": cpu_ours,
            f"cpu_s_per_video_s_python{sfx}": cpu_py,
            # the median of the interleaved rounds' own ratios (realtime())
            f"cpu_s_per_video_s_ratio_vs_python{sfx}": rt.get(f"ratio_{nf}"),
            f"classifier_calls_per_frame{sfx}": default and default.get("classifier_calls_per_frame"),
            f"detections_per_frame{sfx}": default and default.get("detections_per_frame"),
            f"window_detections_per_frame{sfx}": default and default.get("window_detections_per_frame"),
            f"latency_p50_ms{sfx}": default and default.get("latency_p50_ms"),
            f"latency_p95_ms{sfx}": default and default.get("latency_p95_ms"),
            f"pipeline_same_work_ratio_vs_python{sfx}": ratio(same and same["fps"], p["fps"]),
            f"pipeline_fps_ratio_vs_python{sfx}": ratio(default and default["fps"], p["fps"]),
            # the default on every core / the same configuration on one thread
            f"parallel_speedup{sfx}": ours.get(f"{nf}_parallel_speedup"),
            # the same with detection on every frame: the machine's ceiling for the loop
            f"parallel_speedup_detect_every_1{sfx}": ours.get(f"{nf}_parallel_speedup_detect_every_1"),
            f"workers{sfx}": default and default.get("workers", 1),
            f"fps_ours_one_worker{sfx}": one and one["fps"],
            f"fps_ours_detect_every_1{sfx}": same and same["fps"],
            f"fps_ours_default{sfx}": default and default["fps"],
            f"fps_python{sfx}": p["fps"],
            f"allocations_per_frame{sfx}": default and default["allocations_per_frame"],
            f"allocations_per_frame_ours{sfx}": default and default.get("allocations_per_frame_ours"),
            # of allocations_per_frame, those not served from the pool (agegender::heap)
            f"system_allocations_per_frame{sfx}": default and default.get("system_allocations_per_frame"),
            f"peak_rss_mb{sfx}": default and default.get("peak_rss_mb"),
            f"python_peak_rss_mb{sfx}": p["peak_rss_mb"],
            f"faces_per_frame_ours{sfx}": same and same.get("faces_per_frame"),
            f"faces_per_frame_python{sfx}": p["faces_per_frame"],
        }
    out["wall_s"] = res["wall_s"]
    return rnd(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, help="frames per stream, measured per run (default 300; 60 with --quick)")
    p.add_argument("--quick", action="store_true", help="fewer frames and runs: a smoke test, not a measurement")
    p.add_argument("--json-only", action="store_true", help="print only the JSON line on stdout")
    p.add_argument("--runs", type=int, help="onnxruntime timed runs per model (default 300; 50 with --quick)")
    p.add_argument("--calib", type=int, default=100, help="aligned faces to calibrate the int8 forms on")
    p.add_argument("--seed", type=int, default=0, help="chooses the faces and their motion")
    p.add_argument("--bin", default=os.environ.get("AGEGENDER_BIN", str(REPO / "target/release/agegender")))
    p.add_argument("--no-ours", action="store_true", help="skip the agegender binary (Python side only)")
    p.add_argument("--cache", default=os.environ.get("BENCH_CACHE", str(HERE / ".cache")))
    p.add_argument("--realtime-fps", type=float, default=30.0, help="the camera's rate for the real-time runs")
    p.add_argument(
        "--realtime-frames", type=int, help="N of the real-time runs (N and 2N frames; default 150, 30 with --quick)"
    )
    p.add_argument(
        "--bench-rounds",
        type=int,
        help="rounds of the default and one-worker `agegender bench` runs, taking turns (default 3, 1 with --quick)",
    )
    p.add_argument(
        "--bench-frames",
        type=int,
        help="frames of each of those runs (the stream looped forward and back; default 5 x --frames, "
        "--frames with --quick)",
    )
    p.add_argument(
        "--realtime-rounds",
        type=int,
        help="rounds of the real-time runs, ours and Python's taking turns in each (default 3, 1 with --quick)",
    )
    args = p.parse_args(argv)
    frames = args.frames or (60 if args.quick else 300)
    runs = args.runs or (50 if args.quick else 300)
    warmup_frames = 5 if args.quick else 20
    warmup_runs = 5 if args.quick else 30
    calib_n = min(args.calib, 32) if args.quick else args.calib
    if frames < 1 or runs < 1 or calib_n < 1:
        p.error("--frames, --runs and --calib must be at least 1")
    t_start = time.perf_counter()
    binary = Path(args.bin)
    cache = Path(args.cache)

    for m in (DETECTOR, F32, INT8):
        if not m.is_file():
            raise SystemExit(
                f"compare: {rel(m)} is missing (scripts/fetch-detector for the detector; "
                "scripts/train/run-all or a release for the classifier)"
            )
    if not args.no_ours:
        check_binary(binary)

    import onnxruntime

    onnxruntime.set_default_logger_severity(3)
    cv2.setNumThreads(1)
    from agegender_reference import blazeface

    res: dict = {"frames": frames, "quick": args.quick, "seed": args.seed, "machine": machine()}
    cfg = config_defaults()
    log(f"config defaults (src/config/mod.rs): {cfg}")
    if cfg["nms_iou"] != 0.3:
        plain = blazeface.nms
        blazeface.nms = lambda dets, _iou: plain(dets, cfg["nms_iou"])
    det = blazeface.BlazeFace(str(DETECTOR), score_threshold=cfg["score_threshold"], threads=1)
    source = streams.FaceSource(det, args.seed)
    res["streams"] = {str(nf): streams.stream(cache, source, nf, frames, args.seed) for nf in (1, 4)}
    paths = {nf: Path(s["path"]) for nf, s in res["streams"].items()}

    det_x, face = first_frame_inputs(paths["1"], det)
    calib = source.calibration_faces(calib_n)
    res["ort"] = ort_bench.run(
        DETECTOR, F32, INT8, det_x, face, calib, f"{source.key}_s{args.seed}_n{calib_n}", cache, runs, warmup_runs
    )

    bench_rounds = args.bench_rounds or (1 if args.quick else 3)
    # the pair's runs are the few seconds that decide parallel_speedup: the stream, looped forward and back
    bench_frames = args.bench_frames or (frames if args.quick else 5 * frames)
    res["python"], res["ours"] = {}, {}
    for nf in ("1", "4"):
        res["python"][nf] = run_python(paths[nf], frames, warmup_frames, cfg, f"Python pipeline, {nf} face(s)")
        if args.no_ours:
            continue
        one = ["--workers", "1"]
        # the classifier table's tract int8 rows (the `_same` runs) name the int8 file
        int8 = ["--model", str(INT8)]
        # "default" is what a board runs: the shipped board/config.toml (detect_every,
        # workers = auto: the stage-parallel loop on every core) and the classifier form the
        # binary chooses for this CPU (model_form = auto: f32 on x86-64 and the Pi 4)
        shipped = ["--config", str(BOARD_CONFIG)]

        # ... and the same configuration on one thread: parallel_speedup is default / this. The
        # two take turns over --bench-rounds rounds (a run is a second or two, and the
        # machine's speed drifts): each is the run of median fps, the speed-up the median of
        # the rounds' own ratios
        def worker_pairs(extra: list[str], n: int, what: str, nf=nf, one=one) -> list[tuple[dict, dict]]:
            """(default workers, one worker) runs of `extra`, taking turns over the rounds."""
            pairs = []
            for r in range(bench_rounds):
                d = run_ours(binary, paths[nf], n, warmup_frames, extra, f"{what} ({r + 1})")
                o = (
                    d
                    if d.get("workers", 1) == 1
                    else run_ours(binary, paths[nf], n, warmup_frames, extra + one, f"{what}, 1 worker ({r + 1})")
                )
                pairs.append((d, o))
            return pairs

        pairs = worker_pairs(shipped, bench_frames, f"agegender bench, {nf} face(s), default")
        res["ours"][f"{nf}_default"] = median_run([d for d, _ in pairs])
        res["ours"][f"{nf}_default_1"] = median_run([o for _, o in pairs])
        res["ours"][f"{nf}_parallel_speedup"] = median_ratio((d["fps"], o["fps"]) for d, o in pairs)
        # ... and with the detector on every frame (motion gating off): the work is then almost
        # all detection, which the workers share, so this is about what the machine's cores give
        # the loop at best; beside parallel_speedup, how much of that the shipped loop gets
        every = ["--detect-every", "1", "--motion-threshold", "0"]
        ceiling = worker_pairs(shipped + every, frames, f"agegender bench, {nf} face(s), --detect-every 1")
        res["ours"][f"{nf}_parallel_speedup_detect_every_1"] = median_ratio((d["fps"], o["fps"]) for d, o in ceiling)
        # the same work as the Python pipeline: the detector on every frame (motion gating
        # off), stage by stage (one worker)
        res["ours"][f"{nf}_same"] = run_ours(
            binary,
            paths[nf],
            frames,
            warmup_frames,
            int8 + one + ["--detect-every", "1", "--motion-threshold", "0"],
            f"agegender bench, {nf} face(s), --detect-every 1",
        )
        if nf == "1":
            res["ours"]["1_f32"] = run_ours(
                binary,
                paths[nf],
                frames,
                warmup_frames,
                ["--model", str(F32), "--workers", "1", "--detect-every", "1", "--motion-threshold", "0"],
                "agegender bench, 1 face, f32 classifier",
            )
    # real time: CPU seconds per second of video at the camera's rate
    rt_n = args.realtime_frames or (30 if args.quick else 150)
    fps = args.realtime_fps
    rt_rounds = args.realtime_rounds or (1 if args.quick else 3)
    res["realtime"] = {"fps": fps, "frames": rt_n, "rounds": rt_rounds}
    for nf in ("1", "4"):
        cmds = {
            "ours": lambda n, nf=nf: [
                str(binary),
                "run",
                "--config",
                str(BOARD_CONFIG),
                "--source",
                str(paths[nf]),
                "--loop",
                "--fps",
                str(fps),
                # frames come as from a camera: a frame the loop has no room for is dropped
                "--as-camera",
                "--max-frames",
                str(n),
                "--display",
                "none",
                "--serial",
                "-",
                "--status-interval",
                "0",
                "--detector",
                str(DETECTOR),
            ],
            "python": lambda n, nf=nf: [
                sys.executable,
                str(HERE / "pypipeline.py"),
                "--source",
                str(paths[nf]),
                "--frames",
                str(n),
                "--warmup",
                "0",
                "--pace",
                str(fps),
                "--detector",
                str(DETECTOR),
                "--model",
                str(F32),
                "--score-threshold",
                str(cfg["score_threshold"]),
                "--nms-iou",
                str(cfg["nms_iou"]),
                "--track-iou",
                str(cfg["track_iou"]),
                "--max-faces",
                str(cfg["max_faces"]),
            ],
        }
        if args.no_ours:
            del cmds["ours"]
        got = realtime(cmds, rt_n, fps, rt_rounds, f"{nf} face(s), {fps:g} fps real time")
        for name in cmds:
            res["realtime"][f"{name}_{nf}"] = got[name]
        res["realtime"][f"ratio_{nf}"] = got.get("ratio")
    res["wall_s"] = time.perf_counter() - t_start
    res["machine"]["load_avg_1m_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    if not args.json_only:
        print(table(res))
        print()
    log(f"done in {res['wall_s']:.0f} s")
    print(json.dumps(summary(res)))


if __name__ == "__main__":
    main()
