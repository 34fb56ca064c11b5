import math

import numpy as np
import pytest

from kakudai.ops.color import rgb_to_y, rgb_to_ycbcr, ycbcr_to_rgb
from kakudai.ops.metrics import psnr, ssim, to_scored


def test_y_range_is_studio_swing():
    assert rgb_to_y(np.array([1.0, 1.0, 1.0])) * 255 == pytest.approx(235.0)
    assert rgb_to_y(np.array([0.0, 0.0, 0.0])) * 255 == pytest.approx(16.0)
    # MATLAB rgb2ycbcr of pure red: [81.481, 90.203, 240] (0-255).
    np.testing.assert_allclose(rgb_to_ycbcr(np.array([1.0, 0, 0])) * 255, [81.481, 90.203, 240.0], atol=1e-9)
    rng = np.random.default_rng(0)
    x = rng.random((5, 5, 3))
    np.testing.assert_allclose(ycbcr_to_rgb(rgb_to_ycbcr(x)), x, atol=1e-12)


def test_psnr_known_mse_and_border():
    a = np.zeros((20, 20), np.uint8)
    b = a.copy()
    b[5:15, 5:15] = 10  # gray: raw values; MSE over the shaved 16x16 = 100*100/256
    assert psnr(b, a, border=2) == pytest.approx(10 * math.log10(255 ** 2 / (100 * 100 / 256)))
    assert psnr(a, a) == math.inf


def test_gray_scored_raw_not_as_y():
    g = np.arange(64, dtype=np.uint8).reshape(8, 8)
    assert np.array_equal(to_scored(g)[:, :, 0], g.astype(float))
    rgb = np.repeat(g[:, :, None], 3, axis=2)
    # The same picture stored as RGB is scored on its (rounded) Y instead.
    assert np.array_equal(to_scored(rgb)[:, :, 0], np.round(16 + 219 * g.astype(float) / 255.0))


def test_ssim_properties():
    rng = np.random.default_rng(0)
    a = (rng.random((40, 40, 3)) * 255).astype(np.uint8)
    assert ssim(a, a) == pytest.approx(1.0)
    noisy = np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    s = ssim(noisy, a)
    assert 0.0 < s < 0.99
    assert ssim(noisy, a, channel="rgb") != pytest.approx(s)
    with pytest.raises(ValueError):
        ssim(a[:12, :12], a[:12, :12], border=2)
