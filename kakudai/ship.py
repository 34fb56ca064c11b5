"""Ship trained weights into the package: the files a zoo name declares, each with its card.

Usage::

    python -m kakudai.ship NAME WEIGHTS --lineage CONFIG [CONFIG ...] [--run-dir RUN ...]
        [--summary TEXT] [--sets SET ...] [--scales S ...] [--reference MODEL]
        [--bench-dir DIR] [--out-dir DIR] [--threads N] [--keep-speed | --no-speed]

``NAME`` must be declared in :data:`kakudai.zoo.ZOO` first (one line there); its
declaration says what to write. ``WEIGHTS`` is the trained ``.safetensors`` file
(e.g. a run's ``best.safetensors``); its architecture must be the declared one.

* A fixed-scale upscaler (``Shipped("ksr", "ksr", scales=(2, 3, 4))``): for each
  declared scale the weights are reduced to that scale (a multi-scale KSR keeps
  that scale's tail) and written to ``NAME_xS.safetensors`` with card
  ``NAME_xS.json`` / ``.md``: PSNR/SSIM (Y) on ``--sets`` (default Set5 Set14) and
  the time to a ~1920x1080 output. An RGB multi-scale KSR shipped at x2 and x4 is
  the same command after ``Shipped("art", "ksr", scales=(2, 4))``; ``--scales`` writes
  only some of the declared scales (each from the weights trained for it)::

      python -m kakudai.ship art RUN/best.safetensors --run-dir RUN \\
          --lineage configs/art_ksr.toml --sets Art10 Set5 Set14

* An arbitrary-scale upscaler (``Shipped("implicit", "implicit")``): one
  ``NAME.safetensors``, measured at ``--scales`` (default 1.5 2 2.5 3 3.5 4 6 8)
  beside bicubic and ``--reference`` (default: the fixed-scale model of the alias
  this one serves, e.g. ``ksr``; ``REF+shrink`` at non-integer scales up to x4).
* A restorer (``Shipped("unet-jpeg", "unet", task="denoise-jpeg")``): one
  ``NAME.safetensors``, measured with ``kakudai eval --task denoise|jpeg`` on the
  published protocol's sets (noise: Kodak24 and Set12 at sigma 15/25/50, Kodak24
  again with 8-bit clipped noise; JPEG: Classic5 at quality 10-40; a 1-channel gray
  companion on the gray sets only) beside the published anchors, clean Kodak24
  images at the lightest, a middle and the blind level, and the time to restore a
  1920x1080 image. E.g. re-shipping unet-jpeg grown to 4 blocks::

      python -m kakudai.ship unet-jpeg RUN/best.safetensors --run-dir RUN \\
          --lineage configs/unet_jpeg.toml \\
          "python scripts/deepen.py runs/unet-jpeg/final.safetensors runs/unet-jpeg-deep-init.safetensors --blocks 4" \\
          configs/unet_jpeg_deep.toml

``--run-dir`` (repeat, oldest first) names the training runs behind the weights;
their ``log.jsonl`` and ``config.json`` give iterations, hours and the resolved
config. ``--runs-from CARD`` puts the runs an earlier card recorded before them (weights
trained on from a shipped file whose run directories are not on this machine).
``--lineage`` lists the steps that reproduce the file, in order: committed
configs and, between them, model surgery commands (``python scripts/deepen.py SRC OUT
...``); each later config starts from the step before through ``init_from``
(:func:`kakudai.cards.lineage_problems` checks the chain; tests/test_shipped.py runs it).
``--keep-speed`` reuses the speed rows of the card being replaced (same
architecture and arguments required), for a machine too busy to time fairly;
``--no-speed`` leaves them out. Every figure is measured here with what ``kakudai
eval`` runs, and ``tests/test_shipped.py`` re-measures each card's check row.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from . import zoo
from .cards import FORMAT, measure, write_card
from .checkpoint import for_inference, load_weights_file, save_model
from .models.calling import single_scale
from .summary import count_params

__all__ = ["ship", "training_summary", "main"]

DEFAULT_BENCH = Path(__file__).resolve().parents[2] / "shared" / "data" / "bench"
SR_SETS = ("Set5", "Set14")
ANY_SCALES = (1.5, 2, 2.5, 3, 3.5, 4, 6, 8)
SR_PROTOCOL = "Y (BT.601 16-235), border = ceil(scale), LR = MATLAB bicubic rounded to uint8"
# An after-JPEG upscaler (a zoo entry's ``after_jpeg``) is measured on JPEG at this quality.
AFTER_JPEG_QUALITY = 75
AFTER_JPEG_PROTOCOL = (SR_PROTOCOL + ", then JPEG (Pillow, 4:2:0) at the quality given and cleaned by the "
                       "named restorer told that quality, rounded to uint8")
# (set, levels, published anchors) per restoration kind: BM3D / DnCNN, ARCNN / DnCNN-3 (dB).
RESTORE_TABLES: dict[str, list[tuple[str, list[int], dict[str, list[float]]]]] = {
    "noise": [("Kodak24", [15, 25, 50], {"BM3D": [34.28, 32.15, 28.46], "DnCNN": [34.60, 32.14, 28.95]}),
              ("Set12", [15, 25, 50], {"BM3D": [32.37, 29.97, 26.72], "DnCNN": [32.86, 30.44, 27.18]})],
    "jpeg": [("Classic5", [10, 20, 30, 40], {"ARCNN": [29.03, 31.15, 32.51, 33.32],
                                              "DnCNN-3": [29.40, 31.63, 32.91, 33.77]})],
}
GRAY_SETS = {"Set12", "Classic5"}  # the sets a gray companion is scored on
# DnCNN on CBSD68 at sigma 15 / 25 / 50: the bar for 8-bit noisy files (CBSD68 itself is not
# in the benchmark folder; Kodak24 with clipped noise is what can be measured here).
CBSD68_DNCNN = [33.90, 31.24, 27.95]
RESTORE_PROTOCOL = {
    "noise": ("PSNR (peak 255, no border) on RGB, gray images on their values; Gaussian noise of std "
              "sigma (0-255 units) added to the float image, unclipped (clip: clipped and rounded to "
              "8 bits as a saved file is), seed 0; the model is told the true sigma"),
    "jpeg": ("PSNR (peak 255, no border) on Y, gray images on their values; Pillow JPEG at quality L; "
             "the model is told the true quality"),
}


# ----------------------------------------------------------------------------- training facts
def _across_resumes(rows: list[dict], key: str) -> float:
    """Total of a per-process clock in log rows: it restarts at every --resume."""
    total, prev = 0.0, 0.0
    for r in rows:
        if r[key] < prev:
            total += prev
        prev = r[key]
    return total + prev


def run_facts(run_dir: Path) -> dict[str, Any]:
    """Iterations, wall and CPU time, last throughput, validation rows and resolved config
    of one run directory (its ``log.jsonl`` and ``config.json``)."""
    facts: dict[str, Any] = {"name": run_dir.name}
    cfg = run_dir / "config.json"
    if cfg.exists():
        facts["config"] = {k: v for k, v in json.loads(cfg.read_text()).items() if k != "out_dir"}
    log = run_dir / "log.jsonl"
    if log.exists():
        rows = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
        train = [r for r in rows if r.get("kind") == "train"]
        if train:
            facts["iterations"] = train[-1]["it"]
            facts["wall_hours"] = round(_across_resumes(train, "elapsed_s") / 3600, 3)
            if all("cpu_s" in r for r in train):
                facts["cpu_hours"] = round(_across_resumes(train, "cpu_s") / 3600, 3)
            facts["patches_per_s_last"] = round(train[-1]["patches_per_s"], 1)
        val = [r for r in rows if r.get("kind") == "val"]
        if val:
            facts["validation"] = val
    return facts


def training_summary(run_dirs: list[Path], threads: int = 1,
                     earlier: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The card's ``training``: iterations and hours over the runs (oldest first), each
    run's facts, and the last run's resolved config. CPU-hours are measured where every
    run logged CPU time, else wall time x ``threads``. ``earlier``: facts of runs before
    ``run_dirs`` as an earlier card recorded them (their directories need not exist)."""
    runs = list(earlier or []) + [run_facts(Path(r)) for r in run_dirs]
    wall = sum(r.get("wall_hours", 0.0) for r in runs)
    measured = bool(runs) and all("cpu_hours" in r for r in runs)
    cpu = sum(r["cpu_hours"] for r in runs) if measured else wall * threads
    return {"iterations": sum(r.get("iterations", 0) for r in runs), "wall_hours": round(wall, 3),
            "cpu_hours": round(cpu, 3), "runs": [{k: v for k, v in r.items() if k != "config"} for r in runs],
            "config": runs[-1].get("config", {}) if runs else {}}


def runs_of_card(card_path: str | Path) -> list[dict[str, Any]]:
    """The training runs a shipped card records (oldest first): what ``--runs-from`` carries
    into the card of weights trained on from that file, when the earlier run directories
    are on another machine. The last carries the card's resolved config, which stays the
    new card's when no later run is given (the same weights re-measured)."""
    card = json.loads(Path(card_path).read_text())
    training = card.get("training", {})
    runs = [dict(r) for r in training.get("runs") or []]
    if not runs:
        raise ValueError(f"{card_path}: the card records no training runs")
    runs[-1]["config"] = training.get("config", {})
    return runs


# ----------------------------------------------------------------------------- timing
def _median_seconds(fn, repeat: int) -> float:
    fn()  # warm-up
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return round(statistics.median(ts), 3)


def upscale_seconds(model: nn.Module, scale: float, repeat: int = 3) -> tuple[float, str]:
    """Median seconds of a whole upscale call (uint8 RGB in and out) to a ~1920x1080 output."""
    from .bench import retain_freed_memory
    from .infer.upscale import super_resolve

    h, w = math.ceil(1080 / scale), math.ceil(1920 / scale)
    retain_freed_memory()  # as `kakudai upscale` and `kakudai bench` do
    x = torch.randint(0, 256, (1, 3, h, w), dtype=torch.uint8)
    secs = _median_seconds(lambda: super_resolve(model, x, scale, out_dtype=torch.uint8), repeat)
    return secs, (f"median super_resolve of a {w}x{h} RGB input to ~1920x1080 (uint8 in/out), "
                  f"torch {torch.__version__}, {torch.get_num_threads()} threads")


def restore_seconds(model: nn.Module, level: float, channels: int, repeat: int = 3) -> tuple[float, str]:
    """Median seconds to restore a 1920x1080 image of ``channels`` (tiled, uint8 out)."""
    from .infer.restore import restore

    x = torch.rand(1, channels, 1080, 1920)
    secs = _median_seconds(lambda: restore(model, x, level, tile="auto", out_dtype=torch.uint8), repeat)
    return secs, (f"restore a 1920x1080 {'gray' if channels == 1 else 'RGB'} image (tiled, uint8 out), "
                  f"torch {torch.__version__}, {torch.get_num_threads()} threads")


# ----------------------------------------------------------------------------- measuring
def _measured(card: dict[str, Any], rows: list[dict[str, Any]], bench: Path, model: nn.Module) -> None:
    """Fill each measured row's figures in place, with :func:`kakudai.cards.measure`."""
    for row in rows:
        if row["source"] != "measured":
            continue
        got = measure(card, row, bench, model=model if row["model"] == card["name"] else None)
        row["psnr"] = round(got["psnr"], 4 if card["task"] == "upscale" else 3)
        for k, digits in (("ssim", 4), ("input_psnr", 3)):
            if k in row:
                row[k] = round(got[k], digits)
        if "n" in row:
            row["n"] = int(got["n"])
        where = f"x{row['scale']:g}" if "scale" in row else f"level {row['level']:g}"
        print(f"  {row['model']:<16} {row['set']:<10} {where:<10} {row['psnr']:.3f} dB", flush=True)


def _sr_rows(name: str, sets: list[str], scales: list[float], reference: str | None) -> list[dict[str, Any]]:
    rows = []
    for s in scales:
        for st in sets:
            rows.append({"model": name, "set": st, "scale": s, "psnr": 0.0, "ssim": 0.0, "n": 0,
                         "source": "measured"})
            if reference:
                ref = reference if float(s).is_integer() else (f"{reference}+shrink" if s <= 4 else None)
                if ref:
                    rows.append({"model": ref, "set": st, "scale": s, "psnr": 0.0, "ssim": 0.0,
                                 "source": "measured"})
            if reference is not None:
                rows.append({"model": "bicubic", "set": st, "scale": s, "psnr": 0.0, "ssim": 0.0,
                             "source": "measured"})
    return rows


def _after_jpeg_rows(name: str, base: str, cleaner: str, sets: list[str], scale: float,
                     quality: int = AFTER_JPEG_QUALITY) -> list[dict[str, Any]]:
    """The rows of an after-JPEG upscaler's card: on each set, JPEG at ``quality`` cleaned
    by ``cleaner``, then this model and the model it was tuned from; then this model on
    clean LR (which it is not served)."""
    spec = f"jpeg:{quality}"
    rows = []
    for st in sets:
        for who in (name, base):
            rows.append({"model": who, "set": st, "scale": scale, "degrade": spec, "cleaned_by": cleaner,
                         "psnr": 0.0, "ssim": 0.0, "n": 0, "source": "measured"})
    rows += [{"model": name, "set": st, "scale": scale, "psnr": 0.0, "ssim": 0.0, "n": 0, "source": "measured"}
             for st in sets]
    return rows


def _restore_rows(name: str, kind: str, gray: bool, sets: list[str] | None) -> tuple[list[dict[str, Any]], int]:
    """The rows of a restorer card, and the index of its check row (the last set's first level)."""
    from .infer.restore import BLIND_QUALITY, MAX_SIGMA, NOISE_LEVEL_QUALITY

    tables = [t for t in RESTORE_TABLES[kind] if not gray or t[0] in GRAY_SETS]
    if sets:
        known = {t[0]: t for t in RESTORE_TABLES[kind]}
        levels = RESTORE_TABLES[kind][0][1]
        tables = [known.get(st, (st, levels, {})) for st in sets]
    groups = [(st, levels, anchors, False) for st, levels, anchors in tables]
    if kind == "noise" and not gray and groups and not sets:  # 8-bit noisy files, after the float protocol
        groups.insert(1, (groups[0][0], groups[0][1], {"DnCNN on CBSD68": CBSD68_DNCNN}, True))
    rows: list[dict[str, Any]] = []
    check = 0
    for i, (st, levels, anchors, clip) in enumerate(groups):
        if i == len(groups) - 1:
            check = len(rows)
        extra = {"clip": True} if clip else {}
        rows += [{"model": name, "set": st, "level": lv, "psnr": 0.0, "input_psnr": 0.0, **extra,
                  "source": "measured"} for lv in levels]
        for who, vals in anchors.items():
            rows += [{"model": who, "set": st, "level": lv, "psnr": v, **extra, "source": "published"}
                     for lv, v in zip(levels, vals)]
    if kind == "noise":
        clean = [("sigma 0", 0), ("sigma 15", 15), (f"blind (sigma {MAX_SIGMA:g})", MAX_SIGMA)]
    else:
        clean = [(f"--noise-level {n}", q) for n, q in NOISE_LEVEL_QUALITY.items()]
        clean.append((f"blind (quality {BLIND_QUALITY})", BLIND_QUALITY))
    clean_set = "Kodak24" if not sets else sets[0]
    rows += [{"model": name, "set": clean_set, "level": lv, "psnr": 0.0, "clean": True, "label": label,
              "source": "measured"} for label, lv in clean]
    return rows, check


# ----------------------------------------------------------------------------- ship
def ship(name: str, weights: str | Path, lineage: list[str], run_dirs: list[Path] | None = None,
         summary: str = "", sets: list[str] | None = None, scales: list[float] | None = None,
         reference: str | None = None, bench_dir: str | Path = DEFAULT_BENCH,
         out_dir: str | Path | None = None, threads: int = 1, speed: str = "measure",
         runs_from: str | Path | None = None) -> list[Path]:
    """Write the files and cards of zoo entry ``name`` from trained ``weights``; returns the
    card paths. ``speed``: ``measure``, ``keep`` (the replaced card's rows) or ``none``.
    Arguments as the command line's (see the module docstring)."""
    e = zoo.ZOO.get(name)
    if e is None:
        raise ValueError(f"{name!r} is not declared in kakudai/zoo.py (add a Shipped(...) entry first)")
    if not lineage:
        raise ValueError("give the configs that reproduce the weights (--lineage)")
    if speed not in ("measure", "keep", "none"):
        raise ValueError(f"speed must be measure, keep or none, not {speed!r}")
    out = Path(out_dir) if out_dir is not None else zoo.WEIGHTS_DIR
    bench = Path(bench_dir)
    src = load_weights_file(weights)
    if src.arch != e.arch:
        raise ValueError(f"{weights}: architecture {src.arch!r}, but {name} is declared as {e.arch!r}")
    training = training_summary(list(run_dirs or []), threads, runs_of_card(runs_from) if runs_from else None)
    base = {"format": FORMAT, "name": name, "task": e.task, "summary": summary, "lineage": list(lineage),
            "criteria": [], "training": training}
    written = []
    if e.task == "upscale" and e.scales:
        tuned_from = next((b for b in zoo.ZOO.values() if b.after_jpeg == name), None)
        chosen = e.scales if not scales else tuple(int(v) for v in scales)
        if not set(chosen) <= set(e.scales):
            raise ValueError(f"{name} declares x{'/'.join(map(str, e.scales))}, not x{scales}")
        for s in chosen:
            have = [int(v) for v in src.spec.native_scales() or [src.spec.scale]]
            if s not in have:
                raise ValueError(f"{weights}: serves x{'/'.join(map(str, have))}, {name} declares x{s}")
            model = for_inference(single_scale(src, s))
            folders = " ".join(str(bench / st) for st in sets or SR_SETS)
            if tuned_from is None:
                rows = _sr_rows(name, list(sets or SR_SETS), [s], None)
                protocol, command = SR_PROTOCOL, f"kakudai eval --model {name} --scale {s} {folders}"
            else:
                style = zoo.MODEL_STYLES.get(tuned_from.name, "photo")
                rows = _after_jpeg_rows(name, tuned_from.name, zoo.auto_restorers(style)["jpeg"],
                                        list(sets or SR_SETS), s)
                protocol = AFTER_JPEG_PROTOCOL
                command = (f"kakudai eval --model {tuned_from.name} --scale {s} --degrade jpeg:{AFTER_JPEG_QUALITY} "
                           f"--denoise auto {folders} (the automatic route, which reads the quality from the "
                           "pixels and serves this model)")
            card = {**base, "file": e.path(s).name, "scale": s, "arch": model.arch, "args": model.arch_args,
                    "params": count_params(model), "protocol": protocol, "command": command,
                    "results": rows, "check": 0}
            written.append(_finish(card, model, rows, bench, out, speed,
                                   lambda m, s=s: [{"model": name, "scale": s,
                                                    **dict(zip(("seconds", "what"), upscale_seconds(m, s)))}]))
    elif e.task == "upscale":
        model = for_inference(src)
        if reference is None:
            reference = next((a.target for a in zoo.ALIASES.values() if a.other_scales == name), None)
        sc = [float(v) for v in (scales or ANY_SCALES)]
        rows = _sr_rows(name, list(sets or SR_SETS), sc, reference or "")
        own = [i for i, r in enumerate(rows) if r["model"] == name]
        check = next((i for i in own if not float(rows[i]["scale"]).is_integer()), own[0])
        card = {**base, "file": e.path().name, "scale": None, "arch": model.arch, "args": model.arch_args,
                "params": count_params(model), "protocol": SR_PROTOCOL,
                "command": f"kakudai eval --model {name} --scale S " + " ".join(
                    str(bench / st) for st in sets or SR_SETS),
                "results": rows, "check": check}

        def timed(m: nn.Module) -> list[dict[str, Any]]:
            out_rows = []
            for s in sc:
                secs, what = upscale_seconds(m, s)
                out_rows.append({"model": name, "scale": s, "seconds": secs, "what": what})
            return out_rows
        written.append(_finish(card, model, rows, bench, out, speed, timed))
    else:
        from .cards import level_value_of

        model = for_inference(src)
        if not model.spec.level_map:
            raise ValueError(f"{weights}: a restorer takes its level as an input plane (level_map=True)")
        channels = model.spec.channels
        rows, check = _restore_rows(name, e.kind, channels == 1, sets)
        verb = "denoise --sigma L [--clip]" if e.kind == "noise" else "jpeg --quality L"
        card = {**base, "file": e.path().name, "scale": None, "arch": model.arch, "args": model.arch_args,
                "params": count_params(model), "protocol": RESTORE_PROTOCOL[e.kind],
                "command": f"kakudai eval --task {verb} --model {name} DIR", "results": rows, "check": check}
        lightest = rows[check]["level"]
        written.append(_finish(card, model, rows, bench, out, speed, lambda m: [
            {"model": name, **dict(zip(("seconds", "what"),
                                       restore_seconds(m, level_value_of(e.task, lightest), channels)))}]))
    return written


def _finish(card: dict[str, Any], model: nn.Module, rows: list[dict[str, Any]], bench: Path, out: Path,
            speed: str, timer) -> Path:
    """Measure the card's rows, time the model, write weights, card JSON and Markdown."""
    print(f"{card['file']}:", flush=True)
    _measured(card, rows, bench, model)
    if speed == "measure":
        card["speed"] = timer(model)
    elif speed == "keep":
        old_path = (out / card["file"]).with_suffix(".json")
        old = json.loads(old_path.read_text()) if old_path.exists() else {}
        if (old.get("arch"), old.get("args")) != (card["arch"], card["args"]):
            raise ValueError(f"--keep-speed: {old_path} is not a card of the same architecture")
        card["speed"] = old["speed"]
    else:
        card["speed"] = []
    out.mkdir(parents=True, exist_ok=True)
    save_model(model, out / card["file"])
    path = write_card(card, out)
    print(f"wrote {out / card['file']} and {path.name} / {path.with_suffix('.md').name}", flush=True)
    return path


def main(argv: list[str] | None = None) -> int:
    """``python -m kakudai.ship``: this module's own command line (parsed here, handed on as keywords)."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m kakudai.ship", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name", help="a name declared in kakudai/zoo.py")
    ap.add_argument("weights", help="the trained .safetensors file")
    ap.add_argument("--lineage", nargs="+", required=True, metavar="STEP",
                    help="the configs (and quoted 'python scripts/...' surgery commands) that reproduce "
                         "the weights, in order")
    ap.add_argument("--run-dir", type=Path, action="append", default=[],
                    help="a training run behind the weights (repeat, oldest first)")
    ap.add_argument("--runs-from", type=Path, default=None, metavar="CARD",
                    help="the card (.json) of the weights these runs continued; its runs come first")
    ap.add_argument("--summary", default="", help="what the model is and how it was made (the card's text)")
    ap.add_argument("--sets", nargs="+", default=None, help="benchmark folders to measure on (default per task)")
    ap.add_argument("--scales", type=float, nargs="+", default=None,
                    help="arbitrary-scale models: the scales measured; fixed-scale models: the declared "
                         "scales to write from these weights (default all)")
    ap.add_argument("--reference", default=None, help="arbitrary-scale models: the fixed-scale model compared")
    ap.add_argument("--bench-dir", type=Path, default=DEFAULT_BENCH)
    ap.add_argument("--out-dir", type=Path, default=None, help="default: kakudai/weights")
    ap.add_argument("--threads", type=int, default=1, help="cores per run, for CPU-hours of logs without CPU time")
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--keep-speed", action="store_true", help="reuse the replaced card's speed rows")
    group.add_argument("--no-speed", action="store_true", help="no speed rows")
    args = ap.parse_args(argv)
    try:
        ship(args.name, args.weights, args.lineage, args.run_dir, summary=args.summary, sets=args.sets,
             scales=args.scales, reference=args.reference, bench_dir=args.bench_dir, out_dir=args.out_dir,
             threads=args.threads, speed="keep" if args.keep_speed else "none" if args.no_speed else "measure",
             runs_from=args.runs_from)
    except (ValueError, OSError, zoo.WeightsError) as e:
        print(f"kakudai.ship: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
