"""Ship trained implicit (arbitrary-scale) weights with a model card and the acceptance table.

    python scripts/ship_implicit.py WEIGHTS --run-dir runs/implicit [--name implicit] [--flagship ksr] \
        [--config configs/implicit.toml] [--scales 1.5 2 2.5 3 3.5 4 6 8] [--sets Set5 Set14] \
        [--out-dir kakudai/weights] [--note TEXT]

Writes OUT_DIR/NAME.safetensors (scale-free; with ``--name implicit`` ``default``
then serves every scale no fixed-scale model has, with ``implicit-fast`` ``fast``
does), NAME.json (for tools and tests) and NAME.md (for people). Every figure is
measured here with exactly what ``kakudai eval`` runs: the implicit model, the fixed-scale flagship at integer
scales, ``FLAGSHIP+shrink`` (next larger integer, then MATLAB bicubic down) at
non-integer scales up to x4, and bicubic; plus the time at the same ~1080p
output against the flagship (or its shrink). The card states each acceptance
criterion for arbitrary-scale models (docs/implicit.md) with its measured margin.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kakudai.checkpoint import (WEIGHTS_DIR, WeightsError, for_inference, load_model,  # noqa: E402
                                load_weights_file, save_model)
from kakudai.evaluation import evaluate_folder  # noqa: E402
from ship_model import time_1080p, training_summary  # noqa: E402  (scripts/ is on sys.path when run as a script)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("weights")
    ap.add_argument("--run-dir", type=Path, action="append", default=[])
    ap.add_argument("--flagship", default="ksr", help="fixed-scale model compared against (name or file)")
    ap.add_argument("--scales", type=float, nargs="+", default=[1.5, 2, 2.5, 3, 3.5, 4, 6, 8])
    ap.add_argument("--sets", nargs="+", default=["Set5", "Set14"])
    ap.add_argument("--bench", default=str(REPO.parent / "shared" / "data" / "bench"))
    ap.add_argument("--out-dir", type=Path, default=WEIGHTS_DIR)
    ap.add_argument("--no-timing", action="store_true")
    ap.add_argument("--threads", type=int, default=1, help="threads the training run used (for CPU-hours)")
    ap.add_argument("--note", default="")
    ap.add_argument("--name", default="implicit", help="shipped name (implicit, implicit-fast)")
    ap.add_argument("--config", default="configs/implicit.toml", help="the config that reproduces it")
    args = ap.parse_args()

    # Exactly what load_model() gives users: eval mode, channels-last weights.
    model = for_inference(load_weights_file(args.weights))
    training = {**training_summary(args.run_dir, args.threads), "reproduce": f"kakudai train {args.config}"}
    cfg, wall, runs = training["config"], training["wall_hours"], training["runs"]
    rows = []
    for s in args.scales:
        s = int(s) if float(s).is_integer() else float(s)
        row: dict = {"scale": s}
        ref_name = None
        if isinstance(s, int) and s <= 4:
            ref_name = args.flagship
        elif 1 < s <= 4:
            ref_name = f"{args.flagship}+shrink"
        models = {"implicit": model, "bicubic": load_model("bicubic", s)}
        if ref_name:
            try:
                models["reference"] = load_model(ref_name, s)
                row["reference_name"] = ref_name
            except WeightsError as e:
                print(f"no {ref_name} at x{s:g} ({e}); reference column left empty")
        for key, m in models.items():
            for ds in args.sets:
                r = evaluate_folder(m, Path(args.bench) / ds, s)
                row.setdefault(key, {})[ds] = {"psnr": round(r["psnr"], 4), "ssim": round(r["ssim"], 4)}
        if not args.no_timing and "reference" in models:
            row["time_1080p_s"] = {"implicit": round(time_1080p(model, s), 3),
                                   "reference": round(time_1080p(models["reference"], s), 3)}
        rows.append(row)
        print(json.dumps(row))

    def margin(row: dict, other: str, ds: str) -> float | None:
        if other not in row:
            return None
        return round(row["implicit"][ds]["psnr"] - row[other][ds]["psnr"], 3)

    checks = []
    for row in rows:
        s = row["scale"]
        for ds in args.sets:
            if isinstance(s, int) and s <= 4 and "reference" in row:
                checks.append({"criterion": f"x{s} {ds}: within 0.15 dB of {args.flagship}",
                               "margin_db": margin(row, "reference", ds),
                               "pass": margin(row, "reference", ds) >= -0.15})
            elif "reference" in row:
                checks.append({"criterion": f"x{s:g} {ds}: >= 0.2 dB above {row['reference_name']}",
                               "margin_db": margin(row, "reference", ds),
                               "pass": margin(row, "reference", ds) >= 0.2})
            elif s > 4 and ds == "Set5":
                checks.append({"criterion": f"x{s:g} Set5: >= 0.8 dB above bicubic",
                               "margin_db": margin(row, "bicubic", ds), "pass": margin(row, "bicubic", ds) >= 0.8})
        if "time_1080p_s" in row:
            ratio = row["time_1080p_s"]["implicit"] / row["time_1080p_s"]["reference"]
            checks.append({"criterion": f"x{s:g}: time <= 3x {row['reference_name']}", "ratio": round(ratio, 2),
                           "pass": ratio <= 3})

    card = {"name": args.name, "scale": "any", "arch": model.arch, "args": model.arch_args,
            "params": sum(p.numel() for p in model.parameters()), "results": rows, "acceptance": checks,
            "eval_command": f"kakudai eval --model {args.name} --scale S "
                            "../shared/data/bench/Set5 ../shared/data/bench/Set14",
            "protocol": "Y (BT.601 16-235), border = ceil(scale), HR cropped to a multiple of p for scale p/q, "
                        "LR = MATLAB bicubic rounded to uint8",
            "time_note": f"median super_resolve to ~1920x1080, torch {torch.__version__}, "
                         f"{torch.get_num_threads()} threads",
            "runs": [str(r) for r in args.run_dir], "training": training, "note": args.note}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    save_model(model, args.out_dir / f"{args.name}.safetensors",
               extra={"card": {k: v for k, v in card.items() if k not in ("results", "training")}})
    (args.out_dir / f"{args.name}.json").write_text(json.dumps(card, indent=2) + "\n")
    md = [f"# {args.name} (any scale)", "",
          f"Architecture `{model.arch}` {json.dumps(model.arch_args)}, {card['params']:,} parameters; "
          "see docs/implicit.md.", "",
          "| scale | set | implicit | reference | bicubic |", "|---|---|---|---|---|"]
    for row in rows:
        for ds in args.sets:
            ref = (f"{row['reference'][ds]['psnr']:.2f} ({row['reference_name']})"
                   if "reference" in row else "-")
            md.append(f"| x{row['scale']:g} | {ds} | {row['implicit'][ds]['psnr']:.2f} | {ref} | "
                      f"{row['bicubic'][ds]['psnr']:.2f} |")
    md += ["", f"Measured with `{card['eval_command']}` ({card['protocol']}).", "",
           "## Acceptance (arbitrary-scale targets)", ""]
    md += [f"- {'PASS' if c['pass'] else 'FAIL'}: {c['criterion']} "
           f"({'margin %+.3f dB' % c['margin_db'] if 'margin_db' in c else 'ratio %.2f' % c['ratio']})"
           for c in checks]
    data, optim = cfg.get("data", {}), cfg.get("optim", {})
    md += ["", "## Training", "",
           f"- data: {data.get('train_dirs')} (the 291 images), scale s ~ U{tuple(data.get('continuous_scale', []))} "
           f"per batch, or one of {data.get('continuous_fixed')} with probability {data.get('continuous_fixed_prob')}; "
           f"LR patch {data.get('patch_size')}, batch {data.get('batch_size')}, "
           f"scale augmentation {data.get('scale_aug')}",
           f"- init: {cfg.get('init_from')}; optimiser: {json.dumps(optim)}",
           f"- iterations: {training['iterations']:,} in {len(runs)} run(s); wall time {wall:.2f} h; "
           f"CPU-hours {training['cpu_hours']:.2f} ({args.threads} core(s)), not counting the encoder's own training",
           f"- runs: {', '.join(card['runs']) or '-'}; reproduce: `{training['reproduce']}` (docs/implicit.md)", ""]
    if args.note:
        md += [args.note, ""]
    (args.out_dir / f"{args.name}.md").write_text("\n".join(md))
    print(f"wrote {args.out_dir / (args.name + '.safetensors')} and its card")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
