#!/usr/bin/env python3
"""Host side of the emulated-board test (driven by scripts/board-test).

  board.py frame IMAGE W H OUT.yuyv      picture -> YUYV 4:2:2 (BT.601 limited range), letterboxed
  board.py run --kernel K --initrd I --schema S --draw SRC/draw.rs --out DIR [--timeout S]

`run` boots qemu-system-aarch64 with the serial console on stdio and a QMP socket, collects the
serial output, waits for the guest's "BOARD: done", takes a QMP screendump, powers the guest off and
checks: every JSON line validates against the report schema; faces are reported with labels before
the vivid unplug and again after the reload; status lines say the camera was lost and came back;
agegender exited 0; the screendump shows the camera picture with the overlay boxes on it.
Prints one summary line last; exit status 0 only when every check passed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path


def make_frame(image: str, w: int, h: int, out: str) -> None:
    from PIL import Image

    src = Image.open(image).convert("RGB")
    scale = min(w / src.width, h / src.height)
    sw, sh = max(2, round(src.width * scale)), max(1, round(src.height * scale))
    canvas = Image.new("RGB", (w, h), (128, 128, 128))
    canvas.paste(src.resize((sw, sh), Image.BILINEAR), ((w - sw) // 2, (h - sh) // 2))
    # Pillow's YCbCr is full-range BT.601 (JFIF); cameras and our decoder use limited range.
    y, cb, cr = canvas.convert("YCbCr").split()
    y = y.point(lambda v: 16 + round(v * 219 / 255))
    cb = cb.point(lambda v: 128 + round((v - 128) * 224 / 255))
    cr = cr.point(lambda v: 128 + round((v - 128) * 224 / 255))
    cb = cb.resize((w // 2, h), Image.BOX)
    cr = cr.resize((w // 2, h), Image.BOX)
    yb, ub, vb = y.tobytes(), cb.tobytes(), cr.tobytes()
    buf = bytearray(w * h * 2)
    buf[0::4] = yb[0::2]
    buf[1::4] = ub
    buf[2::4] = yb[1::2]
    buf[3::4] = vb
    Path(out).write_bytes(bytes(buf))


class Qmp:
    def __init__(self, path: str, timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.sock.settimeout(timeout)
        self.buf = b""
        self._read()  # greeting
        self.cmd("qmp_capabilities")

    def _read(self) -> dict:
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("QMP socket closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def cmd(self, name: str, **args) -> dict:
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            r = self._read()
            if "return" in r or "error" in r:
                if "error" in r:
                    raise RuntimeError(f"QMP {name}: {r['error']}")
                return r["return"]


def read_ppm(path: str) -> tuple[int, int, bytes]:
    data = Path(path).read_bytes()
    fields, pos = [], 0
    while len(fields) < 4:
        m = re.compile(rb"\s*(#[^\n]*\n\s*)*(\S+)").match(data, pos)
        fields.append(m.group(2))
        pos = m.end()
    assert fields[0] == b"P6", f"{path}: not a binary PPM"
    w, h, maxval = int(fields[1]), int(fields[2]), int(fields[3])
    assert maxval == 255
    return w, h, data[pos + 1 : pos + 1 + w * h * 3]


def overlay_colors(draw_rs: str) -> dict[str, tuple[int, int, int]]:
    text = Path(draw_rs).read_text()
    out = {}
    for name in ("FEMALE_COLOR", "MALE_COLOR"):
        m = re.search(r"\b" + name + r": Rgb888 = Rgb888::new\((\d+), (\d+), (\d+)\)", text)
        if not m:
            raise SystemExit(f"cannot find {name} in {draw_rs}")
        out[name] = tuple(int(v) for v in m.groups())
    return out


def run(a: argparse.Namespace) -> int:
    import jsonschema

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    qmp_path = str(out / "qmp.sock")
    if os.path.exists(qmp_path):
        os.unlink(qmp_path)
    serial_log = out / "serial.log"
    cmd = [
        "qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a72", "-m", "1024",
        "-device", "virtio-gpu-pci", "-nic", "none", "-display", "none",
        "-serial", "stdio", "-qmp", f"unix:{qmp_path},server=on,wait=off",
        "-kernel", a.kernel, "-initrd", a.initrd,
    ]  # fmt: skip
    print("board: " + " ".join(cmd), flush=True)
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines: list[str] = []
    marks: dict[str, float] = {}
    done = threading.Event()

    def reader() -> None:
        with open(serial_log, "wb") as log:
            for raw in proc.stdout:
                log.write(raw)
                log.flush()
                text = raw.decode("utf-8", "replace").rstrip("\r\n")
                lines.append(text)
                if text.startswith("BOARD: booted"):
                    marks["booted"] = time.monotonic() - t0
                if text.startswith("BOARD: ") and not text.startswith("BOARD: booted"):
                    print(text, flush=True)
                if text.startswith("BOARD: done") or "Kernel panic" in text:
                    done.set()
        done.set()

    threading.Thread(target=reader, daemon=True).start()
    finished = done.wait(a.timeout)
    elapsed = time.monotonic() - t0
    failures: list[str] = []
    shot = out / "screen.ppm"
    for stale in (shot, out / "screen.png"):
        if stale.exists():
            stale.unlink()
    try:
        q = Qmp(qmp_path)
        if finished and proc.poll() is None:
            q.cmd("screendump", filename=str(shot.resolve()))
        q.cmd("quit")
    except Exception as e:  # noqa: BLE001 - report and carry on to the checks
        failures.append(f"QMP: {e}")
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    if not finished:
        failures.append(f"guest did not finish in {a.timeout:.0f} s (see {serial_log})")

    # --- serial report -------------------------------------------------------------------------
    schema = json.loads(Path(a.schema).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    faces_before, faces_after, statuses, bad = [], [], [], []
    phase = "before"
    for text in lines:
        if text.startswith("BOARD: unplug"):
            phase = "unplugged"
        elif text.startswith("BOARD: vivid reloaded"):
            phase = "after"
        if not text.startswith("{"):
            continue
        try:
            obj = json.loads(text)
            validator.validate(obj)
        except (json.JSONDecodeError, jsonschema.ValidationError) as e:
            bad.append(f"{text[:120]!r}: {str(e).splitlines()[0]}")
            continue
        if obj["type"] == "face":
            (faces_after if phase == "after" else faces_before).append(obj)
        else:
            statuses.append(obj)
    if bad:
        failures.append(f"{len(bad)} report lines fail the schema, first: {bad[0]}")
    if len(faces_before) < a.min_faces:
        failures.append(f"only {len(faces_before)} face lines before the unplug (want >= {a.min_faces})")
    if len(faces_after) < a.min_faces:
        failures.append(f"only {len(faces_after)} face lines after vivid came back (want >= {a.min_faces})")
    per_frame: dict[int, int] = {}
    for f in faces_before + faces_after:
        per_frame[f["frame"]] = per_frame.get(f["frame"], 0) + 1
    most = max(per_frame.values(), default=0)
    if most < a.min_faces_per_frame:
        failures.append(f"at most {most} faces in one frame (the picture has {a.min_faces_per_frame}+)")
    cams = [s["camera"] for s in statuses]
    if "lost" not in cams:
        failures.append(f"no status line says camera lost (camera states: {cams})")
    elif not any(c in ("resumed", "ok") for c in cams[cams.index("lost") + 1 :]):
        failures.append(f"no status line after the loss says the camera resumed ({cams})")
    exit_line = next((t for t in lines if t.startswith("BOARD: agegender exit")), None)
    if exit_line is None or not exit_line.startswith("BOARD: agegender exit 0 "):
        failures.append(f"agegender did not exit 0: {exit_line}")
    failures += [t for t in lines if t.startswith("BOARD: FAIL") or "Kernel panic" in t]

    # --- screen --------------------------------------------------------------------------------
    overlay = 0
    if shot.exists():
        w, h, px = read_ppm(str(shot))
        colors = {bytes(c) for c in overlay_colors(a.draw).values()}
        n = w * h
        overlay = sum(1 for i in range(0, n * 3, 3) if px[i : i + 3] in colors)
        dark = sum(1 for i in range(0, n * 3, 3 * 7) if px[i] < 8 and px[i + 1] < 8 and px[i + 2] < 8)
        lit = 1 - dark / len(range(0, n * 3, 3 * 7))
        if overlay < a.min_overlay_px:
            failures.append(f"screendump: {overlay} overlay-coloured pixels (want >= {a.min_overlay_px})")
        if lit < 0.3:
            failures.append(f"screendump: only {lit:.0%} of the screen is lit (camera image missing?)")
        try:
            from PIL import Image

            Image.frombytes("RGB", (w, h), px).save(out / "screen.png")
        except Exception:  # noqa: BLE001 - the PNG copy is a convenience
            pass
    elif finished:
        failures.append("no screendump")

    for f in failures:
        print(f"board: FAIL {f}", flush=True)
    tail = [t for t in lines if t.startswith("{")][-3:]
    (out / "report-excerpt.txt").write_text("\n".join(tail) + "\n")
    genders = sorted({f"{f['gender']} {f['age']:.0f} ({f['age_bucket']})" for f in faces_after})[:4]
    summary = (
        f"board-test {'PASS' if not failures else 'FAIL'}: boot {marks.get('booted', float('nan')):.1f} s, "
        f"total {elapsed:.1f} s, faces {len(faces_before)} before / {len(faces_after)} after vivid reload "
        f"(e.g. {', '.join(genders) or '-'}), status {len(statuses)} ({'/'.join(dict.fromkeys(cams))}), "
        f"overlay {overlay} px, {len(failures)} failure(s)"
    )
    print(summary, flush=True)
    return 0 if not failures else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("frame")
    f.add_argument("image")
    f.add_argument("w", type=int)
    f.add_argument("h", type=int)
    f.add_argument("out")
    r = sub.add_parser("run")
    r.add_argument("--kernel", required=True)
    r.add_argument("--initrd", required=True)
    r.add_argument("--schema", required=True)
    r.add_argument("--draw", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--timeout", type=float, default=240)
    r.add_argument("--min-faces", type=int, default=2)
    r.add_argument("--min-faces-per-frame", type=int, default=2)
    r.add_argument("--min-overlay-px", type=int, default=200)
    a = p.parse_args()
    if a.cmd == "frame":
        make_frame(a.image, a.w, a.h, a.out)
        return 0
    return run(a)


if __name__ == "__main__":
    sys.exit(main())
