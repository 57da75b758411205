"""What plot_results.py and plot_train.py share: reading JSON result files, and the exit on a bad
input (code 2, "<script>: error: <message>" on stderr)."""

import json
import math
import sys


class InputError(Exception):
    """A problem with one input file; the message names the file."""


def fail(prog, message):
    print(f"{prog}: error: {message}", file=sys.stderr)
    sys.exit(2)


def is_number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def read_json(path):
    """The parsed document of `path`; raises InputError for a missing, unreadable or malformed file."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read: {e}")
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not valid JSON: {e}")


def load_all(paths, load, fail):
    """[(path, *load(path)) for each path]; the first InputError goes to fail()."""
    loaded = []
    for path in paths:
        try:
            loaded.append((path,) + load(path))
        except InputError as e:
            fail(str(e))
    return loaded
