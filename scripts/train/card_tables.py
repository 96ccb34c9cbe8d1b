"""Markdown tables for the model card, from the measurements the pipeline writes.

    python scripts/train/card_tables.py --ort RUN/test-metrics.jsonl \
        --tract int8=RUN/tract-int8.json --tract f32=RUN/tract-f32.json models/*.onnx

--ort: the JSON lines of evaluate.py (onnxruntime, the pipeline's own crops of the test split).
--tract NAME=FILE: the JSON object `agegender eval --split models/split.csv` printed (the runtime's
detect -> align -> classify path through tract). Positional: model files (size, sha256).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def size_and_hash(paths):
    out = ["| file | size | sha256 |", "|---|---:|---|"]
    for p in paths:
        data = Path(p).read_bytes()
        out.append(f"| `{Path(p).name}` | {len(data) / 1e6:.2f} MB | `{hashlib.sha256(data).hexdigest()}` |")
    return "\n".join(out)


def overall(ort: list[dict], tract: dict[str, dict]):
    out = [
        "| model | engine | faces | gender acc | age MAE | bucket exact | bucket 1-off |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in tract.items():
        out.append(
            f"| {name} | tract (runtime path: BlazeFace → align → classify) | {r['images']} "
            f"| {pct(r['gender_acc'])} | {r['age_mae']:.2f} | {pct(r['bucket_acc'])} | {pct(r['bucket_1off_acc'])} |"
        )
    for r in ort:
        out.append(
            f"| {Path(r['model']).name} | onnxruntime (pipeline crops) | {r['n']} "
            f"| {pct(r['gender_acc'])} | {r['age_mae']:.2f} | {pct(r['bucket_acc'])} | {pct(r['bucket_1off_acc'])} |"
        )
    return "\n".join(out)


def groups(tract: dict[str, dict]):
    names = list(tract)
    out = []
    for title, key in [("race", "by_race"), ("gender", "by_gender"), ("age decade", "by_age_decade")]:
        head = f"| {title} | n | " + " | ".join(f"{n} gender acc | {n} age MAE | {n} bucket" for n in names) + " |"
        out += [head, "|---|---:|" + "---:|" * (3 * len(names))]
        first = tract[names[0]][key]
        for group in first:
            cells = []
            for n in names:
                g = tract[n][key].get(group)
                cells += [pct(g["gender_acc"]), f"{g['age_mae']:.2f}", pct(g["bucket_acc"])] if g else ["", "", ""]
            out.append(f"| {group} | {first[group]['n']} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ort", required=True)
    p.add_argument("--tract", action="append", default=[], metavar="NAME=FILE")
    p.add_argument("files", nargs="*")
    a = p.parse_args(argv)
    ort = [json.loads(line) for line in Path(a.ort).read_text().splitlines() if line.strip()]
    tract = {}
    for item in a.tract:
        name, _, path = item.partition("=")
        tract[name] = json.loads(Path(path).read_text().strip().splitlines()[-1])
    print("### Test split, overall\n")
    print(overall(ort, tract))
    if tract:
        print("\n### Test split by group (tract, runtime path)\n")
        print(groups(tract))
    if a.files:
        print("### Files\n")
        print(size_and_hash(a.files))


if __name__ == "__main__":
    main()
