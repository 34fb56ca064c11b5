"""``kakudai denoise``: the upscale batch driver with a :class:`kakudai.infer.restore.Denoiser`."""

from __future__ import annotations

import argparse
import functools
from typing import Any

from .batch import device_problem, run_batch
from .errors import error, fail
from .upscale import add_arguments, batch_options

__all__ = ["add_parser", "run"]


def _noise_level_arg(text: str) -> "int | str":
    t = text.strip().lower()
    if t == "auto":
        return t
    if t in ("0", "1", "2", "3"):
        return int(t)
    raise argparse.ArgumentTypeError(f"expected auto or 0-3, not {text!r}")


def add_parser(sub: argparse._SubParsersAction) -> None:
    dn = sub.add_parser("denoise", help="remove noise or JPEG artifacts (same size out)",
                        description="Remove JPEG artifacts (--noise-level, --jpeg) or Gaussian noise "
                                    "(--sigma). Cleaned JPEG inputs are written as PNG (same stem) "
                                    "unless --format asks otherwise.")
    strength = dn.add_mutually_exclusive_group()
    strength.add_argument("--noise-level", type=_noise_level_arg, default=None, metavar="auto|0-3",
                          help="auto (the default): estimate each image's noise level and JPEG quality "
                               "and clean it accordingly; 0-3: JPEG cleanup as in waifu2x: 0 = light "
                               "(quality 85+), 1 = medium (65+), 2 = strong (40+), 3 = strongest (20+)")
    strength.add_argument("--sigma", type=float, default=None, metavar="S",
                          help="Gaussian noise of std S in 0-255 units (0-55)")
    strength.add_argument("--jpeg", type=int, nargs="?", const=True, default=None, metavar="Q",
                          help="JPEG artifacts: the quality Q the image was saved at, or blind without Q")
    dn.add_argument("-v", "--verbose", action="store_true",
                    help="print what --noise-level auto read from each image and the strength it chose")
    add_arguments(dn, same_size=True)
    dn.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..bench import retain_freed_memory
    from ..checkpoint import WeightsError
    from ..infer.restore import Denoiser

    retain_freed_memory()  # as upscale does (docs/speed.md)
    reason = None if args.device is None else device_problem(args.device)
    if reason:
        return error(f"--device {args.device}", reason)
    try:
        tile = args.tile if args.tile in (None, "auto") else int(args.tile)
    except ValueError:
        tile = "auto"  # run_batch reports the bad --tile
    no_strength = args.noise_level is None and args.sigma is None and args.jpeg is None
    options = dict(noise_level="auto" if no_strength else args.noise_level, sigma=args.sigma, jpeg=args.jpeg,
                   model=None if args.model == "default" else args.model, tile=tile or None,
                   tta=args.tta, device=args.device)
    try:
        dn = Denoiser(**options)
    except WeightsError as e:
        return fail(e)
    except (RuntimeError, ValueError) as e:  # a strength out of range, an unknown --device
        return fail(e, args.device or "denoise")
    return run_batch(batch_options(args), processor=_DenoiseStep(dn), desc="denoise", jpeg_as=".png",
                     make_processor=functools.partial(_denoise_step, options))


def _denoise_step(options: dict[str, Any]) -> "_DenoiseStep":
    """A fresh denoise step (each ``--executor ray`` worker builds its own)."""
    from ..infer.restore import Denoiser

    return _DenoiseStep(Denoiser(**options))


class _DenoiseStep:
    """A Denoiser as the batch driver calls a processor (size arguments unused)."""

    def __init__(self, dn: Any):
        self.dn = dn

    def __call__(self, data: Any, *_size: Any, on_tile: Any = None) -> Any:
        return self.dn(data, on_tile=on_tile)

    def report(self) -> str | None:
        """What --verbose prints for the last image (automatic strength only)."""
        if not self.dn.auto or self.dn.last_assessment is None:
            return None
        return f"{self.dn.last_assessment.describe()} -> {self.dn.description}"
