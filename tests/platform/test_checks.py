"""bladefl_platform.checks: constraints as data, one validator, one error type (an InputError, so status 2)."""

from __future__ import annotations

import math
from numbers import Integral, Real

import pytest

from bladefl_platform.checks import FINITE, ConstraintError, Finite, Interval, Options, Rule, Text, shown, validate
from bladefl_platform.errors import InputError


@pytest.mark.parametrize("constraint, good, bad", [
    (Interval(Integral, 2, None, closed="left"), [2, 3, 10**400], [1, 2.0, True, "3"]),
    (Interval(Integral, 0, 28), [0, 28], [-1, 29]),
    (Interval(Real, 0, None, closed="neither"), [1e-300, 0.5, 3, math.inf], [0, 0.0, -1.0, math.nan, False]),
    (Interval(Real, 0, None, closed="left"), [0, 0.0], [-1e-300]),
    (Interval(Real, None, 1.0, closed="right"), [1.0, -math.inf], [1.0000001]),
    (Interval(Real, 0, 1, closed="right"), [1], [0]),
    (FINITE, [0, -1.5, 2**70], [math.inf, -math.inf, math.nan, "1", None, 10**400]),
    (Options(options=("a", "b")), ["a", "b"], ["c", "A", 1, None]),
    (Text(longest=5), ["", "mnist", "é ü"], ["a\nb", "\x1b[31mred", "a\tb", "toolong", 1, None]),
])
def test_each_constraint_holds_exactly_where_it_should(constraint, good, bad):
    for value in good:
        assert constraint.holds(value), value
    for value in bad:
        assert not constraint.holds(value), value


@pytest.mark.parametrize("constraint, text", [
    (Interval(Integral, 2, None, closed="left"), "an integer >= 2"),
    (Interval(Integral, 0, 28), "an integer in 0..28"),
    (Interval(Integral, None, 9, closed="neither"), "an integer < 9"),
    (Interval(Real, 0, None, closed="neither"), "> 0"),
    (Interval(Real, 0, 1e60, closed="left"), ">= 0 and < 1e+60"),
    (Interval(Real, None, 1e60), "at most 1e+60"),
    (Options(options=("none", "ckks")), "one of none, ckks"),
    (FINITE, "finite"),
    (Text(longest=80), "one line of printable text of at most 80 characters"),
])
def test_constraints_describe_themselves(constraint, text):
    assert constraint.describe() == text


def test_the_validator_names_the_first_rule_broken_in_one_line():
    constraints = {"N": [Integral, Interval(Integral, 2, None, closed="left")],
                   "sigma2": [Real, FINITE, Interval(Real, 0, None, closed="left")]}
    validate({"N": 5, "sigma2": 0.0}, constraints)
    cases = [({"N": 1.5, "sigma2": -1.0}, "N", "N must be an integer (got 1.5)"),
             ({"N": 1, "sigma2": -1.0}, "N", "N must be an integer >= 2 (got 1)"),
             ({"N": 2, "sigma2": "0.1"}, "sigma2", "sigma2 must be a number (got '0.1')"),
             ({"N": 2, "sigma2": math.nan}, "sigma2", "sigma2 must be finite (got nan)"),
             ({"N": 2, "sigma2": -0.5}, "sigma2", "sigma2 must be >= 0 (got -0.5)")]
    for values, name, message in cases:
        with pytest.raises(ConstraintError) as info:
            validate(values, constraints)
        assert info.value.parameter == name and str(info.value) == message


def test_the_error_is_an_input_error_so_the_command_line_exits_with_status_2():
    assert issubclass(ConstraintError, InputError)


def test_none_in_a_list_allows_none_and_nothing_else_changes():
    constraints = {"t": [None, Interval(Real, 0, None, closed="neither", text="positive and finite"),
                         Finite(text="positive and finite")]}
    validate({"t": None}, constraints)
    validate({"t": 0.5}, constraints)
    for bad in (0.0, math.inf):
        with pytest.raises(ConstraintError, match=r"^t must be positive and finite \(got"):
            validate({"t": bad}, constraints)


def test_a_reason_follows_the_rule_and_a_long_value_is_shortened():
    c = {"bits": [Interval(Integral, 0, 28, why=": each bit doubles the work")]}
    with pytest.raises(ConstraintError) as info:
        validate({"bits": 10**60}, c)
    assert str(info.value) == f"bits must be an integer in 0..28: each bit doubles the work (got {shown(10**60)})"
    assert len(shown(10**60)) < 45 and "\n" not in shown("x\ny" * 100)


def test_rules_between_parameters_run_after_each_parameter_passed_its_own():
    seen = []

    def below(v):
        seen.append(dict(v))
        return None if v["M"] < v["N"] else f"M must be < N = {v['N']} (got M={v['M']})"

    constraints = {"N": [Integral], "M": [Integral]}
    with pytest.raises(ConstraintError, match="N must be an integer"):
        validate({"N": "x", "M": 9}, constraints, [Rule("M", below)])
    assert seen == []  # the rule never saw a value that broke its own constraint
    with pytest.raises(ConstraintError) as info:
        validate({"N": 3, "M": 9}, constraints, [Rule("M", below)])
    assert info.value.parameter == "M" and str(info.value) == "M must be < N = 3 (got M=9)"
    validate({"N": 3, "M": 2}, constraints, [Rule("M", below)])
