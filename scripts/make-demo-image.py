"""Build the demo input tests/fixtures/demo/crew.jpg from two public-domain portraits shipped in
PyPI wheels: scikit-image's `skimage/data/astronaut.png` (Eileen Collins, NASA) and matplotlib's
`mpl-data/sample_data/grace_hopper.jpg` (Grace Hopper, U.S. Navy). A composite: the two portraits
side by side plus a smaller copy of the first, so the picture holds three faces of different sizes.

    python scripts/make-demo-image.py ASTRONAUT_PNG GRACE_HOPPER_JPG tests/fixtures/demo/crew.jpg
"""

import sys

from PIL import Image


def main():
    astro, hopper, out = sys.argv[1:4]
    a = Image.open(astro).convert("RGB")
    h = Image.open(hopper).convert("RGB")
    H = 480
    a = a.resize((H * a.width // a.height, H), Image.LANCZOS)
    h = h.resize((H * h.width // h.height, H), Image.LANCZOS)
    small = a.resize((a.width // 2, a.height // 2), Image.LANCZOS)
    canvas = Image.new("RGB", (a.width + h.width + small.width, H), (40, 44, 52))
    canvas.paste(a, (0, 0))
    canvas.paste(h, (a.width, 0))
    canvas.paste(small, (a.width + h.width, H // 4))
    canvas.save(out, quality=92)


if __name__ == "__main__":
    main()
