"""Start-up of ``bladefl-theory``: ``kstar --M 4 --sigma2 0.1`` end to end against importing what it needs.

Run from the repository root: python benchmarks/bench_startup.py [--repeats N] [--compare TREE] [--json].

Every command is a fresh interpreter, run as the console script runs it. The commands run interleaved,
one after the other in each repetition (after one warm-up round that fills the file cache), so that a
change in load hits all alike; the output gives the median wall time of each, the median over the
repetitions of kstar's time divided by the baseline's in the same repetition, and the load average
before and after. The baseline is ``python -c "import sympy, scipy.special"``; the target is kstar within
2x of it. ``--compare TREE`` adds the same kstar run with ``PYTHONPATH=TREE`` (another checkout, e.g. the
code before a change), interleaved with the rest.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

#: The command line the target is about.
KSTAR = ["kstar", "--M", "4", "--sigma2", "0.1"]
#: What its answer needs: the calibrated form is a sympy expression, the bound's closed form uses Lambert W.
BASELINE = "import sympy, scipy.special"
_CONSOLE_SCRIPT = "import sys; from bladefl_theory.cli import main; sys.exit(main())"


def commands(compare: str | None = None) -> dict[str, tuple[list[str], dict[str, str] | None]]:
    """The command lines timed, by label, with the environment of each (None: this one)."""
    # -P: no current folder on sys.path (as for the console script), so PYTHONPATH decides which code runs.
    py = [sys.executable, "-P"]
    cli = [*py, "-c", _CONSOLE_SCRIPT]
    bound = [*KSTAR, "--profile", "default"]
    out: dict[str, tuple[list[str], dict[str, str] | None]] = {
        "python -c pass": ([*py, "-c", "pass"], None),
        f'python -c "{BASELINE}"': ([*py, "-c", BASELINE], None),
        "bladefl-theory --version": ([*cli, "--version"], None),
        "bladefl-theory " + " ".join(KSTAR): ([*cli, *KSTAR], None),
        "bladefl-theory " + " ".join(bound): ([*cli, *bound], None),
        "bladefl-theory " + " ".join(bound) + " --check": ([*cli, *bound, "--check"], None),
    }
    if compare:
        env = {**os.environ, "PYTHONPATH": os.path.abspath(compare)}
        out["bladefl-theory " + " ".join(KSTAR) + f" (PYTHONPATH={compare})"] = ([*cli, *KSTAR], env)
    return out


def wall(argv: list[str], env: dict[str, str] | None) -> float:
    """Seconds from start to exit of one command (its output discarded; a failure raises)."""
    t0 = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # not on Linux
        return None


def run(repeats: int = 7, compare: str | None = None) -> dict:
    """Median wall seconds of every command, and kstar against the baseline, interleaved ``repeats`` times."""
    cmds = commands(compare)
    load_before = load_average()
    for argv, env in cmds.values():  # warm-up: the file cache, .pyc files
        wall(argv, env)
    times: dict[str, list[float]] = {label: [] for label in cmds}
    for _ in range(repeats):
        for label, (argv, env) in cmds.items():
            times[label].append(wall(argv, env))
    baseline, kstar = f'python -c "{BASELINE}"', "bladefl-theory " + " ".join(KSTAR)
    ratios = [k / b for k, b in zip(times[kstar], times[baseline])]
    return {
        "seconds_median": {label: statistics.median(t) for label, t in times.items()},
        "seconds_min": {label: min(t) for label, t in times.items()},
        "kstar_over_baseline_median": statistics.median(ratios),
        "target": "kstar_over_baseline_median <= 2",
        "repeats": repeats,
        "load_before": load_before,
        "load_after": load_average(),
        "logical_cpus": os.cpu_count(),
        "python": sys.version.split()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7, help="interleaved repetitions (default 7)")
    parser.add_argument("--compare", metavar="TREE", help="also time kstar with PYTHONPATH=TREE")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    result = run(args.repeats, args.compare)
    if args.json:
        print(json.dumps(result))
        return
    print(f"load average before {result['load_before']}, after {result['load_after']} "
          f"({result['logical_cpus']} logical CPUs); {result['repeats']} interleaved repetitions")
    print(f"{'median':>8} {'min':>8}  command")
    for label, median in result["seconds_median"].items():
        print(f"{median:8.3f} {result['seconds_min'][label]:8.3f}  {label}")
    print(f"kstar / baseline, median of the per-repetition ratios: {result['kstar_over_baseline_median']:.2f} "
          "(target <= 2)")


if __name__ == "__main__":
    main()
