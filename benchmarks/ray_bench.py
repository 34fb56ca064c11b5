"""Wall time of ``kakudai upscale`` on a folder: local against ``--executor ray``.

    python benchmarks/ray_bench.py --images 32 --size 640x360 --scale 2 \\
        --out benchmarks/results/ray_x2.json

Makes a folder of synthetic photo-like PNGs (smooth shading, edges and fine
texture; deterministic) and runs the CLI as a user would, each run a fresh
process into an empty output folder:

* local: ``--threads T`` (default 2), one process;
* ray: ``--executor ray --workers W --threads-per-worker 1`` on a local Ray
  started by the run, once with all the images and once with a quarter of
  them. The two ray runs separate the fixed cost (Ray start, workers
  importing torch and loading the model) from the cost per image:
  ``per_image = (t_all - t_quarter) / (n_all - n_quarter)``, and one worker
  processes an image in ``per_image * W`` seconds.

The projection to N nodes of the same kind (W workers each) assumes that
throughput adds up across nodes (inputs and outputs on storage that keeps
up): ``fixed + images * per_image / N``. ``--denoise off`` on every run, so
the work is the network alone. Figures depend on the machine and on
whatever else runs on it; the JSON records the processes named
``kakudai train`` that were running.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_images(folder: Path, n: int, w: int, h: int) -> None:
    """``n`` deterministic RGB PNGs of ``w`` x ``h``: smooth shading, hard edges and fine texture."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for i in range(n):
        rng = np.random.default_rng(i)
        small = rng.random((h // 24 + 1, w // 24 + 1, 3)).astype(np.float32)
        base = np.asarray(Image.fromarray((small * 255).astype(np.uint8)).resize((w, h), Image.BICUBIC),
                          dtype=np.float32)
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(h / 6, h / 2)
        disc = ((xx - cx) ** 2 + (yy - cy) ** 2 < r * r)[..., None] * rng.uniform(-60, 60, 3)
        stripes = 25 * np.sin(2 * np.pi * (xx * np.cos(i) + yy * np.sin(i)) / rng.uniform(3, 9))[..., None]
        img = np.clip(base + disc + stripes + rng.normal(0, 2, (h, w, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"img{i:03d}.png")


def run(argv: list[str]) -> dict:
    """Run one ``kakudai`` command; its wall time, exit code and summary line."""
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "kakudai", *argv], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    lines = [ln for ln in r.stderr.replace("\r", "\n").splitlines() if ln.startswith("kakudai: ")]
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {r.returncode}:\n{r.stderr[-2000:]}")
    m = re.search(r"(\d+) done, (\d+) skipped, (\d+) failed in ([\d.]+) s", lines[-1])
    return {"argv": " ".join(["kakudai", *argv]), "wall_s": round(wall, 2), "summary": lines[-1],
            "done": int(m.group(1)), "summary_s": float(m.group(4))}


def same_files(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in a.iterdir())
    return names == sorted(p.name for p in b.iterdir()) and all(
        (a / n).read_bytes() == (b / n).read_bytes() for n in names)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--size", default="640x360", metavar="WxH")
    ap.add_argument("--scale", type=float, default=2)
    ap.add_argument("--model", default="default")
    ap.add_argument("--threads", type=int, default=2, help="torch threads of the local run")
    ap.add_argument("--workers", type=int, default=2, help="Ray workers (1 thread each)")
    ap.add_argument("--nodes", default="1,2,4,8,16", help="node counts for the projection")
    ap.add_argument("--project-images", type=int, default=1_000_000, help="folder size for the projection")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    import ray
    import torch

    import kakudai

    training = subprocess.run(["pgrep", "-af", "kakudai train"], capture_output=True, text=True).stdout
    training = [ln for ln in training.splitlines() if "pgrep" not in ln]
    common = ["--scale", f"{args.scale:g}", "--model", args.model, "--denoise", "off"]
    quarter = max(1, args.images // 4)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_images(tmp / "in", args.images, w, h)
        make_images(tmp / "in_quarter", quarter, w, h)
        ray_opts = ["--executor", "ray", "--workers", str(args.workers), "--threads-per-worker", "1"]
        local = run(["upscale", str(tmp / "in"), "-o", str(tmp / "local"), *common, "--threads", str(args.threads)])
        print(local["summary"], f"(wall {local['wall_s']} s)", flush=True)
        on_ray = run(["upscale", str(tmp / "in"), "-o", str(tmp / "ray"), *common, *ray_opts])
        print(on_ray["summary"], f"(wall {on_ray['wall_s']} s)", flush=True)
        small = run(["upscale", str(tmp / "in_quarter"), "-o", str(tmp / "ray_quarter"), *common, *ray_opts])
        print(small["summary"], f"(wall {small['wall_s']} s)", flush=True)
        identical = same_files(tmp / "local", tmp / "ray")

    per_image = (on_ray["wall_s"] - small["wall_s"]) / (args.images - quarter)
    fixed = on_ray["wall_s"] - args.images * per_image
    nodes = [int(v) for v in args.nodes.split(",")]
    result = {
        "what": f"kakudai upscale of {args.images} synthetic {w}x{h} PNGs at x{args.scale:g}, --denoise off",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "torch": torch.__version__, "ray": ray.__version__, "kakudai": kakudai.__version__},
        "other_processes": training,
        "local": {**local, "threads": args.threads, "per_image_s": round(local["wall_s"] / args.images, 3)},
        "ray": {**on_ray, "workers": args.workers, "threads_per_worker": 1},
        "ray_quarter": {**small, "images": quarter},
        "ray_fixed_s": round(fixed, 2),
        "ray_per_image_s": round(per_image, 3),
        "ray_worker_s_per_image": round(per_image * args.workers, 3),
        "outputs_identical": identical,
        "projection": {
            "model": "fixed + images * per_image / nodes (each node: the same CPUs and workers)",
            "images": args.project_images,
            "hours_by_nodes": {str(n): round((fixed + args.project_images * per_image / n) / 3600, 2) for n in nodes},
            f"seconds_for_{args.images}_by_nodes": {str(n): round(fixed + args.images * per_image / n, 1)
                                                    for n in nodes},
        },
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
