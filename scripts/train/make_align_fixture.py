"""Write tests/fixtures/align/: the parity fixture between this folder's align.py and src/align.rs.

    python scripts/train/make_align_fixture.py --portrait astronaut.png \
        --detector models/detector/blazeface_back_256.onnx

The portrait is scikit-image's `skimage/data/astronaut.png` (NASA, public domain). Two cases: the
portrait upright and rotated by 18 degrees; each stores the input image, the BlazeFace landmarks and
the reference crop (align.align_reference rounded to 8 bits, lossless PNG).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from align import INPUT_SIZE, align_reference  # noqa: E402
from blazeface import BlazeFace  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--portrait", required=True)
    p.add_argument("--detector", default="models/detector/blazeface_back_256.onnx")
    p.add_argument("--out", default="tests/fixtures/align")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    bf = BlazeFace(args.detector)
    src = cv2.cvtColor(cv2.imread(args.portrait), cv2.COLOR_BGR2RGB)
    small = cv2.resize(src, (256, 256), interpolation=cv2.INTER_AREA)
    rot = cv2.warpAffine(small, cv2.getRotationMatrix2D((128, 128), 18, 0.8), (256, 256))
    cases = []
    for name, im in [("upright", small), ("rotated", rot)]:
        dets = bf.detect(im)
        if not dets:
            raise SystemExit(f"no face found in the {name} case")
        lm = dets[0][2].astype(np.float32)
        crop = np.clip(np.round(align_reference(im, lm).transpose(1, 2, 0)), 0, 255).astype(np.uint8)
        cv2.imwrite(str(out / f"{name}.png"), cv2.cvtColor(im, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(out / f"{name}_aligned.png"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
        cases.append(
            {
                "image": f"{name}.png",
                "landmarks": [[round(float(x), 3) for x in q] for q in lm],
                "expected": f"{name}_aligned.png",
            }
        )
    about = (
        "Produced by scripts/train/make_align_fixture.py from the public-domain NASA portrait (scikit-image "
        "astronaut.png): input image, BlazeFace landmarks, and the Python reference crop "
        "(align.align_reference, rounded to 8 bits)."
    )
    with open(out / "cases.json", "w") as fh:
        json.dump({"about": about, "size": INPUT_SIZE, "cases": cases}, fh, indent=1)


if __name__ == "__main__":
    main()
