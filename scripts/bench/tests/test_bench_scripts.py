"""The benchmark scripts (scripts/bench) import, and their pure parts behave.

CI does not run scripts/bench/compare end to end (it measures; it does not check), so these
tests are what keeps its modules from breaking unnoticed: importing all of them catches a name
removed from one module but still imported by another.
"""

import cv2
import numpy as np
import onnx
import pytest

import arm_cost
import blazeface_ops_ort
import compare  # noqa: F401
import ort_bench  # noqa: F401
import pypipeline
import streams
import sweep  # noqa: F401


def face(box, age, female):
    return {"box": box, "age": age, "female": female}


def test_python_pipeline_tracker_keeps_ids_smooths_and_forgets():
    t = pypipeline.Tracker(iou_min=0.3, max_missed=1, alpha=0.3)
    out = t.update([face([0, 0, 10, 10], 30.0, 0.0), face([50, 50, 60, 60], 20.0, 1.0)])
    assert [f["id"] for f in out] == [1, 2]
    # the first face moves a little: same id, age smoothed towards the new estimate
    out = t.update([face([1, 1, 11, 11], 40.0, 0.0)])
    assert [f["id"] for f in out] == [1]
    assert out[0]["age"] == pytest.approx(33.0)
    # face 2 missed once (<= max_missed): still the same track when it is back
    out = t.update([face([1, 1, 11, 11], 40.0, 0.0), face([50, 50, 60, 60], 20.0, 1.0)])
    assert [f["id"] for f in out] == [1, 2]
    # missed twice (> max_missed): forgotten, so a face there again is a new track
    t.update([face([1, 1, 11, 11], 40.0, 0.0)])
    t.update([face([1, 1, 11, 11], 40.0, 0.0)])
    out = t.update([face([1, 1, 11, 11], 40.0, 0.0), face([50, 50, 60, 60], 20.0, 1.0)])
    assert [f["id"] for f in out] == [1, 3]


def test_mjpeg_frames_are_split_at_their_real_ends():
    rng = np.random.default_rng(0)
    frames = [cv2.imencode(".jpg", rng.integers(0, 255, (24, 32, 3), np.uint8))[1].tobytes() for _ in range(3)]
    data = b"".join(frames)
    spans, pos = [], 0
    while (span := streams.next_jpeg(data, pos)) is not None:
        spans.append(span)
        pos = span[1]
    assert [data[a:b] for a, b in spans] == frames
    assert streams.count_frames(data) == 3
    with pytest.raises(ValueError, match="truncated"):
        streams.next_jpeg(data[: len(frames[0]) - 10], 0)


def test_arm_cost_check_fails_on_a_regression_over_tolerance_and_ignores_tiny_ones(tmp_path):
    base = tmp_path / "baseline.json"
    base.write_text(
        '{"metrics": {"a72_f32_one_classify_insns_per_face": 1000000, "a72_int8_one_track_insns_per_frame": 500,'
        ' "a76_f16_one_classify_insns_per_face": 700000}}'
    )
    a72 = ["cortex-a72"]
    same = {"a72_f32_one_classify_insns_per_face": 1_040_000, "a72_int8_one_track_insns_per_frame": 600}
    assert arm_cost.check(same, base, 0.05, 10_000, a72)  # +4%; +100 instructions is under the floor
    worse = dict(same, a72_f32_one_classify_insns_per_face=1_060_000)
    assert not arm_cost.check(worse, base, 0.05, 10_000, a72)  # +6%
    missing = {"a72_f32_one_classify_insns_per_face": 1_000_000}
    assert not arm_cost.check(missing, base, 0.05, 10_000, a72)  # a baseline count no longer measured
    # the CPU models not counted now are not checked (CI counts the Cortex-A72 only); when both
    # are counted, the Cortex-A76's missing figure fails the check
    assert not arm_cost.check(same, base, 0.05, 10_000, ["cortex-a72", "cortex-a76"])
    both = dict(same, a76_f16_one_classify_insns_per_face=720_000)
    assert arm_cost.check(both, base, 0.05, 10_000, ["cortex-a72", "cortex-a76"])
    # f16 is counted where the board's /proc/cpuinfo has fp16 arithmetic (Pi 5), not on a Pi 4
    assert arm_cost.has_fp16("cortex-a76") and not arm_cost.has_fp16("cortex-a72")


def test_arm_cost_counts_the_crowd_loop_beside_the_swaying_face_on_the_pi4_only():
    runs = arm_cost.plan(["cortex-a72", "cortex-a76"], {"int8": "i.onnx", "f32": "f.onnx"})
    a72 = [m for m in runs[("cortex-a72", "main")][1] if m[1].startswith("loop")]
    assert a72 == [("drift", "loop-alt", arm_cost.DRIFT_CYCLE), ("crowd", "loop-alt", arm_cost.CROWD_CYCLE)]
    assert not [m for k, r in runs.items() if k[0] == "cortex-a76" for m in r[1] if m[1].startswith("loop")]
    # one counted run's children: two empty ones, (K, 2K) for the crowd loop, an empty one
    k = arm_cost.CROWD_CYCLE
    run = {
        "raw": [1000, 1010, 1020 + 90 * k, 1030 + 90 * 2 * k, 1040],
        "children": [["drift", "none", 0], ["drift", "none", 0], ["crowd", "loop-alt", k], ["crowd", "loop-alt", 2 * k]]
        + [["drift", "none", 0]],
        "fork_insns": 10,
    }
    m = arm_cost.metrics_of("cortex-a72", ["int8", "f32"], run)
    # per frame, not per face: the loop's whole cost with its four people
    assert m == {"a72_f32_crowd_loop_insns_per_frame": 90}
    m["a72_f32_drift_loop_insns_per_frame"] = 40
    lines = arm_cost.table(m, ["cortex-a72"]).splitlines()
    row = next(ln for ln in lines if ln.startswith("loop, swaying / 4 people, f32"))
    assert row.split()[-2:] == ["0.000", "0.000"]  # millions: 40 and 90 instructions


def test_blazeface_ops_ort_builds_the_reproducers_models_and_runs_them():
    models = blazeface_ops_ort.models()
    assert [n for n, _, _ in models] == ["first_conv", "depthwise", "pointwise_add_relu", "maxpool", "block"]
    # each runs, and keeps BlazeFace's first-stage shape (24 x 128 x 128; the pool halves it)
    out = {"first_conv": [1, 24, 128, 128], "maxpool": [1, 24, 64, 64]}
    for name, chw, m in models:
        assert blazeface_ops_ort.median_ms(m, chw, 1) > 0
        inferred = onnx.shape_inference.infer_shapes(m).graph.output[0].type.tensor_type.shape
        assert [d.dim_value for d in inferred.dim] == out.get(name, [1, 24, 128, 128])
