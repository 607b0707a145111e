"""Figures of a 3-D map of notes: the library coloured by a label, and a note's trajectory.

matplotlib only (Agg backend); each function writes one PNG and returns its path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mdsim.errors import InputError


def _axes3d(title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(6.4, 5.6), dpi=90)
    ax = fig.add_subplot(projection="3d")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("z1")
    ax.set_ylabel("z2")
    ax.set_zlabel("z3")
    return fig, ax, plt


def plot_map(z, labels, path, *, colour_by: str, title: str) -> Path:
    """Scatter of ``z`` ``(N, 3)``; categorical colours for text labels, a colour bar for numbers (pitch)."""
    fig, ax, plt = _axes3d(title)
    _scatter(fig, ax, plt, z, labels, colour_by)
    return _save(fig, plt, path)


def plot_map_pair(z, instrument, pitch, path, *, title: str) -> Path:
    """The same map twice, side by side: coloured by instrument and by pitch (the docs' figures)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(10.5, 4.6), dpi=90)
    fig.suptitle(title, fontsize=10)
    for i, (labels, name) in enumerate(((instrument, "instrument"), (pitch, "pitch")), start=1):
        ax = fig.add_subplot(1, 2, i, projection="3d")
        ax.set_title(f"by {name}", fontsize=9)
        _scatter(fig, ax, plt, z, labels, name)
    return _save(fig, plt, path)


def _check_3d(z) -> np.ndarray:
    z = np.asarray(z)
    if z.ndim != 2 or z.shape[1] != 3:
        raise InputError(f"a 3-D figure needs points of 3 coordinates, got shape {z.shape} "
                         "(a run trained with --output-dim other than 3 cannot be drawn)")
    return z


def _scatter(fig, ax, plt, z, labels, colour_by: str) -> None:
    z = _check_3d(z)
    labels = np.asarray(labels)
    if labels.dtype.kind in "iuf":
        ok = labels >= 0
        sc = ax.scatter(*z[ok].T, c=labels[ok], cmap="viridis", s=9, depthshade=False)
        fig.colorbar(sc, ax=ax, shrink=0.6, label=colour_by)
    else:
        for i, name in enumerate(sorted(set(labels))):
            pts = z[labels == name]
            ax.scatter(*pts.T, s=9, color=plt.get_cmap("tab10")(i % 10), label=name or "(none)",
                       depthshade=False)
        ax.legend(fontsize=7, loc="upper left", markerscale=1.5)


def _save(fig, plt, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_trajectory(points, path, *, context=None, frame_rate: float = 20.0, title: str) -> Path:
    """A note's path through the map window by window (colour: time): on the left over the
    library (grey), on the right alone, its axes fitted to the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = _check_3d(points)
    t = np.arange(len(points)) / frame_rate
    fig = plt.figure(figsize=(10.5, 4.6), dpi=90)
    fig.suptitle(title, fontsize=10)
    for i, zoomed in enumerate((False, True), start=1):
        ax = fig.add_subplot(1, 2, i, projection="3d")
        ax.set_title("alone, zoomed to the path" if zoomed else "over the library", fontsize=9)
        if context is not None and not zoomed:
            ax.scatter(*np.asarray(context).T, s=4, color="0.8", depthshade=False)
        ax.plot(*points.T, color="0.3", linewidth=0.8)
        sc = ax.scatter(*points.T, c=t, cmap="plasma", s=16, depthshade=False)
        ax.scatter(*points[0], marker="^", s=60, color="green", label="first window (attack)")
        ax.scatter(*points[-1], marker="s", s=50, color="black", label="last window (release)")
        if zoomed:
            fig.colorbar(sc, ax=ax, shrink=0.6, label="window start (s)")
        else:
            ax.legend(fontsize=7, loc="upper left")
    return _save(fig, plt, path)
