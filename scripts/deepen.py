"""Write a grown copy of a trained model that computes the same function.

    python scripts/deepen.py kakudai/weights/unet-noise.safetensors OUT.safetensors --blocks 4
    python scripts/deepen.py checkpoints/ksr-multiscale.safetensors OUT.safetensors --rgb --scales 2 4

``--blocks``: works for every model with a ``blocks`` argument (ksr, implicit, unet):
new residual blocks start as exact identities (``kakudai.models.blocks.deepened``).
``--rgb``: a Y-only ksr becomes an RGB one whose output luma is the Y model's
(``kakudai.models.ksr.rgb_from_luma``), optionally keeping only some scales' tails.
The result starts a warm restart (``--set init_from=OUT``) with a config whose
``model.args`` match.
"""

from __future__ import annotations

import argparse

import torch

from kakudai.checkpoint import load_weights_file, save_model
from kakudai.models.blocks import deepened
from kakudai.models.ksr import rgb_from_luma
from kakudai.ops.color import rgb_to_y


def _difference(model, grown, rgb: bool) -> float:
    """Largest output difference on a random input (for --rgb: in luma, away from
    the border band the first layer's padding reaches)."""
    scales = getattr(grown, "scales", (None,))
    side = 24 + 2 * int(getattr(model, "receptive_radius", 0))
    c = 3 if rgb else int(getattr(model, "in_channels", model.channels))
    x = torch.rand(1, c, side, side)
    err = 0.0
    with torch.no_grad():
        for s in scales:
            kw = {} if s is None or len(scales) == 1 else {"scale": s}
            if not rgb:
                err = max(err, (grown(x, **kw) - model(x, **kw)).abs().max().item())
                continue
            kw = {"scale": s}
            q = int(model.receptive_radius) * s
            d = rgb_to_y(grown(x, **kw)) - model(rgb_to_y(x), **kw)
            err = max(err, d[..., q:-q, q:-q].abs().max().item())
    return err


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src")
    ap.add_argument("out")
    ap.add_argument("--blocks", type=int, help="residual blocks per stage of the copy")
    ap.add_argument("--rgb", action="store_true", help="Y-only ksr -> RGB ksr")
    ap.add_argument("--scales", type=int, nargs="+", help="with --rgb: the tails to keep")
    a = ap.parse_args()
    if a.blocks is None and not a.rgb:
        ap.error("give --blocks N and/or --rgb")
    model = load_weights_file(a.src).to(memory_format=torch.contiguous_format).eval()
    grown, extra = model, {}
    try:
        if a.rgb:
            grown = rgb_from_luma(grown, a.scales).eval()
            extra["rgb_from"] = a.src
        if a.blocks is not None:
            grown = deepened(grown, a.blocks).eval()
            extra.update(deepened_from=a.src, blocks_from=model.arch_args["blocks"])
    except ValueError as e:
        raise SystemExit(f"{a.src}: {e}") from None
    err = _difference(model, grown, a.rgb)
    if err > 1e-5:
        raise SystemExit(f"the grown model differs by {err:.2e}: not written")
    save_model(grown, a.out, extra=extra)
    print(f"{a.out}: {grown.arch} {grown.arch_args}; max |difference| {err:.2e}")


if __name__ == "__main__":
    main()
