"""PSNR cost of reduced precision: each model in fp32 vs bf16 autocast on Set5/Set14.

Needs trained weights (shipped names or .safetensors files); untrained
networks would make the comparison meaningless, so models without weights
are skipped with a message. Speed of the same settings: ``kakudai bench
--precision bf16`` (see docs/speed.md).

    PYTHONPATH=. python benchmarks/precision_psnr.py         # shipped models, x2 x3 x4
    PYTHONPATH=. python benchmarks/precision_psnr.py --model ksr --scale 3 --sets Set5
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from kakudai.checkpoint import WeightsError
from kakudai.zoo import load_model, shipped
from kakudai.evaluation import evaluate_folder
from kakudai.infer.export import with_backend

BENCH = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "bench"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", nargs="+", default=None, help="default: every shipped model")
    ap.add_argument("--scale", type=float, nargs="+", default=[2, 3, 4])
    ap.add_argument("--sets", nargs="+", default=["Set5", "Set14"])
    ap.add_argument("--bench-dir", type=Path, default=BENCH)
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = ap.parse_args()

    models = args.model or sorted(e.name for e in shipped("upscale"))
    rows = []
    print(f"{'model':<12} {'scale':>5} {'set':<7} {'fp32 PSNR':>10} {'bf16 PSNR':>10} {'delta dB':>9} "
          f"{'fp32 SSIM':>9} {'bf16 SSIM':>9}")
    for name in models:
        for s in args.scale:
            try:
                model = load_model(name, s)
            except WeightsError as e:
                print(f"{name:<12} x{s:<4g} skipped: {e}")
                continue
            bf16 = with_backend(model, s, precision="bf16")
            for d in args.sets:
                folder = args.bench_dir / d
                a = evaluate_folder(model, folder, s)
                b = evaluate_folder(bf16, folder, s)
                row = {"model": name, "scale": s, "set": d, "psnr_fp32": a["psnr"], "psnr_bf16": b["psnr"],
                       "ssim_fp32": a["ssim"], "ssim_bf16": b["ssim"]}
                rows.append(row)
                print(f"{name:<12} {'x%g' % s:>5} {d:<7} {a['psnr']:10.3f} {b['psnr']:10.3f} "
                      f"{b['psnr'] - a['psnr']:+9.3f} {a['ssim']:9.4f} {b['ssim']:9.4f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
