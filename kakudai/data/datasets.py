"""Benchmark sets (HR crop + cached MATLAB-bicubic LR) and training patch sampling."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image

from ..ops.resize import imresize_np
from ..ops.screentone import screentone as screentone_of
from .io import IMAGE_EXTENSIONS, read_image_uint8

__all__ = ["BenchmarkImage", "benchmark_set", "list_images", "degrade_bicubic", "TrainPairs",
           "cache_dir"]


def cache_dir() -> Path:
    """Where derived data (LR images) is cached: $KAKUDAI_CACHE or ~/.cache/kakudai."""
    root = os.environ.get("KAKUDAI_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "kakudai")
    return Path(root)


def list_images(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Image files in ``folder`` (by extension), sorted by name."""
    folder = Path(folder)
    it: Iterable[Path] = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in it if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def mod_crop(img: np.ndarray, multiple: int) -> np.ndarray:
    """Crop the bottom/right so both sides are multiples of ``multiple``."""
    h, w = img.shape[:2]
    return img[: h - h % multiple, : w - w % multiple]


def degrade_bicubic(hr: np.ndarray, scale: float) -> np.ndarray:
    """The benchmark LR: MATLAB bicubic by 1/scale of a uint8 HR, rounded to uint8."""
    lr = imresize_np(hr.astype(np.float64), scale=1.0 / scale)
    return np.clip(np.round(lr), 0, 255).astype(np.uint8)


def lr_size_multiple(scale: float) -> int:
    """HR sides must be multiples of p for scale p/q so that the LR size is an integer."""
    from fractions import Fraction
    return Fraction(scale).limit_denominator(100).numerator


@dataclass
class BenchmarkImage:
    name: str
    hr: np.ndarray  # uint8 (H, W) or (H, W, 3), sides multiple of the scale's numerator
    lr: np.ndarray  # uint8, MATLAB bicubic of hr by 1/scale


def _cached_lr(path: Path, hr: np.ndarray, scale: float) -> np.ndarray:
    st = path.stat()
    key = hashlib.sha1(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{scale!r}|v1".encode()).hexdigest()
    f = cache_dir() / "lr" / f"{key}.npy"
    try:
        lr = np.load(f)
        return lr
    except (OSError, ValueError):
        pass
    lr = degrade_bicubic(hr, scale)
    try:
        f.parent.mkdir(parents=True, exist_ok=True)
        tmp = f.with_name(f"{f.name}.{os.getpid()}.tmp.npy")
        np.save(tmp, lr)
        os.replace(tmp, f)
    except OSError:
        pass  # a read-only cache only costs speed
    return lr


def benchmark_set(folder: str | os.PathLike, scale: float) -> list[BenchmarkImage]:
    """HR images of ``folder`` cropped to the scale's multiple, with their LR (cached)."""
    from fractions import Fraction
    items = []
    mult = lr_size_multiple(scale)
    exact = Fraction(scale).limit_denominator(100)
    for p in list_images(folder):
        hr = mod_crop(read_image_uint8(p), mult)
        lr = _cached_lr(p, hr, float(exact))
        items.append(BenchmarkImage(p.name, hr, lr))
    if not items:
        raise FileNotFoundError(f"{folder}: no images found")
    return items


def _screentoned(rgb: np.ndarray, name: str, screentone: tuple[float, float, float]) -> np.ndarray | None:
    """The screentone copy of a training image (gray, as RGB) for TrainPairs, or None when
    the image is not among the ``screentone[0]`` share; the choice and the period follow
    from the file name alone."""
    share, lo, hi = screentone
    if share <= 0:
        return None
    rng = np.random.default_rng(int(hashlib.sha1(f"tone:{name}".encode()).hexdigest()[:16], 16))
    if rng.random() >= share:
        return None
    return np.repeat(screentone_of(rgb, period=float(rng.uniform(lo, hi)))[:, :, None], 3, axis=2)


class TrainPairs:
    """All training images in memory with their MATLAB-bicubic LR, for patch sampling.

    For each scale, HR is mod-cropped and LR = round(imresize(HR, 1/scale)),
    exactly the benchmark degradation, computed once and cached on disk.
    ``scale_aug`` adds downscaled copies of each HR (VDSR's scale augmentation).
    ``screentone = (share, lo, hi)``: that share of the images (chosen by file name) also
    gets a gray copy with its mid-tones as screentone of a period drawn from [lo, hi]
    pixels (:func:`kakudai.ops.screentone.screentone`), the look of manga pages.
    ``gray``: every image is first made gray (Pillow's "L" luma, replicated to RGB).
    """

    def __init__(self, folders: Sequence[str | os.PathLike], scales: Sequence[int],
                 scale_aug: Sequence[float] = (1.0,), verbose: bool = True,
                 screentone: tuple[float, float, float] = (0.0, 4.0, 10.0), gray: bool = False):
        if len(screentone) != 3 or not 0 < screentone[1] <= screentone[2]:
            raise ValueError(f"screentone must be (share, lo, hi) with 0 < lo <= hi pixels, got {screentone!r}")
        missing = [str(f) for f in folders if not Path(f).is_dir()]
        if missing:  # rglob of a missing folder is silently empty
            raise FileNotFoundError(f"training folder not found: {', '.join(missing)}")
        self.paths = [p for f in folders for p in list_images(f, recursive=True)]
        if not self.paths:
            raise FileNotFoundError(f"no training images in {list(map(str, folders))}")
        self.scales = list(scales)
        self.pairs: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
        self._weights: dict[tuple[int, int], np.ndarray] = {}  # see _patch_weights
        key = hashlib.sha1("|".join(
            [f"{p.resolve()}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in self.paths]
            + [repr(sorted(scale_aug)), "v1"]
            + ([f"screentone:{tuple(screentone)!r}"] if screentone[0] > 0 else [])
            + (["gray"] if gray else [])).encode()).hexdigest()[:16]
        for s in self.scales:
            f = cache_dir() / "train" / f"{key}_x{s}.npz"
            try:
                with np.load(f) as z:
                    n = int(z["n"])
                    self.pairs[s] = [(z[f"hr{i}"], z[f"lr{i}"]) for i in range(n)]
                continue
            except (OSError, KeyError, ValueError):
                pass
            if verbose:
                print(f"preparing x{s} training pairs from {len(self.paths)} images (cached after)")
            pairs = []
            for p in self.paths:
                base = read_image_uint8(p, mode="RGB")
                if gray:
                    base = np.repeat(np.asarray(Image.fromarray(base).convert("L"))[:, :, None], 3, axis=2)
                toned = _screentoned(base, p.name, screentone)
                for a in scale_aug:
                    if a == 1.0:
                        hr = base
                    else:
                        hr = np.clip(np.round(imresize_np(base.astype(np.float64), scale=a)), 0, 255).astype(np.uint8)
                    hr = mod_crop(hr, s)
                    if min(hr.shape[:2]) < s:
                        continue
                    pairs.append((hr, degrade_bicubic(hr, s)))
                if toned is not None:
                    hr = mod_crop(toned, s)
                    pairs.append((hr, degrade_bicubic(hr, s)))
            self.pairs[s] = pairs
            try:
                f.parent.mkdir(parents=True, exist_ok=True)
                tmp = f.with_name(f"{f.stem}.{os.getpid()}.tmp.npz")
                arrays = {"n": np.array(len(pairs))}
                for i, (hr, lr) in enumerate(pairs):
                    arrays[f"hr{i}"], arrays[f"lr{i}"] = hr, lr
                np.savez(tmp, **arrays)
                os.replace(tmp, f)
            except OSError:
                pass

    def _patch_weights(self, scale: int, lr_patch: int) -> np.ndarray:
        """Probability of drawing each image: its share of all LR patch positions
        (cached per (scale, patch): recomputing it cost ~1 ms per batch)."""
        cache = self._weights
        if (scale, lr_patch) not in cache:
            sizes = np.array([max(0, lr.shape[0] - lr_patch + 1) * max(0, lr.shape[1] - lr_patch + 1)
                              for _, lr in self.pairs[scale]], dtype=np.float64)
            if sizes.sum() == 0:
                raise ValueError(f"no training image is large enough for a {lr_patch}px LR patch at x{scale}")
            cache[(scale, lr_patch)] = sizes / sizes.sum()
        return cache[(scale, lr_patch)]

    def sample(self, rng: np.random.Generator, batch: int, lr_patch: int, scale: int,
               augment: bool = True, candidates: int = 1,
               part: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """A batch of aligned patches: LR (B, p, p, 3) and HR (B, p*s, p*s, 3), uint8.

        Images are drawn with probability proportional to their number of
        possible patch positions; flips and 90-degree rotations when ``augment``.
        With ``candidates`` > 1, each patch is the most detailed (largest LR
        standard deviation) of that many random positions in its image.
        ``part = (start, stop)`` returns only those patches of the batch (a DDP
        rank's share), consuming the same random draws as the whole batch.
        """
        pairs = self.pairs[scale]
        idx = rng.choice(len(pairs), size=batch, p=self._patch_weights(scale, lr_patch))
        start, stop = part if part is not None else (0, batch)
        lrs, hrs = [], []
        for n, i in enumerate(idx):
            hr, lr = pairs[i]
            mine = start <= n < stop
            pos = [(int(rng.integers(0, lr.shape[0] - lr_patch + 1)),
                    int(rng.integers(0, lr.shape[1] - lr_patch + 1))) for _ in range(max(1, candidates))]
            y, x = pos[0]
            if len(pos) > 1 and mine:  # one candidate needs no measuring (same draws as uniform)
                # All candidates' standard deviations in one call; argmax keeps the first best.
                win = np.stack([lr[cy:cy + lr_patch, cx:cx + lr_patch] for cy, cx in pos])
                y, x = pos[int(np.argmax(win.reshape(len(pos), -1).std(axis=1)))]
            k, flip = (int(rng.integers(0, 4)), bool(rng.integers(0, 2))) if augment else (0, False)
            if not mine:
                continue
            lp = lr[y:y + lr_patch, x:x + lr_patch]
            hp = hr[y * scale:(y + lr_patch) * scale, x * scale:(x + lr_patch) * scale]
            if augment:
                lp, hp = np.rot90(lp, k), np.rot90(hp, k)
                if flip:
                    lp, hp = lp[:, ::-1], hp[:, ::-1]
            lrs.append(np.ascontiguousarray(lp))
            hrs.append(np.ascontiguousarray(hp))
        return np.stack(lrs), np.stack(hrs)

    def sample_continuous(self, rng: np.random.Generator, batch: int, lr_patch: int,
                          scale_range: Sequence[float], augment: bool = True,
                          fixed: Sequence[float] = (), fixed_prob: float = 0.0
                          ) -> tuple[np.ndarray, np.ndarray, float]:
        """A batch at one random scale s ~ U(lo, hi): LR (B, p, p, 3), HR (B, P, P, 3)
        uint8 and the exact scale P / p. With probability ``fixed_prob`` s is one
        of ``fixed`` instead (drawn uniformly).

        The HR side is P = round(p * s), so the LR side is the integer p, and
        LR = round(MATLAB bicubic(HR patch) to p x p): for s = P / p that is the
        benchmark degradation (``imresize(hr, 1/s)`` gives ceil(P * p / P) = p).
        The LR of a patch differs from the whole image's LR only within ~2 LR
        pixels of the patch border (symmetric padding there, as at image borders).
        Needs the pairs built with scale 1 (the HR images themselves).
        """
        if 1 not in self.pairs:
            raise ValueError("continuous-scale sampling needs TrainPairs built with scales=[1]")
        lo, hi = float(scale_range[0]), float(scale_range[1])
        # The extra draw only when asked, so that older runs resume bit-exactly.
        if fixed_prob > 0 and fixed and rng.uniform() < fixed_prob:
            s = float(fixed[int(rng.integers(len(fixed)))])
        else:
            s = float(rng.uniform(lo, hi))
        hr_side = max(lr_patch, int(round(lr_patch * s)))
        _, hr = self.sample(rng, batch, hr_side, 1, augment)
        # Resize the whole batch in one call: stack the patches along channels.
        stacked = hr.transpose(1, 2, 0, 3).reshape(hr_side, hr_side, -1).astype(np.float64)
        lr = imresize_np(stacked, size=(lr_patch, lr_patch))
        lr = np.clip(np.round(lr), 0, 255).astype(np.uint8)
        lr = lr.reshape(lr_patch, lr_patch, batch, 3).transpose(2, 0, 1, 3)
        return np.ascontiguousarray(lr), hr, hr_side / lr_patch
