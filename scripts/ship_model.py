"""Ship trained weights into the package with a model card.

    python scripts/ship_model.py WEIGHTS --name ksr --scales 2 3 4 --run-dir /work/runs/ksr \
        [--config configs/ksr.toml] [--threads N] [--note TEXT]

For each scale: the (multi-scale) weights are reduced to that scale, written to
``kakudai/weights/NAME_xS.safetensors`` (metadata: arch, args, card facts), and
evaluated with exactly what ``kakudai eval`` runs on Set5 and Set14. The card
(``NAME_xS.json`` for tests and tools, ``NAME_xS.md`` for people) records the
config, data, iterations, patch/batch size, CPU-hours, the eval table and the
1080p timing. tests/test_shipped.py re-evaluates the card's Set5 figure.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kakudai.checkpoint import WEIGHTS_DIR, for_inference, load_weights_file, save_model  # noqa: E402
from kakudai.bench import retain_freed_memory  # noqa: E402
from kakudai.evaluation import evaluate_folder  # noqa: E402
from kakudai.infer.upscale import super_resolve  # noqa: E402


def _across_resumes(rows: list[dict], key: str) -> float:
    """Total of a per-process clock in log rows: it restarts at every --resume."""
    total, prev = 0.0, 0.0
    for r in rows:
        if r[key] < prev:
            total += prev
        prev = r[key]
    return total + prev


def run_facts(run_dir: Path) -> dict:
    """Iterations, wall time and config from a run directory's log and config."""
    facts: dict = {"name": run_dir.name}
    cfg = run_dir / "config.json"
    if cfg.exists():
        facts["config"] = json.loads(cfg.read_text())
    log = run_dir / "log.jsonl"
    if log.exists():
        rows = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
        train = [r for r in rows if r.get("kind") == "train"]
        if train:
            facts["iterations"] = train[-1]["it"]
            facts["wall_hours"] = round(_across_resumes(train, "elapsed_s") / 3600, 3)
            # CPU time of all ranks and threads (logs with "ranks"; older logs had rank 0's only)
            if all("ranks" in r for r in train):
                facts["cpu_hours"] = round(_across_resumes(train, "cpu_s") / 3600, 3)
            facts["patches_per_s_last"] = round(train[-1]["patches_per_s"], 1)
        val = [r for r in rows if r.get("kind") == "val"]
        if val:
            facts["validation"] = val
    return facts


def training_summary(run_dirs: list[Path], threads: int) -> dict:
    """What a model card says of its training runs (oldest first): total iterations,
    wall and CPU hours, each run's facts, and the last run's resolved config."""
    runs = [run_facts(r) for r in run_dirs]
    wall = sum(r.get("wall_hours", 0.0) for r in runs)
    # Measured CPU time where every run logged it (newer trainer logs do), else wall x cores.
    measured = all("cpu_hours" in r for r in runs)
    cpu = sum(r["cpu_hours"] for r in runs) if measured else wall * threads
    return {"iterations": sum(r.get("iterations", 0) for r in runs), "wall_hours": round(wall, 3),
            "cpu_hours": round(cpu, 3),
            "runs": [{k: v for k, v in r.items() if k != "config"} for r in runs],
            "config": runs[-1].get("config", {}) if runs else {}}


def time_1080p(model: torch.nn.Module, scale: float, repeat: int = 5) -> float:
    """Median seconds of the whole upscale call (uint8 RGB in and out) for a ~1920x1080 output."""
    h, w = math.ceil(1080 / scale), math.ceil(1920 / scale)
    retain_freed_memory()  # as `kakudai upscale` and `kakudai bench` do
    x = torch.randint(0, 256, (1, 3, h, w), dtype=torch.uint8)  # an 8-bit frame, as read from a file
    super_resolve(model, x, scale, out_dtype=torch.uint8)  # warm-up
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        super_resolve(model, x, scale, out_dtype=torch.uint8)
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("weights")
    ap.add_argument("--name", required=True)
    ap.add_argument("--scales", type=int, nargs="+", required=True)
    ap.add_argument("--run-dir", type=Path, action="append", default=[],
                    help="run directories behind these weights (repeat for warm restarts, oldest first)")
    ap.add_argument("--threads", type=int, default=2, help="cores the training used (for CPU-hours)")
    ap.add_argument("--bench", default=str(REPO.parent / "shared" / "data" / "bench"))
    ap.add_argument("--config", help="the config that reproduces the weights (default configs/NAME.toml)")
    ap.add_argument("--note", default="")
    ap.add_argument("--degrade", action="append", default=[], metavar="SPEC",
                    help="also evaluate on LR degraded by SPEC after the shrink (kakudai eval --degrade)")
    args = ap.parse_args()

    src = load_weights_file(args.weights)
    summary = training_summary(args.run_dir, args.threads)
    iterations, wall, cfg = summary["iterations"], summary["wall_hours"], summary["config"]
    runs = summary["runs"]
    data = cfg.get("data", {})
    reproduce = f"kakudai train {args.config or f'configs/{args.name}.toml'}"
    for s in args.scales:
        # Exactly what load_model() gives users: one scale, eval mode, channels-last weights.
        model = for_inference(src.for_scale(s) if len(getattr(src, "scales", ())) > 1 else src)
        table = {}
        for spec in [""] + args.degrade:
            for ds in ("Set5", "Set14"):
                r = evaluate_folder(model, Path(args.bench) / ds, s, degrade=spec)
                table[f"{ds} {spec}" if spec else ds] = {"psnr": round(r["psnr"], 4), "ssim": round(r["ssim"], 4),
                                                         "n": r["n"]}
        secs = time_1080p(model, s)
        card = {
            "name": args.name, "scale": s, "arch": model.arch, "args": model.arch_args,
            "params": sum(p.numel() for p in model.parameters()),
            "eval": table,
            "eval_command": f"kakudai eval --model {args.name} --scale {s} "
                            "../shared/data/bench/Set5 ../shared/data/bench/Set14"
                            + "".join(f" (and --degrade {spec})" for spec in args.degrade),
            "protocol": "Y (BT.601 16-235), border = scale, LR = MATLAB bicubic rounded to uint8",
            "time_1080p_s": round(secs, 3),
            "time_note": f"median super_resolve of a {math.ceil(1920 / s)}x{math.ceil(1080 / s)} RGB input "
                         f"to ~1920x1080 (uint8 in/out), torch {torch.__version__}, {torch.get_num_threads()} threads",
            "training": {
                "data": data.get("train_dirs"), "scales_trained": data.get("scales"),
                "patch_size_lr": data.get("patch_size"), "batch_size": data.get("batch_size"),
                "scale_aug": data.get("scale_aug"), "iterations": iterations,
                "wall_hours": wall, "cpu_hours": summary["cpu_hours"],
                "reproduce": reproduce, "runs": runs, "config": cfg,
            },
            "note": args.note,
        }
        out = WEIGHTS_DIR / f"{args.name}_x{s}.safetensors"
        save_model(model, out, extra={"card": {k: v for k, v in card.items() if k != "training"}})
        (WEIGHTS_DIR / f"{args.name}_x{s}.json").write_text(json.dumps(card, indent=2) + "\n")
        md = [f"# {args.name} x{s}", "",
              f"Architecture `{model.arch}` {json.dumps(model.arch_args)}, {card['params']:,} parameters.", "",
              "| set | PSNR (Y) | SSIM |", "|---|---|---|"]
        md += [f"| {k} | {v['psnr']:.3f} | {v['ssim']:.4f} |" for k, v in table.items()]
        md += ["", f"Measured with `{card['eval_command']}` ({card['protocol']}).", "",
               f"Speed: {secs:.3f} s for a 1080p output ({card['time_note']}).", "",
               "## Training", "",
               f"- data: {data.get('train_dirs')} (the 291 images: T91 + BSD200), "
               f"scale augmentation {data.get('scale_aug')}",
               f"- scales trained jointly: {data.get('scales')}; LR patch {data.get('patch_size')}, "
               f"batch {data.get('batch_size')}",
               f"- iterations: {iterations:,} in {len(runs)} run(s); wall time {wall:.2f} h; "
               f"CPU-hours {summary['cpu_hours']:.2f} ({args.threads} cores)",
               f"- optimiser: {json.dumps(cfg.get('optim', {}))}",
               f"- reproduce: `{reproduce}` (see the config for warm restarts)", ""]
        if args.note:
            md += [args.note, ""]
        (WEIGHTS_DIR / f"{args.name}_x{s}.md").write_text("\n".join(md))
        print(f"{out.name}: Set5 {table['Set5']['psnr']:.3f} / Set14 {table['Set14']['psnr']:.3f}, "
              f"1080p {secs:.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
