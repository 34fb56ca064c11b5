"""Write a grown copy of a trained model that computes the same function.

    python scripts/deepen.py kakudai/weights/unet-noise.safetensors OUT.safetensors --blocks 4
    python scripts/deepen.py checkpoints/ksr-multiscale.safetensors OUT.safetensors --rgb --scales 2 4
    python scripts/deepen.py RGB_RESTORER.safetensors OUT.safetensors --gray

``--blocks``: works for every model with a ``blocks`` argument (ksr, implicit, unet):
new residual blocks start as exact identities (``kakudai.models.blocks.deepened``).
``--rgb``: a Y-only ksr becomes an RGB one whose output luma is the Y model's
(``kakudai.models.ksr.rgb_from_luma``), optionally keeping only some scales' tails.
``--gray``: an RGB restorer (unet, rednet) becomes the 1-channel network that computes
what it does on a gray image (its ``to_gray``), the start of a gray companion.
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


def _difference(model, grown, rgb: bool, gray: bool = False) -> float:
    """Largest output difference on a random input (for --rgb: in luma, away from
    the border band the first layer's padding reaches; for --gray: against the RGB
    model's mean output on the same image as R = G = B)."""
    scales = grown.spec.scales if not grown.spec.any_scale else (None,)
    side = 24 + 2 * model.spec.receptive_radius
    if gray:
        g = torch.rand(1, 1, side, side)
        level = torch.rand(1, 1, side, side)[:, :1 if model.spec.level_map else 0]
        with torch.no_grad():
            want = model(torch.cat([g.expand(-1, 3, -1, -1), level], 1)).mean(1, keepdim=True)
            return (grown(torch.cat([g, level], 1)) - want).abs().max().item()
    c = 3 if rgb else model.spec.in_channels
    x = torch.rand(1, c, side, side)
    err = 0.0
    with torch.no_grad():
        for s in scales:
            kw = {} if s is None or len(scales) == 1 else {"scale": s}
            if not rgb:
                err = max(err, (grown(x, **kw) - model(x, **kw)).abs().max().item())
                continue
            kw = {"scale": s}
            q = model.spec.receptive_radius * s
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
    ap.add_argument("--gray", action="store_true", help="RGB restorer -> its 1-channel gray companion")
    a = ap.parse_args()
    if a.blocks is None and not a.rgb and not a.gray:
        ap.error("give --blocks N, --rgb or --gray")
    if a.rgb and a.gray:
        ap.error("--rgb and --gray are opposite conversions")
    model = load_weights_file(a.src).to(memory_format=torch.contiguous_format).eval()
    grown, extra = model, {}
    try:
        if a.rgb:
            grown = rgb_from_luma(grown, a.scales).eval()
            extra["rgb_from"] = a.src
        if a.gray:
            grown = grown.to_gray().eval()
            extra["gray_from"] = a.src
        if a.blocks is not None:
            grown = deepened(grown, a.blocks).eval()
            extra.update(deepened_from=a.src, blocks_from=model.arch_args["blocks"])
    except (ValueError, AttributeError) as e:
        raise SystemExit(f"{a.src}: {e}") from None
    err = _difference(model, grown, a.rgb, a.gray)
    if err > 1e-5:
        raise SystemExit(f"the grown model differs by {err:.2e}: not written")
    save_model(grown, a.out, extra=extra)
    print(f"{a.out}: {grown.arch} {grown.arch_args}; max |difference| {err:.2e}")


if __name__ == "__main__":
    main()
