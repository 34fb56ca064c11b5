"""The generated reference pages (docs/cli.md, docs/config.md, docs/models.md) match what
scripts/gen_docs.py writes from the parser, the config dataclasses and the model cards,
so a new option, config key or shipped card cannot go undocumented."""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _gen_docs():
    spec = importlib.util.spec_from_file_location("gen_docs", REPO / "scripts" / "gen_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _gen_docs()


@pytest.mark.parametrize("page", sorted(GEN.PAGES))
def test_generated_page_is_up_to_date(page):
    expected = GEN.PAGES[page]()
    committed = (REPO / page).read_text() if (REPO / page).exists() else ""
    assert committed == expected, f"{page} is out of date: run python scripts/gen_docs.py"


def test_cli_page_lists_every_subcommand_and_option():
    text = GEN.cli_md()
    parser = GEN._build_parser()
    for name, _, sub in GEN._subparsers(parser):
        assert f"## kakudai {name}\n" in text
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            for flag in action.option_strings:
                assert f"`{flag}" in text, f"kakudai {name} {flag} missing from docs/cli.md"


def test_config_page_lists_every_key():
    import dataclasses
    text = GEN.config_md()
    for prefix, cls in GEN._config_sections():
        section = text.split(f"## {prefix or 'top level'}\n", 1)[1].split("\n## ", 1)[0]
        for f in dataclasses.fields(cls):
            assert f"| `{f.name}` |" in section, f"{prefix}.{f.name} missing from docs/config.md"


def test_models_page_tolerates_unknown_card_shapes(tmp_path):
    (tmp_path / "new-model.json").write_text('{"name": "new-model", "arch": "ksr", "scale": 2, "eval": 3}')
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "restorer.json").write_text('{"name": "r", "kind": "noise", "eval": [{"set": "Set12"}]}')
    (tmp_path / "v1_x2.json").write_text(json.dumps({
        "format": "kakudai.card.v1", "name": "v1", "task": "upscale", "file": "v1_x2.safetensors", "scale": 2,
        "arch": "ksr", "args": {}, "params": 10, "summary": "A test card.", "lineage": ["configs/ksr.toml"],
        "results": [{"model": "v1", "set": "Set5", "scale": 2, "psnr": 37.5171, "source": "measured"}],
        "training": {"cpu_hours": 1.5}}))
    text = GEN.models_md(tmp_path)
    assert "`new-model`" in text and "`r`" in text and "broken" not in text
    v1 = text.split("## v1\n", 1)[1]
    assert "A test card." in v1 and "`configs/ksr.toml`" in v1 and "37.517" in v1
