"""The ship command: every kind of zoo entry (fixed scales, a multi-scale RGB KSR at some
of its scales, an arbitrary-scale model, a restorer) written with cards that follow the
one schema and re-measure to what they say."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import kakudai
from kakudai import zoo
from kakudai.cards import measure, read_card, render_markdown
from kakudai.checkpoint import read_metadata, save_model
from kakudai.ship import main, ship


@pytest.fixture
def bench(tmp_path) -> Path:
    """A benchmark folder with every set the ship command measures on, two small images each."""
    rng = np.random.default_rng(0)
    root = tmp_path / "bench"
    for name, gray in (("Set5", False), ("Set14", False), ("Kodak24", False), ("Set12", True),
                       ("Classic5", True), ("Art10", False)):
        (root / name).mkdir(parents=True)
        for i in range(2):
            base = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
            img = Image.fromarray(base).resize((24, 24), Image.BICUBIC)  # smooth enough to be restorable
            (img.convert("L") if gray else img).save(root / name / f"im{i}.png")
    return root


def _check_cards(paths: list[Path], bench: Path, out: Path) -> list[dict]:
    cards = []
    for p in paths:
        card = read_card(p)  # the one schema
        assert p.with_suffix(".md").read_text() == render_markdown(card)
        meta = read_metadata(out / card["file"])
        assert (meta["arch"], meta["args"]) == (card["arch"], card["args"])
        assert meta["extra"] == {}  # the card lives once, in its JSON
        row = card["results"][card["check"]]
        assert measure(card, row, bench, weights_dir=out)["psnr"] == pytest.approx(row["psnr"], abs=1e-3)
        cards.append(card)
    return cards


def test_ship_a_multiscale_rgb_ksr_at_two_of_its_scales(bench, weights_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(zoo.ZOO, "tiny-art", zoo.Shipped("tiny-art", "ksr", scales=(2, 4)))
    torch.manual_seed(0)
    w = save_model(kakudai.create_model("ksr", scale=[2, 3, 4], channels=3, width=8, blocks=1),
                   tmp_path / "best.safetensors")
    paths = ship("tiny-art", w, ["configs/art_ksr.toml"], sets=["Art10", "Set5"], bench_dir=bench,
                 out_dir=weights_dir, summary="A test model.")
    assert sorted(p.name for p in weights_dir.iterdir()) == [
        "tiny-art_x2.json", "tiny-art_x2.md", "tiny-art_x2.safetensors",
        "tiny-art_x4.json", "tiny-art_x4.md", "tiny-art_x4.safetensors"]
    cards = _check_cards(paths, bench, weights_dir)
    for card, s in zip(cards, (2, 4)):
        assert card["scale"] == s and card["args"]["scale"] == s and card["args"]["channels"] == 3
        assert [r["set"] for r in card["results"]] == ["Art10", "Set5"]
        assert card["speed"][0]["seconds"] > 0 and card["lineage"] == ["configs/art_ksr.toml"]
    assert zoo.load_model("tiny-art", 4).scale == 4
    assert zoo.resolve("tiny-art", 3).path is None  # not declared at x3: not shipped
    # Re-shipped on a busy machine: the speed rows of the card it replaces are kept.
    again = ship("tiny-art", w, ["configs/art_ksr.toml"], sets=["Set5"], bench_dir=bench, out_dir=weights_dir,
                 speed="keep")
    assert [read_card(p)["speed"] for p in again] == [c["speed"] for c in cards]
    other = save_model(kakudai.create_model("ksr", scale=[2, 4], channels=3, width=4, blocks=1),
                       tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match="not a card of the same architecture"):
        ship("tiny-art", other, ["configs/art_ksr.toml"], bench_dir=bench, out_dir=weights_dir, speed="keep")


def test_ship_an_arbitrary_scale_model_beside_its_reference(bench, weights_dir, tmp_path):
    torch.manual_seed(1)
    save_model(kakudai.create_model("ksr", scale=2, width=8, blocks=1), weights_dir / "ksr_x2.safetensors")
    w = save_model(kakudai.create_model("implicit", width=8, blocks=1), tmp_path / "imp.safetensors")
    (path,) = ship("implicit", w, ["configs/implicit.toml"], scales=[1.5, 2], bench_dir=bench,
                   out_dir=weights_dir, speed="none")
    (card,) = _check_cards([path], bench, weights_dir)
    assert card["scale"] is None and card["speed"] == []
    got = {(r["model"], r["scale"]) for r in card["results"] if r["set"] == "Set5"}
    assert got == {("implicit", 1.5), ("ksr+shrink", 1.5), ("bicubic", 1.5),
                   ("implicit", 2.0), ("ksr", 2.0), ("bicubic", 2.0)}
    assert card["results"][card["check"]]["scale"] == 1.5
    for row in card["results"]:  # the references are measured too, with their own models
        if row["model"] != "implicit":
            assert measure(card, row, bench, weights_dir=weights_dir)["psnr"] == pytest.approx(row["psnr"], abs=1e-3)


@pytest.mark.parametrize("name,channels", [("unet-jpeg", 3), ("unet-noise-gray", 1)])
def test_ship_a_restorer(name, channels, bench, weights_dir, tmp_path):
    torch.manual_seed(2)
    w = save_model(kakudai.create_model("unet", channels=channels, widths=(4, 8, 8), blocks=1, level_map=True),
                   tmp_path / "r.safetensors")
    (path,) = ship(name, w, ["configs/unet_jpeg.toml"], bench_dir=bench, out_dir=weights_dir, speed="none")
    (card,) = _check_cards([path], bench, weights_dir)
    sets = {r["set"] for r in card["results"] if not r.get("clean")}
    assert sets == ({"Classic5"} if name == "unet-jpeg" else {"Set12"})  # a gray companion: gray sets only
    assert any(r["source"] == "published" for r in card["results"])
    assert sum(bool(r.get("clean")) for r in card["results"]) == (5 if name == "unet-jpeg" else 3)
    assert card["task"] == zoo.ZOO[name].task and card["scale"] is None
    # The shipped file is what kakudai denoise loads by name.
    assert zoo.load_model(name, task=card["task"]).arch == "unet"


def test_ship_carries_the_runs_of_the_card_it_continues(bench, weights_dir, tmp_path):
    """Weights trained on from a shipped file whose run directories are gone: --runs-from
    puts the runs that card recorded first, and the hours add up."""
    torch.manual_seed(3)
    w = save_model(kakudai.create_model("unet", channels=3, widths=(4, 8, 8), blocks=1, level_map=True),
                   tmp_path / "r.safetensors")
    run = tmp_path / "runs" / "second"
    run.mkdir(parents=True)
    (run / "log.jsonl").write_text('{"kind": "train", "it": 50, "elapsed_s": 360.0, "cpu_s": 180.0, '
                                   '"patches_per_s": 20.0}\n')
    (run / "config.json").write_text('{"name": "second", "seed": 7}')
    (first,) = ship("unet-jpeg", w, ["configs/unet_jpeg.toml"], bench_dir=bench, out_dir=weights_dir,
                    speed="none", run_dirs=[run])
    card = read_card(first)
    card["training"]["runs"][0]["name"] = "first"
    (tmp_path / "earlier.json").write_text(__import__("json").dumps(card))
    (again,) = ship("unet-jpeg", w, ["configs/unet_jpeg.toml"], bench_dir=bench, out_dir=weights_dir,
                    speed="none", run_dirs=[run], runs_from=tmp_path / "earlier.json")
    training = read_card(again)["training"]
    assert [r["name"] for r in training["runs"]] == ["first", "second"]
    assert training["iterations"] == 100 and training["cpu_hours"] == pytest.approx(0.1)
    # the same weights re-measured (no new run): runs, hours and config stay the card's
    (same,) = ship("unet-jpeg", w, ["configs/unet_jpeg.toml"], bench_dir=bench, out_dir=weights_dir,
                   speed="none", runs_from=again.with_suffix(".json"))
    kept = read_card(same)["training"]
    assert kept["runs"] == training["runs"] and kept["config"] == {"name": "second", "seed": 7}
    assert main(["unet-jpeg", str(w), "--lineage", "configs/unet_jpeg.toml", "--no-speed", "--bench-dir",
                 str(bench), "--out-dir", str(weights_dir), "--runs-from", str(tmp_path / "none.json")]) == 1


def test_ship_refuses_what_the_zoo_does_not_declare(bench, weights_dir, tmp_path, capsys):
    w = save_model(kakudai.create_model("espcn", scale=3), tmp_path / "e.safetensors")
    assert main(["no-such-name", str(w), "--lineage", "configs/espcn_x3.toml", "--out-dir", str(weights_dir)]) == 1
    assert "not declared in kakudai/zoo.py" in capsys.readouterr().err
    assert main(["ksr", str(w), "--lineage", "configs/ksr.toml", "--out-dir", str(weights_dir)]) == 1
    assert "architecture 'espcn', but ksr is declared as 'ksr'" in capsys.readouterr().err
    assert main(["espcn", str(w), "--lineage", "configs/espcn_x3.toml", "--bench-dir", str(bench),
                 "--out-dir", str(weights_dir), "--no-speed"]) == 1  # espcn declares x2 x3 x4; this file is x3
    assert "declares x2" in capsys.readouterr().err
    assert not any(weights_dir.iterdir())
