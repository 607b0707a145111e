"""Argument types and helpers that more than one command uses."""

from __future__ import annotations

import argparse


def name_list(text: str) -> tuple:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 1 or more, got {value}")
    return value


def pair_shares(text: str) -> dict:
    """``"key=3,tempo=2"`` as ``{"key": 3, "tempo": 2}``."""
    out = {}
    for item in name_list(text):
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise argparse.ArgumentTypeError(f"expected DIM=N, got {item!r} (e.g. key=3)")
        out[name.strip()] = positive_int(value.strip())
    return out


def read_track_list(path):
    import json
    from pathlib import Path

    text = Path(path).read_text()
    if str(path).endswith(".json"):
        return json.loads(text)["validation"]
    return [line.strip() for line in text.splitlines() if line.strip()]
