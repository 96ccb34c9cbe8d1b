#!/usr/bin/env python3
"""Close-ups: is a face that fills the picture found and labelled as well as the same face with
context around it? (issue 16, item 4)

  python3 scripts/bench/closeups.py [--n 600] [--bin target/release/agegender] [--margins 0 0.5]

Takes the first N faces of the test split (models/split.csv) from the UTKFace crops
(../shared/data/utkface: 200x200, the face fills the frame) and labels each of them twice with the
program's own path (`agegender image`): the crop as it is (a visitor leaning in), and the same crop
pasted in the middle of a grey 640x480 frame (the same face with context). For each
`--closeup-margin` it prints, per case, how many faces were found (a face whose box centre is within
30% of the crop's side from the crop's centre) and the gender accuracy on those (against the file
name's label; "U", the abstention, counts as answered wrong here, so that abstaining cannot buy
accuracy), then one JSON line.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def faces(binary: str, inputs: list[Path], margin: float, extra: list[str]) -> dict[str, list[dict]]:
    """Face lines of `agegender image` on `inputs`, by input file name."""
    out: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as pngs:
        for i in range(0, len(inputs), 200):  # keep the command line short
            r = subprocess.run(
                [binary, "image", "--out", pngs, "--closeup-margin", str(margin), *extra]
                + [str(p) for p in inputs[i : i + 200]],
                capture_output=True,
                text=True,
                cwd=ROOT,
            )
            if r.returncode != 0:
                sys.exit(f"closeups: agegender image failed ({r.returncode}): {r.stderr[-2000:]}")
            for line in r.stdout.splitlines():
                obj = json.loads(line)
                if obj.get("type") == "face":
                    out.setdefault(Path(obj["source"]).name, []).append(obj)
    return out


def score(found: dict[str, list[dict]], names: list[str], centre: tuple[float, float], side: float) -> dict:
    n_found = right = 0
    for name in names:
        cands = [
            f
            for f in found.get(name, [])
            if abs((f["box"][0] + f["box"][2]) / 2 - centre[0]) < 0.3 * side
            and abs((f["box"][1] + f["box"][3]) / 2 - centre[1]) < 0.3 * side
        ]
        if not cands:
            continue
        best = max(cands, key=lambda f: f["score"])
        n_found += 1
        truth = "M" if name.split("_")[1] == "0" else "F"
        right += best["gender"] == truth
    return {
        "faces": len(names),
        "found": n_found,
        "found_pct": round(100 * n_found / len(names), 2),
        "gender_pct": round(100 * right / max(n_found, 1), 2),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=600)
    p.add_argument("--bin", default=str(ROOT / "target/release/agegender"))
    p.add_argument("--data", default=str(ROOT.parent / "shared/data/utkface"))
    p.add_argument("--margins", type=float, nargs="+", default=[0.0, 0.5])
    p.add_argument("--gender-min-p", default="0.5", help="0.5: always answer (the default abstains below 0.64)")
    a = p.parse_args()
    from PIL import Image

    data = Path(a.data)
    with open(ROOT / "models/split.csv") as f:
        names = [r["file"] for r in csv.DictReader(f) if r["split"] == "test"][: a.n]
    missing = [n for n in names if not (data / n).is_file()]
    if missing:
        sys.exit(f"closeups: {len(missing)} test faces missing from {data}, e.g. {missing[0]}")
    extra = ["--gender-min-p", a.gender_min_p]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        pasted_dir = Path(tmp) / "pasted"
        pasted_dir.mkdir()
        side = 0.0
        for n in names:
            img = Image.open(data / n).convert("RGB")
            side = float(max(img.size))
            frame = Image.new("RGB", (640, 480), (128, 128, 128))
            frame.paste(img, ((640 - img.width) // 2, (480 - img.height) // 2))
            frame.save(pasted_dir / n, quality=95)
        crops = [data / n for n in names]
        pasted = [pasted_dir / n for n in names]
        for m in a.margins:
            whole = score(faces(a.bin, crops, m, extra), names, (side / 2, side / 2), side)
            ctx = score(faces(a.bin, pasted, m, extra), names, (320.0, 240.0), side)
            results[str(m)] = {"closeup": whole, "with_context": ctx}
            print(
                f"closeup_margin {m}: close-ups found {whole['found']}/{whole['faces']} "
                f"({whole['found_pct']}%), gender {whole['gender_pct']}%; with context found "
                f"{ctx['found']}/{ctx['faces']} ({ctx['found_pct']}%), gender {ctx['gender_pct']}%",
                flush=True,
            )
    print(json.dumps({"n": len(names), "gender_min_p": float(a.gender_min_p), "margins": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
