"""The ``kakudai`` command: thin argument parsing over the Python API.

One module per subcommand (``eval``, ``upscale``, ``denoise``, ``compare``, ``serve``,
``train``, ``models``, ``bench``, ``export``, ``render``), each with ``add_parser(sub)``
and ``run(args) -> exit code``. Shared pieces: :mod:`.errors` (the one-line error and
exit code), :mod:`.signals` (Ctrl-C / SIGTERM), :mod:`.batch` and :mod:`.jobs` (the
batch driver of ``upscale`` and ``denoise``, and one file of it). The argparse
``Namespace`` ends here: library code gets keyword arguments or typed options.

Importing this package loads nothing heavy; the subcommand modules are imported when
the parser is built, and they import torch, numpy or Pillow only when a command runs.
"""

from __future__ import annotations

import argparse
import sys

from .. import __version__

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    from . import bench, compare, denoise, export, models, render, serve, train, upscale
    from . import eval as eval_

    p = argparse.ArgumentParser(prog="kakudai", description="Deep-learning image super-resolution on a CPU.")
    p.add_argument("--version", action="version", version=f"kakudai {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    for command in (eval_, upscale, denoise, compare, serve, train, models, bench, export, render):
        command.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); returns the exit code.

    Errors that describe themselves (a weights file, an image or video that cannot be
    read or written) reach here as one line and exit 1 wherever the command raised
    them; Ctrl-C exits 130 (commands that write files clean up first).
    """
    from .errors import fail, is_instance, say
    from .signals import Terminated, exit_code

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (KeyboardInterrupt, Terminated) as e:  # a command that writes files has cleaned up already
        say("kakudai: interrupted")
        return exit_code(e)
    except Exception as e:
        if any(is_instance(e, module, name) for module, name in _SELF_DESCRIBING):
            return fail(e)
        raise


# Exceptions whose message names the file (or model) and the reason: printed as they are.
_SELF_DESCRIBING = (("kakudai.checkpoint", "WeightsError"), ("kakudai.data.io", "ImageReadError"),
                    ("kakudai.data.io", "ImageWriteError"), ("kakudai.infer.video", "VideoError"))


if __name__ == "__main__":
    sys.exit(main())
