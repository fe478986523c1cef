"""The dose-paths figure: the tree of :func:`~escalade.simulations.paths.dose_paths`, drawn.

Enumerating paths (:mod:`escalade.simulations.paths`) needs only numpy and
pandas; drawing them needs matplotlib (``pip install escalade[reports]``), so
the figure lives in the reports layer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from escalade.simulations.atomic import replacing
from escalade.simulations.paths import DosePaths

__all__ = ["plot_paths"]


def plot_paths(paths: DosePaths, path: str | Path, *, dpi: int = 150, title: str | None = None) -> Path:
    """Draw the tree left to right and save it (format from the file suffix).

    Each node is a disc labelled with the next dose (``x`` = stop), coloured by
    that dose; edges carry the cohort's outcome letters; leaves are spread
    evenly top to bottom in the order of :attr:`DosePaths.table`. Needs
    matplotlib (``pip install escalade[reports]``).
    """
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on the install
        raise ModuleNotFoundError("plot_paths needs matplotlib: pip install 'escalade[reports]'") from exc
    df = paths.table
    node = df["node"].to_numpy(int)
    parent = df["parent"].fillna(0).to_numpy(int)
    depth = df["depth"].to_numpy(int)
    leaf = df["leaf"].to_numpy(bool)
    y = np.zeros(len(df) + 1)
    leaf_rank = np.cumsum(leaf) - 1
    y[node[leaf]] = leaf_rank[leaf]
    # internal nodes: mean of their children's positions (children have larger node numbers)
    for i in np.argsort(-node):
        if not leaf[i]:
            kids = node[parent == node[i]]
            y[node[i]] = (y[kids].min() + y[kids].max()) / 2
    n_leaves = int(leaf.sum())
    max_depth = int(depth.max())
    labels = n_leaves <= 120
    fig = Figure(figsize=(2.0 + 2.2 * max(max_depth, 1), min(max(3.0, 0.28 * n_leaves + 1.2), 300.0)))
    ax = fig.add_subplot()
    colours = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666"]
    for i in range(len(df)):
        if depth[i] == 0:
            continue
        x0, x1 = depth[i] - 1, depth[i]
        y0, y1 = y[parent[i]], y[node[i]]
        ax.plot([x0, x0 + 0.5, x1], [y0, y1, y1], color="#999999", lw=0.8, zorder=1)
        if labels:
            ax.text(x0 + 0.55, y1, df["outcome"].iat[i], fontsize=7, va="bottom", ha="left", family="monospace")
    for i in range(len(df)):
        stop = bool(df["stop"].iat[i])
        nxt = df["next_dose"].iat[i]
        colour = "#bbbbbb" if stop else colours[(int(nxt) - 1) % len(colours)]
        ax.scatter([depth[i]], [y[node[i]]], s=110, color=colour, zorder=2, edgecolors="white", linewidths=0.5)
        ax.text(depth[i], y[node[i]], "x" if stop else str(int(nxt)), fontsize=7, ha="center", va="center",
                color="black" if stop else "white", zorder=3, fontweight="bold")
    ax.set_xticks(range(max_depth + 1))
    ax.set_xticklabels(["now" if paths.history else "start"] + [f"cohort {k}" for k in range(1, max_depth + 1)])
    ax.set_yticks([])
    ax.invert_yaxis()
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.set_xlim(-0.3, max_depth + 0.4)
    ax.set_title(title or (f"{paths.design}: next dose after each outcome"
                           + (f" (after {paths.history})" if paths.history else "")
                           + "   [disc = next dose, x = stop]"), fontsize=9)
    fig.tight_layout()
    out = Path(path)
    fmt = out.suffix[1:].lower() or str(matplotlib.rcParams["savefig.format"])
    if not out.suffix:  # as matplotlib names it
        out = out.with_name(f"{out.name}.{fmt}")
    with replacing(out, out.suffix) as tmp:  # all or nothing (a full disk leaves no half-written figure)
        fig.savefig(tmp, dpi=dpi, format=fmt)
    return out
