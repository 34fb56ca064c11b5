"""A manga-like stand-in set: drawings turned gray, their mid-tone fills replaced by
screentone (a 45-degree halftone dot screen), as printed manga pages show them.

No manga pages are available to this project; this gives the upscalers the two things
that set manga apart from flat-colour drawings, gray ink and dot screens, on drawings
whose licence allows it (e.g. the held-out openclipart renders of
``python -m kakudai.data.art --skip 1500 --limit 60 --size 768 --out DIR``).

    python benchmarks/screentone_set.py SRC_DIR OUT_DIR [--period 6] [--limit 30]

Each image composited over white, then :func:`kakudai.ops.screentone.screentone`.
``--period 0`` writes the gray drawings without screentone (e.g. a gray Art10, for
the gray-drawing model on plain gray fills).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from kakudai.ops.screentone import screentone


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src")
    ap.add_argument("out")
    ap.add_argument("--period", type=float, default=6.0,
                    help="dot screen period in pixels (default 6; 0: gray, no screen)")
    ap.add_argument("--limit", type=int, default=30, help="first N images of SRC (default 30)")
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    paths = sorted(p for p in Path(a.src).iterdir() if p.suffix.lower() == ".png")[: a.limit]
    for p in paths:
        im = Image.open(p)
        if im.mode in ("RGBA", "LA", "P"):
            im = im.convert("RGBA")
            page = Image.new("RGBA", im.size, "white")
            im = Image.alpha_composite(page, im)
        gray = np.asarray(im.convert("L"))
        Image.fromarray(screentone(gray, a.period) if a.period > 0 else gray).save(out / p.name)
    print(f"{out}: {len(paths)} {'screentoned' if a.period > 0 else 'gray'} drawings")
    return 0


if __name__ == "__main__":
    sys.exit(main())
