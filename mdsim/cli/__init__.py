"""The ``mdsim`` command: a thin shell over the library, one module per subcommand.

Each module of this package adds its subcommand's parser (``add_parser``) and runs it
(``run``: parse, one call into the library, print); ``options`` holds what several share.

Nothing here imports TensorFlow or Keras at module level: ``mdsim --help``
and ``mdsim prep`` stay light; only subcommands that run a network load it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys

from mdsim import __version__
from mdsim.cli import (analyze, embed, evaluate, index, inspect, manifold, playlist, prep, pretrain, search, serve,
                       train, triplets)
from mdsim.errors import MdsimError, Terminated
from mdsim.native_log import quiet_tensorflow_start

#: The subcommands, in the order of ``mdsim --help``.
COMMANDS = (prep, inspect, train, pretrain, embed, triplets, evaluate, index, search, playlist, serve, analyze, manifold)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mdsim",
        description="Multi-dimensional music similarity: features, training, evaluation and "
                    "subspace embeddings (genre, mood, instrument, era, tempo, key).")
    parser.add_argument("--version", action="version", version=f"mdsim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def help_markdown() -> str:
    """The CLI reference (docs/cli.md): every subcommand's ``--help``, at 100 columns."""
    import os

    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"
    try:
        parser = build_parser()
        out = ["# Command-line reference", "",
               "Generated from `mdsim COMMAND --help` by `python -m mdsim.cli --markdown`; "
               "a test keeps it in sync.", "", "```", parser.format_help().rstrip(), "```", ""]
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        for name, p in sub.choices.items():
            out += [f"## mdsim {name}", "", "```", p.format_help().rstrip(), "```", ""]
            nested = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
            for group in nested:  # a command group: each of its commands too
                for inner, q in group.choices.items():
                    out += [f"### mdsim {name} {inner}", "", "```", q.format_help().rstrip(), "```", ""]
        return "\n".join(out)
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old


def parse_args(argv=None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def _raise_terminated(signum, frame) -> None:
    # One stop request is enough: further ones (a supervisor repeating itself) must not break
    # the commit that the first one started; SIGKILL still ends the process at once. The request
    # is remembered, for the loops that check it (mdsim.errors.Terminated).
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    Terminated.requested = True
    raise Terminated


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM becomes :class:`Terminated` in the main thread while the command runs.

    Left alone where the caller ignores SIGTERM or set a handler of its own, and outside
    the main thread (where Python cannot set one); the previous handler is restored after."""
    try:
        previous = signal.getsignal(signal.SIGTERM)
        if previous != signal.SIG_DFL:
            previous = None
        else:
            signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # main() called from a thread other than the main one
        previous = None
    try:
        yield
    finally:
        Terminated.requested = False
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def main(argv=None) -> int:
    """Run the ``mdsim`` command; returns the exit status."""
    args = parse_args(argv)
    import warnings

    # A user's warning is a sentence, not a source line.
    warnings.formatwarning = lambda message, category, *a, **k: f"mdsim {args.command}: warning: {message}\n"
    quiet_tensorflow_start()  # TensorFlow's native start-up lines are noise on a user's terminal
    try:
        with _sigterm_as_interrupt():
            return args.run(args)
    except MdsimError as e:
        print(f"mdsim {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        how = "terminated (SIGTERM)" if isinstance(e, Terminated) else "interrupted"
        print(f"mdsim {args.command}: {how}; finished work is kept, run the same command to resume",
              file=sys.stderr)
        return 143 if isinstance(e, Terminated) else 130
    except BrokenPipeError:  # the reader left (`mdsim inspect STORE | head`): stop quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
        return 141
