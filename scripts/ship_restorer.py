"""Ship a trained restoration model (noise or JPEG) into the package with a model card.

    python scripts/ship_restorer.py /work/runs/rednet-noise/best.safetensors --kind noise \
        --run-dir /work/runs/rednet-noise [--gray] [--bench ../shared/data/bench] [--note TEXT]

Writes ``kakudai/weights/NAME.safetensors`` (default NAME: the kind's default,
``unet-noise`` / ``rednet-jpeg``; metadata: arch, args, card facts) and the card
``NAME.json`` / ``.md``, with exactly
what ``kakudai eval --task denoise|jpeg`` measures on the acceptance sets
(the restoration targets of docs/denoise.md): noise: Kodak24 and Set12 at sigma 15/25/50 (``--gray``: the gray
companion, e.g. ``unet-noise-gray``, scored on Set12 only); JPEG: Classic5 at
quality 10/20/30/40; both: PSNR of restore(clean) vs clean on Kodak24 at the
lightest, a middle and the blind level (the "must not smear clean photos" check),
and the time to restore a 1920x1080 RGB image.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kakudai.checkpoint import load_weights_file, save_model  # noqa: E402
from kakudai.data.datasets import list_images  # noqa: E402
from kakudai.data.degrade import jpeg_level, noise_level  # noqa: E402
from kakudai.data.io import read_image_uint8  # noqa: E402
from kakudai.evaluation import evaluate_denoise, evaluate_jpeg  # noqa: E402
from kakudai.infer.restore import (BLIND_QUALITY, GRAY_COMPANIONS, MAX_SIGMA,  # noqa: E402
                                   NOISE_LEVEL_QUALITY, RESTORERS, restore, restore_array, weights_path)
from kakudai.ops.metrics import psnr  # noqa: E402
from ship_model import training_summary  # noqa: E402  (scripts/ is on sys.path when run as a script)

# (dataset, levels, published anchors) per kind: BM3D / DnCNN, ARCNN / DnCNN-3 (dB).
TABLES = {
    "noise": [("Kodak24", [15, 25, 50], {"BM3D": [34.28, 32.15, 28.46], "DnCNN": [34.60, 32.14, 28.95]}),
              ("Set12", [15, 25, 50], {"BM3D": [32.37, 29.97, 26.72], "DnCNN": [32.86, 30.44, 27.18]})],
    "jpeg": [("Classic5", [10, 20, 30, 40], {"ARCNN": [29.03, 31.15, 32.51, 33.32],
                                              "DnCNN-3": [29.40, 31.63, 32.91, 33.77]})],
}
GRAY_SETS = {"Set12", "Classic5"}  # the sets a gray companion is scored on
# DnCNN on CBSD68 (sigma 15 / 25 / 50): the bar for 8-bit noisy files (CBSD68 itself is not
# in ../shared/data; Kodak24 with clipped noise is what can be measured here).
CBSD68_DNCNN = [33.90, 31.24, 27.95]


def clean_psnr(model: torch.nn.Module, folder: Path, level: float) -> float:
    """Mean PSNR (RGB/gray, uint8 out) of restore(clean image) against itself."""
    vals = []
    for p in list_images(folder):
        img = read_image_uint8(p)
        vals.append(psnr(restore_array(img, model, level), img, channel="rgb"))
    return float(np.mean(vals))


def time_1080p(model: torch.nn.Module, level: float, channels: int = 3, repeat: int = 3) -> float:
    """Median seconds to restore a random 1920x1080 image of ``channels`` (tiled, uint8 out)."""
    x = torch.rand(1, channels, 1080, 1920)
    restore(model, x[:, :, :256, :256], level)  # warm-up
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        restore(model, x, level, tile="auto", out_dtype=torch.uint8)
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("weights")
    ap.add_argument("--kind", choices=sorted(RESTORERS), required=True)
    ap.add_argument("--run-dir", type=Path, action="append", default=[],
                    help="the training runs behind the weights (config.json, log.jsonl); repeat for "
                         "warm restarts, oldest first, so that the card adds up their time")
    ap.add_argument("--bench", default=str(REPO.parent / "shared" / "data" / "bench"))
    ap.add_argument("--gray", action="store_true",
                    help="ship the kind's gray companion (a 1-channel model; gray images go to it)")
    ap.add_argument("--name", default=None,
                    help="file stem to write (default: the kind's default name, e.g. rednet-noise); "
                         "the default model of a kind is chosen in kakudai/infer/restore.py (RESTORERS)")
    ap.add_argument("--note", default="")
    ap.add_argument("--lineage-from", type=Path, default=None, metavar="CARD.json",
                    help="the card of the weights this run started from (init_from): its runs, "
                         "iterations and hours are added before this run's")
    ap.add_argument("--out-dir", default=None, help="where to write (default: kakudai/weights)")
    ap.add_argument("--reuse-time", action="store_true",
                    help="keep the shipped card's 1080p time (same architecture required): "
                         "for re-shipping a fine-tuned model while the machine is busy")
    args = ap.parse_args()
    kind, bench, gray = args.kind, Path(args.bench), args.gray
    model = load_weights_file(args.weights)
    if not getattr(model, "level_map", False):
        raise SystemExit("expected a level-map restoration model (REDNet(level_map=True))")
    if gray and (kind not in GRAY_COMPANIONS or int(getattr(model, "channels", 3)) != 1):
        raise SystemExit("--gray needs a 1-channel model of a kind with a gray companion "
                         f"({', '.join(GRAY_COMPANIONS)})")
    dest = weights_path(kind, gray=gray)
    if args.name:
        dest = dest.with_name(f"{args.name}.safetensors")

    card: dict = {"name": dest.stem, "kind": kind, "arch": model.arch, "args": model.arch_args,
                  "params": sum(p.numel() for p in model.parameters()), "note": args.note, "eval": []}
    if args.run_dir:
        summary = training_summary(args.run_dir, threads=1)
        card["config"] = summary["config"]
        for k in ("iterations", "wall_hours", "cpu_hours", "runs"):
            if summary.get(k):
                card[k] = summary[k]
    if args.lineage_from:
        prev = json.loads(args.lineage_from.read_text())
        card["runs"] = prev.get("runs", []) + card.get("runs", [])
        for k in ("iterations", "wall_hours", "cpu_hours"):
            if k in prev:
                card[k] = round(prev[k] + card.get(k, 0), 3)

    evaluate = evaluate_denoise if kind == "noise" else evaluate_jpeg
    rows = [(name, levels, anchors, False) for name, levels, anchors in TABLES[kind]
            if not gray or name in GRAY_SETS]
    if kind == "noise" and not gray:  # 8-bit noisy files too, after the published protocol's row
        rows.insert(1, (rows[0][0], rows[0][1], {"DnCNN on CBSD68": CBSD68_DNCNN}, True))
    for name, levels, anchors, clip in rows:
        scores = []
        kw = {"clip": True} if clip else {}
        for lv in levels:
            r = evaluate(model, bench / name, lv, with_ssim=False, **kw)
            none = evaluate(None, bench / name, lv, with_ssim=False, **kw)
            scores.append({"level": lv, "psnr": round(r["psnr"], 3), "input": round(none["psnr"], 3)})
            print(f"{name}{' (clipped)' if clip else ''} {'sigma' if kind == 'noise' else 'q'}={lv}: "
                  f"{r['psnr']:.3f} dB (input {none['psnr']:.3f})", flush=True)
        card["eval"].append({"set": name, "scores": scores, "anchors": anchors, **({"clip": True} if clip else {})})

    if kind == "noise":
        checks = {"sigma 0": noise_level(0), "sigma 15": noise_level(15),
                  f"blind (sigma {MAX_SIGMA:g})": noise_level(MAX_SIGMA)}
    else:
        checks = {f"--noise-level {n}": jpeg_level(q) for n, q in NOISE_LEVEL_QUALITY.items()}
        checks[f"blind (quality {BLIND_QUALITY})"] = jpeg_level(BLIND_QUALITY)
    card["clean_kodak24"] = {k: round(clean_psnr(model, bench / "Kodak24", v), 3) for k, v in checks.items()}
    print("clean Kodak24:", card["clean_kodak24"], flush=True)
    timed = "seconds_1080p_gray" if gray else "seconds_1080p_rgb"
    if args.reuse_time:
        shipped = dest.with_suffix(".json")
        prev = json.loads(shipped.read_text()) if shipped.exists() else {}
        if (prev.get("arch"), prev.get("args")) != (card["arch"], card["args"]):
            raise SystemExit(f"--reuse-time: {shipped} is not the same architecture")
        card[timed] = prev[timed]
        card["time_note"] = "1080p time of the same architecture, from the previous card"
    else:
        card[timed] = round(time_1080p(model, next(iter(checks.values())), 1 if gray else 3), 2)

    out = dest if args.out_dir is None else Path(args.out_dir) / dest.name
    save_model(model, out, extra={"card": {k: v for k, v in card.items() if k != "config"}})
    out.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    lines = [f"# {card['name']}", "", f"{kind} restoration{' of gray images' if gray else ''}, "
             f"{card['arch']} {card['args']}, "
             f"{card['params'] / 1e3:.0f}K parameters.", ""]
    if "iterations" in card:
        cpu = f", {card['cpu_hours']} CPU-hours" if "cpu_hours" in card else ""
        runs = card.get("runs", [])
        names = " then ".join(f"`{r.get('name', '?')}`" for r in runs) if len(runs) > 1 else \
            f"`{card.get('config', {}).get('name', '')}`"
        warm = f" ({len(runs)} runs, each a warm restart of the one before)" if len(runs) > 1 else ""
        lines += [f"Trained {card['iterations']} iterations ({card.get('wall_hours')} h wall{cpu}) on the 291 "
                  f"images (T91 + BSD200) with {names}{warm}.", ""]
    for e in card["eval"]:
        lv = [s["level"] for s in e["scores"]]
        clip = " --clip" if e.get("clip") else ""
        what = ", noisy input clipped and rounded to 8 bits" if clip else ""
        task = "denoise --sigma" if kind == "noise" else "jpeg --quality"
        lines += [f"## {e['set']}{what} (PSNR dB, `kakudai eval --task {task} L{clip}`)",
                  "", "| | " + " | ".join(map(str, lv)) + " |", "|---" * (len(lv) + 1) + "|",
                  "| input | " + " | ".join(f"{s['input']:.2f}" for s in e["scores"]) + " |",
                  f"| {card['name']} | " + " | ".join(f"{s['psnr']:.2f}" for s in e["scores"]) + " |"]
        lines += [f"| {k} (published) | " + " | ".join(f"{v:.2f}" for v in vals) + " |"
                  for k, vals in e["anchors"].items()]
        lines.append("")
    lines += ["## Clean input (Kodak24, PSNR of restore(clean) vs clean)", ""]
    lines += [f"- {k}: {v:.2f} dB" for k, v in card["clean_kodak24"].items()]
    reused = f" ({card['time_note']})" if "time_note" in card else ""
    lines += ["", f"1920x1080 {'gray' if gray else 'RGB'}: {card[timed]} s on this machine{reused}.", ""]
    if args.note:
        lines += [args.note, ""]
    out.with_suffix(".md").write_text("\n".join(lines))
    print(f"wrote {out} and its card")
    return 0


if __name__ == "__main__":
    sys.exit(main())
