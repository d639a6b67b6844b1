"""BLADE-FL theory: the convergence bound with lazy clients and the optimal number of blocks K*."""

from .params import LEARNING_CONSTANTS, SYSTEM_PARAMETERS, ParameterError, Params
from .profiles import Profile, ProfileError, available_profiles, load_profile
from .question import KStar, kstar
from .system import System

__all__ = [
    "kstar",
    "KStar",
    "Params",
    "System",
    "ParameterError",
    "SYSTEM_PARAMETERS",
    "LEARNING_CONSTANTS",
    "Profile",
    "ProfileError",
    "load_profile",
    "available_profiles",
]
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bladefl")  # defined once, in pyproject.toml
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
