"""Draw examples/sample.png: a small synthetic test card (edges, text, gradients, texture).

It ships with the repository so README's first command has an image to upscale
without using any third-party picture.
"""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def make(size: tuple[int, int] = (160, 120), seed: int = 7) -> Image.Image:
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rgb = np.stack([0.5 + 0.5 * np.sin(xx / 17.0), 0.4 + 0.4 * (yy / h), 0.6 - 0.3 * (xx / w)], -1)
    rng = np.random.default_rng(seed)
    rgb[h // 2:, : w // 3] += rng.normal(0, 0.08, (h - h // 2, w // 3, 3))  # texture patch
    img = Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    d.ellipse((w // 2 - 30, 10, w // 2 + 30, 70), outline=(20, 20, 20), width=3, fill=(240, 200, 40))
    for i in range(6):  # fine stripes: where bicubic blurs and SR should stay sharp
        d.line((w - 50 + 7 * i, 10, w - 30 + 7 * i, 60), fill=(0, 0, 0), width=2)
    d.rectangle((10, 10, 50, 40), outline=(255, 255, 255), width=2)
    d.text((w // 3 + 4, h - 34), "kakudai", fill=(10, 10, 10), font=ImageFont.load_default())
    d.text((w // 3 + 4, h - 20), "x2 x3 x4", fill=(250, 250, 250), font=ImageFont.load_default())
    return img


if __name__ == "__main__":
    out = Path(__file__).resolve().parents[1] / "examples" / "sample.png"
    make().save(out)
    print(out)
