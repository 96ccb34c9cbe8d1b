#!/usr/bin/env python3
"""Host side of the emulated-board test (driven by scripts/emulated-board/test).

  board.py frame IMAGE W H OUT.yuyv      picture -> YUYV 4:2:2 (BT.601 limited range), letterboxed
  board.py run --kernel K --initrd I --append CMDLINE --disk IMG --bad-config-disk IMG2
               --part-offset BYTES --schema S --draw SRC/draw.rs --out DIR

`run` boots the SD-card image on qemu-system-aarch64 (-M virt, the image as a virtio disk, an
i6300esb watchdog, the serial port on stdio, a QMP socket) and drives the guest's test hook
(scripts/emulated-board/test-hook.sh) with one command per line on the serial port, checking each
step:
  1. faces on the serial log, several in one frame;
  2. `unplug`: status lines say the camera was lost and came back, faces again after it;
  3. `kill`: the supervisor restarts agegender, faces again;
  4. agegender.toml edited on the disk (max_faces = 1), then `hang`: the watchdog resets the board,
     it boots back into the kiosk, and now no frame has more than one face; a screendump shows the
     camera picture with the overlay boxes; then `reboot` with the person in view: /init stops the
     kiosk first, and the visit and a last status line reach the serial log and the broker;
  4b. least privilege: `who` shows the kiosk running as a user other than root, with no new
     privileges and no capabilities, chronyd not as root, and no login prompt (the debug shell is
     off by default); every step above is that user's work (camera, screen, serial, watchdog, MQTT);
  4c. before the reboot, debug-shell.txt with a password hash naming the virtio console (hvc0)
     goes on the card: after the reboot a wrong password is refused and the right one gives a
     root shell there, and the screen's bottom line says the debug shell is on;
  4d. Wi-Fi: before the reboot a wpa_supplicant.conf goes on the card, and once the reboot's visit
     is at the broker the virtio NIC's link is cut. In the boot after it, test-hook.sh runs a
     hostapd on one mac80211_hwsim radio (in a network namespace, bridged to an e1000 NIC on a
     second user network); the image's wpa_supplicant and udhcpc take the other radio: a lease on
     wlan0, the route to the host through it, `online` and (after a second `reboot`) a visit at
     the broker; the passphrase hidden from the kiosk's user and never logged;
  5. all along, agegender.toml sets `mqtt` (a mosquitto on the host, reached through QEMU's user
     network): the board gets an address by DHCP, and the broker receives `online`, status lines
     and the visits the unplug ended, each valid against the schema;
  6. a second boot from a disk whose agegender.toml has a bad key (and no `mqtt`): one line on the
     serial port names the key and the file, the screen shows text, the board does not reboot,
     and it has no network interface but lo although a network card is there; its card has a
     debug-shell.txt without a password hash: refused, on the serial port, no login prompt.
Every JSON line must validate against the report schema. Writes serial.log, serial-bad-config.log,
screen.png and screen-bad-config.png to --out; prints one summary line last; exit 0 only when
every check passed.
"""

from __future__ import annotations

import argparse
import atexit
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

    def cmd(self, name: str, /, **args) -> dict:
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
    for name in ("FEMALE_COLOR", "MALE_COLOR", "NOTICE_COLOR"):
        m = re.search(r"\b" + name + r": Rgb888 = Rgb888::new\((\d+), (\d+), (\d+)\)", text)
        if not m:
            raise SystemExit(f"cannot find {name} in {draw_rs}")
        out[name] = tuple(int(v) for v in m.groups())
    return out


class Guest:
    """One QEMU run: serial lines collected by a thread, commands written to the serial port."""

    def __init__(self, a: argparse.Namespace, disk: str, name: str, machine: str = "virt", wifi_uplink: bool = False):
        self.out = Path(a.out)
        self.qmp_path = str(self.out / f"qmp-{name}.sock")
        self.console_path = str(self.out / f"console-{name}.sock")
        for sock in (self.qmp_path, self.console_path):
            if os.path.exists(sock):
                os.unlink(sock)
        if machine == "raspi3b":
            # The Pi 3 B itself: its SoC's devices (the SD host, the mini UART, the watchdog, USB)
            # from its own device tree, 4 Cortex-A53, 1 GiB; the card on the SD bus. The second
            # serial port is the mini UART the device tree's stdout-path names. The first, the
            # PL011 (ttyAMA0), is a kernel console into a file (before
            # the card's console=tty1, which stays /dev/console), and the firmware's property
            # mailbox traces each tag it is sent (QEMU's bcm2835_mbox_property): the try boot's
            # checks read both (run_raspi3b).
            cmd = [
                "qemu-system-aarch64", "-M", "raspi3b", "-display", "none",
                "-drive", f"if=sd,file={disk},format=raw",
                "-serial", f"file:{self.out / 'kernel-raspi3b.log'}", "-serial", "stdio",
                "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
                "-trace", "bcm2835_mbox_property", "-D", str(self.out / "mailbox-raspi3b.log"),
                "-kernel", a.kernel, "-dtb", a.dtb, "-initrd", a.initrd, "-append", "console=ttyAMA0 " + a.append,
            ]  # fmt: skip
        else:
            cmd = self.virt(a, disk)
            if wifi_uplink:
                # the Wi-Fi test's access point's uplink (test-hook.sh): a NIC the image has no
                # driver for, on a user network of its own (the host is 10.0.2.2 there too)
                cmd[cmd.index("-kernel") : cmd.index("-kernel")] = [
                    "-netdev", "user,id=wifiup", "-device", "e1000,netdev=wifiup,romfile=",
                ]  # fmt: skip
        print("board: " + " ".join(cmd), flush=True)
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.lines: list[tuple[float, str]] = []
        self.lock = threading.Lock()
        self.log_path = self.out / f"serial{'' if name == 'main' else '-' + name}.log"
        threading.Thread(target=self._reader, daemon=True).start()

    def virt(self, a: argparse.Namespace, disk: str) -> list[str]:
        """QEMU's generic board, with what the image needs of it."""
        return [
            "qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a72", "-m", "1024",
            "-device", "virtio-gpu-pci", "-netdev", "user,id=net0",
            "-device", "virtio-net-pci,netdev=net0,romfile=", "-display", "none",
            "-drive", f"if=none,file={disk},format=raw,id=sd,cache=writethrough",
            "-device", "virtio-blk-pci,drive=sd",
            "-device", "i6300esb", "-action", "watchdog=reset",
            "-serial", "stdio", "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
            "-device", "virtio-serial-pci", "-chardev", f"socket,id=dbg,path={self.console_path},server=on,wait=off",
            "-device", "virtconsole,chardev=dbg",
            "-kernel", a.kernel, "-initrd", a.initrd, "-append", a.append,
        ]  # fmt: skip

    def _reader(self) -> None:
        with open(self.log_path, "wb") as log:
            for raw in self.proc.stdout:
                log.write(raw)
                log.flush()
                text = raw.decode("utf-8", "replace").rstrip("\r\n")
                # A UART may put noise before the first line (the Pi's mini UART while its rate is set)
                for prefix in ("BOARD: ", "agegender-image: ", '{"schema"'):
                    at = text.find(prefix)
                    if at > 0:
                        text = text[at:]
                        break
                if text.startswith("BOARD: ") or text.startswith("agegender-image: "):
                    print(f"[{time.monotonic() - self.t0:6.1f} s] {text[:300]}", flush=True)
                with self.lock:
                    self.lines.append((time.monotonic() - self.t0, text))

    def snapshot(self) -> list[tuple[float, str]]:
        with self.lock:
            return list(self.lines)

    def wait(self, what: str, pred, timeout: float) -> bool:
        """Until pred(lines) is true; False (and a message) after timeout or if QEMU exits."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if pred(self.snapshot()):
                return True
            if self.proc.poll() is not None:
                print(f"board: QEMU exited ({self.proc.returncode}) waiting for {what}", flush=True)
                return False
            time.sleep(0.2)
        print(f"board: timed out after {timeout:.0f} s waiting for {what}", flush=True)
        return False

    def send(self, command: str) -> None:
        print(f"[{time.monotonic() - self.t0:6.1f} s] host -> guest: {command}", flush=True)
        self.proc.stdin.write(command.encode() + b"\n")
        self.proc.stdin.flush()

    def screendump(self, png: Path) -> tuple[int, int, bytes] | None:
        shot = png.with_suffix(".ppm")
        for stale in (shot, png):
            if stale.exists():
                stale.unlink()
        try:
            Qmp(self.qmp_path).cmd("screendump", filename=str(shot.resolve()))
        except Exception as e:  # noqa: BLE001 - reported as a failed check by the caller
            print(f"board: screendump: {e}", flush=True)
            return None
        w, h, px = read_ppm(str(shot))
        try:
            from PIL import Image

            Image.frombytes("RGB", (w, h), px).save(png)
            shot.unlink()
        except Exception:  # noqa: BLE001 - the PNG copy is a convenience
            pass
        return w, h, px

    def stop(self) -> None:
        try:
            Qmp(self.qmp_path).cmd("quit")
        except Exception:  # noqa: BLE001 - killed below
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Console:
    """The guest's virtio console (hvc0), the board test's debug-shell port: a unix socket."""

    def __init__(self, path: str):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(path)
        self.sock.settimeout(0.5)
        self.seen = b""

    def send(self, text: str) -> None:
        self.sock.sendall(text.encode() + b"\r")

    def expect(self, pattern: str, timeout: float) -> re.Match | None:
        """Wait for `pattern` in what the guest wrote since the last match; None after timeout."""
        end = time.monotonic() + timeout
        while True:
            m = re.search(pattern.encode(), self.seen)
            if m:
                self.seen = self.seen[m.end() :]
                return m
            if time.monotonic() > end:
                print(f"board: console: no {pattern!r} within {timeout:.0f} s; got {self.seen[-200:]!r}", flush=True)
                return None
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            if not data:
                return None
            self.seen += data

    def close(self) -> None:
        self.sock.close()


def debug_login(path: str, password: str) -> tuple[bool, bool, str]:
    """On the debug-shell console: (a wrong password refused, the right one logged in, `id`)."""
    c = Console(path)
    try:
        c.send("")
        if not c.expect(r"login: ", 60):
            return False, False, "no login prompt"
        c.send("root")
        c.expect(r"Password: ", 20)
        c.send("not-" + password)
        refused = c.expect(r"Login incorrect", 30) is not None
        c.send("")
        c.expect(r"login: ", 30)
        c.send("root")
        c.expect(r"Password: ", 20)
        c.send(password)
        c.send("echo ID-IS $(id -u):$(id -g)")
        m = c.expect(r"\nID-IS (\d+):(\d+)", 30)
        ident = m.group(1).decode() + ":" + m.group(2).decode() if m else "none"
        c.send("exit")
        return refused, ident == "0:0", ident
    finally:
        c.close()


def console_silent(path: str, seconds: float) -> bool:
    """True when the console answers nothing (no login prompt) for `seconds`."""
    c = Console(path)
    try:
        c.send("")
        return c.expect(r"login: ", seconds) is None
    finally:
        c.close()


def notice_px(px: bytes, w: int, h: int, color: bytes) -> int:
    """Pixels of `color` in the bottom 40 rows (the screen notice's band)."""
    return sum(1 for y in range(h - 40, h) for x in range(w) if px[(y * w + x) * 3 : (y * w + x) * 3 + 3] == color)


class Broker:
    """Mosquitto on the host (127.0.0.1, a free port; the guest reaches it as 10.0.2.2 through
    QEMU's user network) and a mosquitto_sub that records every agegender/# message."""

    def __init__(self, out: Path):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        conf = out / "mosquitto.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        self.log = out / "mqtt.log"
        self.broker = subprocess.Popen(
            ["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=open(out / "mosquitto.err", "wb")
        )
        for _ in range(50):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        self.sub = subprocess.Popen(
            ["mosquitto_sub", "-p", str(self.port), "-h", "127.0.0.1", "-v", "-q", "1", "-t", "agegender/#"],
            stdout=open(self.log, "wb"),
            stderr=subprocess.STDOUT,
        )

    def messages(self) -> list[tuple[str, str]]:
        """(topic, payload) of every message so far."""
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            topic, _, payload = line.partition(" ")
            out.append((topic, payload))
        return out

    def stop(self) -> None:
        for p in (self.sub, self.broker):
            if p.poll() is not None:
                continue
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()


def boots(lines: list[tuple[float, str]]) -> list[int]:
    """Indexes of the "BOARD: booted" lines (one per boot)."""
    return [i for i, (_, t) in enumerate(lines) if t.startswith("BOARD: booted")]


def index_of(lines: list[tuple[float, str]], prefix: str, after: int = 0) -> int | None:
    return next((i for i in range(after, len(lines)) if lines[i][1].startswith(prefix)), None)


def json_lines(lines: list[tuple[float, str]], start: int = 0, end: int | None = None) -> list[dict]:
    out = []
    for _, t in lines[start:end]:
        if t.startswith("{"):
            try:
                out.append(json.loads(t))
            except json.JSONDecodeError:
                pass
    return out


def faces_in(lines, start: int, end: int | None = None) -> list[dict]:
    return [o for o in json_lines(lines, start, end) if o.get("type") == "face"]


def longest_track_ms(faces: list[dict]) -> int:
    """The longest time one track_id was reported over, in the kiosk's milliseconds."""
    span: dict[int, tuple[int, int]] = {}
    for f in faces:
        a, b = span.get(f["track_id"], (f["ts"], f["ts"]))
        span[f["track_id"]] = (min(a, f["ts"]), max(b, f["ts"]))
    return max((b - a for a, b in span.values()), default=0)


def schema_failures(lines: list[tuple[float, str]], validator) -> list[str]:
    """Every JSON line of a run against the report schema: one message per line that fails."""
    import jsonschema

    bad = []
    for _, t in lines:
        if t.startswith("{"):
            try:
                validator.validate(json.loads(t))
            except (json.JSONDecodeError, jsonschema.ValidationError) as e:
                bad.append(f"{t[:120]!r}: {str(e).splitlines()[0]}")
    return bad


def rebooted_at(lines: list[tuple[float, str]]) -> int:
    """Index of the `reboot` command's answer (0 if there is none)."""
    return index_of(lines, "BOARD: reboot at") or 0


def most_per_frame(faces: list[dict]) -> int:
    per: dict[int, int] = {}
    for f in faces:
        per[f["frame"]] = per.get(f["frame"], 0) + 1
    return max(per.values(), default=0)


def lit_and_overlay(px: bytes, w: int, h: int, colors: set[bytes]) -> tuple[float, int]:
    n = w * h
    overlay = sum(1 for i in range(0, n * 3, 3) if px[i : i + 3] in colors)
    step = 3 * 7
    dark = sum(1 for i in range(0, n * 3, step) if px[i] < 8 and px[i + 1] < 8 and px[i + 2] < 8)
    return 1 - dark / len(range(0, n * 3, step)), overlay


def edit_config(disk: str, offset: int, sed: str, work: Path) -> None:
    """agegender.toml on the disk's boot partition, edited with sed (mtools, as a user's PC would)."""
    f = work / "agegender-edit.toml"
    at = f"{disk}@@{offset}"
    subprocess.run(["mcopy", "-o", "-i", at, "::agegender.toml", str(f)], check=True)
    subprocess.run(["sed", "-i", sed, str(f)], check=True)
    subprocess.run(["mcopy", "-o", "-i", at, str(f), "::agegender.toml"], check=True)


def visit_count(broker: Broker) -> int:
    return sum(1 for t, _ in broker.messages() if t.endswith("/visit"))


def online_count(broker: Broker) -> int:
    return sum(1 for t, p in broker.messages() if t.endswith("/availability") and p == "online")


def write_wifi(disk: str, offset: int, work: Path, ssid: str, psk: str) -> None:
    """wpa_supplicant.conf on the disk's boot partition, as a Raspberry Pi OS user writes it (a
    Windows editor's line ends included), and board-test-wifi.txt for the test's access point."""
    conf = work / "wpa_supplicant.conf"
    text = (
        "ctrl_interface=DIR=/var/run/wpa_supplicant GROUP=netdev\nupdate_config=1\ncountry=GB\n\n"
        f'network={{\n\tssid="{ssid}"\n\tpsk="{psk}"\n}}\n'
    )
    conf.write_bytes(text.replace("\n", "\r\n").encode())
    ap = work / "board-test-wifi.txt"
    ap.write_text(f"SSID='{ssid}'\nPSK='{psk}'\n")
    for f in (conf, ap):
        subprocess.run(["mcopy", "-o", "-i", f"{disk}@@{offset}", str(f), f"::{f.name}"], check=True)


def run(a: argparse.Namespace) -> int:
    import jsonschema

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    validator = jsonschema.Draft202012Validator(json.loads(Path(a.schema).read_text()))
    palette = overlay_colors(a.draw)
    colors = {bytes(palette[k]) for k in ("FEMALE_COLOR", "MALE_COLOR")}
    failures: list[str] = []
    marks: dict[str, float] = {}
    t_start = time.monotonic()

    def check(ok: bool, msg: str) -> bool:
        if not ok:
            failures.append(msg)
            print(f"board: FAIL {msg}", flush=True)
        return ok

    # --- boot 1: the kiosk, the camera, the supervisor, the watchdog, MQTT over the network ------
    # agegender.toml sets `mqtt`: the image's /init loads the Ethernet driver, DHCP gives the board
    # an address (QEMU's user network), and the kiosk publishes to the broker on the host.
    broker = Broker(out)
    atexit.register(broker.stop)  # also when a step below raises
    edit_config(a.disk, a.part_offset, f'$a mqtt = "mqtt://10.0.2.2:{broker.port}"', out / "work")
    g = Guest(a, a.disk, "main", wifi_uplink=True)
    n = a.min_faces
    ok = check(g.wait("the first boot", lambda ls: boots(ls), 120), "the image did not boot (no BOARD: booted)")
    ok = ok and check(
        g.wait(f"{n} faces", lambda ls: len(faces_in(ls, boots(ls)[0])) >= n, 240),
        f"fewer than {n} face lines after the first boot",
    )
    if ok:
        ls = g.snapshot()
        marks["booted"] = ls[boots(ls)[0]][0]
        # the try boot's module (board/kernel/rpi-tryboot) loads on a board without the Pi's firmware
        check(
            " rpi_tryboot " in ls[boots(ls)[0]][1] + " ",
            "rpi_tryboot not loaded on virt (no firmware: it must load and do nothing)",
        )
        marks["first_face"] = next(t for t, x in ls if x.startswith('{"schema":"agegender/face'))
        # The unplug ends the tracks in view, and each becomes a visit (checked over MQTT below) only
        # if it lasted min_dwell_s (1 s): wait until one track's face lines span 3 s of the kiosk's
        # clock. (A slow CI machine once unplugged 0.1 s after the first face: no visit.)
        ok = check(
            g.wait("a track lasting 3 s", lambda ls: longest_track_ms(faces_in(ls, boots(ls)[0])) >= 3000, 120),
            "no face tracked for 3 s after the first boot",
        )
    who: dict[str, str] = {}
    if ok:
        # Least privilege: who runs the kiosk (whose work every step below is) and chronyd, and
        # no login prompt anywhere (the debug shell is off unless the card asks for it). chronyd
        # starts with the DHCP lease.
        ok = check(
            g.wait("the DHCP lease", lambda ls: any(" via DHCP " in t for _, t in ls), 120),
            "no DHCP lease with mqtt set",
        )
    if ok:
        g.send("who")
        ok = check(g.wait("who", lambda ls: index_of(ls, "BOARD: who: ") is not None, 30), "no answer to `who`")
    if ok:
        line = g.snapshot()[index_of(g.snapshot(), "BOARD: who: ")][1]
        print(f"board: {line}", flush=True)
        m = re.search(
            r"agegender uid (\d+) gid (\d+) groups ([\d ]*?) nnp (\d) capeff ([0-9a-f]+); "
            r"chronyd uid (\S+); login prompts (\d+)",
            line,
        )
        if check(m is not None, f"cannot read the `who` line: {line}"):
            who = dict(zip(("uid", "gid", "groups", "nnp", "capeff", "chronyd", "logins"), m.groups(), strict=True))
            check(who["uid"] != "0" and who["gid"] != "0", f"the kiosk runs as root: {line}")
            groups = set(who["groups"].split())
            # video (camera, screen), dialout (serial), watchdog: board/image/group
            check({"44", "20", "103"} <= groups, f"the kiosk lacks a device group (44 20 103): {line}")
            check(who["nnp"] == "1" and int(who["capeff"], 16) == 0, f"the kiosk may gain privileges: {line}")
            check(who["chronyd"] not in ("0", "none"), f"chronyd runs as root or not at all: {line}")
            check(who["logins"] == "0", f"a login prompt runs without debug-shell.txt: {line}")
    if ok:
        g.send("unplug")
        ok = check(
            g.wait("vivid reloaded", lambda ls: index_of(ls, "BOARD: vivid reloaded") is not None, 90), "no reload"
        )
    if ok:

        def resumed(ls) -> bool:
            i = index_of(ls, "BOARD: unplug")
            cams = [o["camera"] for o in json_lines(ls, i) if o.get("type") == "status"]
            j = index_of(ls, "BOARD: vivid reloaded")
            return "lost" in cams and len(faces_in(ls, j)) >= n

        ok = check(g.wait("camera lost, then faces after the reload", resumed, 240), "the camera did not come back")
    if ok:
        g.send("kill")
        ok = check(
            g.wait("the restart", lambda ls: index_of(ls, "BOARD: agegender restarted") is not None, 150),
            "the supervisor did not restart agegender",
        )
    if ok:
        ok = check(
            g.wait(
                "faces after the restart",
                lambda ls: len(faces_in(ls, index_of(ls, "BOARD: agegender restarted"))) >= n,
                240,
            ),
            "no faces after the supervisor restarted agegender",
        )
    if ok:
        # The user's edit for the next boot, made while this one runs (the boot partition is
        # mounted read-only and read again only at boot).
        edit_config(a.disk, a.part_offset, "s/^max_faces = .*/max_faces = 1/", out / "work")
        g.send("hang")
        ok = check(g.wait("the hang", lambda ls: index_of(ls, "BOARD: agegender pid") is not None, 30), "no hang")
    if ok:
        ok = check(
            g.wait("the watchdog reset", lambda ls: len(boots(ls)) >= 2, 200), "the watchdog did not reset the board"
        )
    if ok:
        ls = g.snapshot()
        marks["reset_after_hang"] = ls[boots(ls)[1]][0] - ls[index_of(ls, "BOARD: agegender pid")][0]
        ok = check(
            g.wait("faces after the reset", lambda ls: len(faces_in(ls, boots(ls)[1])) >= 3, 240),
            "no faces after the watchdog reset",
        )
    shot = None
    if ok:
        shot = g.screendump(out / "screen.png")
    # A reboot with people in view: /init stops the kiosk with SIGTERM first, so the visits of
    # the people in view reach the serial log and the broker before the board goes down.
    # The debug shell for the next boot: root's password hash, on the virtio console (hvc0).
    password = "board-test-" + str(os.getpid())
    if ok:
        pw_hash = subprocess.run(
            ["openssl", "passwd", "-6", "-salt", "boardtest", password], check=True, capture_output=True, text=True
        ).stdout.strip()
        f = out / "work" / "debug-shell.txt"
        f.write_text(f"# the board test's\npassword_hash = {pw_hash}\nport = hvc0\n")
        subprocess.run(["mcopy", "-o", "-i", f"{a.disk}@@{a.part_offset}", str(f), "::debug-shell.txt"], check=True)
    # Wi-Fi for the next boot (issue 32): a wpa_supplicant.conf as a Raspberry Pi OS user writes
    # it (CRLF, ctrl_interface, country), and for test-hook.sh the access point's name and passphrase.
    ssid, psk = "agegender-test", f"psk-{os.getpid()}-board"
    if ok:
        write_wifi(a.disk, a.part_offset, out / "work", ssid, psk)
    online_before = 0
    if ok:
        visits_before = sum(1 for t, _ in broker.messages() if t.endswith("/visit"))
        g.send("reboot")
        # Once the visit of the person in view is in (over the cable), the cable goes: the next
        # boot's MQTT can only go over Wi-Fi. (The kiosk delivers its visits before /init reboots.)
        check(
            g.wait("the visit of `reboot`", lambda ls: visit_count(broker) > visits_before, 60),
            "no visit over MQTT after `reboot`",
        )
        Qmp(g.qmp_path).cmd("set_link", name="net0", up=False)
        print(f"[{time.monotonic() - g.t0:6.1f} s] host: the virtio NIC's link cut (Wi-Fi only from now)", flush=True)
        online_before = online_count(broker)
        ok = check(
            g.wait("the reboot", lambda ls: len(boots(ls)) >= 3, 120), "the board did not come back after `reboot`"
        )
        if ok:
            ls = g.snapshot()
            at = index_of(ls, "BOARD: reboot at", boots(ls)[1]) or boots(ls)[1]
            seen = json_lines(ls, at, boots(ls)[2])
            last = [o for o in seen if o.get("type") == "status" and o.get("camera") == "stopped"]
            visits = [o for o in seen if o.get("type") == "visit"]
            check(bool(last), "no last status line (camera stopped) between `reboot` and the next boot")
            check(bool(visits), "no visit on the serial log for the person in view at `reboot`")
            marks["reboot_visits"] = len(visits)
            time.sleep(2)
            after = sum(1 for t, _ in broker.messages() if t.endswith("/visit"))
            check(
                after > visits_before,
                f"no visit over MQTT for the person in view at `reboot` ({visits_before} before, {after} after)",
            )
    # The debug shell the card now asks for: a wrong password refused, the right one a root shell,
    # and the screen says it is on.
    notice = 0
    if ok:
        ok = check(
            g.wait(
                "the debug shell",
                # (/init starts it before the test hook says "booted")
                lambda ls: (
                    index_of(ls, "agegender-image: debug shell: a root login on /dev/hvc0", rebooted_at(ls)) is not None
                ),
                60,
            ),
            "no debug shell on hvc0 after debug-shell.txt was put on the card",
        )
    if ok:
        refused, root, ident = debug_login(g.console_path, password)
        check(refused, "the debug shell did not refuse a wrong password")
        check(root, f"no root shell with the right password (id: {ident})")
        marks["debug_login"] = 1.0 if refused and root else 0.0
        ok = check(
            g.wait("faces after the reboot", lambda ls: len(faces_in(ls, boots(ls)[2])) >= 1, 240),
            "no faces after the reboot",
        )
    if ok:
        shot3 = g.screendump(out / "screen-debug-shell.png")
        if check(shot3 is not None, "no screendump with the debug shell on"):
            notice = notice_px(shot3[2], shot3[0], shot3[1], bytes(palette["NOTICE_COLOR"]))
            check(notice >= 5000, f"the screen does not say the debug shell is on ({notice} notice pixels)")
    # Wi-Fi (issue 32): in this boot the image's wpa_supplicant joined the test's access point and
    # its udhcpc got a lease through it; the kiosk's MQTT went over it; a reboot's visit does too.
    wifi: dict[str, str] = {}
    t_wifi = time.monotonic()
    if ok:
        ok = check(
            g.wait(
                "a DHCP lease over Wi-Fi",
                lambda ls: any(t.startswith("agegender-image: network: wlan0 ") for _, t in ls[rebooted_at(ls) :]),
                120,
            ),
            "no DHCP lease on wlan0 with wpa_supplicant.conf on the card",
        )
    if ok:
        at = len(g.snapshot())
        g.send("wifi")
        ok = check(
            g.wait("wifi", lambda ls: index_of(ls, "BOARD: wifi: route", at) is not None, 30), "no answer to `wifi`"
        )
    if ok:
        line = g.snapshot()[index_of(g.snapshot(), "BOARD: wifi: route", at)][1]
        print(f"board: {line}", flush=True)
        m = re.search(
            r"route (.*); stations (\d+); card file (\d+) bytes; copy (\d+ \S+); kiosk user reads (\d+) bytes of it; "
            r"passphrase in the log (\d+)",
            line,
        )
        if check(m is not None, f"cannot read the `wifi` line: {line}"):
            wifi = dict(zip(("route", "stations", "card", "copy", "kiosk", "logged"), m.groups(), strict=True))
            check(" dev wlan0 " in wifi["route"] + " ", f"the host is not reached over Wi-Fi: {wifi['route']}")
            check(wifi["stations"] == "1", f"{wifi['stations']} stations on the access point (want 1)")
            check(wifi["card"] == "0", f"the card's wpa_supplicant.conf still reads {wifi['card']} bytes")
            check(wifi["copy"] == "600 root", f"the passphrase's copy is {wifi['copy']} (want 600 root)")
            check(wifi["kiosk"] == "0", f"the kiosk's user read {wifi['kiosk']} bytes of the passphrase's copy")
            check(wifi["logged"] == "0", "the passphrase is in the system log")
        check(
            g.wait("`online` over Wi-Fi", lambda ls: online_count(broker) > online_before, 60),
            "no `online` over MQTT from the boot on Wi-Fi",
        )
        visits_before = visit_count(broker)
        g.send("reboot")
        if check(
            g.wait("a visit over Wi-Fi", lambda ls: visit_count(broker) > visits_before, 60),
            "no visit over MQTT over Wi-Fi for the person in view at the second `reboot`",
        ):
            wifi["visit"] = "1"
    check(not any(psk in t for _, t in g.snapshot()), "the Wi-Fi passphrase is on the serial port")
    marks["wifi"] = time.monotonic() - t_wifi
    if failures:
        g.send("log")
        time.sleep(3)
    g.stop()
    lines = g.snapshot()

    # every JSON line of the run against the schema
    bad = schema_failures(lines, validator)
    check(not bad, f"{len(bad)} report lines fail the schema, first: {bad[:1]}")
    b = boots(lines)
    before_reset = faces_in(lines, 0, b[1] if len(b) > 1 else None)
    # (the boot after the reset only: frame numbers start again at each boot)
    after_reset = faces_in(lines, b[1], b[2] if len(b) > 2 else None) if len(b) > 1 else []
    check(
        most_per_frame(before_reset) >= a.min_faces_per_frame,
        f"at most {most_per_frame(before_reset)} faces in one frame (the picture has {a.min_faces_per_frame}+)",
    )
    if after_reset:
        check(
            most_per_frame(after_reset) == 1,
            f"after max_faces = 1 was set, a frame had {most_per_frame(after_reset)} faces",
        )
    overlay = 0
    if shot:
        lit, overlay = lit_and_overlay(shot[2], shot[0], shot[1], colors)
        check(
            overlay >= a.min_overlay_px, f"screendump: {overlay} overlay-coloured pixels (want >= {a.min_overlay_px})"
        )
        check(lit >= 0.3, f"screendump: only {lit:.0%} of the screen is lit (camera image missing?)")
    failures += [t for _, t in lines if t.startswith("BOARD: FAIL") or "Kernel panic" in t]

    # MQTT: the network came up by DHCP; the kiosk said it was online, sent status, and a visit for
    # the faces the camera lost at `unplug` (QoS 1); every payload fits the schema.
    time.sleep(1)
    broker.stop()
    msgs = broker.messages()
    net = [t for _, t in lines if t.startswith("agegender-image: network: ")]
    check(
        any(" via DHCP " in t for t in net), f"no DHCP lease line on the serial port with mqtt set ({net[:1] or '-'})"
    )
    booted = [t for _, t in lines if t.startswith("BOARD: booted")]
    check(bool(booted) and "net: eth0 " in booted[0], f"no eth0 with mqtt set: {booted[:1]}")
    kinds: dict[str, int] = {}
    bad_mqtt = []
    for topic, payload in msgs:
        m = re.fullmatch(r"agegender/([0-9a-f]{12})/(\w+)", topic)
        if not m:
            bad_mqtt.append(f"topic {topic!r}")
            continue
        kinds[m.group(2)] = kinds.get(m.group(2), 0) + 1
        if m.group(2) == "availability":
            if payload not in ("online", "offline"):
                bad_mqtt.append(f"availability {payload!r}")
            continue
        try:
            validator.validate(json.loads(payload))
        except (json.JSONDecodeError, jsonschema.ValidationError) as e:
            bad_mqtt.append(f"{topic}: {payload[:80]!r}: {str(e).splitlines()[0]}")
    check(not bad_mqtt, f"{len(bad_mqtt)} bad MQTT messages, first: {bad_mqtt[:1]}")
    check(any(t.endswith("/availability") and p == "online" for t, p in msgs), "no `online` availability on MQTT")
    check(kinds.get("status", 0) >= 1, f"no status message over MQTT ({kinds})")
    check(kinds.get("visit", 0) >= 1, f"no visit over MQTT after the camera was unplugged ({kinds})")

    # --- boot 2: a bad key in agegender.toml ----------------------------------------------------
    g2 = Guest(a, a.bad_config_disk, "bad-config")

    def error_line(ls) -> str | None:
        return next((t for _, t in ls if t.startswith("agegender-image: agegender: error:")), None)

    bad_line = None
    if check(g2.wait("the error line", error_line, 150), "no error line for the bad key on the serial port"):
        bad_line = error_line(g2.snapshot())
        # No `mqtt` in this agegender.toml: the board has a network card, but no driver for it.
        booted2 = [t for _, t in g2.snapshot() if t.startswith("BOARD: booted")]
        check(
            bool(booted2) and "net: lo " in booted2[0] and "virtio_net" not in booted2[0],
            f"without mqtt the board must have no network interface but lo: {booted2[:1]}",
        )
        check(
            "detect_evry" in bad_line and "/boot/agegender.toml" in bad_line,
            f"the error line does not name the key and the file: {bad_line}",
        )
        # No reboot loop: longer than the watchdog's 60 s, still one boot and no second start.
        time.sleep(70)
        ls2 = g2.snapshot()
        check(len(boots(ls2)) == 1, f"{len(boots(ls2))} boots with the bad key (want 1: no reboot loop)")
        starts = sum(1 for _, t in ls2 if t.startswith("agegender-image: agegender: error:"))
        check(starts == 1, f"agegender started {starts} times with the bad key (want 1)")
        refusal = [t for _, t in ls2 if t.startswith("agegender-image: debug shell refused: ")]
        check(bool(refusal), "debug-shell.txt without a password hash was not refused on the serial port")
        check(console_silent(g2.console_path, 10), "a login prompt runs although debug-shell.txt has no hash")
        shot2 = g2.screendump(out / "screen-bad-config.png")
        if check(shot2 is not None, "no screendump of the bad-key boot"):
            lit2, _ = lit_and_overlay(shot2[2], shot2[0], shot2[1], set())
            check(0.001 < lit2 < 0.3, f"the screen does not show the error text ({lit2:.1%} lit)")
    g2.stop()

    for f in failures:
        print(f"board: FAIL {f}", flush=True)
    tail = [t for _, t in lines if t.startswith("{")][-3:]
    (out / "report-excerpt.txt").write_text("\n".join(tail + ([bad_line] if bad_line else [])) + "\n")
    genders = sorted({f"{f['gender']} {f['age']:.0f} ({f['age_bucket']})" for f in before_reset})[:4]
    cams = [o["camera"] for o in json_lines(lines) if o.get("type") == "status"]
    summary = (
        f"board-test {'PASS' if not failures else 'FAIL'}: image booted in {marks.get('booted', float('nan')):.1f} s, "
        f"first face line at {marks.get('first_face', float('nan')):.1f} s, "
        f"faces {len(before_reset)} before the reset (e.g. {', '.join(genders) or '-'}) and {len(after_reset)} after "
        f"(max_faces = 1: at most {most_per_frame(after_reset)} per frame), "
        f"camera {'/'.join(dict.fromkeys(cams))}, restart by the supervisor, watchdog reset "
        f"{marks.get('reset_after_hang', float('nan')):.0f} s after the hang, "
        f"reboot: {marks.get('reboot_visits', 0)} visit(s) written first; "
        f"kiosk uid {who.get('uid', '?')} groups {who.get('groups', '?')}, chronyd uid {who.get('chronyd', '?')}; "
        f"debug shell: off by default, {'a wrong password refused, root' if marks.get('debug_login') else '-'}, "
        f"notice {notice} px, refused without a hash; "
        f"bad key: {'one line, no reboot' if bad_line else '-'}; overlay {overlay} px; "
        f"MQTT over DHCP: {kinds.get('visit', 0)} visit, {kinds.get('status', 0)} status, "
        f"{kinds.get('availability', 0)} availability; without mqtt only lo; "
        f"Wi-Fi (mac80211_hwsim, WPA2-PSK): {'lease, ' + wifi['route'].split(' src ')[0] if wifi else '-'}, "
        f"{'a visit over it' if wifi.get('visit') else 'no visit'}, passphrase unreadable by the kiosk "
        f"and not logged, {marks.get('wifi', float('nan')):.0f} s of checks; "
        f"{time.monotonic() - t_start:.0f} s, {len(failures)} failure(s)"
    )
    print(summary, flush=True)
    return 0 if not failures else 1


SET_REBOOT_FLAGS = "0x00038064"  # the firmware's "set reboot flags" property tag
NOTIFY_REBOOT = "0x00030048"


def try_boot_raspi3b(g: Guest, out: Path, check) -> str:
    """The try boot (docs/updates.md, board/kernel/rpi-tryboot): a plain restart (`reboot -f`, what
    /init's reboot ends in) sends the firmware no reboot flags; on the boot after it, a restart with
    "0 tryboot", as an update asks for it (reboot-tryboot), sends "set reboot flags" with its
    4-byte value. QEMU's property mailbox traces each tag it gets (not the value: the module's
    own line on the kernel console says which it sent)."""
    trace, klog = out / "mailbox-raspi3b.log", out / "kernel-raspi3b.log"
    read = lambda p: p.read_text(errors="replace") if p.exists() else ""  # noqa: E731
    t0 = time.monotonic()
    g.send("restart")
    if not check(
        g.wait("the boot after a plain restart", lambda ls: len(boots(ls)) >= 2, 120), "no boot after the plain restart"
    ):
        return "try boot: no boot after the plain restart"
    t_plain = time.monotonic() - t0
    before = read(trace)
    check("Restarting system" in read(klog), "no 'Restarting system' on the kernel console after the plain restart")
    check(before.count("mbox property tag:") > 20, f"QEMU's property mailbox trace is (nearly) empty: {trace}")
    check(
        SET_REBOOT_FLAGS not in before,
        f"the firmware got set reboot flags ({SET_REBOOT_FLAGS}) before any try boot: {trace}",
    )
    # Then `who` until the kiosk runs: before it, /init waits for /dev/watchdog to open it, and the
    # watchdog bound again for the restart would be armed (QEMU resets at once); and the hook's
    # reader, which opens the port for each command, loses what comes while nothing holds it open.
    n0, end = len(g.snapshot()), time.monotonic() + 90
    kiosk = lambda: any(re.match(r"BOARD: who: agegender uid [1-9]", t) for _, t in g.snapshot()[n0:])  # noqa: E731
    while not kiosk() and time.monotonic() < end and g.proc.poll() is None:
        g.send("who")
        for _ in range(15):
            if kiosk():
                break
            time.sleep(0.2)
    if not check(kiosk(), f"no kiosk on the boot after the plain restart (`who`; QEMU exit {g.proc.poll()})"):
        return "try boot: no kiosk on the boot after the plain restart"
    # the restart ends QEMU (the harness plays the firmware from here on the virt board's update cases)
    Qmp(g.qmp_path).cmd("set-action", reboot="shutdown")
    g.send("tryboot")
    try:
        g.proc.wait(120)
    except subprocess.TimeoutExpired:
        check(False, "no restart within 120 s of `tryboot`")
    check(
        index_of(g.snapshot(), "BOARD: tryboot at ", n0) is not None,
        f"the hook did not take `tryboot` (QEMU exit {g.proc.poll()})",
    )
    after = read(trace)[len(before) :]
    sent = re.findall(rf"tag:{SET_REBOOT_FLAGS} in_sz:(\d+)", after)
    # then the kernel's firmware driver tells it of the reboot, as on Raspberry Pi's kernel
    check(
        0 <= after.find(SET_REBOOT_FLAGS) < after.find(f"tag:{NOTIFY_REBOOT}"),
        f"set reboot flags did not come before notify reboot ({NOTIFY_REBOOT}): {trace}",
    )
    check(
        sent == ["4"],
        f"on the try boot's restart the firmware got set reboot flags {len(sent)} time(s), value sizes {sent}: "
        "not once with 4 bytes",
    )
    k = read(klog)
    restart = re.search(r"reboot: Restarting system with command '([^']*)'", k)
    check(
        restart is not None and restart.group(1) == "0 tryboot",
        f"no restart with '0 tryboot' on the kernel console: {klog}",
    )
    line = next((x.strip() for x in k.splitlines() if "rpi-tryboot: restart" in x), "")
    check("reboot flags set to 0x1 " in line, f"the module did not say it set the flags: {line or '(no line)'}")
    said = re.search(r"firmware reboot flags set to 0x[0-9a-f]+", line)
    return (
        f"try boot: a plain restart sent no reboot flags, '0 tryboot' sent the firmware tag {SET_REBOOT_FLAGS} "
        f"({len(sent)}x, a 4-byte value) before notify reboot, the module said '{said.group(0) if said else '-'}'; "
        f"{time.monotonic() - t0:.0f} s (the plain restart to the next boot's hook {t_plain:.0f} s)"
    )


def run_raspi3b(a: argparse.Namespace) -> int:
    """The image on QEMU's Raspberry Pi 3 B: its own device tree, drivers by modalias, the
    report on the mini UART, faces from the camera, the kiosk not root."""
    import jsonschema

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    validator = jsonschema.Draft202012Validator(json.loads(Path(a.schema).read_text()))
    failures: list[str] = []
    t_start = time.monotonic()

    def check(ok: bool, msg: str) -> bool:
        if not ok:
            failures.append(msg)
            print(f"board: FAIL {msg}", flush=True)
        return ok

    g = Guest(a, a.disk, "raspi3b", machine="raspi3b")
    booted = board = who = ""
    n_faces = 0
    ok = check(g.wait("the boot", lambda ls: boots(ls) and index_of(ls, "BOARD: board: "), 300), "no boot")
    if ok:
        ls = g.snapshot()
        booted, board = ls[boots(ls)[0]][1], ls[index_of(ls, "BOARD: board: ")][1]
        check("Raspberry Pi 3 Model B" in board and " 4 CPUs" in board, f"not a 4-CPU Pi 3 B: {board}")
        # the mini UART (8250 bcm2835aux: ttyS*), not the PL011 (ttyAMA0, Bluetooth's on a Pi 3)
        check(re.search(r"serial0 -> /dev/ttyS\d", board) is not None, f"serial0 is not the mini UART: {board}")
        mods = set(booted.split("modules: ", 1)[-1].split())
        # by modalias from the SoC's device tree: SD host, SD/SDIO host, USB, watchdog
        want = {"bcm2835", "sdhci_iproc", "dwc2", "bcm2835_wdt"}
        check(want <= mods, f"modules missing (by modalias): {sorted(want - mods)}")
        check("watchdog Broadcom BCM2835 Watchdog timer" in booted, f"no bcm2835 watchdog: {booted[:200]}")
        check("boot partition /dev/mmcblk0p1" in booted, f"the card is not on the SD bus: {booted[:200]}")
        ok = check(
            g.wait("face lines on the mini UART", lambda ls: len(faces_in(ls, boots(ls)[0])) >= a.min_faces, 420),
            f"fewer than {a.min_faces} face lines on the mini UART",
        )
    if ok:
        n_faces = len(faces_in(g.snapshot(), 0))
        g.send("who")
        if check(g.wait("who", lambda ls: index_of(ls, "BOARD: who: ") is not None, 60), "no answer to `who`"):
            who = g.snapshot()[index_of(g.snapshot(), "BOARD: who: ")][1]
            check(re.search(r"agegender uid [1-9]\d* ", who) is not None, f"the kiosk runs as root: {who}")
    tryboot = try_boot_raspi3b(g, out, check) if ok else "try boot: not reached"
    g.stop()
    lines = g.snapshot()
    bad = schema_failures(lines, validator)
    check(not bad, f"{len(bad)} report lines fail the schema, first: {bad[:1]}")
    failures += [t for _, t in lines if t.startswith("BOARD: FAIL") or "Kernel panic" in t]
    for f in failures:
        print(f"board: FAIL {f}", flush=True)
    ls = g.snapshot()
    at = lambda p: next((f"{t:.0f} s" for t, x in ls if x.startswith(p)), "-")  # noqa: E731
    first_face = at('{"schema":"agegender/face')
    print(
        f"board-test raspi3b {'PASS' if not failures else 'FAIL'}: {board.removeprefix('BOARD: board: ')}; "
        f"booted at {at('BOARD: booted')}, first face line on the mini UART at {first_face}, "
        f"{n_faces} face lines; {who.removeprefix('BOARD: who: ').split(';')[0] or 'who: -'}; "
        f"watchdog bcm2835 probed (unbound: QEMU resets when it is armed); {tryboot}; "
        f"{time.monotonic() - t_start:.0f} s, {len(failures)} failure(s)",
        flush=True,
    )
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
    r.add_argument("--append", required=True)
    r.add_argument("--disk", required=True)
    r.add_argument("--bad-config-disk", required=True)
    r.add_argument("--part-offset", type=int, required=True)
    r.add_argument("--schema", required=True)
    r.add_argument("--draw", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--min-faces", type=int, default=2)
    r.add_argument("--min-faces-per-frame", type=int, default=2)
    r.add_argument("--min-overlay-px", type=int, default=200)
    pi = sub.add_parser("raspi3b")
    pi.add_argument("--kernel", required=True)
    pi.add_argument("--dtb", required=True)
    pi.add_argument("--initrd", required=True)
    pi.add_argument("--append", required=True)
    pi.add_argument("--disk", required=True)
    pi.add_argument("--schema", required=True)
    pi.add_argument("--out", required=True)
    pi.add_argument("--min-faces", type=int, default=2)
    a = p.parse_args()
    if a.cmd == "raspi3b":
        return run_raspi3b(a)
    if a.cmd == "frame":
        make_frame(a.image, a.w, a.h, a.out)
        return 0
    return run(a)


if __name__ == "__main__":
    sys.exit(main())
