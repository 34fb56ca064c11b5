"""Tiled inference equals whole-image inference, for every registered model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kakudai import create_model, list_models
from kakudai.api import Upscaler
from kakudai.infer.restore import restore
from kakudai.infer.tiling import auto_tile_size, tile_grid, tiled_apply
from kakudai.infer.upscale import bytes_per_input_pixel, pipeline_radius, super_resolve

TILES = [10, 16, 25]
# Narrow variants of the costly models: the property does not depend on width.
SMALL = {"unet": {"widths": (4, 8, 8), "blocks": 1}, "implicit": {"width": 16}, "ksr": {"width": 16},
         "rednet": {"width": 16}}


def _size(model: torch.nn.Module, scale: float) -> tuple[int, int]:
    """An image larger than the largest tile plus its context on both sides, so that
    no tile holds the whole image (tiled == whole would then prove nothing). Odd
    sides: the image must be padded to a model's block grid."""
    h = max(TILES) + 2 * pipeline_radius(model, scale) + 6
    return h, h + 10


def _model(name: str, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    m = create_model(name, **(kwargs or SMALL.get(name, {}))).eval()
    with torch.no_grad():  # random, non-trivial weights: an untrained net can be near-identity
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return m


def _scale(model: torch.nn.Module) -> float:
    s = model.spec.scale
    if isinstance(s, (tuple, list)):
        s = s[0]
    return float(s)


@pytest.mark.parametrize("name", list_models())
def test_tiled_equals_whole_image(name):
    model = _model(name)
    scale = _scale(model)
    channels = 1 if model.spec.channels == 1 and name != "bicubic" else 3
    H, W = _size(model, scale)
    x = torch.rand(1, 3, H, W, generator=torch.Generator().manual_seed(1))
    whole = super_resolve(model, x, scale, tile=None)
    assert whole.shape == (1, 3, round(H * scale), round(W * scale))
    assert float(whole.std()) > 0.01
    for tile in TILES:
        tiled = super_resolve(model, x, scale, tile=tile)
        err = float((tiled - whole).abs().max())
        assert err < 1e-5, f"{name} ({channels} ch) tile {tile}: max |tiled - whole| = {err:.2e}"


@pytest.mark.parametrize("name,kwargs,scale", [
    ("unet", {"widths": (4, 8, 8), "blocks": 1}, 1),  # blocks of 4 input pixels
    ("unet", {"widths": (4, 8, 8), "blocks": 1}, 2),  # of 2: 4 pixels of the pre-upsampled image
    ("unet", {"widths": (4, 8, 8), "blocks": 1}, 3),  # of 4 (3 and 4 share no factor)
    ("rednet", {"depth": 4, "width": 8, "unshuffle": 2}, 1),
    ("rednet", {"depth": 4, "width": 8, "unshuffle": 2}, 3),
])
def test_tiles_align_to_pad_multiple(name, kwargs, scale):
    """Models that see the image in blocks (space-to-depth, strided pyramids): tiles
    on the block grid, and the progress total the Upscaler announces is the one reported."""
    model = _model(name, scale=scale, **kwargs)
    H, W = _size(model, scale)
    x = torch.rand(1, 3, H, W, generator=torch.Generator().manual_seed(4))
    whole = super_resolve(model, x, scale, tile=None)
    assert whole.shape == (1, 3, H * scale, W * scale) and float(whole.std()) > 0.01
    for tile in (9, 14):
        totals = []
        tiled = super_resolve(model, x, scale, tile=tile, on_tile=lambda n, total: totals.append(total))
        err = float((tiled - whole).abs().max())
        assert err < 1e-5, f"{name} x{scale} tile {tile}: max |tiled - whole| = {err:.2e}"
        assert set(totals) == {len(totals)} == {Upscaler(model, tile=tile).tiles_for(H, W, scale)}
        if scale == 1:  # restoration tiles the same way, with the network's own reach
            err = float((restore(model, x, tile=tile) - restore(model, x)).abs().max())
            assert err < 1e-5, f"restore with {name}, tile {tile}: max |tiled - whole| = {err:.2e}"


@pytest.mark.parametrize("name", list_models())
def test_integer_input_tiles_match_float_path(name):
    """uint8 in, uint8 out, converted per tile: the same as the float path, rounded."""
    model = _model(name)
    scale = _scale(model)
    H, W = _size(model, scale)
    x8 = torch.randint(0, 256, (1, 3, H, W), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    ref = super_resolve(model, x8.float() / 255, scale, tile=None)
    out = super_resolve(model, x8, scale, tile=16, out_dtype=torch.uint8)
    assert out.dtype == torch.uint8
    diff = (out.float() - (ref * 255).round()).abs()
    assert float(diff.max()) <= 1.0  # a value on a .5 boundary may round either way
    assert float((diff > 0).float().mean()) < 0.01


def test_uint16_tiles_and_nhwc_layout():
    model = create_model("bicubic", scale=2)
    x = torch.randint(0, 65536, (1, 3, 20, 30), generator=torch.Generator().manual_seed(3)).to(torch.uint16)
    ref = super_resolve(model, x.float() / 65535, 2, tile=None)
    out = super_resolve(model, x, 2, tile=8, out_dtype=torch.uint16)
    assert out.dtype == torch.uint16
    assert float((out.float() - (ref * 65535).round()).abs().max()) <= 1.0
    # The (H, W, C) image is a free view of the tiled result.
    assert out[0].permute(1, 2, 0).is_contiguous()


def test_tiled_apply_detects_wrong_overlap():
    """The equality above is not automatic: too little overlap leaves seams."""
    conv = torch.nn.Conv2d(1, 1, 9, padding=4, bias=False)
    torch.nn.init.normal_(conv.weight)
    x = torch.rand(1, 1, 30, 30)
    with torch.no_grad():
        whole = conv(x)
        good = tiled_apply(conv, x, 1, 8, overlap=4)
        bad = tiled_apply(conv, x, 1, 8, overlap=1)
    assert float((good - whole).abs().max()) < 1e-5
    assert float((bad - whole).abs().max()) > 1e-3


def test_tile_grid_covers_once():
    for h, w, t in [(29, 38, 7), (10, 10, 10), (5, 100, 13), (1, 1, 4)]:
        cover = np.zeros((h, w), int)
        for y0, y1, x0, x1 in tile_grid(h, w, t):
            assert y1 - y0 <= t and x1 - x0 <= t
            cover[y0:y1, x0:x1] += 1
        assert (cover == 1).all()


def test_auto_tile_size_follows_budget():
    model = create_model("ksr", scale=2)
    bpp = bytes_per_input_pixel(model, 2)
    small = auto_tile_size(6000, 4000, bpp, budget_bytes=2e8, overlap=21)
    large = auto_tile_size(6000, 4000, bpp, budget_bytes=2e9, overlap=21)
    assert 32 <= small < large < 4000
    assert ((small + 42) ** 2) * bpp <= 2e8 * 1.01
    assert auto_tile_size(100, 80, bpp, budget_bytes=2e9) == 100  # fits: one tile
    assert auto_tile_size(6000, 4000, bpp, budget_bytes=1, overlap=21) == 32  # the floor
