"""What a calibration will measure and what it will cost, known before it runs.

Pilots come from a box of system parameters the user names (:func:`parse_box`, :func:`box_pilots`: the centre and
three corners, so that every parameter, beta too, takes its box's low and high value); :func:`check_points` refuses
pilots that cannot fit the form's constants (each pilot's K_max follows from t_sum and beta alone); and
:func:`estimate_cost` states runs, client-epochs and CPU time, the last from three short runs timed on this machine.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from bladefl_platform.errors import InputError
from bladefl_theory.calibration import FREE

from ...config import RunConfig

__all__ = ["BOX_PARAMETERS", "Cost", "parse_box", "box_pilots", "check_points", "client_epochs", "estimate_cost",
           "spent"]

#: The system parameters a box spans, in the order a pilot names them.
BOX_PARAMETERS = ("t_sum", "beta", "M", "sigma2")
#: Each corner pilot's end of every parameter's range (0 low, 1 high): every parameter takes both ends, and the
#: shortest budget never meets the slowest mining (the pilot with the fewest K).
_CORNERS = ((1, 0, 0, 1), (0, 0, 1, 0), (1, 1, 1, 0))


def parse_box(text: str) -> dict[str, tuple[float, float]]:
    """``t_sum=50:200,beta=2.5:20,M=0:8,sigma2=0:0.3`` as {name: (low, high)}; InputError, one line, otherwise."""
    box: dict[str, tuple[float, float]] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, span = part.partition("=")
        low, colon, high = span.partition(":")
        name = name.strip()
        if not sep or not colon or name not in BOX_PARAMETERS or name in box:
            raise InputError(f"--box {text!r}: expected NAME=LOW:HIGH for each of {', '.join(BOX_PARAMETERS)}, "
                             "each once")
        try:
            lo, hi = float(low), float(high)
        except ValueError:
            raise InputError(f"--box {text!r}: {name}'s ends must be numbers (got {span!r})") from None
        if not lo <= hi:
            raise InputError(f"--box {text!r}: {name}'s low end must not exceed its high end (got {span})")
        if name == "M" and (lo != int(lo) or hi != int(hi)):
            raise InputError(f"--box {text!r}: M counts clients, its ends must be integers (got {span})")
        box[name] = (lo, hi)
    missing = [n for n in BOX_PARAMETERS if n not in box]
    if missing:
        raise InputError(f"--box {text!r}: name a range for {', '.join(missing)} too (a pilot needs every one)")
    return box


def box_pilots(box: Mapping[str, tuple[float, float]]) -> list[dict[str, float]]:
    """Four pilots spanning ``box``: its centre and three corners (:data:`_CORNERS`); M rounded to clients."""
    def at(name: str, where: float) -> float:
        lo, hi = box[name]
        value = lo + where * (hi - lo)
        return float(round(value)) if name == "M" else value

    points = [[at(n, 0.5) for n in BOX_PARAMETERS]]
    points += [[at(n, float(end)) for n, end in zip(BOX_PARAMETERS, corner)] for corner in _CORNERS]
    unique = list(dict.fromkeys(tuple(p) for p in points))  # a flat box has fewer distinct pilots
    return [{n: (int(v) if n == "M" else v) for n, v in zip(BOX_PARAMETERS, p)} for p in unique]


def check_points(base: RunConfig, pilots: Sequence[Mapping[str, float]], form: str) -> None:
    """InputError unless every pilot sweeps at least 2 K and all together give more (setting, K) points than the
    form has constants: both follow from t_sum and beta (K_max = floor(t_sum / (alpha + beta)))."""
    points = 0
    for p in pilots:
        km = base.replace(K=1, t_sum=float(p["t_sum"]), beta=float(p["beta"])).k_max
        if km < 2:
            raise InputError(f"pilot t_sum={p['t_sum']:g}, beta={p['beta']:g} allows only K = 1 (K_max = floor(t_sum/"
                             f"(alpha+beta)) = {km}): a sweep needs at least 2 K; raise t_sum or lower beta")
        points += km
    need = len(FREE[form]) + 1
    if points < need:
        raise InputError(f"the pilots give {points} (setting, K) points, form {form!r} has {len(FREE[form])} constants "
                         f"and needs at least {need}: raise t_sum, lower beta or add pilots")


@dataclass(frozen=True)
class Cost:
    """What a calibration costs: runs, client-epochs (honest clients x local epochs) and CPU hours."""

    runs: int
    client_epochs: int
    cpu_hours: float

    def as_dict(self) -> dict[str, float]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    def line(self) -> str:
        return f"{self.runs:,} runs, {self.client_epochs:,} client-epochs, {self.cpu_hours:.3g} CPU hours"


def client_epochs(config: RunConfig) -> int:
    """Local epochs the honest clients of one run train: (N - M) clients x K rounds x tau epochs."""
    return (config.N - config.M) * config.K * config.tau


def _cpu_seconds(config: RunConfig, data_dir: str | Path | None) -> float:
    """CPU seconds (every thread) of one run as a campaign runs it (evaluated after its last round only)."""
    from ...simulation import simulate_many

    start = time.process_time()
    simulate_many([config], None, data_dir, evaluate_rounds="final")
    return time.process_time() - start


def estimate_cost(configs: Sequence[RunConfig], data_dir: str | Path | None, rounds: int = 4) -> Cost:
    """The cost of running ``configs``, CPU time from three short runs of the first config's deployment timed here:
    one round of one epoch, one of ``rounds`` epochs and ``rounds`` rounds of one epoch each give a run's fixed
    cost, a client-epoch's and a round's (mining, aggregation), which every run then adds up."""
    first = configs[0]
    alpha, beta = first.alpha, first.beta

    def probe(K: int, tau: int) -> RunConfig:
        return first.replace(K=K, t_sum=K * (tau * alpha + beta))

    _cpu_seconds(probe(1, 1), data_dir)  # warm-up: data loaded, kernels ready
    t_one, t_epochs, t_rounds = (_cpu_seconds(probe(k, e), data_dir) for k, e in ((1, 1), (1, rounds), (rounds, 1)))
    honest = first.N - first.M
    per_epoch = max(0.0, t_epochs - t_one) / ((rounds - 1) * honest)
    per_round = max(0.0, t_rounds - t_one - (rounds - 1) * honest * per_epoch) / (rounds - 1)
    fixed = max(0.0, t_one - honest * per_epoch - per_round)
    epochs = [client_epochs(c) for c in configs]
    seconds = sum(fixed + per_round * c.K + per_epoch * e for c, e in zip(configs, epochs))
    return Cost(len(configs), sum(epochs), seconds / 3600)


def spent(configs: Sequence[RunConfig], results: Sequence[Mapping[str, float]]) -> Cost:
    """What the runs of a calibration did cost, from the CPU seconds each recorded (runs taken from the store count
    what they cost when they ran)."""
    return Cost(len(configs), sum(client_epochs(c) for c in configs),
                sum(float(r.get("cpu_seconds", 0.0)) for r in results) / 3600)
