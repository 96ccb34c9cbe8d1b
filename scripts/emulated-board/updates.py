#!/usr/bin/env python3
"""The update cases of the emulated-board test (issue 33, docs/updates.md): `test --updates`.

  updates.py --disk IMG --part-offset BYTES --test-cpio CPIO --key-dir DIR --work DIR --out DIR

Plays the Raspberry Pi firmware's part on QEMU's virt board, as the Raspberry Pi documentation
describes it: each boot reads config.txt from the card's boot partition, or tryboot.txt when the
restart before asked for a try boot; the kernel, the initramfs and cmdline.txt come from the
directory its os_prefix= names. A try boot is asked for with the restart command "0 tryboot": the
kernel logs it ("Restarting system with command '0 tryboot'") on its consoles just before the
reset; the harness reads it on the UART (console=ttyAMA0 added before the card's console=tty1,
which stays /dev/console; with the card's loglevel=3 only the kernel's most urgent lines join the
report there; a virtio console loses the line: its device is shut down before it).
QEMU runs with -no-reboot, so every restart or watchdog reset ends the QEMU process and
the harness boots what the card says next, as the firmware would. The test's own initramfs
(the vivid camera and test-hook.sh) is appended to whichever slot's initramfs boots.

The bundles are made here from the card's slot a/ with scripts/package/bundle and the key the
image was signed with: the slot as it is, with a newer version in /etc/agegender-release (good),
the same with a /usr/bin/agegender that exits at start (exits) or that arms the hardware watchdog
and never feeds it, as a hung frame loop does (hang); one signed by another key (refused).
agegender.toml sets `mqtt` (a mosquitto on the host, reached as 10.0.2.2 through QEMU's user
network, as in the main board test): the kiosk publishes the update state on
agegender/board-updates/update and takes commands on agegender/board-updates/cmd/update; the
bundles it is sent come from an HTTP server on the host (also 10.0.2.2). The cases, one card, in
order:
  1. good.swu on the boot partition: installed into b/, try boot of b/ (its kiosk publishes
     `trying` and refuses a command meanwhile), committed once healthy (`committed` published);
     then a cold boot (no try flag) takes b/;
  2. on that boot: another key's bundle refused, the hanging one installed into a/; its try boot
     ends in a watchdog reset; b/ boots, reports the failed update on the serial port, and its
     kiosk publishes it;
  3. over MQTT, to that kiosk: a command with an ftp:// URL (refused), one whose URL the server
     does not have (accepted; the download fails; the restarted kiosk publishes `fetch-failed`),
     then the exiting bundle's URL (accepted, downloaded, installed into a/); its try boot fails
     at once and reboots; b/ boots, reports the failed update, and its kiosk publishes it;
  4. over MQTT: good2's URL; QEMU killed while SWUpdate writes a/; the download taken off the
     card; b/ boots, says the install was interrupted, and its kiosk reports faces;
  5. agegender.toml is the same bytes after all of it.
Prints one summary line last; exit 0 only when every check passed.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from board import Broker, Guest, edit_config, faces_in  # noqa: E402 - the board test's, beside this file

ROOT = Path(__file__).resolve().parents[2]
TRY_CMD = "Restarting system with command '0 tryboot'"
CLIENT_ID = "board-updates"
UPDATE_TOPIC = f"agegender/{CLIENT_ID}/update"
COMMAND_TOPIC = f"agegender/{CLIENT_ID}/cmd/update"


class Files(http.server.ThreadingHTTPServer):
    """The bundles, served over HTTP on the host (127.0.0.1, a free port; 10.0.2.2 to the guest)."""

    def __init__(self, folder: Path):
        self.asked: list[str] = []
        self.folder = folder
        files = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, fmt, *args):  # noqa: ANN001 - the base class's signature
                files.asked.append(f"{self.command} {self.path} {args[1] if len(args) > 1 else ''}")

            def handle(self):
                try:
                    super().handle()
                except (BrokenPipeError, ConnectionResetError):  # busybox's --spider hangs up
                    pass

        super().__init__(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def url(self, name: str) -> str:
        return f"http://10.0.2.2:{self.port}/{name}"


def results(broker: Broker) -> list[dict]:
    """The update topic's messages so far (JSON)."""
    out = []
    for topic, payload in broker.messages():
        if topic == UPDATE_TOPIC:
            try:
                out.append(json.loads(payload))
            except json.JSONDecodeError:
                out.append({"state": "not JSON", "payload": payload})
    return out


def command(g: FirmwareGuest, broker: Broker, payload: str) -> None:
    print(f"[{time.monotonic() - g.t0:6.1f} s] updates: MQTT {COMMAND_TOPIC} <- {payload}", flush=True)
    subprocess.run(
        ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1", "-t", COMMAND_TOPIC, "-m", payload],
        check=True,
    )  # fmt: skip


class Card:
    """The boot partition of a disk image, through mtools (QEMU not running)."""

    def __init__(self, disk: str, offset: int):
        self.at = f"{disk}@@{offset}"

    def read(self, name: str) -> bytes:
        return subprocess.run(["mtype", "-i", self.at, f"::{name}"], capture_output=True, check=True).stdout

    def get(self, name: str, dest: Path) -> None:
        subprocess.run(["mcopy", "-o", "-i", self.at, f"::{name}", str(dest)], check=True)

    def put(self, src: Path, name: str) -> None:
        subprocess.run(["mcopy", "-o", "-m", "-i", self.at, str(src), f"::{name}"], check=True)

    def delete(self, name: str) -> None:
        subprocess.run(["mdel", "-i", self.at, f"::{name}"], check=True)

    def names(self, folder: str = "") -> list[str]:
        r = subprocess.run(["mdir", "-b", "-i", self.at, f"::/{folder}"], capture_output=True, text=True)
        return [n.rsplit("/", 1)[-1] for n in r.stdout.split()]

    def setting(self, name: str, key: str) -> str:
        text = self.read(name).decode().replace("\r", "")
        found = re.findall(rf"^{key}=(.*)$", text, re.M)
        return found[-1] if found else ""


class FirmwareGuest(Guest):
    """One boot of virt that ends with the guest's restart or reset (-no-reboot)."""

    def virt(self, a: argparse.Namespace, disk: str) -> list[str]:
        return super().virt(a, disk) + ["-no-reboot"]


def boot(a, card: Card, name: str, tryboot: bool) -> tuple[FirmwareGuest, str]:
    """Start QEMU with what the firmware would load; returns the guest and the slot booted."""
    cfg = "tryboot.txt" if tryboot and "tryboot.txt" in card.names() else "config.txt"
    prefix = card.setting(cfg, "os_prefix")
    text = card.read(cfg).decode().replace("\r", "")
    kernel = re.findall(r"^kernel=(.*)$", text, re.M)[-1]
    initramfs = re.findall(r"^initramfs (\S+)", text, re.M)[-1]
    w = Path(a.work) / name
    w.mkdir(parents=True, exist_ok=True)
    card.get(prefix + kernel, w / "kernel")
    card.get(prefix + initramfs, w / "initrd")
    with open(w / "initrd", "r+b") as f:  # the test's archive after the slot's, 512-aligned
        f.seek(0, os.SEEK_END)
        f.write(b"\0" * (-f.tell() % 512))
        f.write(Path(a.test_cpio).read_bytes())
    cmdline = card.read(prefix + "cmdline.txt").decode().strip()
    ns = argparse.Namespace(
        kernel=str(w / "kernel"), initrd=str(w / "initrd"), append="console=ttyAMA0 " + cmdline, out=a.out,
    )  # fmt: skip
    print(f"firmware: {name}: {cfg} -> os_prefix={prefix} ({'try boot' if tryboot else 'boot'})", flush=True)
    return FirmwareGuest(ns, a.disk, name), prefix.rstrip("/")


def ended(g: FirmwareGuest, timeout: float) -> bool:
    """Wait for QEMU to exit by itself (a restart or a reset under -no-reboot)."""
    try:
        g.proc.wait(timeout)
        return True
    except subprocess.TimeoutExpired:
        return False


def asked_tryboot(g: FirmwareGuest) -> bool:
    """The restart asked for a try boot: the firmware's flag for the next boot."""
    return any(TRY_CMD in t for _, t in g.snapshot())


def line(g: FirmwareGuest, pattern: str) -> str | None:
    return next((t for _, t in g.snapshot() if re.search(pattern, t)), None)


def make_bundle(a, name: str, version: str, program: str | None, key_dir: Path) -> Path:
    """A bundle of the card's slot a/ with an overlay archive: a new agegender-release, maybe a program."""
    card = Card(a.disk, a.part_offset)
    w = Path(a.work) / f"bundle-{name}"
    slot, ov = w / "slot", w / "overlay"
    shutil.rmtree(w, ignore_errors=True)
    slot.mkdir(parents=True)
    for f in card.names("a"):
        card.get(f"a/{f}", slot / f)
    (slot / "cmdline.txt").write_text(re.sub(r" *agegender\.slot=\S+", "", (slot / "cmdline.txt").read_text()))
    (ov / "etc").mkdir(parents=True)
    release = card_release(a)
    (ov / "etc" / "agegender-release").write_text(re.sub(r"^agegender \S+", f"agegender {version}", release))
    if program is not None:
        (ov / "usr" / "bin").mkdir(parents=True)
        (ov / "usr" / "bin" / "agegender").write_text(program)
        (ov / "usr" / "bin" / "agegender").chmod(0o755)
    names = "\n".join(sorted(str(p.relative_to(ov)) for p in ov.rglob("*"))) + "\n"
    arc = subprocess.run(
        ["cpio", "-o", "-H", "newc", "--reproducible", "--owner", "0:0", "--quiet"],
        cwd=ov, input=names.encode(), capture_output=True, check=True,
    ).stdout  # fmt: skip
    with open(slot / "initrd.img", "ab") as f:
        f.write(b"\0" * (-f.tell() % 512) + arc)
    out = w / f"{name}.swu"
    r = subprocess.run(
        [str(ROOT / "scripts/package/bundle"), str(slot), version, str(key_dir / "update-key.pem"),
         str(key_dir / "update-cert.pem"), str(out)], capture_output=True, text=True,
    )  # fmt: skip
    if r.returncode != 0:
        raise SystemExit(f"updates: scripts/package/bundle for {name}: {r.stderr.strip()}")
    shutil.rmtree(slot)
    return out


_release: str | None = None


def card_release(a) -> str:
    """/etc/agegender-release of the card's slot a/ initramfs (zstd cpio), read once."""
    global _release
    if _release is None:
        card = Card(a.disk, a.part_offset)
        w = Path(a.work) / "release"
        w.mkdir(parents=True, exist_ok=True)
        card.get("a/initrd.img", w / "initrd.img")
        raw = subprocess.run(["zstd", "-dc", str(w / "initrd.img")], capture_output=True, check=True).stdout
        x = subprocess.run(
            ["cpio", "-i", "--quiet", "--to-stdout", "*etc/agegender-release"], input=raw, capture_output=True
        )
        _release = x.stdout.decode()
        if not _release.startswith("agegender "):
            raise SystemExit("updates: the card's a/initrd.img has no etc/agegender-release")
    return _release


EXITS = "#!/bin/sh\n# update test: a program that fails at start\necho 'agegender: error: broken build' >&2\nexit 1\n"
# Arms the watchdog (busybox's watchdog applet: a 10 s timeout, fed every hour: never) and waits:
# what a hung frame loop looks like to the board.
HANGS = "#!/bin/sh\n# update test: a program that hangs\nwatchdog -F -T 10 -t 3600 /dev/watchdog\n"


def run(a: argparse.Namespace) -> int:
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.monotonic()
    failures: list[str] = []
    notes: list[str] = []
    card = Card(a.disk, a.part_offset)
    key_dir = Path(a.key_dir)

    def check(ok: bool, msg: str) -> bool:
        if not ok:
            failures.append(msg)
            print(f"updates: FAIL {msg}", flush=True)
        return ok

    def note(g: FirmwareGuest, pattern: str, timeout: float = 0) -> str | None:
        """The first serial line matching pattern (waiting up to timeout s for it), kept for the summary."""
        if timeout:
            g.wait(pattern, lambda ls: any(re.search(pattern, t) for _, t in ls), timeout)
        t = line(g, pattern)
        if t:
            notes.append(t)
            print(f"updates: key line: {t}", flush=True)
        return t

    def result(g: FirmwareGuest, after: int, what: str, pred, timeout: float = 240) -> dict | None:
        """The first message on the update topic after the first `after` that pred accepts."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            found = next((m for m in results(broker)[after:] if pred(m)), None)
            if found is not None:
                print(
                    f"[{time.monotonic() - g.t0:6.1f} s] updates: MQTT {UPDATE_TOPIC}: {json.dumps(found)}", flush=True
                )
                notes.append(f"MQTT {UPDATE_TOPIC}: {json.dumps(found)}")
                return found
            if g.proc.poll() is not None:
                print(f"updates: QEMU exited waiting for {what} on {UPDATE_TOPIC}", flush=True)
                return None
            time.sleep(0.3)
        print(f"updates: no {what} on {UPDATE_TOPIC} within {timeout:.0f} s: {results(broker)[after:]}", flush=True)
        return None

    if card.read("update-cert.pem") != (key_dir / "update-cert.pem").read_bytes():
        print(
            f"updates: FAIL the card's update-cert.pem is not {key_dir}/update-cert.pem (image built with UPDATE_KEY?)"
        )
        return 1
    # MQTT: the broker and the bundles' server on the host; agegender.toml says where (as a user would)
    broker = Broker(out)
    served = Path(a.work) / "served"
    served.mkdir(parents=True, exist_ok=True)
    files = Files(served)
    try:
        for key in (f'mqtt = "mqtt://10.0.2.2:{broker.port}"', f'mqtt_client_id = "{CLIENT_ID}"'):
            edit_config(a.disk, a.part_offset, f"$a {key}", Path(a.work))
        return cases(a, card, key_dir, broker, files, check, note, result, notes, failures, t_start)
    finally:
        files.shutdown()
        broker.stop()


def cases(a, card, key_dir, broker, files, check, note, result, notes, failures, t_start) -> int:  # noqa: ANN001, PLR0913
    toml = card.read("agegender.toml")
    version = re.match(r"agegender (\S+)", card_release(a)).group(1)
    t0 = time.monotonic()
    good = make_bundle(a, "good", f"{version}+good", None, key_dir)
    exits = make_bundle(a, "exits", f"{version}+exits", EXITS, key_dir)
    hangs = make_bundle(a, "hangs", f"{version}+hangs", HANGS, key_dir)
    good2 = make_bundle(a, "good2", f"{version}+good2", None, key_dir)
    other_dir = Path(a.work) / "other-key"
    subprocess.run([str(ROOT / "scripts/package/bundle"), "--dev-key", str(other_dir)], check=True, capture_output=True)
    other = make_bundle(a, "other", f"{version}+other", None, other_dir)
    print(f"updates: 5 bundles made in {time.monotonic() - t0:.0f} s", flush=True)
    for b in (exits, good2):
        shutil.copy(b, files.folder / b.name)
    card.put(good, "1-good.swu")
    # a shorter healthy time than the default 120 s: the emulated board is slow, not the point here
    (Path(a.work) / "update.txt").write_text(f"healthy_s = {a.healthy_s}\n")
    card.put(Path(a.work) / "update.txt", "update.txt")

    # --- 1. good: install into b/, try, commit; a cold boot stays on b/ -------------------------
    g, slot = boot(a, card, "install-good", False)
    ok = check(slot == "a", f"a new card booted slot {slot}")
    ok = ok and check(ended(g, 240), "no restart after the good bundle was offered")
    written = note(g, r"update: version .* written to slot b in \d+ s")
    # how long an install takes: the install killed below is killed a third of the way through (half
    # was too late once: on a loaded host the good install took 13 s and good2's whole install 7 s)
    kill_after = max(1.0, int(re.search(r" in (\d+) s", written).group(1)) / 3) if written else 2.0
    ok = ok and check(asked_tryboot(g), "the install did not end in a try-boot restart")
    if ok:
        g, slot = boot(a, card, "try-good", True)
        check(slot == "b", f"the try boot took slot {slot}, not b")
        note(g, r"update: try boot of slot b", 120)
        # the kiosk on trial publishes it, and refuses an update meanwhile
        n = len(results(broker))
        check(
            result(g, n, "`trying`", lambda m: m.get("state") == "trying" and m.get("slot") == "b") is not None,
            "the kiosk on trial did not publish `trying`",
        )
        if line(g, "committed") is None:
            n = len(results(broker))
            command(g, broker, json.dumps({"url": files.url(good.name)}))
            r = result(g, n, "an answer", lambda m: m.get("state") in ("refused", "accepted"), 60)
            check(
                r is not None and r["state"] == "refused" and "on trial" in r.get("reason", ""),
                f"a command during the try was not refused as such: {r}",
            )
        ok = check(g.wait("the commit", lambda ls: any("committed" in t for _, t in ls), 300), "slot b never committed")
        note(g, r"update: slot b .* committed")
        check(
            result(g, 0, "`committed`", lambda m: m.get("state") == "committed" and m.get("slot") == "b", 30)
            is not None,
            "the commit was not published",
        )
        g.stop()  # power off
        check(card.setting("config.txt", "os_prefix") == "b/", "config.txt does not name b/ after the commit")
    if ok:
        # cold boot: another key's bundle (refused) and the hanging one (installed into a/) on offer
        card.put(other, "2-other-key.swu")
        card.put(hangs, "3-hangs.swu")
        g, slot = boot(a, card, "cold-b", False)
        check(slot == "b", f"the cold boot after the commit took slot {slot}")
        ok = check(ended(g, 300), "no restart after the hanging bundle was offered")
        check(note(g, r"update refused: /boot/2-other-key.swu") is not None, "another key's bundle was not refused")
        check(
            line(g, r"update refused: .*(Authentication|signature)") is not None,
            "the refusal does not name the signature",
        )
        ok = ok and check(asked_tryboot(g), "the hanging bundle's install did not end in a try boot")
    # --- 2. hangs: the watchdog resets the try boot, b/ reports it (serial and MQTT) ------------
    if ok:
        g, slot = boot(a, card, "try-hangs", True)
        check(slot == "a", f"the try boot took slot {slot}, not a")
        ok = check(ended(g, 300), "the hanging try was not reset")
        check(line(g, "committed") is None, "the hanging slot committed")
    if ok:
        n = len(results(broker))
        g, slot = boot(a, card, "back-from-hang", False)
        check(slot == "b", f"after the reset the board booted slot {slot}")
        check(
            note(g, r"update failed: slot a .*\+hangs.*did not commit: it did not commit", 120) is not None,
            "slot b did not report the hanging update",
        )
        r = result(g, n, "the failed try", lambda m: m.get("state") == "failed")
        ok = check(
            r is not None and r.get("slot") == "a" and r.get("version", "").endswith("+hangs"),
            f"the kiosk did not publish the hanging update's failure: {r}",
        )
    # --- 3. over MQTT: a bad command, a missing file, then the exiting bundle ---------------------
    if ok:
        n = len(results(broker))
        command(g, broker, json.dumps({"url": "ftp://10.0.2.2/exits.swu"}))
        r = result(g, n, "the refusal of ftp://", lambda m: m.get("state") == "refused", 60)
        check(
            r is not None and "is not an http:// or https:// URL" in r.get("reason", ""),
            f"an ftp:// URL was not refused as such: {r}",
        )
        n = len(results(broker))
        missing = files.url("no-such.swu")
        command(g, broker, json.dumps({"url": missing}))
        r = result(g, n, "accepted", lambda m: m.get("state") in ("accepted", "refused"), 60)
        ok = check(r == {"state": "accepted", "url": missing}, f"a good command was not accepted: {r}")
    if ok:
        r = result(g, n, "fetch-failed", lambda m: m.get("state") == "fetch-failed", 180)
        check(
            r is not None and "404" in r.get("reason", "") and missing in r.get("reason", ""),
            f"the failed download was not published with its reason: {r}",
        )
        note(g, r"update failed: http://.*no-such\.swu")
        n = len(results(broker))
        command(g, broker, json.dumps({"url": files.url(exits.name)}))
        r = result(g, n, "accepted", lambda m: m.get("state") in ("accepted", "refused"), 120)
        ok = check(r is not None and r["state"] == "accepted", f"the exiting bundle's command was not accepted: {r}")
    if ok:
        ok = check(ended(g, 300), "no restart after the exiting bundle was sent over MQTT")
        note(g, r"update: downloading http://.*exits\.swu")
        check(
            note(g, r"update: installing /boot/mqtt-update\.swu \(version .*\+exits\) into slot a") is not None,
            "the downloaded bundle was not installed",
        )
        note(g, r"update: version .*\+exits written to slot a")
        ok = ok and check(asked_tryboot(g), "the downloaded bundle's install did not end in a try boot")
    # --- exits at start: the try fails at once, b/ reports it (serial and MQTT) -----------------
    if ok:
        g, slot = boot(a, card, "try-exits", True)
        check(slot == "a", f"the try boot took slot {slot}, not a")
        ok = check(ended(g, 240), "the failed try did not restart")
        note(g, r"failed its try")
        check(not asked_tryboot(g), "the failed try asked for another try boot")
    if ok:
        n = len(results(broker))
        g, slot = boot(a, card, "back-from-exits", False)
        check(slot == "b", f"after the failed try the board booted slot {slot}")
        check(
            note(g, r"update failed: slot a .*\+exits.*did not commit: agegender exited with status 1", 120)
            is not None,
            "slot b did not report the exiting update",
        )
        r = result(g, n, "the failed try", lambda m: m.get("state") == "failed")
        ok = check(
            r is not None
            and r.get("version", "").endswith("+exits")
            and "agegender exited with status 1" in r.get("reason", ""),
            f"the kiosk did not publish the exiting update's failure: {r}",
        )
    # --- 4. killed mid-install (a bundle sent over MQTT) -------------------------------------------
    if ok:
        n = len(results(broker))
        command(g, broker, json.dumps({"url": files.url(good2.name)}))
        r = result(g, n, "accepted", lambda m: m.get("state") in ("accepted", "refused"), 120)
        ok = check(r is not None and r["state"] == "accepted", f"good2's command was not accepted: {r}")
        ok = ok and check(
            g.wait("the install of good2", lambda ls: any("installing /boot/mqtt-update.swu" in t for _, t in ls), 240),
            "good2 was not installed",
        )
        if ok:
            time.sleep(kill_after)
            written = line(g, r"written to slot a")
            g.proc.kill()
            g.proc.wait()
            print(f"updates: QEMU killed {kill_after:.1f} s into the install", flush=True)
            ok = check(written is None, f"the install ended before the kill: {written}")
    if ok:
        card.delete("mqtt-update.swu")  # taken off the card (else the next boot installs it again)
        g, slot = boot(a, card, "after-kill", False)
        check(slot == "b", f"after the killed install the board booted slot {slot}")
        check(
            note(g, r"update: the install of version .*good2 into slot a was interrupted", 120) is not None,
            "no word of the interrupted install",
        )
        check(g.wait("faces", lambda ls: len(faces_in(ls, 0)) >= 1, 240), "the kiosk reported no face after the kill")
        g.stop()
    # --- 5. the user's settings --------------------------------------------------------------------
    check(card.read("agegender.toml") == toml, "agegender.toml changed")
    state = card.read("update-state.txt").decode().strip() if "update-state.txt" in card.names() else ""
    took = time.monotonic() - t_start
    (Path(a.out) / "update-results.txt").write_text("".join(json.dumps(m) + "\n" for m in results(broker)))
    print(f"updates: HTTP requests: {files.asked}", flush=True)
    if failures:
        print(f"board-test updates FAIL: {len(failures)} failure(s): {'; '.join(failures)}; {took:.0f} s")
        return 1
    print(
        "board-test updates PASS: good bundle installed into b/, try-booted (`trying` published, a command "
        "refused), committed (published), cold boot on b/; another key refused; hang (watchdog reset) back on "
        "b/ with the reason, published; over MQTT: ftp:// refused, a missing file's failed download published, "
        "the exiting bundle downloaded, installed, its try failed, back on b/ with the reason, published; "
        f"killed mid-install: b/ boots; agegender.toml unchanged; state '{state}'; {took:.0f} s"
    )
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--disk", required=True)
    p.add_argument("--part-offset", type=int, required=True)
    p.add_argument("--test-cpio", required=True)
    p.add_argument("--key-dir", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--healthy-s", type=int, default=30, help="update.txt's healthy_s on the card")
    return run(p.parse_args())


if __name__ == "__main__":
    sys.exit(main())
