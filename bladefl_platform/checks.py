"""Rules on parameters declared as data, one validator, one error type.

After scikit-learn's ``sklearn.utils._param_validation``: each parameter has a list of
constraints (:class:`Interval`, :class:`Options`, a type such as ``numbers.Integral``, :data:`FINITE`,
``None``), and :func:`validate` holds values to them. Two differences: every constraint of a list
must hold (in order; the first that does not names the error), and ``None`` in a list means that
None is allowed, in which case the others are not checked. A rule between parameters (M < N) is a
:class:`Rule`, a small function that :func:`validate` runs after the per-parameter constraints.

Whatever fails raises :class:`ConstraintError`, an :class:`~bladefl_platform.errors.InputError`
(exit status 2) whose message is one line, ``NAME must be WHAT (got VALUE)``, and which names the
parameter it is about.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .errors import InputError

__all__ = ["ConstraintError", "Constraint", "Interval", "Options", "Finite", "FINITE", "Text", "TEXT", "Rule",
           "validate", "shown"]


class ConstraintError(InputError):
    """A parameter breaks a rule; ``parameter`` names it."""

    def __init__(self, parameter: str, message: str):
        super().__init__(message)
        self.parameter = parameter


def shown(value: Any) -> str:
    """``value`` as an error message quotes it: numbers as typed (floats in ``g`` format), at most 40 characters."""
    if isinstance(value, float):
        return format(value, "g") if math.isfinite(value) else repr(value)
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} characters)"


_NOUNS: dict[type, str] = {numbers.Integral: "an integer", numbers.Real: "a number", bool: "true or false",
                           str: "a string"}


def _is_type(value: Any, kind: type) -> bool:
    # A bool is an Integral to Python, never an integer (or a number) to a user.
    return isinstance(value, kind) and (kind is bool or not isinstance(value, bool))


@dataclass(frozen=True, kw_only=True)
class Constraint:
    """One requirement on a value. ``text`` replaces the generated description of what the value must be;
    ``why``, said right after it (with its own punctuation), gives the reason."""

    text: str | None = None
    why: str = ""

    def holds(self, value: Any) -> bool:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def message(self, name: str, value: Any) -> str:
        return f"{name} must be {self.text or self.describe()}{self.why} (got {shown(value)})"


@dataclass(frozen=True)
class _Type(Constraint):
    kind: type = object

    def holds(self, value: Any) -> bool:
        return _is_type(value, self.kind)

    def describe(self) -> str:
        return _NOUNS.get(self.kind, f"of type {self.kind.__name__}")


@dataclass(frozen=True)
class Finite(Constraint):
    """A number that is not infinite or NaN."""

    def holds(self, value: Any) -> bool:
        try:
            return _is_type(value, numbers.Real) and math.isfinite(value)
        except OverflowError:  # an integer beyond float range
            return False

    def describe(self) -> str:
        return "finite"


#: The usual :class:`Finite` constraint.
FINITE = Finite()


@dataclass(frozen=True)
class Text(Constraint):
    """A string fit to print on one line: no control characters (newlines, ANSI escapes), at most ``longest``."""

    longest: int = 1000

    def holds(self, value: Any) -> bool:
        return isinstance(value, str) and len(value) <= self.longest and value.isprintable()

    def describe(self) -> str:
        return f"one line of printable text of at most {self.longest} characters"


#: The usual :class:`Text` constraint.
TEXT = Text()


def _bound(x: float) -> str:
    return format(x, "g") if isinstance(x, float) else str(x)


@dataclass(frozen=True)
class Interval(Constraint):
    """A number of ``kind`` (``numbers.Integral`` or ``numbers.Real``) between ``left`` and ``right`` (None: no bound),
    the ends included as ``closed`` says, as in scikit-learn.

    It reads ``an integer >= 2`` or ``an integer in 0..28`` for integers, ``> 0`` or ``at most 1e+60`` for numbers
    (whose type a :data:`numbers.Real` constraint before it has already stated).
    """

    kind: type = numbers.Real
    left: float | None = None
    right: float | None = None
    closed: Literal["left", "right", "both", "neither"] = "both"

    def holds(self, value: Any) -> bool:
        if not _is_type(value, self.kind) or value != value:  # NaN lies in no interval
            return False
        left_in = self.closed in ("left", "both")
        right_in = self.closed in ("right", "both")
        if self.left is not None and (value < self.left or (value == self.left and not left_in)):
            return False
        return not (self.right is not None and (value > self.right or (value == self.right and not right_in)))

    def describe(self) -> str:
        integer = self.kind is numbers.Integral
        lo = (">= " if self.closed in ("left", "both") else "> ") + _bound(self.left) if self.left is not None else ""
        hi = ("at most " if self.closed in ("right", "both") else "< ") + _bound(self.right) \
            if self.right is not None else ""
        if integer and self.left is not None and self.right is not None and self.closed == "both":
            return f"an integer in {self.left}..{self.right}"
        words = " and ".join(w for w in (lo, hi) if w)
        return f"an integer {words}" if integer else words


@dataclass(frozen=True)
class Options(Constraint):
    """One of a few values (of ``kind``)."""

    kind: type = str
    options: tuple[Any, ...] = ()

    def holds(self, value: Any) -> bool:
        return _is_type(value, self.kind) and value in self.options

    def describe(self) -> str:
        return "one of " + ", ".join(map(str, self.options))

    def message(self, name: str, value: Any) -> str:
        return f"{name} must be {self.text or self.describe()}{self.why} (got {value!r})"


@dataclass(frozen=True)
class Rule:
    """A rule between parameters, about ``parameter``: ``check(values)`` returns the one-line error, or None if it
    holds. It runs once every parameter it reads has passed its own constraints."""

    parameter: str
    check: Callable[[Mapping[str, Any]], str | None]


#: What a list of constraints may hold: constraints, a type (``numbers.Integral``, ``bool``...) or None.
ConstraintSpec = Constraint | type | None


def _constraint(spec: Constraint | type) -> Constraint:
    return spec if isinstance(spec, Constraint) else _Type(kind=spec)


def validate(values: Mapping[str, Any], constraints: Mapping[str, Sequence[ConstraintSpec]],
             rules: Iterable[Rule] = ()) -> None:
    """Hold ``values`` to ``constraints`` (per parameter, in declaration order), then to ``rules`` (in order).

    Raises :class:`ConstraintError` naming the first parameter and rule broken.
    """
    for name, specs in constraints.items():
        value = values[name]
        if value is None and None in specs:
            continue
        for spec in specs:
            if spec is None:
                continue
            c = _constraint(spec)
            if not c.holds(value):
                raise ConstraintError(name, c.message(name, value))
    for rule in rules:
        message = rule.check(values)
        if message is not None:
            raise ConstraintError(rule.parameter, message)
