"""One simulation's settings as a validated, immutable object."""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
from dataclasses import dataclass
from typing import Any

from bladefl_theory.errors import InputError
from bladefl_theory.params import SYSTEM_DEFAULTS, SYSTEM_PARAMETERS, ParameterError, Params, check_system
from bladefl_theory.profiles import Profile, load_profile
from bladefl_theory.timemodel import k_max, tau, virtual_round_time

from .data import DATASETS
from .detect import DETECTORS
from .encrypt import ENCRYPTIONS, require_tenseal
from .mining import MAX_RUN_DIFFICULTY_BITS
from . import model as _model
from .partition import SCHEMES

__all__ = ["RunConfig"]


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run: the deployment, the data, the model, the chain and the seed.

    Defaults are the paper's Section 5.1 settings (N=20, |D_i|=512, alpha=1, beta=10, t_sum=100,
    eta=0.01, batch 64) with K at the paper's K* = 7.
    """

    dataset: str = "mnist"
    N: int = SYSTEM_DEFAULTS["N"]
    M: int = SYSTEM_DEFAULTS["M"]
    K: int = 7
    sigma2: float = SYSTEM_DEFAULTS["sigma2"]
    alpha: float = SYSTEM_DEFAULTS["alpha"]
    beta: float = SYSTEM_DEFAULTS["beta"]
    t_sum: float = SYSTEM_DEFAULTS["t_sum"]
    eta: float = SYSTEM_DEFAULTS["eta"]
    samples_per_client: int = 512
    partition: str = "classes"
    classes_per_client: int = 4
    dirichlet_alpha: float = 0.5
    model: str = "mlp"
    hidden: int = 256
    batch_size: int = 64
    difficulty_bits: int = 16
    seed: int = 0
    detect: str = "none"
    detect_threshold: float | None = None
    exclude_flagged: bool = False
    encrypt: str = "none"

    def __post_init__(self) -> None:
        check_system(self.N, self.M, self.sigma2, self.alpha, self.beta, self.t_sum, self.eta)
        km = k_max(self.t_sum, self.alpha, self.beta)
        if isinstance(self.K, bool) or not isinstance(self.K, numbers.Integral) or not 1 <= self.K <= km:
            raise ParameterError(
                "K", f"K must be an integer in 1..K_max = {km} (K_max = floor(t_sum/(alpha+beta))) (got K={self.K})"
            )
        if self.dataset not in DATASETS:
            raise InputError(f"dataset must be one of {', '.join(DATASETS)} (got {self.dataset!r})")
        if self.partition not in SCHEMES:
            raise InputError(f"partition must be one of {', '.join(SCHEMES)} (got {self.partition!r})")
        if self.model not in _model.KINDS:  # read now: register_model may have added kinds
            raise InputError(f"model must be one of {', '.join(_model.KINDS)} (got {self.model!r})")
        for name in ("samples_per_client", "hidden", "batch_size", "classes_per_client"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise InputError(f"{name} must be a positive integer (got {v!r})")
        if not self.dirichlet_alpha > 0:
            raise InputError(f"dirichlet_alpha must be > 0 (got {self.dirichlet_alpha!r})")
        bits = self.difficulty_bits
        if isinstance(bits, bool) or not isinstance(bits, numbers.Integral) or not 0 <= bits <= MAX_RUN_DIFFICULTY_BITS:
            raise InputError(
                f"difficulty_bits must be an integer in 0..{MAX_RUN_DIFFICULTY_BITS}: a block takes 2**bits hashes on "
                f"average, minutes at {MAX_RUN_DIFFICULTY_BITS} bits, and each further bit doubles that (got {bits!r})"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral) or self.seed < 0:
            raise InputError(f"seed must be a non-negative integer (got {self.seed!r})")
        self._check_detection_and_encryption()

    def _check_detection_and_encryption(self) -> None:
        if self.detect not in ("none", *DETECTORS):
            raise InputError(f"detect must be one of none, {', '.join(DETECTORS)} (got {self.detect!r})")
        if self.detect == "none" and (self.detect_threshold is not None or self.exclude_flagged):
            raise InputError("detect_threshold and exclude_flagged need a detector (--detect nn|noise)")
        if self.detect != "none" and self.N < 3:
            raise InputError(f"detection needs N >= 3 clients (got N={self.N})")
        t = self.detect_threshold
        if t is not None and (isinstance(t, bool) or not isinstance(t, numbers.Real) or not (0 < t < math.inf)):
            raise InputError(f"detect_threshold must be positive and finite (got {t!r})")
        if not isinstance(self.exclude_flagged, bool):
            raise InputError(f"exclude_flagged must be true or false (got {self.exclude_flagged!r})")
        if self.encrypt not in ENCRYPTIONS:
            raise InputError(f"encrypt must be one of {', '.join(ENCRYPTIONS)} (got {self.encrypt!r})")
        if self.encrypt == "ckks":
            require_tenseal()

    @property
    def tau(self) -> int:
        """Local epochs per round under the time model."""
        return tau(self.K, self.t_sum, self.alpha, self.beta)

    @property
    def k_max(self) -> int:
        return k_max(self.t_sum, self.alpha, self.beta)

    @property
    def round_time(self) -> float:
        """Virtual time of one round: tau·alpha + beta."""
        return virtual_round_time(self.tau, self.alpha, self.beta)

    def theory_params(self, profile: str | Profile = "default", **constants: float) -> Params:
        """The theory's parameters for this deployment, learning constants from ``profile`` (a Profile, name or path)."""
        system = {name: getattr(self, name) for name in SYSTEM_PARAMETERS}
        prof = profile if isinstance(profile, Profile) else load_profile(profile)
        return prof.params(**system, **constants)

    def partition_options(self) -> dict[str, Any]:
        """The options of the chosen partition scheme."""
        if self.partition == "classes":
            return {"k": self.classes_per_client}
        if self.partition == "dirichlet":
            return {"alpha": self.dirichlet_alpha}
        return {}

    def replace(self, **changes: Any) -> "RunConfig":
        """A copy with some settings changed, validated again."""
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps({**self.as_dict(), "tau": self.tau, "k_max": self.k_max}, indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunConfig":
        """Rebuild a config from :meth:`as_dict` output (derived keys are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})
