"""The guided filter and the luma-guided chroma cleaning of the SR pipeline."""

from __future__ import annotations

import torch

from kakudai.infer.upscale import super_resolve
from kakudai.ops.guided import box_mean, guided_filter
from kakudai.registry import create_model


def test_box_mean_and_flat_guide():
    g = torch.Generator().manual_seed(0)
    src = torch.rand(1, 2, 20, 24, generator=g)
    # Interior pixel: the plain window mean.
    assert torch.allclose(box_mean(src, 2)[0, :, 10, 10], src[0, :, 8:13, 8:13].mean(dim=(1, 2)))
    flat = torch.full((1, 1, 20, 24), 0.5)
    # A flat guide explains nothing: the output is the (twice) box-smoothed source.
    out = guided_filter(flat, src, 2, 1e-3)
    assert torch.allclose(out, box_mean(box_mean(src, 2), 2), atol=1e-6)


def test_edges_of_the_guide_are_kept():
    guide = torch.zeros(1, 1, 16, 16)
    guide[..., 8:] = 1.0
    noisy = guide + 0.05 * torch.randn(1, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    out = guided_filter(guide, noisy, 3, 1e-3)
    assert float((out - guide).abs().mean()) < 0.5 * float((noisy - guide).abs().mean())
    assert float(out[..., 4, 9] - out[..., 4, 6]) > 0.9  # the step survives


def test_chroma_cleaning_tiles_exactly():
    torch.manual_seed(0)
    m = create_model("ksr", scale=2, channels=1, width=8, blocks=1).eval()
    x = torch.rand(1, 3, 45, 53)
    whole = super_resolve(m, x, 2, tile=None, chroma_eps=2e-4)
    plain = super_resolve(m, x, 2, tile=None)
    assert float((whole - plain).abs().max()) > 1e-3  # the filter does something
    for tile in (12, 20):
        torch.testing.assert_close(super_resolve(m, x, 2, tile=tile, chroma_eps=2e-4), whole,
                                   atol=2e-6, rtol=0)
