"""Frames per second of video upscaling, end to end and for the network alone.

    python benchmarks/video_fps.py --model default --scale 2 --size 640x360 --frames 48

Makes a synthetic H.264 + AAC clip of the given size in a temporary folder,
upscales it with :func:`kakudai.infer.video.upscale_video` (decode, upscale,
x264 encode at the given preset, audio remux) and reports frames/s; then times
``super_resolve`` alone on the same frames. Figures depend on the machine and
on whatever else runs on it: report them with that context.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch


def make_clip(path: Path, w: int, h: int, n: int, fps: int = 24) -> None:
    import av

    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.codec_context.time_base = Fraction(1, fps)
        a = out.add_stream("aac", rate=48000, layout="mono")
        for i in range(n):
            rgb = np.stack([128 + 90 * np.sin(2 * np.pi * (xx / 37 + i / 24)),
                            128 + 90 * np.sin(2 * np.pi * (yy / 29 - i / 30)),
                            128 + 60 * np.cos(2 * np.pi * (xx + yy) / 61)], -1)
            f = av.VideoFrame.from_ndarray(np.clip(rgb, 0, 255).astype(np.uint8), format="rgb24")
            f = f.reformat(format="yuv420p")
            f.pts = i
            out.mux(vs.encode(f))
        out.mux(vs.encode())
        total = 48000 * n // fps
        for s0 in range(0, total, 1024):
            t = np.arange(s0, min(s0 + 1024, total)) / 48000
            af = av.AudioFrame.from_ndarray((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None],
                                            format="fltp", layout="mono")
            af.sample_rate, af.pts = 48000, s0
            out.mux(a.encode(af))
        out.mux(a.encode())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--scale", type=float, default=2)
    ap.add_argument("--size", default="640x360", metavar="WxH")
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--preset", default="medium")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from kakudai.infer.upscale import super_resolve
    from kakudai.infer.video import upscale_video
    from kakudai.models.registry import arch_of
    from kakudai.zoo import load_model

    w, h = (int(v) for v in args.size.lower().split("x"))
    model = load_model(args.model, args.scale)
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "clip.mp4"
        make_clip(src, w, h, args.frames)
        stats = upscale_video(src, Path(d) / "out.mp4", args.scale, model=model, batch=args.batch,
                              preset=args.preset, progress=False)
        x = torch.rand(args.batch, 3, h, w)
        super_resolve(model, x[:1], args.scale)  # warm-up
        n, t0 = 0, time.perf_counter()
        while n < args.frames:
            super_resolve(model, x, args.scale, out_dtype=torch.uint8)
            n += args.batch
        net_fps = n / (time.perf_counter() - t0)
    print(json.dumps({"model": args.model, "arch": arch_of(model) or type(model).__name__,
                      "scale": args.scale, "size": [w, h], "out_size": list(stats["output_size"]),
                      "frames": stats["frames"], "batch": args.batch, "preset": args.preset,
                      "threads": torch.get_num_threads(),
                      "end_to_end_fps": round(stats["fps"], 2), "network_fps": round(net_fps, 2)}))


if __name__ == "__main__":
    main()
