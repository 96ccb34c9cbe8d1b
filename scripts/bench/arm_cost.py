"""The cost of each stage on the board, as aarch64 instruction counts (qemu-user + a TCG plugin).

    scripts/bench/arm-cost                    # build examples/arm_cost for aarch64, count, print
    scripts/bench/arm-cost --check            # ... and exit 1 if a count grew > 5% over the baseline
    scripts/bench/arm-cost --update-baseline  # ... and write scripts/bench/arm-cost-baseline.json
    scripts/bench/arm-cost --determinism      # only: one stage on one CPU counted twice, must match
    options: --jobs N (parallel qemu runs, default 1), --no-build, --cpus cortex-a72,cortex-a76,
             --baseline FILE, --tolerance 0.05, --min-delta 10000 (instructions: smaller changes
             never fail the check), --int8 ONNX, --f32 ONNX; ARM_COST_CONFIG=FILE counts another
             configuration than board/config.toml (a comparison, never the baseline)

Environment: QEMU_INSN_COUNT the counter (default ../shared/tools/qemu-insn/count, see its README);
ARM_COST_BIN the aarch64 examples/arm_cost binary (default: built here with cargo, into
$CARGO_TARGET_DIR or target/); ARM_SYSROOT the aarch64 sysroot (default /usr/aarch64-linux-gnu);
CC_aarch64_unknown_linux_gnu the cross compiler for the getrandom shim (default aarch64-linux-gnu-gcc).

Method. `examples/arm_cost` (see its header) does the set-up once per CPU model (loads board/config.toml,
the detector and both classifiers, builds fixed 640x480 JPEG frames from tests/fixtures/demo/crew.jpg:
one face, four faces, none; warms every stage up), then for each measurement forks a child that runs
one stage N times and one that runs it 2N times; qemu's plugin prints each child's count when it
exits. (count(2N) - count(N) - c) / N is the stage's instructions per rep, where c, the parent's own
work per fork, is measured by two empty children (and checked constant by a third). qemu's random
seed is fixed (QEMU_RAND_SEED), the guest's environment is only LD_PRELOAD, getrandom(2) returns
fixed bytes (a preloaded function: Rust's hash seeds) and the example reads no clock: two runs print
the same numbers. The guest sees the board's /proc/cpuinfo (Pi 4 for cortex-a72, Pi 5 for
cortex-a76; tract reads its CPU part and its fp16 flag there), through a sysroot per CPU model under
target/arm-cost/; the binary runs as ./arm_cost in target/arm-cost/run (links to it and to board/,
models/, tests/), so neither the checkout's path nor the build's changes a count.
Per frame unless said: `window` (track-guided detection's search of a window around a face with the
128x128 front model), `align` and `classify` are divided by the faces of the input; `frame` is one
frame of the shipped loop configured by board/config.toml (detect_every, max_faces, thresholds),
averaged over N = detect_every frames (decode; detection every detect_every-th frame with align,
classify and track; draw; report), with the int8 classifier or (rows "f32", "f16") the f32 file as
exported or run in f16 (counted only on a CPU with fp16). The JSON "default" figures use the form that
model_form = "auto" picks on that CPU (the example asks the library, as the binary does). `detect`
on the face-free frame is the detector alone. `loop` (input `drift`) is one step of the shipped loop
itself (examples/arm_cost.rs's `Pipeline`, board/config.toml) on a face swaying 64 px left and right,
2 px a frame, averaged over whole 64-frame cycles (30 fps by the stream's clock): what the loop's
own decisions (when to detect, which faces to classify) cost, with the form model_form = "auto"
picks (f32 on the Cortex-A72), counted on the CPU models without fp16: `{cpu}_loop_insns_default`.
`loop` on input `crowd` is the same for four people (the `four` frame's portraits: one standing,
one swaying, one nodding, one walking in, standing and out again), averaged over whole 32-frame
cycles: `{cpu}_loop_insns_default_4faces`.

Counts are not times: a time on the board is count / (IPC x clock), with IPC the core's own
(state the assumption you use). Output: the table, then one JSON object as the last line.
"""

import argparse
import concurrent.futures
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TARGET = "aarch64-unknown-linux-gnu"
STAGES = ["decode", "detect", "window", "align", "classify", "track", "draw", "report", "frame"]
PER_FACE = {"window", "align", "classify"}
FACES = {"one": 1, "four": 4, "none": 0, "drift": 1, "crowd": 4}
# `loop` on `drift`: whole cycles of the example's swaying face (DRIFT_FRAMES in examples/arm_cost.rs);
# on `crowd`: whole cycles of its four people (CROWD_FRAMES)
DRIFT_CYCLE = 64
CROWD_CYCLE = 32
CPU_SHORT = {"cortex-a72": "a72", "cortex-a76": "a76"}


def log(msg):
    print(f"[arm-cost] {msg}", file=sys.stderr, flush=True)


def die(msg):
    print(f"arm-cost: {msg}", file=sys.stderr)
    sys.exit(2)


def build():
    # Built as the shipped binary is: linked by zig for glibc 2.27 (scripts/package/cargo-zig)
    zig = str(ROOT / "scripts/package/cargo-zig")
    cmd = [zig, "zigbuild", "--release", "--locked", "--target", TARGET + ".2.27", "--example", "arm_cost"]
    log(" ".join(cmd))
    subprocess.run(cmd, cwd=ROOT, check=True)
    return target_dir() / TARGET / "release" / "examples" / "arm_cost"


def counter():
    c = os.environ.get("QEMU_INSN_COUNT", str(ROOT.parent / "shared/tools/qemu-insn/count"))
    if not os.access(c, os.X_OK):
        die(f"no instruction counter at {c} (set QEMU_INSN_COUNT; see ../shared/tools/qemu-insn/README.md)")
    return c


def quant_form(path):
    """What kind of quantized graph an ONNX file holds, from the operator names in it."""
    data = Path(path).read_bytes()
    if b"QLinearConv" in data or b"QLinearMatMul" in data or b"ConvInteger" in data:
        return "qoperator-int8"
    if b"DequantizeLinear" in data:
        return "qdq-int8"
    return "f32"


def detect_every():
    """board/config.toml's detect_every (tomllib is Python 3.11+; Ubuntu 22.04 has 3.10, where the
    top-level integer key is read with a pattern)."""
    path = ROOT / "board/config.toml"
    try:
        import tomllib
    except ModuleNotFoundError:
        found = re.search(r"^detect_every\s*=\s*(\d+)", path.read_text(), re.MULTILINE)
        return max(1, int(found.group(1))) if found else 1
    with open(path, "rb") as f:
        return max(1, int(tomllib.load(f).get("detect_every", 1)))


# What the boards' /proc/cpuinfo says (Raspberry Pi 4: Cortex-A72 r0p3; Pi 5: Cortex-A76 r4p1). qemu-user
# 7.2 shows the guest the host's (x86) file, so tract would see no "CPU part" and no "asimdhp" (its fp16
# probe) and the host's text would move the heap layout; qemu's -L prefix is looked up first for every
# absolute path the guest opens, so a sysroot holding proc/cpuinfo gives tract the board's view.
CPUINFO = {
    "cortex-a72": ("fp asimd evtstrm crc32 cpuid", "0x0", "0xd08", "3"),
    "cortex-a76": (
        "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp",
        "0x4",
        "0xd0b",
        "1",
    ),
}

# Rust's HashMap keys come from getrandom(2), which qemu-user passes to the host: a different
# random seed in every run, and tract's hash maps then probe differently (tens of instructions
# per inference). std looks getrandom up as a weak symbol, so this preloaded function, the same
# bytes in every run, makes the count a function of the program and its arguments.
DETRAND_C = """#include <stddef.h>
#include <sys/types.h>
ssize_t getrandom(void *buf, size_t len, unsigned int flags) {
    static unsigned long long s = 0x9e3779b97f4a7c15ull;
    unsigned char *p = buf;
    (void)flags;
    for (size_t i = 0; i < len; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = (unsigned char)(s >> 56);
    }
    return (ssize_t)len;
}
"""


def target_dir():
    tdir = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return tdir if tdir.is_absolute() else ROOT / tdir


def link(path, target):
    """Make `path` a symbolic link to `target` (replacing another link)."""
    if path.is_symlink() and os.readlink(path) == str(target):
        return
    if path.is_symlink():
        path.unlink()
    path.symlink_to(target)


def prepare_guest(cpus, binary, models):
    """Where and how the guest runs, the same on every machine: a run folder under target/arm-cost
    holding `./arm_cost` and links to the repository folders it reads (so argv, the paths it opens
    and the heap layout do not depend on where the checkout or the build is), a sysroot per CPU
    model with the board's /proc/cpuinfo and the preloaded getrandom at /arm-cost-getrandom.so
    (built with the aarch64 cross compiler). Returns the model paths as the guest names them."""
    work = target_dir() / "arm-cost"
    run = work / "run"
    run.mkdir(parents=True, exist_ok=True)
    link(run / "arm_cost", Path(binary).resolve())
    guest_models = {}
    for form, m in models.items():
        full = (ROOT / m).resolve()
        try:
            rel = full.relative_to(ROOT)
        except ValueError:
            guest_models[form] = str(full)
            continue
        guest_models[form] = str(rel)
    for top in {"board", "tests"} | {Path(m).parts[0] for m in guest_models.values() if not Path(m).is_absolute()}:
        link(run / top, ROOT / top)
    src, so = work / "detrand.c", work / "detrand.so"
    if not so.exists() or not src.exists() or src.read_text() != DETRAND_C:
        src.write_text(DETRAND_C)
        cc = os.environ.get("CC_aarch64_unknown_linux_gnu", "aarch64-linux-gnu-gcc")
        subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(so), str(src)], check=True)
    sysroot = Path(os.environ.get("ARM_SYSROOT", "/usr/aarch64-linux-gnu"))
    for cpu in cpus:
        root = work / f"sysroot-{cpu}"
        (root / "proc").mkdir(parents=True, exist_ok=True)
        link(root / "lib", sysroot / "lib")
        link(root / "arm-cost-getrandom.so", so)
        if cpu not in CPUINFO:
            log(f"{cpu}: no board /proc/cpuinfo known, the guest sees the host's")
            (root / "proc" / "cpuinfo").unlink(missing_ok=True)
            continue
        feats, variant, part, rev = CPUINFO[cpu]
        text = "".join(
            f"processor\t: {n}\nBogoMIPS\t: 108.00\nFeatures\t: {feats}\nCPU implementer\t: 0x41\n"
            f"CPU architecture: 8\nCPU variant\t: {variant}\nCPU part\t: {part}\nCPU revision\t: {rev}\n\n"
            for n in range(4)
        )
        (root / "proc" / "cpuinfo").write_text(text)
    return run, guest_models


def count(cnt, run, cpu, models, measures):
    """One counted run of the example: each child's count, the parent's work per fork c, set-up.
    models: {"int8": path, "f32": path} (the first is the loop's classifier, the second the
    example's --alt-model, for the `-alt` stages) or one of them."""
    # The counter needs PATH and HOME (its plugin cache); the guest gets none of them: its whole
    # environment is LD_PRELOAD (getenv scans and the initial stack depend on the environment).
    env = {k: os.environ[k] for k in ["PATH", "HOME", "XDG_CACHE_HOME"] if k in os.environ}
    env["QEMU_RAND_SEED"] = "1"
    unset = [x for k in env for x in ("-U", k)]
    paths = list(models.values())
    args = ["--model", paths[0], *(["--alt-model", paths[1]] if len(paths) > 1 else [])]
    if os.environ.get("ARM_COST_CONFIG"):
        # another configuration than board/config.toml (an absolute path: the guest sees it), for
        # a one-off comparison; the baseline is board/config.toml's
        args += ["--config", str(Path(os.environ["ARM_COST_CONFIG"]).resolve())]
    if list(models)[1:] == ["f16"]:
        args.append("--alt-f16")  # the f32 file, run in f16 as model_form = "f16" runs it
    args += [f"{i}:{s}:{k}" for i, s, k in measures]
    root = run.parent / f"sysroot-{cpu}"
    qemu = ["--cpu", cpu, "--sysroot", str(root), *unset, "-E", "LD_PRELOAD=/arm-cost-getrandom.so"]
    p = subprocess.run([cnt, *qemu, "./arm_cost", *args], cwd=run, env=env, capture_output=True, text=True)
    insns = [int(ln.split()[1]) for ln in p.stderr.splitlines() if ln.startswith("insns ")]
    head = next((json.loads(ln) for ln in p.stdout.splitlines() if ln.startswith("{") and '"children"' in ln), None)
    children = head and head["children"]
    if p.returncode != 0 or children is None or len(insns) != len(children) + 1:
        die(f"{cpu} {' '.join(args)} failed ({p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}")
    n = insns[:-1]
    c = n[1] - n[0]
    if n[-1] - n[0] != (len(n) - 1) * c:
        die(f"{cpu}: the parent's work per fork is not constant ({n[0]}, {n[1]}, {n[-1]})")
    return {"raw": n, "fork_insns": c, "children": children, "setup_insns": n[0], "auto_form": head["auto_form"]}


def metrics_of(cpu, forms, run):
    """Flat metrics: {cpu}_{form}_{input}_{stage}_insns_per_{frame|face}; forms: the names of the
    loop's classifier and of the alternative (`-alt` stages)."""
    m = {}
    n, ch, c = run["raw"], run["children"], run["fork_insns"]
    for j in range(2, len(ch) - 1, 2):
        (inp, stage, k), (inp2, stage2, k2) = ch[j], ch[j + 1]
        assert (inp, stage, 2 * k) == (inp2, stage2, k2)
        d = n[j + 1] - n[j] - c
        if d < 0:
            die(f"negative difference for {cpu} {inp} {stage}: the runs are not comparable")
        form = forms[1] if stage.endswith("-alt") else forms[0]
        stage = stage.removesuffix("-alt")
        per = FACES[inp] if stage in PER_FACE else 1
        unit = "face" if stage in PER_FACE else "frame"
        m[f"{CPU_SHORT.get(cpu, cpu)}_{form}_{inp}_{stage}_insns_per_{unit}"] = round(d / (k * per))
    return m


def has_fp16(cpu):
    """The board's /proc/cpuinfo lists asimdhp: tract has fp16 kernels there (model_form f16)."""
    return cpu in CPUINFO and "asimdhp" in CPUINFO[cpu][0].split()


def plan(cpus, models):
    """(cpu, run name) -> (models, measurements): per CPU model one counted run with every stage
    with the quantized classifier, classify and frame with f32 (`-alt`), decode and detect on the
    face-free frame; on a CPU with fp16, a second with classify and frame in f16."""
    de = detect_every()
    stages = STAGES + ["classify-alt", "frame-alt"]
    ms = [(i, s, de if s.startswith("frame") else 1) for i in ["one", "four"] for s in stages]
    ms += [("none", "decode", 1), ("none", "detect", 1)]
    runs = {(cpu, "main"): (models, ms) for cpu in cpus}
    half = [(i, s, de if s.startswith("frame") else 1) for i in ["one", "four"] for s in ["classify-alt", "frame-alt"]]
    # The shipped loop on the swaying face, with the form the board runs there (model_form =
    # "auto": f32 without fp16), on the CPUs without fp16 only: the Pi 4, where issue 16's bar is.
    # 192 counted frames per CPU model (K and 2K children) take 5-6 minutes of counting; the Pi 5's
    # f16 loop was 126.06 M instructions a frame against the Pi 4's 126.35 M when both were counted.
    # The four people's loop (crowd): one 32-frame cycle counted (96 frames run, K and 2K).
    loop = [("drift", "loop-alt", DRIFT_CYCLE), ("crowd", "loop-alt", CROWD_CYCLE)]
    for cpu in cpus:
        if has_fp16(cpu):
            runs[(cpu, "f16")] = ({"int8": models["int8"], "f16": models["f32"]}, half)
        else:
            runs[(cpu, "main")] = (models, ms + loop)
    return runs


def plugin_built(cnt):
    """Whether the counter's plugin is already built (it builds it on first use, where two runs
    started together would both build it): the cache path and test of its `count` script."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "qemu-insn" / "insn.so"
    src = Path(cnt).resolve().parent / "insn.c"
    return cache.exists() and (not src.exists() or src.stat().st_mtime <= cache.stat().st_mtime)


def run_all(cnt, rundir, runs, jobs):
    """runs: (cpu, name) -> (models, measurements); the counts by the same keys."""
    out = {}
    keys = list(runs)
    t0 = time.time()
    first = 0
    if not plugin_built(cnt):
        # the first run alone: the counter builds its plugin on first use
        out[keys[0]] = count(cnt, rundir, keys[0][0], *runs[keys[0]])
        log(f"1/{len(keys)} counted ({time.time() - t0:.0f} s)")
        first = 1
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as ex:
        futs = {ex.submit(count, cnt, rundir, k[0], *runs[k]): k for k in keys[first:]}
        for i, f in enumerate(concurrent.futures.as_completed(futs), first + 1):
            out[futs[f]] = f.result()
            log(f"{i}/{len(keys)} counted ({time.time() - t0:.0f} s)")
    return out


def table(m, cpus):
    cols = [(c, i) for c in cpus for i in ["one", "four"]]
    rows = [
        ("decode (640x480 MJPEG)", "int8", "decode", "frame"),
        ("detect (BlazeFace back 256)", "int8", "detect", "frame"),
        ("window (front 128), per face", "int8", "window", "face"),
        ("align, per face", "int8", "align", "face"),
        ("classify int8, per face", "int8", "classify", "face"),
        ("classify f32, per face", "f32", "classify", "face"),
        ("classify f16, per face", "f16", "classify", "face"),
        ("track", "int8", "track", "frame"),
        ("draw (overlay on a canvas)", "int8", "draw", "frame"),
        ("report (JSON lines)", "int8", "report", "frame"),
        ("frame, board config, int8", "int8", "frame", "frame"),
        ("frame, board config, f32", "f32", "frame", "frame"),
        ("frame, board config, f16", "f16", "frame", "frame"),
        ("loop, swaying / 4 people, f32", "f32", "loop", "frame"),
        ("loop, swaying / 4 people, f16", "f16", "loop", "frame"),
    ]
    head = "".join(f"{CPU_SHORT.get(c, c) + (' 1 face' if i == 'one' else ' 4 faces'):>14}" for c, i in cols)
    lines = [
        "aarch64 instructions, millions (qemu-user TCG count; per frame unless said)",
        f"{'stage':<30}{head}",
    ]
    for label, form, stage, unit in rows:
        cells = ""
        for c, i in cols:
            inp = {"one": "drift", "four": "crowd"}[i] if stage == "loop" else i
            v = m.get(f"{CPU_SHORT.get(c, c)}_{form}_{inp}_{stage}_insns_per_{unit}")
            cells += f"{v / 1e6:>14.3f}" if v is not None else f"{'-':>14}"
        lines.append(f"{label:<30}{cells}")
    cells = ""
    for c in cpus:
        v = m.get(f"{CPU_SHORT.get(c, c)}_int8_none_detect_insns_per_frame")
        cells += f"{v / 1e6:>14.3f}{'':>14}" if v is not None else f"{'-':>28}"
    lines.append(f"{'detect, face-free frame':<30}{cells}")
    for form in ["int8", "f16"]:
        cells = ""
        for c, i in cols:
            s = CPU_SHORT.get(c, c)
            q, f = m.get(f"{s}_{form}_{i}_classify_insns_per_face"), m.get(f"{s}_f32_{i}_classify_insns_per_face")
            cells += f"{q / f:>14.3f}" if q and f else f"{'-':>14}"
        lines.append(f"{f'classify {form} / f32 (ratio)':<30}{cells}")
    return "\n".join(lines)


def summary(m, cpus, qform, auto):
    """auto: cpu -> the form model_form = "auto" picks there (the shipped configuration)."""
    s = {}
    for c in cpus:
        p = CPU_SHORT.get(c, c)
        s[f"{p}_auto_form"] = auto[c]
        s[f"{p}_detect_insns_per_frame"] = m[f"{p}_int8_one_detect_insns_per_frame"]
        s[f"{p}_detect_facefree_insns_per_frame"] = m[f"{p}_int8_none_detect_insns_per_frame"]
        s[f"{p}_classify_insns_per_face"] = m[f"{p}_int8_one_classify_insns_per_face"]
        s[f"{p}_classify_f32_insns_per_face"] = m[f"{p}_f32_one_classify_insns_per_face"]
        s[f"{p}_frame_insns_default"] = m[f"{p}_{auto[c]}_one_frame_insns_per_frame"]
        s[f"{p}_frame_insns_default_4faces"] = m[f"{p}_{auto[c]}_four_frame_insns_per_frame"]
        s[f"{p}_classify_default_insns_per_face"] = m[f"{p}_{auto[c]}_one_classify_insns_per_face"]
        if f"{p}_{auto[c]}_drift_loop_insns_per_frame" in m:
            s[f"{p}_loop_insns_default"] = m[f"{p}_{auto[c]}_drift_loop_insns_per_frame"]
        if f"{p}_{auto[c]}_crowd_loop_insns_per_frame" in m:
            s[f"{p}_loop_insns_default_4faces"] = m[f"{p}_{auto[c]}_crowd_loop_insns_per_frame"]
        if f"{p}_f16_one_classify_insns_per_face" in m:
            s[f"f16_over_f32_insns_{p}"] = round(
                m[f"{p}_f16_one_classify_insns_per_face"] / m[f"{p}_f32_one_classify_insns_per_face"], 4
            )
        s[f"quantized_over_f32_insns_{p}"] = round(
            m[f"{p}_int8_one_classify_insns_per_face"] / m[f"{p}_f32_one_classify_insns_per_face"], 4
        )
    s["quantized_form"] = qform
    s["method"] = "qemu-user TCG insn count, (count(2N) - count(N) - fork) / N, 640x480 JPEG frames from crew.jpg"
    s["stages"] = m
    return s


def check(m, baseline_path, tol, floor, cpus):
    """Every baseline metric of the CPU models counted now (`--cpus`) against this run's."""
    if not baseline_path.exists():
        die(f"--check: no baseline {baseline_path} (make one with --update-baseline)")
    shorts = tuple(f"{CPU_SHORT.get(c, c)}_" for c in cpus)
    base = {k: v for k, v in json.loads(baseline_path.read_text())["metrics"].items() if k.startswith(shorts)}
    worse, better, missing = [], [], []
    for k, old in sorted(base.items()):
        new = m.get(k)
        if new is None:
            missing.append(k)
        elif new > old * (1 + tol) and new - old > floor:
            worse.append(f"{k}: {old} -> {new} (+{100 * (new / old - 1):.1f}%)")
        elif new < old * (1 - tol) and old - new > floor:
            better.append(f"{k}: {old} -> {new} ({100 * (new / old - 1):.1f}%)")
    for b in better:
        log(f"improved beyond {100 * tol:.0f}% (update the baseline with --update-baseline): {b}")
    for k in missing:
        log(f"REGRESSION CHECK: {k} is in the baseline but was not measured")
    for w in worse:
        log(f"REGRESSION over {100 * tol:.0f}%: {w}")
    return not worse and not missing


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--update-baseline", action="store_true")
    ap.add_argument("--determinism", action="store_true")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--cpus", default="cortex-a72,cortex-a76")
    ap.add_argument("--baseline", default=str(ROOT / "scripts/bench/arm-cost-baseline.json"))
    ap.add_argument("--tolerance", type=float, default=0.05)
    # the smallest stages (track: ~500 instructions) move by tens of instructions with a buffer's
    # alignment; a change below this many instructions per frame or face is never a regression
    ap.add_argument("--min-delta", type=int, default=10_000)
    ap.add_argument("--int8", default="models/agegender_int8.onnx")
    ap.add_argument("--f32", default="models/agegender_f32.onnx")
    a = ap.parse_args()
    t0 = time.time()
    cnt = counter()
    binary = os.environ.get("ARM_COST_BIN")
    if binary is None:
        binary = build() if not a.no_build else None
    if binary is None:
        binary = target_dir() / TARGET / "release/examples/arm_cost"
    if not Path(binary).exists():
        die(f"no binary {binary}")
    cpus = a.cpus.split(",")
    models = {"int8": a.int8, "f32": a.f32}
    rundir, guest_models = prepare_guest(cpus, binary, models)

    if a.determinism:
        # one stage (classify, f32, one face) on one CPU, counted twice from scratch
        key = (cpus[0], "determinism")
        runs = {key: ({"f32": guest_models["f32"]}, [("one", "classify", 1)])}
        first = run_all(cnt, rundir, runs, 1)[key]
        second = run_all(cnt, rundir, runs, 1)[key]
        v1, v2 = metrics_of(cpus[0], ["f32"], first), metrics_of(cpus[0], ["f32"], second)
        print(json.dumps({"first": first["raw"], "second": second["raw"], "metric": v1}))
        if first["raw"] != second["raw"] or v1 != v2:
            print(f"arm-cost: NOT deterministic: {v1} vs {v2}", file=sys.stderr)
            sys.exit(1)
        log(f"deterministic: {v1} twice, all raw counts equal ({time.time() - t0:.0f} s)")
        return

    runs = plan(cpus, guest_models)
    log(f"{len(runs)} counted runs of {binary} on {', '.join(cpus)} ({a.jobs} at a time)")
    counted = run_all(cnt, rundir, runs, a.jobs)
    m = {}
    for (cpu, name), run in counted.items():
        m.update(metrics_of(cpu, list(runs[(cpu, name)][0]), run))
    m = dict(sorted(m.items()))
    auto = {cpu: run["auto_form"] for (cpu, name), run in counted.items() if name == "main"}
    elapsed = time.time() - t0
    print(table(m, cpus))
    setup = {f"{CPU_SHORT.get(c, c)} {n}": r["setup_insns"] for (c, n), r in counted.items()}
    print(
        "set-up per counted run (three models loaded, frames built, warm-up), millions: "
        + ", ".join(f"{k} {v / 1e6:.0f}" for k, v in setup.items())
    )
    s = summary(m, cpus, quant_form(ROOT / a.int8), auto)
    log(f"counted in {elapsed:.0f} s (wall)")
    ok = True
    if a.check:
        ok = check(m, Path(a.baseline), a.tolerance, a.min_delta, cpus)
        log("baseline check: " + ("passed" if ok else "FAILED"))
    if a.update_baseline:
        # the CPU models not counted now keep their baseline figures
        shorts = tuple(f"{CPU_SHORT.get(c, c)}_" for c in cpus)
        old = json.loads(Path(a.baseline).read_text())["metrics"] if Path(a.baseline).exists() else {}
        kept = {k: v for k, v in old.items() if not k.startswith(shorts)}
        Path(a.baseline).write_text(
            json.dumps(
                {
                    "what": "scripts/bench/arm-cost counts (aarch64 instructions per frame or per face); "
                    "--check fails on any metric more than 5% above these. Update on purpose with "
                    "--update-baseline in the commit that changes them.",
                    "quantized_form": s["quantized_form"],
                    "metrics": dict(sorted({**kept, **m}.items())),
                },
                indent=1,
                sort_keys=True,
            )
            + "\n"
        )
        log(f"wrote {a.baseline}")
    print(json.dumps(s, sort_keys=True))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
