"""The models of examples/blazeface_ops_repro.rs (each kind of BlazeFace layer alone, at the
shapes of the back-256 network's first stage) built with onnx.helper and timed through
onnxruntime (CPU, 1 thread, all graph optimisations): the other half of the upstream note
docs/tract-detector.md.

    scripts/bench/.venv/bin/python scripts/bench/blazeface_ops_ort.py [RUNS]
"""

from __future__ import annotations

import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

C = 24


def weights(name: str, dims: list[int], rng: np.random.Generator) -> onnx.TensorProto:
    return numpy_helper.from_array(rng.uniform(-0.1, 0.1, dims).astype(np.float32), name)


def model(name: str, chw: tuple[int, int, int], nodes: list, inits: list) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, *chw])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, None)],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)], ir_version=7)


def models() -> list[tuple[str, tuple[int, int, int], onnx.ModelProto]]:
    rng = np.random.default_rng(0x5EED)

    def dw(x, out):
        return helper.make_node("Conv", [x, "dw_w"], [out], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=C)

    def pw(x, out):
        return helper.make_node("Conv", [x, "pw_w", "pw_b"], [out], kernel_shape=[1, 1])

    first = model(
        "first_conv",
        (3, 256, 256),
        [
            helper.make_node(
                "Conv", ["input", "w", "b"], ["conv"], kernel_shape=[5, 5], strides=[2, 2], pads=[1, 1, 2, 2]
            ),
            helper.make_node("Relu", ["conv"], ["output"]),
        ],
        [weights("w", [C, 3, 5, 5], rng), weights("b", [C], rng)],
    )
    depthwise = model("depthwise", (C, 128, 128), [dw("input", "output")], [weights("dw_w", [C, 1, 3, 3], rng)])
    tail = model(
        "pointwise_add_relu",
        (C, 128, 128),
        [
            pw("input", "pw"),
            helper.make_node("Add", ["input", "pw"], ["add"]),
            helper.make_node("Relu", ["add"], ["output"]),
        ],
        [weights("pw_w", [C, C, 1, 1], rng), weights("pw_b", [C], rng)],
    )
    pool = model(
        "maxpool",
        (C, 128, 128),
        [helper.make_node("MaxPool", ["input"], ["output"], kernel_shape=[2, 2], strides=[2, 2])],
        [],
    )
    block = model(
        "block",
        (C, 128, 128),
        [
            dw("input", "dw"),
            pw("dw", "pw"),
            helper.make_node("Add", ["input", "pw"], ["add"]),
            helper.make_node("Relu", ["add"], ["output"]),
        ],
        [weights("dw_w", [C, 1, 3, 3], rng), weights("pw_w", [C, C, 1, 1], rng), weights("pw_b", [C], rng)],
    )
    return [
        ("first_conv", (3, 256, 256), first),
        ("depthwise", (C, 128, 128), depthwise),
        ("pointwise_add_relu", (C, 128, 128), tail),
        ("maxpool", (C, 128, 128), pool),
        ("block", (C, 128, 128), block),
    ]


def median_ms(m: onnx.ModelProto, chw: tuple[int, int, int], runs: int) -> float:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(7).uniform(-1, 1, (1, *chw)).astype(np.float32)
    for _ in range(5):
        sess.run(None, {"input": x})
    t = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        sess.run(None, {"input": x})
        t.append((time.perf_counter_ns() - t0) / 1e6)
    return float(np.median(t))


def main() -> None:
    runs = max(1, int(sys.argv[1])) if len(sys.argv) > 1 else 200
    print(f"onnxruntime {ort.__version__}, median of {runs} runs")
    for name, chw, m in models():
        print(f"{name:<20} {median_ms(m, chw, runs):8.3f} ms")


if __name__ == "__main__":
    main()
