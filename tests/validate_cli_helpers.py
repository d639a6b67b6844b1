"""Helpers for tests of the bladefl-validate command line: invoke it, and make sure nothing computes."""

from __future__ import annotations

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
    import bladefl_validate.detection_report as detection_report
    import bladefl_validate.estimate as estimate
    import bladefl_validate.reproduce as reproduce
    import bladefl_validate.simulation as simulate
    import bladefl_validate.studies.kstar_design as kstar_design
    import bladefl_validate.studies.kstar_prediction as kstar_prediction
    import bladefl_validate.sweep as sweep

    def computing(*args, **kwargs):
        pytest.fail("a computation started on bad input")

    for module in (execution, detection_report, estimate, reproduce, sweep, kstar_design, kstar_prediction):
        monkeypatch.setattr(module, "run_tasks", computing, raising=False)
    monkeypatch.setattr(simulate, "simulate_many", computing)
