"""The evaluation protocol reproduces the published bicubic rows (Y, MATLAB bicubic)."""

import json

import pytest

from kakudai.cli import main

PUBLISHED = {  # (PSNR, SSIM), Set5 / Set14, from ../shared/anchors.md
    ("Set5", 2): (33.66, 0.9299), ("Set5", 3): (30.39, 0.8682), ("Set5", 4): (28.42, 0.8104),
    ("Set14", 2): (30.24, 0.8688), ("Set14", 3): (27.55, 0.7742), ("Set14", 4): (26.00, 0.7027),
}


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.slow
def test_bicubic_rows(scale, bench_dir, capsys):
    rc = main(["eval", "--model", "bicubic", "--scale", str(scale), "--json",
               str(bench_dir / "Set5"), str(bench_dir / "Set14")])
    assert rc == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["model"] == "bicubic" and out["scale"] == scale
    for ds in out["datasets"]:
        p, s = PUBLISHED[(ds["name"], scale)]
        assert abs(ds["psnr"] - p) <= 0.02, (ds["name"], ds["psnr"], p)
        assert abs(ds["ssim"] - s) <= 0.002, (ds["name"], ds["ssim"], s)
        assert ds["n"] == (5 if ds["name"] == "Set5" else 14)


def test_single_folder_json_has_top_level_fields(bench_dir, capsys):
    assert main(["eval", "--model", "bicubic", "--scale", "2", "--json", "--quiet", str(bench_dir / "Set5")]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"model", "scale", "datasets", "psnr", "ssim", "n"} <= set(out)
    assert out["n"] == 5


def test_missing_folder_is_a_one_line_error(tmp_path, capsys):
    rc = main(["eval", "--model", "bicubic", "--scale", "2", str(tmp_path / "nope")])
    assert rc == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("kakudai: error: ")
