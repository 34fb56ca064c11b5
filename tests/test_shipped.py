"""Shipped weights: each model card's figures are what `kakudai eval` measures now
(SR cards: Set5; restorer cards: their last set at its first level)."""

import json
from pathlib import Path

import pytest

from kakudai.checkpoint import load_weights_file
from kakudai.zoo import WEIGHTS_DIR, load_model, resolve
from kakudai.evaluation import evaluate_denoise, evaluate_folder, evaluate_jpeg

CARDS = sorted(WEIGHTS_DIR.glob("*.json"))


@pytest.mark.parametrize("card_path", CARDS, ids=[p.stem for p in CARDS])
def test_card_matches_eval(card_path: Path, bench_dir):
    card = json.loads(card_path.read_text())
    if card.get("kind") in ("noise", "jpeg"):  # a restorer: the file alone, as its card measured it
        row = card["eval"][-1]
        level, want = row["scores"][0]["level"], row["scores"][0]["psnr"]
        model = load_weights_file(card_path.with_suffix(".safetensors"))
        evaluate = evaluate_denoise if card["kind"] == "noise" else evaluate_jpeg
        r = evaluate(model, bench_dir / row["set"], level, with_ssim=False)
        assert abs(r["psnr"] - want) <= 0.01, (row["set"], level, r["psnr"], want)
        return
    if not isinstance(card.get("scale"), (int, float)):
        pytest.skip("arbitrary-scale card: covered by its own test")
    model = load_model(card["name"], card["scale"])
    r = evaluate_folder(model, bench_dir / "Set5", card["scale"], with_ssim=False)
    assert abs(r["psnr"] - card["eval"]["Set5"]["psnr"]) <= 0.01, (r["psnr"], card["eval"]["Set5"])


def test_default_uses_shipped_flagship_when_present():
    for s in (2, 3, 4):
        shipped = (WEIGHTS_DIR / f"ksr_x{s}.safetensors").exists()
        assert resolve("default", s).name == ("ksr" if shipped else resolve("default", s).name)
        if shipped:
            m = load_model("default", s)
            assert m.arch == "ksr" and m.scale == s
