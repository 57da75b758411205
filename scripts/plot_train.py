#!/usr/bin/env python3
"""Training curves from `swiglubench train` JSON result files.

    scripts/plot_train.py RESULT.json [RESULT.json ...] [--out FILE.png] [--x train|wall]

Draws one PNG with two panels, one line per variant of every input (a run with --grads dx is
labelled "frozen"):

  left   training loss against time: each step's mean loss, smoothed over a window of 20 steps
         (thin line), and each epoch's mean loss (markers)
  right  test accuracy after each epoch against time

Time (--x) is `train` (default): the variant's cumulative training time measured with CUDA events,
evaluation excluded, so variants compare at equal work; or `wall`: the host time of the variant's
epochs, evaluation and copies included. A step's time is placed by linear interpolation within its
epoch. The PNG goes to --out, default <first input without .json>.png.

Exit codes: 0 ok, 2 an input file is missing, malformed or has no epoch rows.
"""

import argparse
import functools
import os

import plot_common
from plot_common import InputError, is_number, load_all, read_json

SMOOTH = 20  # steps in the moving average of the per-step loss

fail = functools.partial(plot_common.fail, "plot_train.py")


def load(path):
    """Returns (provenance, rows) of one result file; rows are the epoch rows, in file order."""
    doc = read_json(path)
    if not isinstance(doc, dict) or doc.get("schema") != "swiglubench-train/1":
        raise InputError(f'{path}: not a swiglubench train result (schema "swiglubench-train/1")')
    rows = doc.get("rows")
    if not isinstance(rows, list):
        raise InputError(f'{path}: no "rows" list')
    keys = ("variant", "epoch", "train_loss", "test_accuracy", "train_ms", "cum_train_s", "cum_wall_s")
    good = []
    for i, r in enumerate(rows):
        if not isinstance(r, dict) or not isinstance(r.get("variant"), str):
            raise InputError(f"{path}: row {i} is not an epoch row")
        missing = [k for k in keys[1:] if not is_number(r.get(k))]
        if missing:
            raise InputError(f"{path}: row {i} ({r['variant']}) lacks {', '.join(missing)}")
        good.append(r)
    if not good:
        raise InputError(f"{path}: no epoch rows (did the run finish an epoch?)")
    prov = doc.get("provenance") if isinstance(doc.get("provenance"), dict) else {}
    return prov, good


def series(rows, x_key):
    """Per variant: step times and losses, epoch times, epoch mean losses, test accuracies."""
    out = {}
    for r in sorted(rows, key=lambda r: r["epoch"]):
        s = out.setdefault(r["variant"], {"grads": r.get("grads", ""), "step_t": [], "step_loss": [],
                                          "epoch_t": [], "epoch_loss": [], "accuracy": []})
        end = r[x_key]
        # The epoch's own duration on the chosen clock: training time, or the wall time's share.
        span = r["train_ms"] / 1e3 if x_key == "cum_train_s" else None
        if span is None:
            prev = s["epoch_t"][-1] if s["epoch_t"] else 0.0
            span = end - prev
        steps = [l for l in r.get("step_loss") or [] if is_number(l)]
        for k, loss in enumerate(steps):
            s["step_t"].append(end - span + span * (k + 1) / len(steps))
            s["step_loss"].append(loss)
        s["epoch_t"].append(end)
        s["epoch_loss"].append(r["train_loss"])
        s["accuracy"].append(r["test_accuracy"])
    return out


def smooth(values, window):
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("inputs", nargs="+", help="swiglubench train JSON files")
    ap.add_argument("--out", help="the PNG to write [default: <first input>.png]")
    ap.add_argument("--x", choices=("train", "wall"), default="train",
                    help="time axis: cumulative training time (CUDA events) or host wall time")
    args = ap.parse_args()

    loaded = load_all(args.inputs, load, fail)

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        fail("matplotlib is needed: pip install matplotlib, or apt-get install python3-matplotlib")

    x_key = "cum_train_s" if args.x == "train" else "cum_wall_s"
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(13, 5))
    titles = set()
    color = 0
    for path, prov, rows in loaded:
        training = prov.get("training", {}) if isinstance(prov.get("training"), dict) else {}
        device = (prov.get("device") or {}).get("name", "") if isinstance(prov.get("device"), dict) else ""
        titles.add(f"{device}: {training.get('model', '?')}\n{training.get('dtype', '?')}, "
                   f"batch {training.get('batch', '?')}, {training.get('optimizer', '?')} "
                   f"lr {training.get('lr', '?')}")
        for variant, s in series(rows, x_key).items():
            label = variant + (" frozen" if s["grads"] == "dx" else "")
            if len(loaded) > 1:
                label += f" ({os.path.basename(path)})"
            c = f"C{color % 10}"
            color += 1
            if s["step_loss"]:
                ax_loss.plot(s["step_t"], smooth(s["step_loss"], SMOOTH), color=c, linewidth=0.8,
                             alpha=0.7)
            ax_loss.plot(s["epoch_t"], s["epoch_loss"], color=c, marker="o", linestyle="--",
                         label=label)
            ax_acc.plot(s["epoch_t"], s["accuracy"], color=c, marker="o", label=label)

    xlabel = ("cumulative training time, s (CUDA events)" if args.x == "train"
              else "wall time, s (training, evaluation and copies)")
    ax_loss.set_xlabel(xlabel)
    ax_loss.set_ylabel(f"training loss (line: steps, {SMOOTH}-step mean; markers: epoch mean)")
    ax_loss.set_yscale("log")
    ax_loss.grid(True, which="both", alpha=0.3)
    ax_loss.legend()
    ax_acc.set_xlabel(xlabel)
    ax_acc.set_ylabel("test accuracy")
    ax_acc.grid(True, alpha=0.3)
    ax_acc.legend(loc="lower right")
    fig.suptitle("swiglubench train on Fashion-MNIST\n" + "\n".join(sorted(titles)), fontsize=10)
    fig.tight_layout()
    out = args.out or os.path.splitext(args.inputs[0])[0] + ".png"
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=120)
    print(out)


if __name__ == "__main__":
    main()
