"""scripts/package/bundle: the signed SWUpdate bundle of an image slot (issue 33, docs/updates.md).

SWUpdate itself (Debian's `swupdate`, the same source as the board's) checks each bundle against a
certificate, as the board does before it installs (`swupdate -c`: the CMS signature of
sw-description, then every file's sha256 while it streams the archive; nothing is written). The
slot is small random files: what is tested is the signing and the checking, not the image.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
BUNDLE = ROOT / "scripts" / "package" / "bundle"
HW = "agegender-rpi-arm64:1"

pytestmark = pytest.mark.skipif(
    shutil.which("swupdate") is None or shutil.which("openssl") is None,
    reason="swupdate or openssl not installed (scripts/setup --deps installs them)",
)


def run_bundle(*args: str, epoch: str = "1700000000") -> subprocess.CompletedProcess:
    env = dict(os.environ, SOURCE_DATE_EPOCH=epoch)
    return subprocess.run([str(BUNDLE), *args], capture_output=True, text=True, env=env)


def dev_key(d: Path) -> tuple[str, str]:
    r = run_bundle("--dev-key", str(d))
    assert r.returncode == 0, r.stderr
    key, cert = r.stdout.split()
    return key, cert


def check(swu: Path, cert: str, slot: str = "b") -> subprocess.CompletedProcess:
    """What the board runs before it installs, without installing (-c)."""
    return subprocess.run(
        ["swupdate", "-c", "-i", str(swu), "-k", cert, "-e", f"stable,{slot}", "-H", HW, "-l", "3"],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    d = tmp_path_factory.mktemp("bundle")
    slot = d / "slot"
    slot.mkdir()
    rng = random.Random(33)
    (slot / "vmlinuz").write_bytes(rng.randbytes(300_000))
    (slot / "initrd.img").write_bytes(rng.randbytes(200_000))
    (slot / "bcm2837-rpi-3-b.dtb").write_bytes(rng.randbytes(15_000))
    (slot / "cmdline.txt").write_text("console=tty1 quiet loglevel=3 panic=10\n")
    key, cert = dev_key(d / "key")
    swu = d / "a.swu"
    r = run_bundle(str(slot), "1.2.3-test", key, cert, str(swu))
    assert r.returncode == 0, r.stderr
    return d, slot, key, cert, swu


def test_same_inputs_same_bytes(made):
    d, slot, key, cert, swu = made
    again = d / "again.swu"
    assert run_bundle(str(slot), "1.2.3-test", key, cert, str(again)).returncode == 0
    assert hashlib.sha256(swu.read_bytes()).hexdigest() == hashlib.sha256(again.read_bytes()).hexdigest()


def test_swupdate_accepts_it_for_either_slot(made):
    _, _, _, cert, swu = made
    for slot in "ab":
        r = check(swu, cert, slot)
        assert r.returncode == 0, r.stdout + r.stderr


def test_one_flipped_byte_is_refused(made):
    d, _, _, cert, swu = made
    data = swu.read_bytes()
    # the last file (cmdline-b.txt) is the tail; the initramfs is mid-archive; sw-description first
    for where, offset in (("payload", len(data) // 2), ("sw-description", 200)):
        bad = bytearray(data)
        bad[offset] ^= 0x01
        p = d / f"flipped-{where}.swu"
        p.write_bytes(bytes(bad))
        r = check(p, cert)
        assert r.returncode != 0, f"a byte flipped in the {where} was accepted:\n{r.stdout}"
        assert "Image invalid or corrupted" in r.stdout + r.stderr or "failed" in r.stdout + r.stderr


def test_changed_description_with_the_old_signature_is_refused(made):
    """A well-formed archive whose sw-description was edited: only the signature can tell."""
    d, _, _, cert, swu = made
    x = d / "x"
    x.mkdir()
    subprocess.run(["cpio", "-i", "--quiet"], cwd=x, input=swu.read_bytes(), check=True)
    desc = (x / "sw-description").read_text()
    (x / "sw-description").write_text(desc.replace('version = "1.2.3-test"', 'version = "9.9.9-test"'))
    names = ["sw-description", "sw-description.sig"] + sorted(
        p.name for p in x.iterdir() if not p.name.startswith("sw-description")
    )
    packed = subprocess.run(
        ["cpio", "-o", "-H", "crc", "--quiet"], cwd=x, input=("\n".join(names) + "\n").encode(), capture_output=True
    )
    assert packed.returncode == 0
    p = d / "edited.swu"
    p.write_bytes(packed.stdout)
    r = check(p, cert)
    assert r.returncode != 0
    assert "signature" in (r.stdout + r.stderr).lower()


def test_another_key_is_refused(made):
    d, slot, _, cert, _ = made
    key2, cert2 = dev_key(d / "other-key")
    other = d / "other.swu"
    assert run_bundle(str(slot), "1.2.3-test", key2, cert2, str(other)).returncode == 0
    r = check(other, cert)
    assert r.returncode != 0
    assert "Authentication of all signatures failed" in r.stdout + r.stderr


def test_errors_name_the_input(made, tmp_path):
    _, slot, key, cert, _ = made
    r = run_bundle(str(tmp_path), "1", key, cert, str(tmp_path / "x.swu"))
    assert r.returncode != 0 and f"{tmp_path}/vmlinuz" in r.stderr
    r = run_bundle(str(slot), "1", str(tmp_path / "nokey.pem"), cert, str(tmp_path / "x.swu"))
    assert r.returncode != 0 and "nokey.pem" in r.stderr
    r = run_bundle(str(slot), "1 2", key, cert, str(tmp_path / "x.swu"))
    assert r.returncode != 0 and "version '1 2'" in r.stderr
