"""Frame rate of the live loop over its tuning knobs, in one run on one machine.

    scripts/bench/.venv/bin/python scripts/bench/sweep.py [--frames 300] [--bin target/release/agegender]

Runs `agegender bench --json` on the compare streams (640x480, 1 and 4 faces; run
scripts/bench/compare once first, it makes them in scripts/bench/.cache) and on the same frames
scaled to 320x240, for detect_every 1, 2, 3, 4 and threads 1, 2 (threads on the 640x480 1-face
stream only, and only with a binary built with `--features multithread`). Prints a markdown
table, then one JSON line with every row.

A knob that lowers what is detected shows in `faces/frame` (the streams hold 1 or 4 faces in every
frame): a 320x240 frame makes faces half as big for the same 256x256 detector input.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from streams import next_jpeg

REPO = Path(__file__).resolve().parents[2]

CACHE = REPO / "scripts" / "bench" / ".cache"


def scaled(src: Path, width: int, height: int) -> Path:
    """The frames of `src` resized to width x height (area filter, JPEG quality 85), cached."""
    dst = src.with_name(f"{src.stem}_{width}x{height}.mjpeg")
    if dst.exists():
        return dst
    data, pos, out = src.read_bytes(), 0, bytearray()
    while (span := next_jpeg(data, pos)) is not None:
        a, b = span
        img = cv2.imdecode(np.frombuffer(data[a:b], np.uint8), cv2.IMREAD_COLOR)
        small = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)
        out += cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()
        pos = b
    dst.write_bytes(bytes(out))
    return dst


def bench(binary: str, source: Path, frames: int, every: int, threads: int) -> dict:
    cmd = [binary, "bench", "--json", "--source", str(source), "--frames", str(frames)]
    # the schedule alone: motion gating off (scripts/bench/motion.py measures the gate)
    cmd += ["--detect-every", str(every), "--threads", str(threads), "--motion-threshold", "0"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--bin", default=str(REPO / "target" / "release" / "agegender"))
    args = ap.parse_args()

    rows = []
    for faces in (1, 4):
        found = sorted(CACHE.glob(f"stream_{faces}face_300f_seed0_*.mjpeg"))
        found = [p for p in found if "x" not in p.stem.split("_")[-1]]
        if not found:
            sys.exit(f"sweep: no {faces}-face stream in {CACHE}: run scripts/bench/compare first")
        full = found[-1]
        for size, src in (("640x480", full), ("320x240", scaled(full, 320, 240))):
            for every in (1, 2, 3, 4):
                for threads in (1, 2) if (faces, size, every) == (1, "640x480", 1) else (1,):
                    try:
                        r = bench(args.bin, src, args.frames, every, threads)
                    except subprocess.CalledProcessError as e:
                        if threads == 1:
                            raise
                        print(f"[sweep] threads {threads} skipped: {e.stderr.strip()}", file=sys.stderr)
                        continue
                    st = r["stages"]
                    rows.append(
                        {
                            "faces": faces,
                            "size": size,
                            "detect_every": every,
                            "threads": threads,
                            "fps": round(r["fps"], 1),
                            "faces_per_frame": round(r["faces_per_frame"], 2),
                            "decode_ms": round(st["decode"]["median_ms"], 2),
                            "detect_ms": round(st["detect"]["median_ms"], 2),
                            "classify_face_ms": round(st["classify_per_face"]["median_ms"], 2),
                            "frame_ms": round(st["frame"]["median_ms"], 2),
                        }
                    )
                    print(f"[sweep] {rows[-1]}", file=sys.stderr)

    head = "| faces | frame | detect_every | threads | fps | faces/frame | decode ms | detect ms | classify ms/face |"
    print(head)
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['faces']} | {r['size']} | {r['detect_every']} | {r['threads']} | {r['fps']} | "
            f"{r['faces_per_frame']} | {r['decode_ms']} | {r['detect_ms']} | {r['classify_face_ms']} |"
        )
    print(json.dumps({"sweep": rows}))


if __name__ == "__main__":
    main()
