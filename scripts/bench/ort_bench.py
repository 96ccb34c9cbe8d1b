"""Per-inference timings through onnxruntime (CPU, 1 thread) for scripts/bench/compare.

The detector on its 256x256 letterboxed input, and the classifier on one aligned 112x112 face in
f32, in the committed models/agegender_int8.onnx, and in static int8 forms built here with
onnxruntime.quantization.quantize_static (uint8 activations, int8 weights, MinMax calibration on
aligned faces): QOperator per-tensor and per-channel, QDQ per-tensor and per-channel, every op
onnxruntime quantizes. Built forms are cached by the f32 model's sha256 and the calibration set.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from streams import log

FORMS = {
    # name: (QDQ?, per-channel?)
    "qop_u8s8_pertensor": (False, False),
    "qop_u8s8_perchannel": (False, True),
    "qdq_u8s8_pertensor": (True, False),
    "qdq_u8s8_perchannel": (True, True),
}


def session(path: str | Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def spread(t: np.ndarray) -> dict:
    return {
        "median_ms": float(np.median(t)),
        "p10_ms": float(np.percentile(t, 10)),
        "p90_ms": float(np.percentile(t, 90)),
        "mean_ms": float(t.mean()),
        "n": len(t),
    }


def time_runs(cases: dict[str, tuple], runs: int, warmup: int, blocks: int = 10) -> dict[str, dict]:
    """Wall time of sess.run per call (ms) for each case name -> (session, feed): `warmup` calls
    each, then `runs` timed calls each, interleaved in `blocks` rounds so that a change in the
    machine's load touches every case alike."""
    for sess, feed in cases.values():
        for _ in range(warmup):
            sess.run(None, feed)
    times = {name: [] for name in cases}
    per_block = [runs // blocks + (1 if b < runs % blocks else 0) for b in range(blocks)]
    for n in per_block:
        for name, (sess, feed) in cases.items():
            for _ in range(n):
                t0 = time.perf_counter_ns()
                sess.run(None, feed)
                times[name].append((time.perf_counter_ns() - t0) / 1e6)
    return {name: spread(np.array(t)) for name, t in times.items()}


def classifier_input(sess: ort.InferenceSession, faces_nchw: np.ndarray) -> tuple[str, np.ndarray]:
    """(input name, faces in the model's layout) read from the ONNX input."""
    inp = sess.get_inputs()[0]
    dims = list(inp.shape[1:])
    if dims == [3, 112, 112]:
        return inp.name, faces_nchw
    if dims == [112, 112, 3]:
        return inp.name, faces_nchw.transpose(0, 2, 3, 1).copy()
    raise SystemExit(f"classifier input {inp.name} {inp.shape}: expected N x 3 x 112 x 112 or N x 112 x 112 x 3")


def face_reader(name: str, faces: np.ndarray):
    """A calibration reader that feeds the aligned faces one at a time."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.i = 0

        def get_next(self):
            if self.i >= len(faces):
                return None
            self.i += 1
            return {name: faces[self.i - 1 : self.i]}

        def rewind(self):
            self.i = 0

    return Reader()


def quantize(src: Path, dst: Path, name: str, faces: np.ndarray, qdq: bool, per_channel: bool) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = dst.with_suffix(".pre.onnx")
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    tmp = dst.with_suffix(".part.onnx")
    quantize_static(
        str(pre),
        str(tmp),
        face_reader(name, faces),
        quant_format=QuantFormat.QDQ if qdq else QuantFormat.QOperator,
        per_channel=per_channel,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
    )
    os.remove(pre)
    os.replace(tmp, dst)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_forms(f32: Path, cache: Path, calib: np.ndarray, calib_key: str) -> dict[str, Path]:
    sess = session(f32)
    name, faces = classifier_input(sess, calib)
    folder = cache / "quant" / f"{sha256(f32)[:16]}_{calib_key}"
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for form, (qdq, per_channel) in FORMS.items():
        dst = folder / f"{form}.onnx"
        if not dst.is_file():
            log(f"quantizing {f32.name} -> {form} ({len(faces)} calibration faces)")
            try:
                quantize(f32, dst, name, faces, qdq, per_channel)
            except Exception as e:  # a form onnxruntime cannot build is reported, not fatal
                log(f"warning: {form}: quantization failed: {e}")
                continue
        out[form] = dst
    return out


def outputs(sess: ort.InferenceSession, feed: dict) -> tuple[np.ndarray, np.ndarray]:
    """(gender, age) probabilities: by name when the outputs are called so, else in order."""
    names = [o.name for o in sess.get_outputs()]
    out = dict(zip(names, sess.run(None, feed), strict=True))
    if "gender" in out and "age" in out:
        return out["gender"], out["age"]
    return out[names[0]], out[names[1]]


def agreement(sess: ort.InferenceSession, ref: ort.InferenceSession, faces: np.ndarray) -> dict | None:
    """How far a form's outputs are from f32 on the given faces: share of gender decisions that
    agree, mean |difference of expected age| in years. None when the outputs are not those two."""
    name, x = classifier_input(sess, faces)
    rname, rx = classifier_input(ref, faces)
    same, dage = 0, []
    try:
        for i in range(len(faces)):
            g, a = outputs(sess, {name: x[i : i + 1]})
            rg, ra = outputs(ref, {rname: rx[i : i + 1]})
            ages = np.arange(a.shape[1])
            same += int(g[0].argmax() == rg[0].argmax())
            dage.append(abs(float(a[0] @ ages) - float(ra[0] @ ages)))
    except (IndexError, ValueError) as e:
        log(f"warning: cannot compare the outputs with f32: {e}")
        return None
    return {"gender_agree": same / len(faces), "age_mae_years": float(np.mean(dage))}


def run(
    detector: Path,
    f32: Path,
    int8: Path,
    det_input: np.ndarray,
    face: np.ndarray,
    calib: np.ndarray,
    calib_key: str,
    cache: Path,
    runs: int,
    warmup: int,
) -> dict:
    """det_input: 1 x 256 x 256 x 3 float32 (letterboxed, -1..1); face: 1 x 3 x 112 x 112 float32 0..255."""
    ort.set_default_logger_severity(3)
    res: dict = {"version": ort.__version__, "classifier": {}, "agreement": {}}
    dsess = session(detector)
    res["detector"] = time_runs({"d": (dsess, {dsess.get_inputs()[0].name: det_input})}, runs, warmup)["d"]
    log(f"ORT detector: {res['detector']['median_ms']:.2f} ms")

    forms = {"f32": f32, "int8_committed": int8}
    forms.update(build_forms(f32, cache, calib, calib_key))
    ref = session(f32)
    check = calib[: min(32, len(calib))]
    cases = {}
    for form, path in forms.items():
        try:
            sess = session(path)
            name, x = classifier_input(sess, face)
            sess.run(None, {name: x})
            if form != "f32" and (agree := agreement(sess, ref, check)) is not None:
                res["agreement"][form] = agree
            cases[form] = (sess, {name: x})
        except Exception as e:
            log(f"warning: {form} ({path}): onnxruntime cannot run it: {e}")
    res["classifier"] = time_runs(cases, runs, warmup)
    for form, s in res["classifier"].items():
        log(f"ORT classifier {form}: {s['median_ms']:.3f} ms")
    built = {k: v for k, v in res["classifier"].items() if k != "f32"}
    if built:
        best = min(built, key=lambda k: built[k]["median_ms"])
        res["best_form"] = best
        res["classifier"]["best"] = dict(built[best], form=best)
    res["forms"] = {k: str(v) for k, v in forms.items()}
    return res
