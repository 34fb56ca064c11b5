"""``kakudai upscale``: batch driver over :func:`kakudai.api.upscale`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .data.io import IMAGE_EXTENSIONS


def _expand(inputs: list[str]) -> list[tuple[Path, Path]]:
    """(file, path relative to its input root) for every input image."""
    out = []
    for s in inputs:
        p = Path(s)
        if p.is_dir():
            for f in sorted(p.iterdir()):
                if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS:
                    out.append((f, Path(f.name)))
        else:
            out.append((p, Path(p.name)))
    return out


def run_upscale(args: argparse.Namespace) -> int:
    from PIL import Image

    from .api import upscale
    from .checkpoint import WeightsError, load_model

    try:
        model = load_model(args.model, args.scale)
    except WeightsError as e:
        print(f"kakudai: error: {e}", file=sys.stderr)
        return 1
    tile = None if args.tile in (None, "auto") else int(args.tile)
    items = _expand(args.inputs)
    out = Path(args.output)
    single_file = len(items) == 1 and out.suffix.lower() in IMAGE_EXTENSIONS and not out.is_dir()
    failed = done = 0
    for src, rel in items:
        dst = out if single_file else out / rel
        try:
            with Image.open(src) as im:
                im.load()
                res = upscale(im, args.scale, model, tile, args.tta)
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_name(f".{dst.name}.part{dst.suffix}")
            res.save(tmp)
            os.replace(tmp, dst)
            done += 1
        except (OSError, ValueError) as e:
            print(f"kakudai: error: {src}: {e}", file=sys.stderr)
            failed += 1
    print(f"done {done}, failed {failed}", file=sys.stderr)
    return 1 if failed else 0
