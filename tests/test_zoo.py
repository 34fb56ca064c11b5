"""The model zoo: declarations agree with the shipped files, the one resolver, and
restorers refused (one clean line, no traceback) wherever an upscaler is expected."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import kakudai
from kakudai import zoo
from kakudai.checkpoint import WeightsError, read_metadata, save_model
from kakudai.cli import main
from kakudai.zoo import ALIASES, AUTO_RESTORERS, DEFAULT_RESTORERS, ZOO, Shipped, TaskMismatch

RESTORERS = [e.name for e in ZOO.values() if e.task != "upscale"]


# ------------------------------------------------------------------ declarations
def test_every_shipped_file_is_declared_and_matches_its_declaration() -> None:
    declared = {p.name: e for e in ZOO.values() for p in e.paths()}
    for f in sorted(zoo.WEIGHTS_DIR.glob("*.safetensors")):
        assert f.name in declared, f"{f.name} ships but kakudai/zoo.py does not declare it"
        e, meta = declared[f.name], read_metadata(f)
        assert meta["arch"] == e.arch, f.name
        if e.task == "upscale":
            assert not meta["args"].get("level_map", False), f.name
        else:  # a restorer takes its strength as an input plane and keeps the size
            assert meta["args"].get("level_map") is True and meta["args"].get("scale", 1) == 1, f.name
        if e.scales:
            assert meta["args"]["scale"] == int(f.stem.rsplit("_x", 1)[1]), f.name


def test_references_between_declarations() -> None:
    for table, in_use in ((DEFAULT_RESTORERS, "default"), (AUTO_RESTORERS, "automatic")):
        for kind, name in table.items():
            assert ZOO[name].task == f"denoise-{kind}", (in_use, kind, name)
    for e in ZOO.values():
        if e.gray is not None:
            companion = ZOO[e.gray]
            assert companion.task == e.task and companion.gray is None
            if companion.present():
                assert read_metadata(companion.path())["args"]["channels"] == 1
    for a in ALIASES.values():
        assert a.name not in ZOO
        assert ZOO[a.target].task == "upscale" and ZOO[a.target].scales
        assert ZOO[a.other_scales].any_scale
        assert a.illustration is None or (ZOO[a.illustration].task == "upscale" and ZOO[a.illustration].scales)
    for e in ZOO.values():
        if e.after_jpeg is not None:  # the same network fine-tuned: same architecture, a subset of scales
            after = ZOO[e.after_jpeg]
            assert after.task == e.task == "upscale" and after.arch == e.arch and after.after_jpeg is None
            assert set(after.scales) <= set(e.scales), e.name


def test_routes_by_style_and_cleaning(tmp_path, monkeypatch) -> None:
    """Drawings go to the alias's illustration model, images a JPEG restorer cleaned to
    the serving model's after-JPEG model, each only at the scales whose file ships."""
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", tmp_path)
    alias = ALIASES["default"]
    photo, art = ZOO[alias.target], ZOO[alias.illustration]
    assert photo.after_jpeg is not None
    assert zoo.for_style("default", "photo", 2, cleaned="jpeg") == "default"  # nothing ships
    for name in (photo.name, photo.after_jpeg, art.name):
        (tmp_path / f"{name}_x2.safetensors").touch()
    assert zoo.for_style("default", "photo", 2, cleaned="jpeg") == photo.after_jpeg
    assert zoo.for_style(photo.name, "photo", 2, cleaned="jpeg") == photo.after_jpeg
    assert zoo.for_style("default", "photo", 2, cleaned="noise") == "default"
    assert zoo.for_style("default", "photo", 2) == "default"
    assert zoo.for_style("default", "photo", 3, cleaned="jpeg") == "default"  # no x3 file
    assert zoo.for_style("default", "illustration", 2) == art.name
    assert zoo.for_style("default", "illustration", 2, cleaned="jpeg") == art.name  # its after-JPEG file absent
    assert art.after_jpeg is not None
    (tmp_path / f"{art.after_jpeg}_x2.safetensors").touch()
    assert zoo.for_style("default", "illustration", 2, cleaned="jpeg") == art.after_jpeg
    assert zoo.for_style(art.name, "illustration", 2, cleaned="jpeg") == art.after_jpeg
    assert zoo.for_style("default", "illustration", 2) == art.name
    assert zoo.for_style("bicubic", "photo", 2, cleaned="jpeg") == "bicubic"


def test_only_the_zoo_knows_where_shipped_weights_live() -> None:
    # One place for each fact: the weights folder and the file naming are the zoo's
    # (the card and ship modules write there through it); everything else asks zoo.resolve.
    package = Path(kakudai.__file__).parent
    for f in sorted(package.rglob("*.py")):
        if f.name in ("zoo.py", "cards.py", "ship.py"):
            continue
        text = f.read_text()
        assert "WEIGHTS_DIR" not in text and '/ "weights"' not in text, f


def test_declaration_errors() -> None:
    with pytest.raises(ValueError, match="task"):
        Shipped("x", "ksr", task="sharpen")
    with pytest.raises(ValueError, match="scale-free"):
        Shipped("x", "unet", task="denoise-noise", scales=(2,))
    with pytest.raises(ValueError, match="twice"):
        zoo._declare(Shipped("x", "ksr"), Shipped("x", "espcn"))


# ------------------------------------------------------------------ the resolver
@pytest.fixture
def weights(weights_dir) -> Path:
    return weights_dir


def _tiny_ksr(scale: int):
    torch.manual_seed(scale)
    return kakudai.create_model("ksr", scale=scale, width=8, blocks=1)


def test_resolve_aliases_fall_back_in_order(weights: Path) -> None:
    assert zoo.resolve("default", 2) == zoo.Resolved("bicubic", None, None)  # nothing shipped yet
    save_model(_tiny_ksr(2), weights / "ksr_x2.safetensors")
    assert zoo.resolve("default", 2).path == weights / "ksr_x2.safetensors"
    assert zoo.resolve("default", 3).name == "bicubic"
    save_model(kakudai.create_model("implicit", width=8, blocks=1), weights / "implicit.safetensors")
    assert zoo.resolve("default", 3).name == "implicit"
    assert zoo.resolve("fast", 3).name == "implicit"  # implicit-fast not shipped: implicit renders it
    assert zoo.resolve("ksr", 3) == zoo.Resolved("ksr", ZOO["ksr"], None)  # a name is itself
    with pytest.raises(WeightsError, match="ksr_x3.safetensors: no such weights file"):
        zoo.load_model("ksr", 3)
    with pytest.raises(WeightsError, match="no shipped weights for 'ksr' at x5; shipped: ksr"):
        zoo.load_model("ksr", 5)
    assert zoo.load_model("default", 2).scale == 2


def test_resolve_unknown_and_missing(weights: Path) -> None:
    with pytest.raises(WeightsError, match="no shipped model named 'nosuch'"):
        zoo.resolve("nosuch")
    with pytest.raises(WeightsError, match="unet-jpeg.safetensors: no such weights file"):
        zoo.load_model("unet-jpeg")


def test_resolve_checks_the_task(weights: Path) -> None:
    for name in RESTORERS:
        with pytest.raises(TaskMismatch, match=f"{name}: a denoise-"):
            zoo.resolve(name, 2, task="upscale")
        assert zoo.resolve(name, task=ZOO[name].task).name == name
    with pytest.raises(TaskMismatch, match="ksr: an upscaler, not a denoise-noise restorer"):
        zoo.resolve("ksr", task="denoise-noise")
    with pytest.raises(TaskMismatch):
        zoo.resolve("unet-jpeg", task="denoise-noise")


def test_upscaler_refuses_a_restorer(weights: Path) -> None:
    save_model(kakudai.create_model("unet", widths=(4, 8, 8), blocks=1, level_map=True),
               weights / "unet-noise.safetensors")
    with pytest.raises(TaskMismatch, match="unet-noise: a denoise-noise restorer, not an upscaler"):
        kakudai.upscale(np.zeros((8, 8, 3), np.uint8), 2, model="unet-noise")
    assert kakudai.denoise(np.zeros((8, 8, 3), np.uint8), sigma=10).shape == (8, 8, 3)


# ------------------------------------------------------------------ the CLI on restorers
@pytest.fixture
def image(tmp_path) -> Path:
    p = tmp_path / "in" / "a.png"
    p.parent.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (36, 42, 3), dtype=np.uint8)).save(p)
    return p


def _one_line_error(capsys, *words: str) -> None:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("kakudai: error: ") and "Traceback" not in err[0]
    for w in words:
        assert w in err[0], (w, err[0])


@pytest.mark.parametrize("name", [n for n in RESTORERS if ZOO[n].present()])
def test_cli_upscale_eval_compare_bench_refuse_a_restorer(name, image, tmp_path, capsys) -> None:
    out = tmp_path / "out.png"
    assert main(["upscale", str(image), "-o", str(out), "--model", name]) == 1
    _one_line_error(capsys, name, "denoise")
    assert not out.exists()
    assert main(["eval", "--model", name, "--scale", "2", str(image.parent)]) == 1
    _one_line_error(capsys, name, ZOO[name].task)
    assert main(["compare", str(image), "-o", str(tmp_path / "fig.png"), "--scale", "2",
                 "--models", name]) == 1
    _one_line_error(capsys, name, ZOO[name].task)
    assert main(["bench", "--model", name, "--peak", "quick", "--repeat", "1", "--warmup", "0",
                 "--size", "16x16"]) == 1
    _one_line_error(capsys, name)
    path = str(ZOO[name].path())  # the file itself, by path: refused just as well
    assert main(["upscale", str(image), "-o", str(out), "--model", path]) == 1
    _one_line_error(capsys, path, "a restorer")
    assert main(["eval", "--model", path, "--scale", "2", str(image.parent)]) == 1
    _one_line_error(capsys, path, "a restorer")
    assert not out.exists()


@pytest.mark.skipif(not ZOO["unet-noise"].present(), reason="unet-noise not shipped")
def test_cli_denoise_and_eval_still_take_restorers_by_name(image, tmp_path, capsys) -> None:
    out = tmp_path / "clean.png"
    assert main(["denoise", str(image), "-o", str(out), "--sigma", "10", "--model", "unet-noise-fast"]) == 0
    assert Image.open(out).size == (42, 36)
    capsys.readouterr()
    assert main(["denoise", str(image), "-o", str(out), "--sigma", "10", "--model", "unet-jpeg"]) == 1
    _one_line_error(capsys, "unet-jpeg: a denoise-jpeg restorer")
    assert main(["denoise", str(image), "-o", str(out), "--sigma", "10", "--model", "ksr"]) == 1
    _one_line_error(capsys, "ksr: an upscaler")


@pytest.mark.skipif(not ZOO["ksr-jpeg"].present(), reason="ksr-jpeg not shipped")
def test_eval_names_the_models_that_served(bench_dir, capsys) -> None:
    """`kakudai eval --denoise auto` (the default) says when images went to another model
    than the one named: JPEG inputs cleaned and upscaled by the after-JPEG model."""
    assert main(["eval", "--model", "default", "--scale", "2", "--degrade", "jpeg:75",
                 str(bench_dir / "Set5")]) == 0
    assert "model=ksr (served by ksr-jpeg)" in capsys.readouterr().out
    assert main(["eval", "--model", "default", "--scale", "2", str(bench_dir / "Set5")]) == 0
    out = capsys.readouterr().out
    assert "model=ksr " in out and "served by" not in out
