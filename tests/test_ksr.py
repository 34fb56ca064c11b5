"""The flagship family's own transformations (kakudai/models/ksr.py)."""

from __future__ import annotations

import pytest
import torch

import kakudai
from kakudai.models.ksr import rgb_from_luma
from kakudai.ops.color import rgb_to_y


def _trained_like_y_model() -> torch.nn.Module:
    m = kakudai.create_model("ksr", scale=[2, 3], channels=1, width=8, blocks=2).eval()
    with torch.no_grad():  # non-trivial weights everywhere, so "the same luma" means something
        for p in m.parameters():
            p.normal_(0, 0.2)
    return m


def test_rgb_from_luma_keeps_the_luma_function() -> None:
    y_model = _trained_like_y_model()
    rgb = rgb_from_luma(y_model, scales=[3]).eval()
    assert rgb.channels == 3 and rgb.scales == (3,) and rgb.arch_args["channels"] == 3
    x = torch.rand(1, 3, 30, 26)
    with torch.no_grad():
        out, ref = rgb_to_y(rgb(x, scale=3)), y_model(rgb_to_y(x), scale=3)
    # Exact away from the band the first layer's zero padding reaches ...
    q = y_model.spec.receptive_radius * 3
    assert torch.allclose(out[..., q:-q, q:-q], ref[..., q:-q, q:-q], atol=1e-5)
    # ... and only there does it differ (the padding of RGB zeros is not a Y of zero).
    assert (out - ref).abs().max() > 1e-4
    # Colour is not collapsed: a coloured input keeps its chroma at the anchor.
    assert (rgb(x, scale=3)[:, 0] - rgb(x, scale=3)[:, 2]).abs().mean() > 0.05


def test_rgb_from_luma_rejects_rgb_models_and_missing_scales() -> None:
    with pytest.raises(ValueError, match="Y-only"):
        rgb_from_luma(kakudai.create_model("ksr", scale=2, channels=3, width=8, blocks=1))
    with pytest.raises(ValueError, match="scales"):
        rgb_from_luma(_trained_like_y_model(), scales=[4])
