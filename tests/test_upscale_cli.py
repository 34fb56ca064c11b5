"""``kakudai upscale`` as a batch tool: names, folders, globs, formats, overwrite, errors."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kakudai.cli import main
from kakudai.infer.video import VIDEO_EXTENSIONS


def img(path: Path, size=(20, 14), mode="RGB", seed=0) -> Path:
    rng = np.random.default_rng(seed)
    c = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    a = rng.integers(0, 256, (size[1], size[0], c), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a[..., 0] if c == 1 else a, mode).save(path)
    return path


def run(capsys, *args: str) -> tuple[int, list[str]]:
    rc = main(["upscale", *map(str, args), "--model", "bicubic"])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return rc, [line for line in err.splitlines() if line.strip()]


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    src = tmp_path / "in"
    img(src / "a.png")
    img(src / "b.jpg", seed=1)
    img(src / "sub" / "c.png", mode="RGBA", seed=2)
    img(src / "sub" / "deep" / "d.webp", seed=3)
    (src / "notes.txt").write_text("not an image")
    return src


def test_folder_keeps_names_and_sizes(tmp_path, tree, capsys):
    out = tmp_path / "out"
    rc, err = run(capsys, tree, "-o", out)
    assert rc == 0, err
    assert files(out) == ["a.png", "b.jpg"]  # top level only without -r
    assert Image.open(out / "a.png").size == (40, 28)
    assert Image.open(out / "b.jpg").format == "JPEG"
    assert err[-1].startswith("kakudai: 2 done, 0 skipped, 0 failed")


def test_recursive_keeps_structure(tmp_path, tree, capsys):
    out = tmp_path / "out"
    rc, err = run(capsys, tree, "-r", "-o", out)
    assert rc == 0, err
    assert files(out) == ["a.png", "b.jpg", "sub/c.png", "sub/deep/d.webp"]
    assert Image.open(out / "sub" / "c.png").mode == "RGBA"
    assert Image.open(out / "sub" / "deep" / "d.webp").size == (40, 28)


def test_glob_suffix_and_format(tmp_path, tree, capsys):
    out = tmp_path / "out"
    rc, err = run(capsys, str(tree / "**" / "*.png"), "-o", out, "--suffix", "_x2", "--format", "webp")
    assert rc == 0, err
    assert files(out) == ["a_x2.webp", "sub/c_x2.webp"]  # relative to the pattern's fixed folder
    assert Image.open(out / "a_x2.webp").format == "WEBP"
    assert Image.open(out / "sub" / "c_x2.webp").mode == "RGBA"
    rc, err = run(capsys, str(tree / "*.bmp"), "-o", out)
    assert rc == 1 and err[0] == f"kakudai: error: {tree / '*.bmp'}: no image files match this pattern"


@pytest.mark.parametrize("fmt,ext,pil", [("png", ".png", "PNG"), ("jpg", ".jpg", "JPEG"),
                                         ("webp", ".webp", "WEBP"), ("tiff", ".tiff", "TIFF")])
def test_format_option(tmp_path, tree, capsys, fmt, ext, pil):
    out = tmp_path / "out"
    rc, err = run(capsys, tree / "a.png", "-o", out, "--format", fmt, "--quality", "80")
    assert rc == 0, err
    assert files(out) == [f"a{ext}"] and Image.open(out / f"a{ext}").format == pil


def test_single_file_output_contract(tmp_path, tree, capsys):
    rc, err = run(capsys, tree / "a.png", "-o", tmp_path / "result.jpg")
    assert rc == 0, err
    im = Image.open(tmp_path / "result.jpg")
    assert im.format == "JPEG" and im.size == (40, 28)
    # A folder OUT (existing, or created) keeps the input's name.
    rc, err = run(capsys, tree / "a.png", "-o", tmp_path / "folder")
    assert rc == 0 and files(tmp_path / "folder") == ["a.png"]
    rc, err = run(capsys, tree / "a.png", "-o", tmp_path / "r2.png", "--format", "jpg")
    assert rc == 1 and "does not match" in err[0]


def test_missing_input_creates_nothing(tmp_path, tree, capsys):
    missing = tmp_path / "nosuch.png"
    for out in (tmp_path / "new.png", tmp_path / "new"):
        rc, err = run(capsys, missing, "-o", out)
        assert not out.exists()
        assert rc == 1 and err == [f"kakudai: error: {missing}: no such file or folder"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_unknown_output_extension_is_an_error(tmp_path, tree, capsys):
    out = tmp_path / "out.xyz"
    rc, err = run(capsys, tree / "a.png", "-o", out)
    assert rc == 1 and len(err) == 1 and err[0].startswith(f"kakudai: error: {out}: ") and ".xyz" in err[0]
    assert not out.exists()
    out.mkdir()  # an existing folder is a folder, whatever its name
    rc, err = run(capsys, tree / "a.png", "-o", out)
    assert rc == 0 and files(out) == ["a.png"]


@pytest.mark.parametrize("ext", sorted(VIDEO_EXTENSIONS))
def test_every_video_extension_names_an_output_file(tmp_path, capsys, ext):
    """One video in, ``-o out<ext>``: that file (here: an error reading the input), never a folder."""
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"not a video")
    rc, err = run(capsys, clip, "-o", tmp_path / f"out{ext}")
    errors = [e for e in err if e.startswith("kakudai: error:")]
    assert rc == 1 and len(errors) == 1 and errors[0].startswith(f"kakudai: error: {clip}: "), err
    assert "not an image" not in errors[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_overwrite_or_skip(tmp_path, tree, capsys):
    out = tmp_path / "out"
    run(capsys, tree / "a.png", "-o", out)
    (out / "a.png").write_bytes(b"mine")
    rc, err = run(capsys, tree / "a.png", tree / "b.jpg", "-o", out)
    assert rc == 0
    assert (out / "a.png").read_bytes() == b"mine"
    assert err[0] == f"kakudai: skipped: {tree / 'a.png'}: {out / 'a.png'} exists (use --overwrite to replace it)"
    assert "1 done, 1 skipped, 0 failed" in err[-1]
    rc, err = run(capsys, tree / "a.png", "-o", out, "--overwrite")
    assert rc == 0 and Image.open(out / "a.png").size == (40, 28)


def test_never_writes_over_an_input(tmp_path, tree, capsys):
    before = (tree / "a.png").read_bytes()
    for extra in ([], ["--overwrite"]):
        rc, err = run(capsys, tree / "a.png", "-o", tree, *extra)
        assert rc == 1
        assert err[0].startswith(f"kakudai: error: {tree / 'a.png'}: the output") and "input file" in err[0]
        assert (tree / "a.png").read_bytes() == before
    rc, err = run(capsys, tree / "a.png", "-o", tree / "a.png")
    assert rc == 1 and (tree / "a.png").read_bytes() == before
    # With a suffix the same folder is fine.
    rc, err = run(capsys, tree / "a.png", "-o", tree, "--suffix", "_big")
    assert rc == 0 and (tree / "a_big.png").exists()


def test_two_inputs_one_output_name(tmp_path, capsys):
    img(tmp_path / "x" / "p.png")
    img(tmp_path / "x" / "p.jpg")
    rc, err = run(capsys, tmp_path / "x", "-o", tmp_path / "out", "--format", "png")
    assert rc == 1
    assert files(tmp_path / "out") == ["p.png"]
    assert len([e for e in err if e.startswith("kakudai: error:")]) == 1 and "would also be written" in err[0]


def test_fit_options(tmp_path, tree, capsys):
    out = tmp_path / "out"
    assert run(capsys, tree / "a.png", "-o", out / "w.png", "--width", "50")[0] == 1  # out/ missing
    out.mkdir()
    assert run(capsys, tree / "a.png", "-o", out / "w.png", "--width", "50")[0] == 0
    assert Image.open(out / "w.png").size == (50, 35)
    assert run(capsys, tree / "a.png", "-o", out / "h.png", "--height", "21")[0] == 0
    assert Image.open(out / "h.png").size == (30, 21)
    assert run(capsys, tree / "a.png", "-o", out / "s.png", "--size", "100x42")[0] == 0
    assert Image.open(out / "s.png").size == (60, 42)
    rc, err = run(capsys, tree / "a.png", "-o", out / "x.png", "--size", "100x42", "--scale", "3")
    assert rc == 1 and err == ["kakudai: error: --scale cannot be combined with --width/--height/--size"]


def test_output_folder_errors(tmp_path, tree, capsys):
    rc, err = run(capsys, tree, "-o", tmp_path / "no" / "such" / "out")
    assert rc == 1 and len(err) == 1 and err[0].startswith(f"kakudai: error: {tmp_path / 'no' / 'such' / 'out'}: ")
    (tmp_path / "file").write_text("x")
    rc, err = run(capsys, tree, "-o", tmp_path / "file")
    assert rc == 1 and len(err) == 1 and "not a folder" in err[0]
    rc, err = run(capsys, tree / "a.png", "-o", tmp_path / "nodir" / "x.png")
    assert rc == 1 and err == [f"kakudai: error: {tmp_path / 'nodir'}: output folder does not exist"]


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_folder(tmp_path, tree, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        rc, err = run(capsys, tree, "-o", ro)
        assert rc == 1 and err == [f"kakudai: error: {ro}: output folder is not writable"]
    finally:
        ro.chmod(0o700)


def test_weights_errors_are_one_line(tmp_path, tree, capsys):
    missing = tmp_path / "missing.safetensors"
    rc = main(["upscale", str(tree), "-o", str(tmp_path / "o1"), "--model", str(missing)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and err == [f"kakudai: error: {missing}: no such weights file"]
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(os.urandom(300))
    rc = main(["upscale", str(tree), "-o", str(tmp_path / "o2"), "--model", str(corrupt)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and err[0].startswith(f"kakudai: error: {corrupt}: ")
    assert not any((tmp_path / "o2").iterdir())


def test_bad_inputs_do_not_stop_the_batch(tmp_path, tree, capsys):
    (tree / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 30)
    (tree / "clip.mp4").write_bytes(b"not a video")
    rc, err = run(capsys, tree / "broken.png", tree / "missing.png", tree / "a.png", tree / "clip.mp4",
                  "-o", tmp_path / "out")
    assert rc == 1
    errors = [e for e in err if e.startswith("kakudai: error:")]
    assert [e.split(": ")[2] for e in errors] == [str(tree / "missing.png"), str(tree / "broken.png"),
                                                   str(tree / "clip.mp4")]
    assert files(tmp_path / "out") == ["a.png"]
    assert "1 done, 0 skipped, 3 failed" in err[-1]


def test_bad_option_values(tmp_path, tree, capsys):
    for extra, words in [(["--tile", "big"], "--tile"), (["--quality", "0"], "--quality"),
                         (["--size", "12by4"], "--size")]:
        rc, err = run(capsys, tree, "-o", tmp_path / "o", *extra)
        assert rc == 1 and len(err) == 1 and words in err[0]


def test_tile_and_tta_options(tmp_path, tree, capsys):
    rc, err = run(capsys, tree / "a.png", "-o", tmp_path / "t.png", "--tile", "8", "--tta", "--threads", "1")
    assert rc == 0, err
    whole = tmp_path / "w.png"
    assert run(capsys, tree / "a.png", "-o", whole, "--tile", "0")[0] == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "t.png")), np.asarray(Image.open(whole)))


# --------------------------------------------------------------------------- compare
def test_compare_figure_with_psnr(tmp_path, capsys):
    import math

    from kakudai import create_model, psnr, save_model
    from kakudai.data.datasets import degrade_bicubic, mod_crop
    from kakudai.ops.resize import imresize_np

    rng = np.random.default_rng(5)
    hr = np.clip(imresize_np(rng.random((12, 14, 3)), size=(61, 70)) * 255, 0, 255).round().astype(np.uint8)
    Image.fromarray(hr).save(tmp_path / "hr.png")
    net = create_model("espcn", scale=3, channels=1)
    save_model(net, tmp_path / "net.safetensors")
    rc = main(["compare", str(tmp_path / "hr.png"), "-o", str(tmp_path / "fig.png"), "--scale", "3",
               "--models", f"mine={tmp_path / 'net.safetensors'}", "--crop", "6,9,30,24", "--zoom", "4"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    rows = [line.split() for line in cap.out.strip().splitlines()]
    assert [r[0] for r in rows] == ["bicubic", "mine", "original"]
    ref = mod_crop(hr, 3)
    import kakudai

    sr = kakudai.upscale(degrade_bicubic(ref, 3), scale=3, model="bicubic")
    assert sr.shape == ref.shape and abs(float(rows[0][1]) - psnr(sr, ref, border=3)) < 1e-3
    assert math.isfinite(float(rows[1][1]))
    fig = Image.open(tmp_path / "fig.png")
    assert fig.width >= 3 * 30 * 4 and fig.height > 24 * 4
    # LR mode: no original, no PSNR; a bad crop is one error line.
    rc = main(["compare", str(tmp_path / "hr.png"), "-o", str(tmp_path / "lr.png"), "--scale", "2", "--lr"])
    assert rc == 0 and "original" not in capsys.readouterr().out
    rc = main(["compare", str(tmp_path / "hr.png"), "-o", str(tmp_path / "x.png"), "--crop", "50,50,40,40"])
    err = [e for e in capsys.readouterr().err.strip().splitlines() if "error" in e]
    assert rc == 1 and len(err) == 1 and err[0].startswith(f"kakudai: error: {tmp_path / 'hr.png'}: --crop")


# --------------------------------------------------------------------------- the command line itself
def test_version(capsys):
    import kakudai

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"kakudai {kakudai.__version__}\n"


def test_parsing_imports_no_heavy_modules():
    """--version, --help and argument parsing stay fast: torch, numpy, Pillow and the API
    are imported only when a command runs, and the public API still loads on first use."""
    import subprocess
    import sys

    code = """
import sys
from kakudai.cli import build_parser, main
for argv in (["--version"], ["--help"], ["upscale", "--help"], ["denoise", "--help"], ["serve", "--help"]):
    try:
        main(argv)
    except SystemExit as e:
        assert e.code == 0, (argv, e.code)
build_parser().parse_args(["upscale", "in.png", "-o", "out.png", "--scale", "3"])
heavy = [m for m in ("torch", "numpy", "PIL", "kakudai.api") if m in sys.modules]
import kakudai
from kakudai import psnr
print("HEAVY", heavy, callable(kakudai.upscale), "upscale" in dir(kakudai), kakudai.checkpoint.__name__)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "HEAVY [] True True kakudai.checkpoint"
    r = subprocess.run([sys.executable, "-m", "kakudai", "--version"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.startswith("kakudai ") and not r.stderr, r


@pytest.mark.parametrize("command", ["upscale", "denoise"])
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "nonsense", "meta"])
def test_unusable_device_is_one_line(tmp_path, tree, capsys, command, device):
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("a CUDA device is available here")
    out = tmp_path / "out.png"
    rc = main([command, str(tree / "a.png"), "-o", str(out), "--model", "default", "--device", device])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1, err
    assert err[0].startswith(f"kakudai: error: --device {device}: "), err
    reason = err[0].split(": ", 3)[3]
    if device.startswith("cuda"):
        assert "CUDA" in reason and "CPU-only" in reason, reason
    else:
        assert "cpu" in reason and "cuda" in reason, reason  # names what would work
    assert not out.exists()
