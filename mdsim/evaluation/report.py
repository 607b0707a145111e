"""Reports of evaluation results: JSON, Markdown tables like the paper's Table 2, radar charts.

Every function takes the dict :func:`mdsim.evaluation.evaluate` returns (or
several of them, to compare models) and nothing else.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from mdsim.errors import InputError
from mdsim.evaluation.scores import RESULT_SCHEMA
from mdsim.labels import DIMENSIONS

#: Schema tag of a file holding several results side by side.
COMPARISON_SCHEMA = "mdsim.comparison/1"
#: Column titles of the paper's Table 2; other subspace names are capitalised.
_TITLES = {"genre": "Genre", "mood": "Mood", "instrument": "Inst.", "era": "Era", "tempo": "Tempo", "key": "Key"}
_CHECK = "\u2713"


def title(dimension: str) -> str:
    return _TITLES.get(dimension, dimension.capitalize())


# --------------------------------------------------------------------------------------
# JSON


def write_json(path, result) -> Path:
    """Write one result (a dict) or several (a list, as a comparison) as JSON."""
    path = Path(path)
    payload = {"schema": COMPARISON_SCHEMA, "results": list(result)} if isinstance(result, list) else result
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def read_results(path) -> list[dict]:
    """The result(s) in a JSON file written by :func:`write_json`, as a list."""
    path = Path(path)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read evaluation results {path}: {e}") from None
    results = payload.get("results") if payload.get("schema") == COMPARISON_SCHEMA else [payload]
    for r in results or [None]:
        if not isinstance(r, dict) or r.get("schema") != RESULT_SCHEMA:
            raise InputError(f"{path} does not hold mdsim evaluation results (schema {RESULT_SCHEMA})")
    return results


# --------------------------------------------------------------------------------------
# Markdown


def format_score(entry: dict | None, *, missing: str = "\u2013") -> str:
    """``0.8380 [0.801, 0.870]``: a result entry's score with its interval; ``missing`` for None.

    >>> format_score({"score": 0.838, "ci_low": 0.8012, "ci_high": 0.87})
    '0.8380 [0.801, 0.870]'
    >>> format_score({"score": 0.5, "ci_low": None}), format_score(None, missing="not run")
    ('0.5000', 'not run')
    """
    if entry is None:
        return missing
    text = f"{entry['score']:.4f}"
    if entry.get("ci_low") is not None:
        text += f" [{entry['ci_low']:.3f}, {entry['ci_high']:.3f}]"
    return text


def _singles(result: dict) -> dict:
    return {c["dims"][0]: c for c in result["combinations"] if len(c["dims"]) == 1}


def _distance_words(result: dict) -> str:
    return {"euclidean": "Euclidean distance on the raw slices (the paper's protocol)",
            "normalised-euclidean": "Euclidean distance on L2-normalised slices (per-subspace cosine)"}.get(
        result.get("distance"), f"{result.get('distance')} distance")


def markdown_table(result: dict, *, top: int | None = None) -> str:
    """The ranked combinations of one result, with a check-mark column per dimension.

    Like the paper's Table 2: the ``top`` best combinations (all when
    ``None``), then the single dimensions in their own table. Scores carry
    their bootstrap interval in brackets.
    """
    t = result["triplets"]
    lines = [f"## {result['model']}", "",
             f"{t['n_scored']} triplets scored ({result['mode']} mode, {_distance_words(result)}, ties count as "
             f"incorrect; {t['n_read']} read, {t['n_kept']} kept, {t['n_dropped_missing']} dropped for "
             f"{len(result['missing_tracks'])} missing tracks).", "",
             f"Full embedding: **{format_score(result['full'])}**", ""]
    dims = result["dimensions"]
    if not dims:
        lines.append("No named subspaces: only the full embedding is scored.")
        return "\n".join(lines) + "\n"
    ranked = result["combinations"] if top is None else result["combinations"][:top]
    singles = sorted(_singles(result).values(), key=lambda c: dims.index(c["dims"][0]))
    for heading, rows in (("Combinations of subspaces, best first", ranked), ("Single subspaces", singles)):
        lines += [f"### {heading}", "",
                  "| Rank | " + " | ".join(title(d) for d in dims) + " | Triplet score [95 % CI] |",
                  "|---:|" + ":-:|" * len(dims) + "---:|"]
        for c in rows:
            marks = " | ".join(_CHECK if d in c["dims"] else "" for d in dims)
            lines.append(f"| {c['rank']} | {marks} | {format_score(c)} |")
        lines.append("")
    return "\n".join(lines)


def compare_table(results: list[dict], *, rows: str = "singles") -> str:
    """Several results side by side: one column per model, one row per combination.

    ``rows="singles"``: the full embedding and each single subspace;
    ``rows="all"``: every combination any model has, in the first model's
    ranking (others' extra combinations after). A cell is empty ("–") when
    the model has no such subspace.
    """
    if rows not in ("singles", "all"):
        raise InputError(f"rows is {rows!r}, expected 'singles' or 'all'")
    results = list(results)
    if not results:
        raise InputError("nothing to compare: give at least one result")
    by_model = [{tuple(c["dims"]): c for c in r["combinations"]} for r in results]
    keys: list[tuple] = []
    if rows == "singles":
        keys = [(d,) for d in _dimension_union(results)]
    else:
        for r in results:
            keys += [tuple(c["dims"]) for c in r["combinations"] if tuple(c["dims"]) not in keys]
    names = [r["model"] for r in results]
    lines = ["| Subspaces | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names),
             "| Full embedding | " + " | ".join(format_score(r["full"]) for r in results) + " |"]
    for key in keys:
        lines.append(f"| {' + '.join(title(d) for d in key)} | "
                     + " | ".join(format_score(table.get(key)) for table in by_model) + " |")
    lines += ["| Triplets scored | " + " | ".join(str(r["triplets"]["n_scored"]) for r in results) + " |", ""]
    if len({r["triplets"]["n_scored"] for r in results}) > 1:
        lines += ["Note: the models were scored on different numbers of triplets (their embeddings cover "
                  "different tracks), so their scores are not directly comparable.", ""]
    return "\n".join(lines)


def _dimension_union(results) -> list[str]:
    """Dimensions of all results: the canonical ones in canonical order, then others as met."""
    seen = [d for r in results for d in r["dimensions"]]
    return [d for d in DIMENSIONS if d in seen] + list(dict.fromkeys(d for d in seen if d not in DIMENSIONS))


# --------------------------------------------------------------------------------------
# Radar (Kiviat) chart


def radar_chart(results, path, *, title_text: str | None = None) -> Path:
    """Draw the single-subspace scores of one or several results as a radar chart (PNG).

    One axis per dimension, one polygon per model, the bootstrap interval as
    a radial bar at each vertex. The radius starts at 0.5 (chance) unless a
    score is lower. Uses the Agg canvas directly, never pyplot.
    """
    results = [results] if isinstance(results, dict) else list(results)
    dims = _dimension_union(results)
    if not dims:
        raise InputError("no named subspaces in the results: a radar chart needs single-dimension scores")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    angles = [2 * math.pi * i / len(dims) for i in range(len(dims))]
    fig = Figure(figsize=(5.5, 5.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(projection="polar")
    ax.set_theta_offset(math.pi / 2)
    ax.set_theta_direction(-1)
    lowest = 1.0
    for i, r in enumerate(results):
        singles = _singles(r)
        colour = f"C{i % 10}"
        # A model without some dimension gets a gap there (NaN), not a chord across the chart.
        radius = [singles[d]["score"] if d in singles else math.nan for d in dims]
        ax.plot(angles + angles[:1], radius + radius[:1], "o-", color=colour, linewidth=1.5, label=r["model"])
        if len(singles) == len(dims):
            ax.fill(angles, radius, color=colour, alpha=0.12)
        for a, c in ((a, singles[d]) for a, d in zip(angles, dims) if d in singles):
            if c.get("ci_low") is not None:
                ax.plot([a, a], [c["ci_low"], c["ci_high"]], color=colour, linewidth=3, alpha=0.5)
                lowest = min(lowest, c["ci_low"])
            lowest = min(lowest, c["score"])
    inner = min(0.5, math.floor(lowest * 10) / 10)
    ax.set_ylim(inner, 1.0)
    ax.set_xticks(angles)
    ax.set_xticklabels([title(d) for d in dims])
    ax.set_title(title_text or "Triplet score per subspace", pad=18)
    if len(results) > 1:
        ax.legend(loc="upper right", bbox_to_anchor=(1.25, 1.12), fontsize="small")
    path = Path(path)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


# --------------------------------------------------------------------------------------
# Everything at once


def write_report(results, out_dir, *, name: str = "evaluation", top: int | None = None) -> dict:
    """Write ``<name>.json``, ``<name>.md`` and (with named subspaces) ``<name>_radar.png``.

    ``results`` is one result (dict) or several (list: a comparison, one
    table and one chart for all). Returns ``{"json": path, "markdown":
    path, "radar": path or None}``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    several = isinstance(results, (list, tuple))
    items = list(results) if several else [results]
    if several:
        text = "# Comparison\n\n" + compare_table(items, rows="singles") + "\n" + \
            "## All combinations\n\n" + compare_table(items, rows="all")
    else:
        text = markdown_table(results, top=top)
    paths = {"json": write_json(out_dir / f"{name}.json", items if several else results),
             "markdown": out_dir / f"{name}.md", "radar": None}
    paths["markdown"].write_text(text, encoding="utf-8")
    if any(r["dimensions"] for r in items):
        paths["radar"] = radar_chart(items, out_dir / f"{name}_radar.png")
    return paths
