"""Write a deeper copy of a trained model that computes the same function.

    python scripts/deepen.py kakudai/weights/unet-noise.safetensors OUT.safetensors --blocks 4

Works for every model with a ``blocks`` argument (ksr, implicit, unet): new
residual blocks start as exact identities (``kakudai.models.blocks.deepened``).
The result starts a warm restart (``--set init_from=OUT``) with a config whose
``model.args.blocks`` matches.
"""

from __future__ import annotations

import argparse

import torch

from kakudai.checkpoint import load_weights_file, save_model
from kakudai.models.blocks import deepened


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src")
    ap.add_argument("out")
    ap.add_argument("--blocks", type=int, required=True)
    a = ap.parse_args()
    model = load_weights_file(a.src).to(memory_format=torch.contiguous_format)
    try:
        deep = deepened(model, a.blocks).eval()
    except ValueError as e:
        raise SystemExit(f"{a.src}: {e}") from None
    c = int(getattr(model, "in_channels", model.channels))
    x = torch.rand(1, c, 48, 48)
    with torch.no_grad():
        err = (deep(x) - model(x)).abs().max().item()
    if err > 1e-5:
        raise SystemExit(f"the deepened model differs by {err:.2e}: not written")
    save_model(deep, a.out, extra={"deepened_from": a.src, "blocks_from": model.arch_args["blocks"]})
    print(f"{a.out}: {model.arch_args['blocks']} -> {a.blocks} blocks; max |difference| {err:.2e}")


if __name__ == "__main__":
    main()
