"""mAP-vs-timesteps plots of SNN results, with the ANN they were converted from as reference.

A results dict has the schema::

    {"dataset": "coco-tiny", "method": "...",
     "ann": {"map50_95": 0.37, "map50": 0.52, ...},
     "snn": {"4": {"map50_95": 0.20, "map50": 0.31, ...}, "8": {...}, ...}}

``snn`` keys are timesteps T (strings, as json keys are, or ints).
"""
from __future__ import annotations

from pathlib import Path

# Figure + the Agg canvas directly, not pyplot: no display needed and no global backend switched.
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["method_colours", "plot_map_vs_timesteps", "plot_methods"]

_METRICS = {"map50_95": "mAP50-95", "map50": "mAP50"}


def _metric(entry: object, key: str, where: str) -> float:
    if not isinstance(entry, dict) or not isinstance(entry.get(key), (int, float)):
        raise ValueError(f"results: {where} has no number {key!r}")
    return float(entry[key])


def _curve(results: dict, key: str, x: str = "T") -> tuple[list[int], list[float], float]:
    """(x values, SNN values, ANN value) of one metric, sorted by x: the timesteps T, or (``x="steps_total"``)
    the steps each T really simulated."""
    snn = results.get("snn") if isinstance(results, dict) else None
    if not isinstance(snn, dict) or not snn:
        raise ValueError("results: 'snn' must be a non-empty dict {timesteps: metrics}")
    points = []
    for t, entry in snn.items():
        try:
            steps = int(t)
        except (TypeError, ValueError):
            raise ValueError(f"results: snn key {t!r} is not an integer number of timesteps") from None
        if steps < 1:
            raise ValueError(f"results: snn key {t!r} must be >= 1 timestep")
        if x == "steps_total":
            steps = int(_metric(entry, "steps_total", f"snn[{t!r}]"))
        points.append((steps, _metric(entry, key, f"snn[{t!r}]")))
    points.sort()
    return [t for t, _ in points], [v for _, v in points], _metric(results.get("ann"), key, "'ann'")


def _new_axes(title: str, xlabel: str = "timesteps T", *, width: float = 6.4):
    fig = Figure(figsize=(width, 4.4), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.set_xscale("log", base=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("mAP")
    ax.grid(True, alpha=0.3)
    return fig, ax


def _save(fig: Figure, ax, steps: set[int], path: str | Path, *, legend_outside: bool = False) -> Path:
    ticks = sorted(steps)
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off()  # log-axis minor ticks would add unlabelled marks between the T values
    if legend_outside:  # many lines: a legend inside would cover them
        fig.legend(loc="outside right upper", fontsize="small")
    else:
        ax.legend(fontsize="small")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def plot_map_vs_timesteps(results: dict, path: str | Path) -> Path:
    """PNG of SNN mAP50-95 and mAP50 vs T; the ANN values as dashed lines of the same colour."""
    title = f"{results.get('dataset', '?')} - {results.get('method', '?')}" if isinstance(results, dict) else ""
    fig, ax = _new_axes(title)
    steps: set[int] = set()
    for colour, (key, name) in zip(("C0", "C1"), _METRICS.items()):
        ts, values, ann = _curve(results, key)
        ax.plot(ts, values, marker="o", color=colour, label=f"SNN {name}")
        ax.axhline(ann, linestyle="--", color=colour, label=f"ANN {name}")
        steps.update(ts)
    return _save(fig, ax, steps, path)


def method_colours(count: int) -> list:
    """``count`` distinct colours: matplotlib's 10-colour cycle, or tab20 beyond 10 lines (up to 20 distinct)."""
    if count <= 10:
        return [f"C{i}" for i in range(count)]
    tab20 = colormaps["tab20"]
    return [tab20(i % 20) for i in range(count)]


def plot_methods(results_by_method: dict[str, dict], path: str | Path, *, x: str = "T") -> Path:
    """PNG of SNN mAP50-95 vs T (or ``x="steps_total"``: vs the steps each simulation really took), one line per
    method; each distinct ANN value as one dashed line, in the colour of the first method converted from it."""
    if x not in ("T", "steps_total"):
        raise ValueError(f"x must be 'T' or 'steps_total', got {x!r}")
    if not isinstance(results_by_method, dict) or not results_by_method:
        raise ValueError("results_by_method must be a non-empty dict {method: results}")
    datasets = sorted({str(r.get("dataset", "?")) for r in results_by_method.values() if isinstance(r, dict)})
    many = len(results_by_method) > 4
    fig, ax = _new_axes(f"{', '.join(datasets)} - mAP50-95 by method", "timesteps T" if x == "T" else "steps_total",
                        width=9.6 if many else 6.4)
    steps: set[int] = set()
    anns: set[float] = set()
    for colour, (method, results) in zip(method_colours(len(results_by_method)), results_by_method.items()):
        try:
            ts, values, ann = _curve(results, "map50_95", x)
        except ValueError as err:
            raise ValueError(f"method {method!r}: {err}") from None
        ax.plot(ts, values, marker="o", color=colour, label=f"{method} (SNN)")
        reference = round(ann, 6)  # fine-tuned rows share their ANN: one reference line, not one per row
        if reference not in anns:
            anns.add(reference)
            ax.axhline(ann, linestyle="--", color=colour, label=f"{method} (ANN)")
        steps.update(ts)
    return _save(fig, ax, steps, path, legend_outside=many)
