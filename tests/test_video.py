"""Video upscaling: frames, timestamps, audio/subtitle remux, metadata, ranges, failures.

Clips are generated here with PyAV (H.264 + AAC sine), a few dozen frames of
160x90, and upscaled x2 with the bicubic model so each run takes seconds.
"""

from __future__ import annotations

import hashlib
import os
import signal
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

av = pytest.importorskip("av")

from kakudai.zoo import load_model  # noqa: E402
from kakudai.infer.upscale import super_resolve  # noqa: E402
from kakudai.infer.video import (FrameRange, VideoError, parse_frame_range,  # noqa: E402
                                 upscale_video)

W, H, FPS, N, SR = 160, 90, 24, 48, 48000
VFR_STEPS_MS = [30, 50, 41, 70]  # irregular frame durations of the VFR clip


def _pattern(i: int, w: int = W, h: int = H) -> np.ndarray:
    """Smooth moving colour pattern (uint8 RGB): frame i differs from its neighbours."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = 128 + 90 * np.sin(2 * np.pi * (xx / 37 + i / 24)) * np.cos(2 * np.pi * yy / 53)
    g = 128 + 90 * np.sin(2 * np.pi * (yy / 29 - i / 30))
    b = 128 + 90 * np.cos(2 * np.pi * ((xx + yy) / 61 + i / 40))
    return np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8)


def make_clip(path: Path, n: int = N, vfr: bool = False, audio: bool = True,
              rotate: float | None = None, bt709: bool = False, srt: Path | None = None,
              w: int = W, h: int = H) -> Path:
    """An H.264 clip (+ AAC 440 Hz sine, + optional subtitles copied from an .srt)."""
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.options = {"crf": "12", "preset": "ultrafast"}
        vs.codec_context.time_base = Fraction(1, 1000) if vfr else Fraction(1, FPS)
        if bt709:
            cc = vs.codec_context
            cc.colorspace, cc.color_range, cc.color_primaries, cc.color_trc = 1, 1, 1, 1
        if rotate is not None:  # ... and file tags and chapters, checked with it
            vs.set_display_rotation(rotate)
            out.metadata["title"] = "kakudai test"
            out.set_chapters([{"id": k + 1, "start": 250 * k, "end": 250 * (k + 1),
                               "time_base": Fraction(1, 1000), "metadata": {"title": f"part {k}"}}
                              for k in range(2)])
        a = out.add_stream("aac", rate=SR, layout="mono") if audio else None
        sub_in = av.open(str(srt)) if srt is not None else None
        s_out = out.add_stream_from_template(sub_in.streams.subtitles[0]) if sub_in else None
        t_ms = 0
        for i in range(n):
            f = av.VideoFrame.from_ndarray(_pattern(i, w, h), format="rgb24")
            f = f.reformat(format="yuv420p", dst_colorspace="itu709" if bt709 else "itu601",
                           dst_color_range="MPEG")
            if vfr:
                f.pts, t_ms = t_ms, t_ms + VFR_STEPS_MS[i % 4]
            else:
                f.pts = i
            out.mux(vs.encode(f))
        out.mux(vs.encode())
        if a is not None:
            total = int(SR * n / FPS)
            for s0 in range(0, total, 1024):
                t = np.arange(s0, min(s0 + 1024, total)) / SR
                af = av.AudioFrame.from_ndarray((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None],
                                                format="fltp", layout="mono")
                af.sample_rate, af.pts = SR, s0
                out.mux(a.encode(af))
            out.mux(a.encode())
        if sub_in is not None:
            for p in [p for p in sub_in.demux() if p.size]:
                p.stream = s_out
                out.mux(p)
            sub_in.close()
    return path


def frames_of(path: Path) -> tuple[list[Fraction], np.ndarray, "av.VideoFrame"]:
    """Presentation times (seconds, exact), RGB frames (N, H, W, 3) and the first frame."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        times, imgs, first = [], [], None
        for f in c.decode(v):
            first = first or f
            times.append(f.pts * f.time_base)
            cs = {1: "itu709"}.get(int(f.colorspace), "itu601")
            imgs.append(f.to_ndarray(format="rgb24", src_colorspace=cs, src_color_range=1))
    return times, np.stack(imgs), first


def audio_of(path: Path) -> dict:
    """Audio stream facts: codec, sample rate, duration, decoded samples, payload digests."""
    with av.open(str(path)) as c:
        a = c.streams.audio[0]
        info = {"codec": a.codec_context.name, "rate": a.rate,
                "duration": a.duration * a.time_base if a.duration else None}
        pkts = [p for p in c.demux(a) if p.size]
        info["digests"] = [hashlib.md5(bytes(p)).hexdigest() for p in pkts]
        info["first"] = pkts[0].pts * pkts[0].time_base
        info["end"] = (pkts[-1].pts + pkts[-1].duration) * pkts[-1].time_base
    with av.open(str(path)) as c:
        info["samples"] = sum(f.samples for f in c.decode(audio=0))
    return info


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("clips")
    srt = d / "subs.srt"
    srt.write_text("1\n00:00:00,100 --> 00:00:00,500\nhello\n\n2\n00:00:01,000 --> 00:00:01,500\nworld\n\n")
    return {"cfr": make_clip(d / "cfr.mp4"), "vfr": make_clip(d / "vfr.mp4", vfr=True, n=24),
            "meta": make_clip(d / "meta.mp4", rotate=90, bt709=True, n=12),
            "subs": make_clip(d / "subs.mkv", srt=srt, n=36)}


@pytest.fixture(scope="module")
def bicubic():
    return load_model("bicubic", 2)


def test_x2_keeps_frames_timestamps_audio_and_pixels(clips, bicubic, tmp_path):
    src, dst = clips["cfr"], tmp_path / "out.mp4"
    stats = upscale_video(src, dst, 2, model=bicubic, progress=False)
    assert stats["frames"] == N and stats["output_size"] == (2 * W, 2 * H)
    t_in, x_in, _ = frames_of(src)
    t_out, x_out, first = frames_of(dst)
    assert len(t_out) == len(t_in) == N
    assert t_out == t_in  # exact, in seconds
    assert (first.width, first.height) == (2 * W, 2 * H)
    a_in, a_out = audio_of(src), audio_of(dst)
    assert a_out["codec"] == a_in["codec"] == "aac"
    assert a_out["rate"] == a_in["rate"] == SR
    assert a_out["duration"] == a_in["duration"] and a_out["samples"] == a_in["samples"]
    assert a_out["digests"] == a_in["digests"]  # remuxed, not re-encoded
    # Pixels: the frames the model makes from the decoded input, up to the
    # lossy H.264 (crf 18) and 4:2:0 chroma of the output.
    ref = super_resolve(bicubic, torch.from_numpy(x_in).permute(0, 3, 1, 2).float() / 255, 2,
                        out_dtype=torch.uint8).permute(0, 2, 3, 1).numpy()
    per_frame = [psnr(r, o) for r, o in zip(ref, x_out)]
    assert min(per_frame) > 32.0, per_frame
    # ... and clearly closer to its own frame than to the next one (no shift).
    assert psnr(ref[10], x_out[11]) < min(per_frame) - 5


def test_variable_frame_rate_keeps_timestamps(clips, bicubic, tmp_path):
    src = clips["vfr"]
    t_in, _, _ = frames_of(src)
    steps = {round(float(b - a) * 1000) for a, b in zip(t_in, t_in[1:])}
    assert steps == set(VFR_STEPS_MS)  # the input really is VFR
    upscale_video(src, tmp_path / "vfr.mp4", 2, model=bicubic, preset="ultrafast", progress=False)
    assert frames_of(tmp_path / "vfr.mp4")[0] == t_in
    assert audio_of(tmp_path / "vfr.mp4")["samples"] == audio_of(src)["samples"]
    # Matroska has no negative timestamps: the muxer moves the whole file by the
    # AAC priming lead (1024 samples) as ffmpeg -c copy does; spacing stays exact.
    upscale_video(src, tmp_path / "vfr.mkv", 2, model=bicubic, preset="ultrafast", progress=False)
    t_mkv = frames_of(tmp_path / "vfr.mkv")[0]
    lead = t_mkv[0] - t_in[0]
    assert 0 <= lead <= Fraction(1024, SR) + Fraction(1, 1000)
    assert [t - lead for t in t_mkv] == t_in


def test_rotation_colour_tags_and_chapters_kept(clips, bicubic, tmp_path):
    src, dst = clips["meta"], tmp_path / "meta.mp4"
    upscale_video(src, dst, 2, model=bicubic, preset="ultrafast", progress=False)
    _, _, f_in = frames_of(src)
    _, _, f_out = frames_of(dst)
    assert f_in.rotation == 90 and f_out.rotation == 90
    for k in ("colorspace", "color_range", "color_primaries", "color_trc"):
        assert int(getattr(f_out, k)) == int(getattr(f_in, k)) == 1, k
    with av.open(str(dst)) as c:
        assert c.metadata.get("title") == "kakudai test"
        chapters = [(ch["start"] * ch["time_base"], ch["metadata"].get("title")) for ch in c.chapters()]
    assert chapters == [(0, "part 0"), (Fraction(1, 4), "part 1")]


def test_untagged_sd_source_is_read_and_tagged_as_bt601(clips, bicubic, tmp_path):
    # An untagged 160x90 clip means BT.601 to players; the 320x180 output would
    # be read as BT.709 if left untagged, so it must say BT.601 (SMPTE 170M).
    src, dst = clips["cfr"], tmp_path / "tag.mp4"
    upscale_video(src, dst, 2, model=bicubic, preset="ultrafast", frames=":4", progress=False)
    _, _, f_in = frames_of(src)
    _, _, f_out = frames_of(dst)
    assert int(f_in.colorspace) == 2  # unspecified
    assert int(f_out.colorspace) == 6 and int(f_out.color_range) == 1


def luma_means(path: Path) -> np.ndarray:
    """Mean of each frame's stored Y plane (no colour conversion involved)."""
    with av.open(str(path)) as c:
        return np.array([np.frombuffer(f.planes[0], np.uint8)
                         .reshape(f.planes[0].height, f.planes[0].line_size)[:, :f.width].mean()
                         for f in c.decode(video=0)])


@pytest.mark.parametrize("clip", ["cfr", "meta"])  # untagged BT.601, tagged BT.709
def test_brightness_kept_through_the_rgb_round_trip(clips, bicubic, tmp_path, clip):
    # At scale 1 the model is close to the identity, so the only systematic
    # change left is the YCbCr -> RGB -> YCbCr conversion: it must not shift
    # luma (swscale's default 4:2:0 -> RGB path rounds down, ~1.1 levels).
    dst = tmp_path / "same.mp4"
    upscale_video(clips[clip], dst, 1, model=bicubic, preset="ultrafast", frames=":12", progress=False)
    y_in, y_out = luma_means(clips[clip])[:12], luma_means(dst)
    assert len(y_out) == 12
    assert abs(y_out.mean() - y_in.mean()) < 0.3, (y_in.mean(), y_out.mean())
    assert np.abs(y_out - y_in).max() < 0.5, y_out - y_in


def test_subtitles_copied_and_warned_when_container_cannot_hold_them(clips, bicubic, tmp_path, capsys):
    src = clips["subs"]
    upscale_video(src, tmp_path / "s.mkv", 2, model=bicubic, preset="ultrafast", progress=False)
    with av.open(str(tmp_path / "s.mkv")) as c:
        subs = [(p.pts * p.time_base, bytes(p)) for p in c.demux(subtitles=0) if p.size]
    assert subs == [(Fraction(1, 10), b"hello"), (Fraction(1), b"world")]
    upscale_video(src, tmp_path / "s.mp4", 2, model=bicubic, preset="ultrafast", progress=False)
    assert "cannot be stored in .mp4" in capsys.readouterr().err
    with av.open(str(tmp_path / "s.mp4")) as c:
        assert len(c.streams.video) == 1 and not c.streams.subtitles


@pytest.mark.parametrize("spec, first, count", [("10:20", 10, 10), ("0.5s:1s", 12, 12),
                                                ("00:00:01.5-", 36, 12)])
def test_frames_range(clips, bicubic, tmp_path, spec, first, count):
    src, dst = clips["cfr"], tmp_path / "cut.mp4"
    stats = upscale_video(src, dst, 2, model=bicubic, preset="ultrafast", frames=spec, progress=False)
    t_in, x_in, _ = frames_of(src)
    t_out, x_out, _ = frames_of(dst)
    assert stats["frames"] == len(t_out) == count
    # The excerpt starts at 0 and keeps the source spacing.
    assert t_out == [t - t_in[first] for t in t_in[first:first + count]]
    # ... and holds the right frames.
    ref = super_resolve(bicubic, torch.from_numpy(x_in[first:first + 1]).permute(0, 3, 1, 2).float() / 255,
                        2, out_dtype=torch.uint8).permute(0, 2, 3, 1).numpy()[0]
    assert psnr(ref, x_out[0]) > 30
    # Audio cut to the same window, to within one AAC packet (1024 samples).
    a_in, a = audio_of(src), audio_of(dst)
    pkt = Fraction(1024, SR)
    video_end = Fraction(count, FPS)
    assert 0 <= a["first"] < pkt and abs(a["end"] - video_end) <= pkt
    i0 = a_in["digests"].index(a["digests"][0])  # a contiguous run of the original packets
    assert a["digests"] == a_in["digests"][i0:i0 + len(a["digests"])]


def test_denoise_runs_before_upscaling_and_bad_settings_fail_cleanly(clips, bicubic, tmp_path):
    seen = []

    def flatten(x: torch.Tensor) -> torch.Tensor:  # stands in for a denoiser: (B, 3, h, w) in [0, 1]
        seen.append(tuple(x.shape))
        return torch.full_like(x, 0.5)

    dst = tmp_path / "dn.mp4"
    upscale_video(clips["cfr"], dst, 2, model=bicubic, denoise=flatten, batch=3, frames=":6",
                  preset="ultrafast", progress=False)
    assert seen == [(3, 3, H, W), (3, 3, H, W)]  # low resolution, in batches
    _, x, _ = frames_of(dst)
    assert np.abs(x.astype(int) - 128).max() <= 2
    for bad in ["foo", 7]:
        with pytest.raises(VideoError):
            upscale_video(clips["cfr"], tmp_path / "bad.mp4", 2, model=bicubic, denoise=bad, progress=False)
    assert not (tmp_path / "bad.mp4").exists()


def test_parse_frame_range():
    assert parse_frame_range("100:200") == FrameRange(100, 200, "frame")
    assert parse_frame_range(":48") == FrameRange(None, 48, "frame")
    assert parse_frame_range("5s:8.5s") == FrameRange(5.0, 8.5, "second")
    assert parse_frame_range("00:00:05-00:01:08.25") == FrameRange(5.0, 68.25, "second")
    assert parse_frame_range("1:05-") == FrameRange(65.0, None, "second")
    for bad in ["5:3", "a:b", "5s:8", "1:2:3", "00:00:05", "-x"]:
        with pytest.raises(ValueError):
            parse_frame_range(bad)


def test_unreadable_video_is_one_line_error_and_no_output(bicubic, tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    dst = tmp_path / "out" / "broken_x2.mp4"
    with pytest.raises(VideoError) as e:
        upscale_video(bad, dst, 2, model=bicubic, progress=False)
    assert str(e.value).startswith(f"{bad}: ") and "\n" not in str(e.value)
    with pytest.raises(VideoError, match="no such file"):
        upscale_video(tmp_path / "missing.mp4", dst, 2, model=bicubic, progress=False)
    assert not dst.exists() and not list(tmp_path.glob("**/.*part*"))


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_interrupt_leaves_no_partial_output(clips, bicubic, tmp_path, how):
    dst = tmp_path / "out.mp4"
    dst.write_bytes(b"previous result")  # an existing output must survive untouched
    handler_before = signal.getsignal(signal.SIGTERM)

    def interrupt(done: int, total: int | None) -> None:
        if done >= 8:  # mid-run, with the temporary file already being written
            assert list(tmp_path.glob(".out.mp4.part*"))
            if how == "ctrl-c":
                raise KeyboardInterrupt
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(KeyboardInterrupt):
        upscale_video(clips["cfr"], dst, 2, model=bicubic, preset="ultrafast", progress=interrupt)
    assert dst.read_bytes() == b"previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]
    assert signal.getsignal(signal.SIGTERM) is handler_before


def _cli(capsys, *args: str) -> tuple[int, str]:
    """Run ``kakudai upscale ARGS`` in this process: (exit code, stderr)."""
    from kakudai.cli import main

    capsys.readouterr()
    code = main(["upscale", *args])
    return code, capsys.readouterr().err


def test_cli_video_and_mixed_folder(clips, tmp_path, capsys):
    from PIL import Image

    src = tmp_path / "in"
    src.mkdir()
    clip = make_clip(src / "clip.mov", n=6)
    Image.fromarray(_pattern(0)).save(src / "still.png")
    (src / "notes.txt").write_text("not media")
    out = tmp_path / "out"
    code, err = _cli(capsys, str(src), "-o", str(out), "--scale", "2", "--model", "bicubic",
                     "--preset", "ultrafast", "--crf", "20")
    assert code == 0, err
    assert Image.open(out / "still.png").size == (2 * W, 2 * H)
    t_out, _, f = frames_of(out / "clip.mov")
    assert len(t_out) == 6 and (f.width, f.height) == (2 * W, 2 * H)
    assert t_out == frames_of(clip)[0]
    # One video to one named file, with a range.
    code, err = _cli(capsys, str(clips["cfr"]), "-o", str(tmp_path / "one.mp4"), "--scale", "2",
                     "--model", "bicubic", "--preset", "ultrafast", "--frames", "0:5")
    assert code == 0, err
    assert len(frames_of(tmp_path / "one.mp4")[0]) == 5


def test_cli_mpeg_ts_output_is_a_file(tmp_path, capsys):
    """Any extension the video module writes names an output file (MPEG-TS: .ts)."""
    clip = make_clip(tmp_path / "clip.ts", n=4)
    dst = tmp_path / "out.ts"
    code, err = _cli(capsys, str(clip), "-o", str(dst), "--scale", "2", "--model", "bicubic",
                     "--preset", "ultrafast")
    assert code == 0, err
    assert dst.is_file()
    times, _, first = frames_of(dst)
    assert len(times) == 4 and (first.width, first.height) == (2 * W, 2 * H)


def test_cli_unreadable_video_one_line(tmp_path, capsys, caplog):
    bad = tmp_path / "bad.mkv"
    bad.write_bytes(b"definitely not a video")
    code, err = _cli(capsys, str(bad), "-o", str(tmp_path / "o.mkv"), "--scale", "2", "--model", "bicubic")
    assert code == 1
    lines = [ln for ln in err.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("kakudai: error:")]
    assert len(errors) == 1 and errors[0].startswith(f"kakudai: error: {bad}: "), err
    # Nothing else but the run's summary line (no FFmpeg log, no traceback). FFmpeg's
    # log, if enabled, goes through `logging` (which pytest intercepts), hence caplog.
    assert all(ln.startswith("kakudai: ") for ln in lines), err
    assert not [r.getMessage() for r in caplog.records if r.name.startswith("libav")]
    assert not (tmp_path / "o.mkv").exists() and not list(tmp_path.glob(".*part*"))
