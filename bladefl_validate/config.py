"""One simulation's settings as a validated, immutable object.

This module needs no torch: the command line declares its options (and prints its help) from it,
and a config is checked before anything heavy is imported or computed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Integral, Real
from pathlib import Path
from typing import Any

from bladefl_platform.checks import ConstraintError, Finite, Interval, Options, Rule, validate
from bladefl_platform.errors import InputError
from bladefl_theory.params import Params
from bladefl_theory.profiles import Profile, load_profile
from bladefl_theory.system import SYSTEM_CONSTRAINTS, SYSTEM_RULES, System
from bladefl_theory.timemodel import k_max, tau, virtual_round_time

from .learning.encrypt import ENCRYPTIONS, require_tenseal
from .chain.mining import MAX_RUN_DIFFICULTY_BITS
from .partition import NUM_CLASSES, SCHEMES, SHARDS_PER_CLIENT

__all__ = ["RunConfig", "DataInfo", "SIMULATION_VERSION", "DATASETS", "MODELS", "DETECTORS", "DEVICES", "MAX_SEED",
           "MAX_SIGMA2", "MAX_CLIENT_EPOCHS", "FLOAT32_MAX", "machine_memory", "check_device", "cuda_available"]

#: The semantics of a run's results, what a config's run computes. Bump it whenever a change to the simulator changes
#: any result of the same config: stored results are reused only under the same version (tests/validate/test_golden.py
#: pins a small run's numbers, so such a change fails there first). "2": the first version keyed this way. Defined
#: here, beside what it versions, because the task kinds keyed by it must be read without torch (the simulator's).
SIMULATION_VERSION = "2"
#: The data sets a run can use (data.py reads them).
DATASETS = ("mnist", "fashion-mnist")
#: The same names as model.KINDS and detect.DETECTORS, which import torch; tests/validate/test_config_rules.py checks
#: that they agree.
MODELS = ("mlp", "logreg", "cnn")
_FUSED_MODELS = ("mlp", "logreg")
#: Kinds added from Python by bladefl_validate.learning.model.register_model: kind -> fingerprint of the module.
REGISTERED_MODELS: dict[str, str] = {}
#: The numerics of the generic (module) training path: part of every module run's identity ("2": the CPU trains
#: client by client; "1", vmapped on every device, was never keyed).
MODULE_PATH_VERSION = "2"


@dataclass(frozen=True)
class DataInfo:
    """What a run's settings are checked against for a registered data set: the shape of one sample, the classes
    and a fingerprint of the data (part of every such run's identity)."""

    input_shape: tuple[int, ...]
    num_classes: int
    fingerprint: str


#: Data sets added from Python by bladefl_validate.data.register_dataset.
REGISTERED_DATASETS: dict[str, DataInfo] = {}
DETECTORS = ("nn", "noise")
#: Where a run computes: ``auto`` is resolved to ``cuda`` when torch sees a GPU, else ``cpu``, as the config is made.
DEVICES = ("auto", "cpu", "cuda")

#: Largest seed: torch's and numpy's generators take 64-bit seeds.
MAX_SEED = 2**64 - 1
#: Largest noise variance. Models are float32 (largest value 3.4e38); a noise draw of up to 10 standard
#: deviations, summed over the at most 60,000 clients of an aggregation, must stay finite:
#: 10 · sqrt(sigma2) · 60,000 <= 3.4e38 holds up to sigma2 = 3.2e65, and 1e60 leaves room.
MAX_SIGMA2 = 1e60
#: Largest float32, the type of the models' weights (and of a learning rate torch applies to them).
FLOAT32_MAX = 3.4028234663852886e38
#: Most client-epochs (N·K·tau: every client's local epochs over the run) a run may train without ``allow_long``.
#: A default sweep-k (8,760 client-epochs, N=20, |D_i|=512, MLP-256) takes about a minute on two cores, so this is
#: about a day of such training: beyond it the time model's settings (alpha, t_sum), not the run, are wrong.
MAX_CLIENT_EPOCHS = 10_000_000
#: Most client-epochs a run may have even with ``allow_long``: its counts (tau, epochs) are 64-bit integers.
_COUNTABLE = 2**63 - 1
_INPUT_DIM = 784
_FLOAT_BYTES = 4


#: The rule of a setting that counts something: a positive integer.
_POSITIVE = [Integral, Interval(Integral, 1, None, closed="left")]


def _constraints() -> dict[str, list]:
    """Each setting's own rules (built per call: models registered from Python join the options)."""
    return {
        **SYSTEM_CONSTRAINTS,
        "sigma2": [*SYSTEM_CONSTRAINTS["sigma2"], Interval(
            Real, None, MAX_SIGMA2, why=": models are float32 (largest value 3.4e38) and the lazy noise, of standard "
            "deviation sqrt(sigma2), must stay finite through aggregation")],
        "eta": [*SYSTEM_CONSTRAINTS["eta"], Interval(
            Real, None, FLOAT32_MAX, why=": models are float32, and torch applies no larger learning rate to them")],
        "K": [Integral],
        "dataset": [Options(options=DATASETS + tuple(REGISTERED_DATASETS))],
        "partition": [Options(options=SCHEMES)],
        "model": [Options(options=MODELS + tuple(REGISTERED_MODELS))],
        **{name: _POSITIVE for name in ("samples_per_client", "hidden", "batch_size", "classes_per_client")},
        "dirichlet_alpha": [Interval(Real, 0, None, closed="neither", text="a positive finite number"),
                            Finite(text="a positive finite number")],
        "difficulty_bits": [Interval(Integral, 0, MAX_RUN_DIFFICULTY_BITS, why=(
            f": a block takes 2**bits hashes on average, minutes at {MAX_RUN_DIFFICULTY_BITS} bits, and each further "
            "bit doubles that"))],
        "seed": [Interval(Integral, 0, MAX_SEED, text="an integer in 0..2**64-1",
                          why=", as torch's and numpy's generators take")],
        "detect": [Options(options=("none", *DETECTORS))],
        "detect_threshold": [None, Interval(Real, 0, None, closed="neither", text="positive and finite"),
                             Finite(text="positive and finite")],
        "exclude_flagged": [bool],
        "encrypt": [Options(options=ENCRYPTIONS)],
        "allow_long": [bool],
    }


def _k_in_range(v: Mapping[str, Any]) -> str | None:
    km = k_max(v["t_sum"], v["alpha"], v["beta"])
    if 1 <= v["K"] <= km:
        return None
    return f"K must be an integer in 1..K_max = {km} (K_max = floor(t_sum/(alpha+beta))) (got K={v['K']})"


def client_epochs(v: Mapping[str, Any]) -> int:
    """N·K·tau: the local epochs all clients train over a run of the settings ``v``."""
    return v["N"] * v["K"] * tau(v["K"], v["t_sum"], v["alpha"], v["beta"])


def _count(n: int) -> str:
    """A count as people read it: ``12,345`` or, beyond a trillion, ``1.23e+301`` (an int may exceed any float)."""
    if n < 10**12:
        return f"{n:,}"
    digits = str(n)
    return f"{digits[0]}.{digits[1:3]}e+{len(digits) - 1}"


def _work_bounded(v: Mapping[str, Any]) -> str | None:
    work = client_epochs(v)
    if work <= MAX_CLIENT_EPOCHS or (v["allow_long"] and work <= _COUNTABLE):
        return None
    epochs = tau(v["K"], v["t_sum"], v["alpha"], v["beta"])
    what = f"a run of N={v['N']} clients, K={v['K']} blocks and tau={_count(epochs)} local epochs per block is " \
           f"{_count(work)} client-epochs (N*K*tau)"
    if v["allow_long"]:
        return f"{what}, more than any run can count (2**63 - 1, even with --allow-long): lower t_sum or raise alpha"
    return (f"{what}, more than MAX_CLIENT_EPOCHS = {MAX_CLIENT_EPOCHS:,} (about a day of training at the paper's "
            "sizes): lower t_sum or raise alpha, or pass --allow-long to run it anyway")


def _partition_fits(v: Mapping[str, Any]) -> str | None:
    """The partition scheme's own rules, which the partitioner would otherwise break mid-run."""
    m, k = v["samples_per_client"], v["classes_per_client"]
    if v["partition"] == "classes":
        classes = _data_info(v["dataset"]).num_classes
        if k > classes:
            return f"classes_per_client must be at most {classes}, the classes of {v['dataset']} (got {k})"
        if m % k:
            return (f"classes_per_client (k={k}) must divide samples_per_client ({m}): each client gets |D_i|/k "
                    "samples from each of its k classes")
    if v["partition"] == "shards" and m % SHARDS_PER_CLIENT:
        return (f"samples_per_client ({m}) must be divisible by {SHARDS_PER_CLIENT} for partition shards: each client "
                f"gets {SHARDS_PER_CLIENT} equal shards")
    return None


def _detection_has_a_detector(v: Mapping[str, Any]) -> str | None:
    if v["detect"] == "none" and (v["detect_threshold"] is not None or v["exclude_flagged"]):
        return "detect_threshold and exclude_flagged need a detector (--detect nn|noise)"
    if v["detect"] != "none" and v["N"] < 3:
        return f"detection needs N >= 3 clients (got N={v['N']})"
    return None


def _data_info(dataset: str) -> DataInfo:
    """The input shape and classes of a data set (MNIST's and Fashion-MNIST's: 784 pixels, 10 classes)."""
    return REGISTERED_DATASETS.get(dataset) or DataInfo((_INPUT_DIM,), NUM_CLASSES, "")


#: The rules between a run's settings: the deployment's, then K, the partition and detection.
RUN_RULES = (*SYSTEM_RULES, Rule("K", _k_in_range), Rule("t_sum", _work_bounded), Rule("partition", _partition_fits),
             Rule("detect", _detection_has_a_detector))


#: The settings that lead a config's dict, as they did before the deployment's moved into System (the rest follow
#: in field order): config.json, the profiles' run records and the tables read as before.
_LEADING = ("dataset", "N", "M", "K")


@dataclass(frozen=True)
class RunConfig(System):
    """Everything that determines a run: the deployment (:class:`~bladefl_theory.system.System`), the data, the
    model, the chain and the seed.

    Defaults are the paper's Section 5.1 settings (N=20, |D_i|=512, alpha=1, beta=10, t_sum=100,
    eta=0.01, batch 64) with K at the paper's K* = 7.
    """

    dataset: str = "mnist"
    K: int = 7
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
    #: ``cpu`` or ``cuda`` (``auto`` is resolved as the config is made). CUDA's kernels do not round as the CPU's do,
    #: so the device is part of a run's identity; :meth:`as_dict` leaves ``cpu`` out, so CPU runs keep the store keys
    #: and config.json they had before the field existed.
    device: str = "cpu"
    #: Whether the run may train more than :data:`MAX_CLIENT_EPOCHS` client-epochs. It changes nothing in the run:
    #: :meth:`as_dict` names it only for a run beyond the bound, so a run keeps one store key and config.json.
    allow_long: bool = False

    def check(self) -> None:
        if self.device not in DEVICES:
            raise ConstraintError("device", Options(options=DEVICES).message("device", self.device))
        if self.device == "auto":
            object.__setattr__(self, "device", "cuda" if cuda_available() else "cpu")
        validate(dataclasses.asdict(self), _constraints(), RUN_RULES)
        if self.encrypt == "ckks":
            require_tenseal()

    @property
    def model_dim(self) -> int | None:
        """d, the number of parameters, for the fused kinds (mlp, logreg) as model.ModelSpec.dim counts them.

        None for module kinds (cnn, registered ones): only their nn.Module knows, and this module imports no torch.
        """
        info = _data_info(self.dataset)
        inputs, classes = math.prod(info.input_shape), info.num_classes
        if self.model == "logreg":
            return (inputs + 1) * classes
        if self.model == "mlp":
            return (inputs + 1) * self.hidden + (self.hidden + 1) * classes
        return None

    def memory_needed(self) -> int:
        """A lower bound, in bytes, of the memory one run holds: two float32 copies of every client's model
        (the models submitted and the pool's blobs of them; counted only where :attr:`model_dim` is known) and the
        clients' training data."""
        sample = math.prod(_data_info(self.dataset).input_shape)
        return _FLOAT_BYTES * (2 * self.N * (self.model_dim or 0) + self.N * self.samples_per_client * sample)

    def check_memory(self, available: int | None = None) -> None:
        """InputError if one run cannot fit in ``available`` bytes (default: this machine's memory).

        Not part of the validation of a config: a config stays valid on a smaller machine, it only cannot run there.
        """
        available = machine_memory() if available is None else available
        need = self.memory_needed()
        if available is not None and need > available:
            size = f"hidden={self.hidden}, " if self.model == "mlp" else ""
            model = f"a {self.model} of {self.model_dim:,} parameters" if self.model_dim else f"a {self.model}"
            raise InputError(
                f"a run with N={self.N} clients and {model} ({size}"
                f"samples_per_client={self.samples_per_client}) needs at least {_bytes(need)} of memory (two float32 "
                f"copies of every client's model, and the clients' data); this machine has {_bytes(available)}"
            )

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
        """The theory's parameters for this deployment, learning constants from ``profile``.

        ``profile`` is a Profile, a profile's name or a path.
        """
        prof = profile if isinstance(profile, Profile) else load_profile(profile)
        return prof.params(**self.system(), **constants)

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
        """The settings by name; ``device`` only when it is not ``cpu``, ``allow_long`` only for a run that needs it
        (see the fields). A registered data set adds its fingerprint, a module kind the version of the generic path
        (and a registered one its fingerprint): a stored result is reused only for the same data and module."""
        data = dataclasses.asdict(self)
        data = {**{name: data.pop(name) for name in _LEADING}, **data}
        if data["device"] == "cpu":
            del data["device"]
        if not data["allow_long"] or client_epochs(data) <= MAX_CLIENT_EPOCHS:
            del data["allow_long"]
        if self.dataset in REGISTERED_DATASETS:
            data["dataset_fingerprint"] = REGISTERED_DATASETS[self.dataset].fingerprint
        if self.model not in _FUSED_MODELS:
            data["model_fingerprint"] = "-".join(filter(None, (REGISTERED_MODELS.get(self.model), MODULE_PATH_VERSION)))
        return data

    def check_device(self) -> None:
        """InputError unless this machine can run the config on its device (where a run is about to compute)."""
        check_device(self.device)

    def to_json(self) -> str:
        return json.dumps({**self.as_dict(), "tau": self.tau, "k_max": self.k_max}, indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunConfig":
        """Rebuild a config from :meth:`as_dict` output (derived keys are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def cuda_available() -> bool:
    """Whether torch sees a CUDA device (imports torch)."""
    import torch

    return bool(torch.cuda.is_available())


def check_device(device: str) -> None:
    """InputError if ``device`` is ``cuda`` and torch sees no CUDA device."""
    if device == "cuda" and not cuda_available():
        import torch

        build = f"a CUDA {torch.version.cuda} build" if torch.version.cuda else "a CPU-only build"
        raise InputError(f"--device cuda: torch ({build}) sees no CUDA device here; use --device cpu or auto")


def machine_memory() -> int | None:
    """Bytes of memory this process may use: the physical memory, or the cgroup's limit if lower (None if unknown)."""
    sizes = []
    try:
        sizes.append(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        pass
    for limit in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(limit).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            sizes.append(int(text))
    sizes = [s for s in sizes if s > 0]
    return min(sizes) if sizes else None


def _bytes(n: int) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n:,} bytes"
