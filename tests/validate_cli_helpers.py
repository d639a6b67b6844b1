"""Helpers for tests of the bladefl-validate command line: invoke it, and make sure nothing computes."""

from __future__ import annotations

import math

import pytest
from click.testing import CliRunner

#: The options of a tiny deployment (K_max = 2) that the test data (conftest.data_root) can serve.
SMALL = ["--N", "4", "--M", "1", "--t-sum", "24", "--samples-per-client", "64", "--hidden", "16",
         "--difficulty-bits", "2", "--quiet"]


def separate_runner() -> CliRunner:
    """A click test runner that keeps stdout and stderr apart (click >= 8.2 always does)."""
    try:
        return CliRunner(mix_stderr=False)  # click < 8.2
    except TypeError:
        return CliRunner()


def invoke(args):
    """Run ``bladefl-validate ARGS`` in-process; stdout and stderr apart."""
    from bladefl_validate.cli import cli

    return separate_runner().invoke(cli, list(args), catch_exceptions=False)


def error_lines(result) -> list[str]:
    """The lines on stderr that are not warnings."""
    return [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("warning: ")]


def assert_bad_input(result, fragment: str = "") -> None:
    """Status 2, exactly one error line (naming ``fragment``), no traceback."""
    assert "Traceback" not in result.output and "Traceback" not in result.stderr, result.stderr
    errors = error_lines(result)
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    assert len(errors) == 1 and errors[0].startswith("bladefl-validate: error: "), result.stderr
    assert fragment in errors[0], (fragment, errors[0])


def forbid_computation(monkeypatch) -> None:
    """Make any simulation or stored task fail the test: bad input must be refused before one starts."""
    import bladefl_platform.execution as execution
    import bladefl_platform.study as study
    import bladefl_validate.studies.estimate.constants as estimate
    import bladefl_validate.optimum as optimum
    import bladefl_validate.simulation as simulate
    import bladefl_validate.studies.kstar.analysis as kstar_analysis
    import bladefl_validate.studies.kstar.design as kstar_design
    import bladefl_validate.studies.sweep_k as sweep_k

    def computing(*args, **kwargs):
        pytest.fail("a computation started on bad input")

    for module in (execution, study, estimate, optimum, sweep_k, kstar_design, kstar_analysis):
        monkeypatch.setattr(module, "run_tasks", computing, raising=False)
    monkeypatch.setattr(simulate, "simulate_many", computing)


def fake_result(kind: str, config: dict) -> dict:
    """A plausible result of a stored task of ``kind`` at once: a sweep's loss falls with K and rises with the seed."""
    if kind == "bladefl-run":
        return {"final_global_train_loss": 1 / (config["K"] + 2) + 0.1 * config["seed"], "final_test_loss": 1 / 3,
                "final_test_accuracy": 0.9 - 1e-16, "wall_seconds": 0.1, "cpu_seconds": 0.1}
    if kind == "bladefl-optimum":
        return {"f_star": 0.1 + 0.2, "distance": 1.0, "reason": "loss-floor", "iterations": 3}
    if kind == "bladefl-estimate":
        return _fake_estimate(config["run"])
    if kind == "bladefl-detection-run":
        lazy = config["M"] * 2
        return {"flagged": lazy, "true_positives": lazy, "lazy_screenings": lazy, "honest_screenings": 40 - lazy,
                "final_global_train_loss": 0.5 + 0.01 * config["M"], "final_test_accuracy": 0.8, "seconds": 1.0}
    return {}


def _fake_estimate(run: dict) -> dict:
    """A seed of an estimate as :func:`bladefl_validate.studies.estimate.estimate_seed` returns it: every client's row
    of every round of the clean run and of the run with lazy clients, and the seed's w* facts."""
    rows = []
    for M in dict.fromkeys((0, run["M"])):
        for k in range(1, run["K"] + 1):
            for client in range(run["N"]):
                lazy = client < M
                rows.append({"seed": run["seed"], "M": M, "round": k, "client": client, "lazy": lazy,
                             "source": run["N"] - 1 if lazy else -1, "samples": run["samples_per_client"],
                             "distance": 0.5, "L": 2.0, "xi": 1.0, "delta": 0.25, "grad_norm": 1.0,
                             "theta": 0.01 if lazy else math.nan, "theta_submitted": 0.01 if lazy else math.nan,
                             "loss_local": 0.5, "loss_global": 0.75, "global_train_loss": 1 / (k + 1),
                             "gap": 1 / (k + 1) - 0.25})
    seed_row = {"seed": run["seed"], "F_w_star": 0.25, "distance": 2.0, "grad_norm": 0.001, "iterations": 3,
                "evaluations": 4, "restarts": 0, "reason": "gradient", "converged": True, "interpolates": False,
                "path": [[0, 1.0, 0.0], [3, 0.25, 2.0]], "epsilon": 0.125, "epsilon_clean": 0.0625}
    return {"rows": rows, "seed_row": seed_row}


def fake_tasks(monkeypatch, calls: list | None = None, skipped: int = 0, fail: BaseException | None = None) -> None:
    """Answer every stored task of a study with :func:`fake_result` at once (no simulation, no Dask); record each
    batch's kind, configs, store and context in ``calls``; ``skipped`` of each batch count as found in the store;
    ``fail`` is raised instead of answering."""
    import bladefl_platform.study as study
    from bladefl_platform.execution import TaskOutcome

    def run_tasks(kind, configs, store=None, context=None, execution=None, desc=""):
        if calls is not None:
            calls.append({"kind": kind.name, "configs": list(configs), "store": store, "context": dict(context or {})})
        if fail is not None:
            raise fail
        results = [fake_result(kind.name, dict(c)) for c in configs]
        found = min(skipped, len(results))
        return TaskOutcome(results=results, skipped=found, ran=len(results) - found)

    monkeypatch.setattr(study, "run_tasks", run_tasks)
