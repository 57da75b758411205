#!/usr/bin/env python3
"""Charts from swiglubench JSON result files.

    scripts/plot_results.py RESULT.json [RESULT.json ...] [--out DIR]

For each input file, with <config> its stem (forward_mnist for results/h200/forward_mnist.json):

  speedup_<config>.png  fused forward speedup over cublas2 (solid) and cublas1 (dashed) against the
                        batch B, one line per shape family (I, D), one panel per dtype.
  tflops_<config>.png   TFLOP/s of fused, cublas2 and cublas1 against B: one row of panels per
                        dtype, one column per shape family, and the measured GEMM peak
                        (provenance.peak) on the panels of its dtype.
  memory_<config>.png   bytes saved for the backward pass and workspace per policy and baseline,
                        per case, from rows with op == "memory" (skipped, with a note, if none).

Only PASS rows are plotted; FAIL/ERROR/SKIP rows and rows without a median time are skipped. When a
case has several fused rows (a block sweep with --tiles all), the fastest tile stands for it and the
title says so. Exit codes: 0 ok, 2 an input file is missing, malformed or has nothing to plot.
"""

import argparse
import functools
import math
import os
import sys
from collections import defaultdict

import plot_common
from plot_common import InputError, is_number, load_all, read_json

DTYPE_ORDER = {"bf16": 0, "fp16": 1, "fp32": 2}
VARIANT_STYLE = {  # how each variant is drawn in the TFLOP/s chart
    "fused": dict(color="C3", linestyle="-", marker="o"),
    "cublas2": dict(color="C0", linestyle="--", marker="s"),
    "cublas1": dict(color="C2", linestyle=":", marker="^"),
}

fail = functools.partial(plot_common.fail, "plot_results.py")


# --- reading -------------------------------------------------------------------------------------

def load(path):
    doc = read_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("rows"), list):
        raise InputError(
            f'{path}: not a swiglubench result (expected an object with a "rows" list)')
    prov = doc.get("provenance")
    if not isinstance(prov, dict):
        prov = {}
    rows = [r for r in doc["rows"] if isinstance(r, dict)]
    timed = [r for r in rows if is_timed(r)]
    memory = [r for r in rows if is_memory(r)]
    if not timed and not memory:
        raise InputError(f"{path}: no timed rows (PASS with a median time) and no memory rows "
                         f"among {len(rows)} rows")
    return prov, timed, memory


def passed(row):
    return row.get("status", "PASS") == "PASS"


def is_timed(row):
    return (row.get("op", "forward") == "forward" and passed(row)
            and is_number(row.get("median_ms")) and row["median_ms"] > 0
            and all(is_number(row.get(k)) for k in ("batch", "in", "hidden")))


def is_memory(row):
    # A fused row needs its policy; a baseline row (variant cublas2/cublas1) may have none.
    has_policy = isinstance(row.get("policy"), str) and row["policy"] != ""
    return (row.get("op") == "memory" and passed(row)
            and (has_policy or row.get("variant", "fused") != "fused")
            and is_number(row.get("saved_bytes")) and is_number(row.get("workspace_bytes")))


def panel_key(row):
    """The dtype panel a row belongs to: "bf16", or "fp32 tf32" / "fp32 3xtf32" for fp32 on tensor
    cores."""
    dtype = str(row.get("dtype", "?"))
    math_mode = row.get("math")
    return f"{dtype} {math_mode}" if dtype == "fp32" and math_mode in ("tf32", "3xtf32") else dtype


def panel_order(key):
    dtype, _, math_mode = key.partition(" ")
    return (DTYPE_ORDER.get(dtype, 9), dtype, math_mode)


def family_key(row):
    return (int(row["in"]), int(row["hidden"]), str(row.get("layout", "linear")),
            bool(row.get("bias")))


def family_label(fam, all_families):
    i, d, layout, bias = fam
    label = f"I={i}, D={d}"
    # Layout and bias only where the file mixes them, so the common case stays short.
    if len({f[2] for f in all_families}) > 1:
        label += f", {layout}"
    if len({f[3] for f in all_families}) > 1:
        label += ", bias" if bias else ", no bias"
    return label


def case_key(row):
    return (panel_key(row), family_key(row), int(row["batch"]), int(row.get("ldx") or row["in"]))


def best_per_case(rows):
    """{case: {variant: row}}, keeping the fastest row where a case has several of one variant."""
    cases = defaultdict(dict)
    tiles = defaultdict(int)
    for r in rows:
        c, v = case_key(r), str(r.get("variant", "?"))
        if v == "fused":
            tiles[c] += 1
        old = cases[c].get(v)
        if old is None or r["median_ms"] < old["median_ms"]:
            cases[c][v] = r
    return cases, max(tiles.values(), default=0)


# --- titles --------------------------------------------------------------------------------------

def short_sha(prov):
    sha = str(prov.get("git_sha") or "unknown")
    dirty = sha.endswith("-dirty")
    base = sha[: -len("-dirty")] if dirty else sha
    if len(base) == 40 and all(c in "0123456789abcdef" for c in base.lower()):
        base = base[:7]
    return base + ("-dirty" if dirty else "")


def device_name(prov):
    dev = prov.get("device")
    name = dev.get("name") if isinstance(dev, dict) else None
    return str(name) if name else "unknown device"


def timing_note(prov):
    t = prov.get("timing")
    if not isinstance(t, dict):
        return ""
    l2 = "cold L2" if t.get("cold_l2", True) else "hot L2"
    if t.get("cuda_graph", False):
        l2 += ", CUDA-graph replays"
    return f"{l2}, median of \u2265{t['min_samples']} samples" if "min_samples" in t else l2


def peak_of(prov):
    p = prov.get("peak")
    if isinstance(p, dict) and is_number(p.get("tflops")) and isinstance(p.get("dtype"), str):
        return p
    return None


# --- charts --------------------------------------------------------------------------------------

def batch_axis(ax, batches):
    from matplotlib.ticker import FixedLocator, NullLocator

    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(batches))
    ax.xaxis.set_minor_locator(NullLocator())
    # Why rotate: neighbours one doubling apart (4096, 8192) overlap when their labels are long.
    crowded = any(b / a <= 2 and len(str(b)) >= 4 for a, b in zip(batches, batches[1:]))
    ax.set_xticklabels([str(b) for b in batches], rotation=45 if crowded or len(batches) > 8 else 0,
                       fontsize=9)
    if len(batches) == 1:
        ax.set_xlim(batches[0] / 2, batches[0] * 2)
    ax.set_xlabel("batch B (tokens)")
    ax.grid(True, which="major", alpha=0.3)


def plain(v, _pos=None):
    return f"{v:g}"


def label_log_minors(ax):
    """Plain-number labels on a log y axis (0.1, 20, 400 rather than 2x10^1); minor ticks are
    labelled only where the axis spans too little for the decades to be enough."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    lo, hi = ax.get_ylim()
    ratio = hi / lo if lo > 0 else math.inf
    mantissas = None if ratio <= 4 else {2, 3, 5} if ratio < 20 else set()

    def minor(v, _pos=None):
        m = round(v / 10 ** math.floor(math.log10(v) + 1e-9))
        return plain(v) if mantissas is None or m in mantissas else ""

    ax.yaxis.set_major_formatter(FuncFormatter(plain))
    ax.yaxis.set_minor_formatter(FuncFormatter(minor) if mantissas != set() else NullFormatter())
    ax.tick_params(axis="y", which="minor", labelsize=8)


def plot_speedup(plt, config, prov, rows, out_dir):
    cases, tiles = best_per_case(rows)
    # panel -> family -> [(B, vs cublas2, vs cublas1)]
    data = defaultdict(lambda: defaultdict(list))
    for (panel, fam, batch, _), by_variant in cases.items():
        fused = by_variant.get("fused")
        if fused is None:
            continue

        def speedup(base):
            # The run's own ratio (same interleaved timing); else the ratio of the two medians.
            field = fused.get(f"speedup_vs_{base}")
            if is_number(field):
                return field
            other = by_variant.get(base)
            return other["median_ms"] / fused["median_ms"] if other else math.nan

        s2, s1 = speedup("cublas2"), speedup("cublas1")
        if math.isfinite(s2) or math.isfinite(s1):
            data[panel][fam].append((batch, s2, s1))
    if not data:
        print(f"{config}: no fused row with a timed baseline in the same case; "
              "speedup chart skipped")
        return None

    panels = sorted(data, key=panel_order)
    families = sorted({f for p in data.values() for f in p})
    colors = {f: f"C{i % 10}" for i, f in enumerate(families)}
    fig, axes = plt.subplots(1, len(panels), figsize=(4.8 * len(panels) + 1.2, 5.0), sharey=True,
                             squeeze=False)
    for ax, panel in zip(axes[0], panels):
        batches = sorted({b for pts in data[panel].values() for b, _, _ in pts})
        for fam in sorted(data[panel]):
            pts = sorted(data[panel][fam])
            xs = [b for b, _, _ in pts]
            ax.plot(xs, [s2 for _, s2, _ in pts], color=colors[fam], marker="o", linestyle="-",
                    label=family_label(fam, families))
            ax.plot(xs, [s1 for _, _, s1 in pts], color=colors[fam], marker="o", markersize=3,
                    linestyle="--", alpha=0.8)
        ax.axhline(1.0, color="black", linewidth=1.0)
        batch_axis(ax, batches)
        ax.set_title(panel)
    axes[0][0].set_ylabel("speedup of fused (t_baseline / t_fused)")
    axes[0][0].set_ylim(bottom=0, top=max(1.15, axes[0][0].get_ylim()[1]))

    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=colors[f], marker="o", label=family_label(f, families))
               for f in families]

    def present(k):
        return any(math.isfinite(pt[k]) for p in data.values() for f in p.values() for pt in f)

    if present(1):
        handles.append(Line2D([], [], color="gray", linestyle="-",
                              label="vs cublas2 (2 GEMMs + gate)"))
    if present(2):
        handles.append(Line2D([], [], color="gray", linestyle="--",
                              label="vs cublas1 (1 GEMM + gate)"))
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False,
               fontsize=9)
    sub = timing_note(prov)
    if tiles > 1:
        sub += f"; fused: fastest of {tiles} tiles per case"
    fig.suptitle(f"Fused SwiGLU forward speedup over cuBLAS \u2014 {device_name(prov)}, "
                 f"git {short_sha(prov)} ({config})\n{sub}", fontsize=11)
    fig.tight_layout()
    return save(plt, fig, out_dir, f"speedup_{config}.png")


def plot_tflops(plt, config, prov, rows, out_dir):
    cases, tiles = best_per_case(rows)
    # (panel, family) -> variant -> [(B, TFLOP/s)]
    data = defaultdict(lambda: defaultdict(list))
    for (panel, fam, batch, _), by_variant in cases.items():
        for variant, r in by_variant.items():
            if is_number(r.get("tflops")):
                data[(panel, fam)][variant].append((batch, r["tflops"]))
    if not data:
        print(f"{config}: no row with TFLOP/s; TFLOP/s chart skipped")
        return None

    panels = sorted({p for p, _ in data}, key=panel_order)
    families = sorted({f for _, f in data})
    peak = peak_of(prov)
    fig, axes = plt.subplots(len(panels), len(families),
                             figsize=(3.9 * len(families) + 1.6, 3.3 * len(panels) + 0.9),
                             sharey="row", squeeze=False)
    for i, panel in enumerate(panels):
        for j, fam in enumerate(families):
            ax = axes[i][j]
            series = data.get((panel, fam))
            if not series:
                ax.set_visible(False)
                continue
            batches = sorted({b for pts in series.values() for b, _ in pts})
            order = sorted(series, key=lambda v: (list(VARIANT_STYLE).index(v)
                                                  if v in VARIANT_STYLE else 9, v))
            for variant in order:
                pts = sorted(series[variant])
                style = VARIANT_STYLE.get(variant, dict(color="gray", linestyle="-.", marker="x"))
                ax.plot([b for b, _ in pts], [t for _, t in pts], label=variant, markersize=4,
                        **style)
            if peak and panel == peak["dtype"]:
                ax.axhline(peak["tflops"], color="black", linestyle="-.", linewidth=1.0)
                ax.annotate(f"peak {peak['tflops']:.0f}", xy=(0.02, peak["tflops"] * 0.93),
                            xycoords=("axes fraction", "data"), va="top", fontsize=8)
            ax.set_yscale("log")
            batch_axis(ax, batches)
            ax.set_title(f"{panel}, {family_label(fam, families)}", fontsize=10)
            if j == 0:
                ax.set_ylabel("TFLOP/s (2\u00b7B\u00b7I\u00b72D / t)")
            if i != len(panels) - 1:
                ax.set_xlabel("")

    for ax in axes.flat:
        if ax.get_visible():
            label_log_minors(ax)  # after every panel of a shared row has its data

    from matplotlib.lines import Line2D

    handles = [Line2D([], [], label=v, markersize=4, **s) for v, s in VARIANT_STYLE.items()]
    if peak:
        handles.append(Line2D([], [], color="black", linestyle="-.",
                              label=f"measured {peak['dtype']} GEMM peak"))
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False,
               fontsize=9)
    if peak:
        shape = "\u00d7".join(str(peak.get(k, "?")) for k in ("m", "n", "k"))
        peak_note = f"peak: {peak['dtype']} cuBLAS GEMM {shape} at {peak['tflops']:.0f} TFLOP/s"
    else:
        peak_note = "peak not measured"
    sub = f"{timing_note(prov)}; {peak_note}"
    if tiles > 1:
        sub += f"; fused: fastest of {tiles} tiles"
    fig.suptitle(f"SwiGLU forward TFLOP/s \u2014 {device_name(prov)}, git {short_sha(prov)} "
                 f"({config})\n{sub}", fontsize=11)
    fig.tight_layout()
    return save(plt, fig, out_dir, f"tflops_{config}.png")


def byte_unit(largest):
    """The unit the memory axis counts in: the largest binary unit that the biggest bar reaches."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if largest >= scale:
            return unit, scale
    return "bytes", 1


def plot_memory(plt, config, prov, rows, out_dir):
    if not rows:
        print(f"{config}: no memory rows (op == \"memory\"); memory chart skipped")
        return None
    # A bar per fused policy and per baseline; a group of bars per case; a panel per dtype.
    def bar_name(r):
        v = str(r.get("variant") or "fused")
        if v == "fused":
            return r["policy"]
        return f"{v}: {r['policy']}" if r.get("policy") else v

    panels = defaultdict(lambda: defaultdict(dict))  # panel -> case -> bar -> row
    for r in rows:
        fam = family_key(r) if all(is_number(r.get(k)) for k in ("in", "hidden")) else None
        case = (fam, int(r["batch"]) if is_number(r.get("batch")) else 0)
        panels[panel_key(r)][case][bar_name(r)] = r
    bars = []
    for r in rows:  # first-seen order keeps the writer's policy order
        if bar_name(r) not in bars:
            bars.append(bar_name(r))
    fused_bars = {bar_name(r) for r in rows if str(r.get("variant") or "fused") == "fused"}
    bars.sort(key=lambda b: b not in fused_bars)  # fused policies first, then the baselines
    colors = {b: f"C{i % 10}" for i, b in enumerate(bars)}

    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter

    keys = sorted(panels, key=panel_order)
    widest = max(len(c) for c in panels.values())
    fig, axes = plt.subplots(len(keys), 1, figsize=(max(6.0, 0.5 * len(bars) * widest + 2.5),
                                                     3.6 * len(keys) + 0.8), squeeze=False)
    width = 0.8 / len(bars)
    for ax, key in zip(axes[:, 0], keys):
        cases = sorted(panels[key], key=lambda c: (c[0] or (0, 0, "", False), c[1]))
        unit, scale = byte_unit(max(float(r["saved_bytes"]) + float(r["workspace_bytes"])
                                    for c in cases for r in panels[key][c].values()))
        lows, totals = [], []
        for ci, case in enumerate(cases):
            for bi, b in enumerate(bars):
                r = panels[key][case].get(b)
                if r is None:
                    continue
                x = ci - 0.4 + width * (bi + 0.5)
                saved, ws = float(r["saved_bytes"]) / scale, float(r["workspace_bytes"]) / scale
                ax.bar(x, saved, width, color=colors[b], edgecolor="black", linewidth=0.4)
                ax.bar(x, ws, width, bottom=saved, color=colors[b], alpha=0.45, hatch="//",
                       edgecolor="black", linewidth=0.4)
                lows.append(saved if saved > 0 else ws)
                totals.append(saved + ws)
        positive = [t for t in lows + totals if t > 0]
        if positive and max(positive) / min(positive) > 100:
            # Why base 2 and a set floor: ticks read as 1, 4, 16 MiB; a bar from 0 has no bottom on
            # a log axis, so the axis starts below the smallest bar.
            ax.set_yscale("log", base=2)
            ax.set_ylim(bottom=min(positive) / 2, top=max(positive) * 1.5)
            ax.yaxis.set_major_formatter(FuncFormatter(plain))
        ax.set_xticks(range(len(cases)))
        labels = []
        for fam, batch in cases:
            labels.append(f"B={batch}" + (f"\nI={fam[0]} D={fam[1]}" if fam else ""))
        ax.set_xticklabels(labels, fontsize=8)
        ax.set_xlim(-0.6, len(cases) - 0.4)
        ax.set_title(key)
        ax.set_ylabel(unit)
        ax.grid(True, axis="y", alpha=0.3)
    handles = [Patch(facecolor=colors[b], edgecolor="black", label=b) for b in bars]
    handles += [Patch(facecolor="white", edgecolor="black", label="saved for backward"),
                Patch(facecolor="white", edgecolor="black", hatch="//", label="workspace")]
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False,
               fontsize=9)
    fig.suptitle(f"SwiGLU memory per policy \u2014 {device_name(prov)}, git {short_sha(prov)} "
                 f"({config})\nsolid: saved for the backward pass; hatched: workspace",
                 fontsize=11)
    fig.tight_layout()
    return save(plt, fig, out_dir, f"memory_{config}.png")


def save(plt, fig, out_dir, name):
    path = os.path.join(out_dir, name)
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    print(f"wrote {path}")
    return path


# --- main ----------------------------------------------------------------------------------------

def config_names(paths):
    """The file stems; a stem shared by several inputs gets its directory's name in front."""
    stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    names = []
    for p, s in zip(paths, stems):
        if stems.count(s) > 1:
            parent = os.path.basename(os.path.dirname(os.path.abspath(p))) or "root"
            names.append(f"{parent}_{s}")
        else:
            names.append(s)
    if len(set(names)) != len(names):
        fail("two inputs would write the same chart names: " + ", ".join(paths))
    return names


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Turn swiglubench JSON result files into PNG charts "
                    "(speedup, TFLOP/s, memory).")
    ap.add_argument("results", nargs="+", metavar="RESULT.json",
                    help="swiglubench JSON result file")
    ap.add_argument("--out", metavar="DIR",
                    help="where the PNGs go (default: the directory of the first input)")
    args = ap.parse_args(argv)

    loaded = load_all(args.results, load, fail)
    out_dir = args.out or os.path.dirname(os.path.abspath(args.results[0]))
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        fail(f"{out_dir}: cannot create the output directory: {e}")

    try:
        import matplotlib
    except ImportError:
        fail("matplotlib is not installed (pip install matplotlib, or apt-get install "
             "python3-matplotlib)")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for (_, prov, timed, memory), config in zip(loaded, config_names(args.results)):
        if timed:
            plot_speedup(plt, config, prov, timed, out_dir)
            plot_tflops(plt, config, prov, timed, out_dir)
        else:
            print(f"{config}: no timed rows; speedup and TFLOP/s charts skipped")
        plot_memory(plt, config, prov, memory, out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
