"""Export a trained checkpoint to ONNX (batch 1 and dynamic batch) and quantize it to int8.

    python scripts/train/export.py --checkpoint RUN/best.pt --data WORK --out models/

Writes agegender_f32.onnx (batch 1), agegender_f32_dynamic.onnx (any batch) and
agegender_int8.onnx (QOperator, Conv/MatMul/Relu/MaxPool only: the form tract runs on integer
kernels), after checking ONNX against PyTorch (max abs diff <= 1e-4). Extra quantized forms for the
model card's comparison go to --variants DIR when given.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from model import INPUT_SIZE, AgeGenderNet, Exported, widths_of

OPSET = 13


def load_net(checkpoint: str | None) -> AgeGenderNet:
    if not checkpoint:
        return AgeGenderNet().eval()
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    weights = state.get("ema") or state["model"]
    # the CORAL head has a shared weight `age.w` and thresholds `age.b` (model.py)
    # the stage widths are the base width (the stem's output channels) times 1, 2, 4, 8
    base = weights["stem.0.weight"].shape[0]
    net = AgeGenderNet(widths=widths_of(base), age_head="coral" if "age.b" in weights else "dex")
    net.load_state_dict(weights)
    return net.eval()


def export(net: AgeGenderNet, path: Path, dynamic: bool) -> None:
    x = torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE)
    kwargs = {}
    if dynamic:
        kwargs["dynamic_axes"] = {"input": {0: "batch"}, "gender": {0: "batch"}, "age": {0: "batch"}}
    torch.onnx.export(
        Exported(net).eval(),
        (x,),
        str(path),
        input_names=["input"],
        output_names=["gender", "age"],
        opset_version=OPSET,
        do_constant_folding=True,
        dynamo=False,
        **kwargs,
    )
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    # Drop initializers from the graph inputs (older exporters list them) and store the file whole.
    onnx.save(model, str(path))


def check_against_torch(net: AgeGenderNet, path: Path, batch: int, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, size=(batch, 3, INPUT_SIZE, INPUT_SIZE)).astype(np.float32)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    g, a = sess.run(None, {"input": x})
    with torch.no_grad():
        tg, ta = Exported(net)(torch.from_numpy(x))
    return float(max(np.abs(g - tg.numpy()).max(), np.abs(a - ta.numpy()).max()))


class FaceCalibration:
    """Feeds aligned training faces to onnxruntime's calibrator."""

    def __init__(self, faces: np.ndarray):
        self.faces = faces
        self.i = 0

    def get_next(self):
        if self.i >= len(self.faces):
            return None
        x = self.faces[self.i : self.i + 1].astype(np.float32)
        self.i += 1
        return {"input": x}

    def rewind(self):
        self.i = 0


def quantize(src: Path, dst: Path, faces: np.ndarray, per_channel: bool, qdq: bool, restricted: bool) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = dst.with_suffix(".pre.onnx")
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    kwargs = {}
    if restricted:
        kwargs["op_types_to_quantize"] = ["Conv", "MatMul", "Relu", "MaxPool"]
    quantize_static(
        str(pre),
        str(dst),
        FaceCalibration(faces),
        quant_format=QuantFormat.QDQ if qdq else QuantFormat.QOperator,
        per_channel=per_channel,
        activation_type=QuantType.QInt8 if qdq else QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
        **kwargs,
    )
    os.remove(pre)


def calibration_faces(data: str | None, n: int, seed: int) -> np.ndarray:
    """n aligned training faces (N x 3 x S x S, 0..255) from the prepared data, or noise without it."""
    if data is None:
        rng = np.random.default_rng(seed)
        return rng.uniform(0, 255, size=(n, 3, INPUT_SIZE, INPUT_SIZE)).astype(np.float32)
    from dataset import aligned_faces

    return aligned_faces(data, split="train", n=n, seed=seed)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", help="checkpoint from train.py (omit for random weights: a test model)")
    p.add_argument("--data", help="prepared data folder from prepare.py (calibration faces)")
    p.add_argument("--out", default="models", help="output folder")
    p.add_argument("--calib", type=int, default=512, help="number of calibration faces")
    p.add_argument("--variants", help="also write per-channel and QDQ forms here, for comparison")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    net = load_net(args.checkpoint)
    f32 = out / "agegender_f32.onnx"
    dyn = out / "agegender_f32_dynamic.onnx"
    export(net, f32, dynamic=False)
    export(net, dyn, dynamic=True)
    d1 = check_against_torch(net, f32, batch=1)
    d8 = check_against_torch(net, dyn, batch=8)
    print(f"onnx vs torch max abs diff: batch 1 {d1:.2e}, dynamic batch 8 {d8:.2e}")
    if max(d1, d8) > 1e-4:
        raise SystemExit(f"ONNX export disagrees with PyTorch: max abs diff {max(d1, d8):.2e} > 1e-4")

    faces = calibration_faces(args.data, args.calib, args.seed)
    quantize(f32, out / "agegender_int8.onnx", faces, per_channel=False, qdq=False, restricted=True)
    if args.variants:
        v = Path(args.variants)
        v.mkdir(parents=True, exist_ok=True)
        quantize(f32, v / "int8_qop_perchannel.onnx", faces, per_channel=True, qdq=False, restricted=True)
        quantize(f32, v / "int8_qdq_pertensor.onnx", faces, per_channel=False, qdq=True, restricted=False)
    for f in sorted(out.glob("agegender_*.onnx")):
        print(f"{f}: {f.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
