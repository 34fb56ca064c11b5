"""The one mapping from an exception to the command line's error line and exit code
(kakudai/cli/errors.py, kakudai/cli/signals.py, and main() for what commands let through)."""

from __future__ import annotations

import errno
import signal

import pytest

from kakudai.checkpoint import WeightsError
from kakudai.cli import main
from kakudai.cli.errors import fail
from kakudai.cli.signals import Terminated, exit_code
from kakudai.data.io import ImageReadError, ImageWriteError


def _line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.mark.parametrize("exc,where,line", [
    (ImageReadError("a.png", "no such file"), None, "kakudai: error: a.png: no such file"),
    (ImageReadError("a.png", "no such file"), "a.png", "kakudai: error: a.png: no such file"),
    (ImageWriteError("out/a.png", "disk full"), "a.png", "kakudai: error: a.png: out/a.png: disk full"),
    (WeightsError("x.safetensors: not a weights file"), "x.safetensors",
     "kakudai: error: x.safetensors: not a weights file"),
    (WeightsError("no shipped weights at x5"), None, "kakudai: error: no shipped weights at x5"),
    (WeightsError("no shipped weights at x5"), "ksr", "kakudai: error: ksr: no shipped weights at x5"),
    (OSError(errno.EADDRINUSE, "Address already in use"), "127.0.0.1:80",
     "kakudai: error: 127.0.0.1:80: Address already in use"),
    (FileNotFoundError(errno.ENOENT, "No such file or directory", "c.toml"), "c.toml",
     "kakudai: error: c.toml: No such file or directory"),
    (FileNotFoundError(errno.ENOENT, "No such file or directory", "d/x.png"), "d",
     "kakudai: error: d: d/x.png: No such file or directory"),
    (KeyError("unknown config key Config.x"), "c.toml", "kakudai: error: c.toml: unknown config key Config.x"),
    (ValueError("first line\nmore detail"), "--degrade", "kakudai: error: --degrade: first line"),
    (ValueError(), "bench", "kakudai: error: bench: ValueError"),
    (ValueError("--scale must be positive"), None, "kakudai: error: --scale must be positive"),
])
def test_one_line_per_exception(capsys, exc, where, line):
    assert fail(exc, where) == 1
    assert _line(capsys) == line


def test_interrupts_exit_with_the_shells_codes():
    assert exit_code(KeyboardInterrupt()) == 128 + signal.SIGINT == 130
    assert exit_code(Terminated(signal.SIGTERM)) == 128 + signal.SIGTERM == 143


def test_main_reports_what_a_command_lets_through(monkeypatch, capsys):
    import kakudai.cli.models as models_command

    def raises(exc):
        def run(_args):
            raise exc
        return run

    monkeypatch.setattr(models_command, "run", raises(ImageReadError("b.png", "corrupt")))
    assert main(["models"]) == 1 and _line(capsys) == "kakudai: error: b.png: corrupt"
    monkeypatch.setattr(models_command, "run", raises(KeyboardInterrupt()))
    assert main(["models"]) == 130 and _line(capsys) == "kakudai: interrupted"
    monkeypatch.setattr(models_command, "run", raises(Terminated(signal.SIGTERM)))
    assert main(["models"]) == 143
    capsys.readouterr()
    monkeypatch.setattr(models_command, "run", raises(RuntimeError("a bug")))
    with pytest.raises(RuntimeError, match="a bug"):  # not a user's error: the traceback stays
        main(["models"])
