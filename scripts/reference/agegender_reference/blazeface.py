"""BlazeFace (MediaPipe, back-camera 256x256 model) through onnxruntime: the runtime's default
detector, used by training so its crops come from the same landmarks as the live loop, and by the
benchmarks' Python pipeline (scripts/bench/pypipeline.py)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort


def anchors(size: int) -> np.ndarray:
    """MediaPipe SSD anchors (centres in 0..1): 2 per cell at stride size/16, 6 per cell at size/8."""
    out = []
    for grid, per_cell in ((16, 2), (8, 6)):
        ys, xs = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
        c = np.stack([(xs + 0.5) / grid, (ys + 0.5) / grid], axis=-1).reshape(-1, 1, 2)
        out.append(np.repeat(c, per_cell, axis=1).reshape(-1, 2))
    return np.concatenate(out).astype(np.float32)


class BlazeFace:
    def __init__(self, path: str, score_threshold: float = 0.5, threads: int = 1):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        self.sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        inp = self.sess.get_inputs()[0]
        self.input_name = inp.name
        self.size = int(inp.shape[1])
        self.anchors = anchors(self.size)
        self.threshold = score_threshold

    def detect(self, rgb: np.ndarray):
        """Faces in an RGB uint8 image: list of (score, box x0 y0 x1 y1, landmarks 4x2) in pixels,
        landmarks = right eye, left eye, nose tip, mouth centre. Letterboxed, best first."""
        import cv2

        h, w = rgb.shape[:2]
        scale = self.size / max(h, w)
        nw, nh = round(w * scale), round(h * scale)
        canvas = np.zeros((self.size, self.size, 3), np.float32)
        ox, oy = (self.size - nw) // 2, (self.size - nh) // 2
        canvas[oy : oy + nh, ox : ox + nw] = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)
        x = (canvas / 127.5 - 1.0)[None]
        s16, s32, r16, r32 = self.sess.run(None, {self.input_name: x})
        scores = 1 / (1 + np.exp(-np.clip(np.concatenate([s16[0, :, 0], s32[0, :, 0]]), -80, 80)))
        reg = np.concatenate([r16[0], r32[0]])
        keep = np.nonzero(scores >= self.threshold)[0]
        dets = []
        for i in keep[np.argsort(-scores[keep])]:
            a = self.anchors[i]
            cx, cy = reg[i, 0] / self.size + a[0], reg[i, 1] / self.size + a[1]
            bw, bh = reg[i, 2] / self.size, reg[i, 3] / self.size
            box = np.array([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2]) * self.size
            kp = reg[i, 4:12].reshape(4, 2) / self.size + a
            kp = kp * self.size
            box = (box - [ox, oy, ox, oy]) / scale
            kp = (kp - [ox, oy]) / scale
            dets.append((float(scores[i]), box, kp))
        return nms(dets, 0.3)


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def nms(dets, threshold: float):
    kept = []
    for d in dets:
        if all(iou(d[1], k[1]) <= threshold for k in kept):
            kept.append(d)
    return kept
