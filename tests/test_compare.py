"""`kakudai compare` on degraded inputs (the figure of the real-inputs docs)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from kakudai.compare import compare_panels


def test_compare_degraded_input(tmp_path):
    g = np.random.default_rng(0)
    small = g.random((8, 10, 3))
    hr = np.asarray(Image.fromarray((small * 255).astype(np.uint8)).resize((60, 48), Image.BICUBIC))
    Image.fromarray(hr).save(tmp_path / "hr.png")
    clean = compare_panels(tmp_path / "hr.png", [("bicubic", "bicubic")], 2)
    noisy = compare_panels(tmp_path / "hr.png", [("bicubic", "bicubic")], 2, degrade="noise:10")
    assert [p.label for p in noisy] == ["bicubic", "original (HR)"]
    assert noisy[0].psnr < clean[0].psnr - 1.0  # the same image, scored after noise
    again = compare_panels(tmp_path / "hr.png", [("bicubic", "bicubic")], 2, degrade="noise:10")
    np.testing.assert_array_equal(again[0].image, noisy[0].image)  # seeded: reproducible figures
