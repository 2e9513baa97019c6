"""The ``facelite`` command. Each sub-command lives in :mod:`facelite.commands` as a module with
``register(subparsers)``; this file only assembles them. Command modules import heavy
dependencies (torch, matplotlib) inside their ``run`` functions so that ``--help`` stays fast."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from . import __version__

# Sub-command modules, in the order ``facelite --help`` lists them.
COMMANDS = ("detect", "eval", "train", "export", "bench", "video", "align", "blur", "serve", "models", "augment_preview", "pseudolabel")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facelite",
        description="Real-time face and 5-landmark detection on CPUs.",
    )
    parser.add_argument("--version", action="version", version=f"facelite {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"facelite.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"facelite.commands.{name}":
                continue  # command not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    import warnings

    from .quiet import separate_python_stderr

    def one_line(message, category, filename, lineno, file=None, line=None) -> None:
        print(f"facelite {args.command}: warning: {message}", file=sys.stderr, flush=True)

    try:
        with separate_python_stderr(), warnings.catch_warnings():  # facelite/quiet.py; warnings in one line
            warnings.showwarning = one_line
            rc = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed stdout shows here, not in the interpreter's exit
        return rc
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of stdout went away (`facelite models | head -1`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141  # 128 + SIGPIPE, as a shell reports it
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"facelite {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
