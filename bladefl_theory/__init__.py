"""BLADE-FL theory: the convergence bound with lazy clients and the optimal number of blocks K*."""

from .params import LEARNING_CONSTANTS, SYSTEM_PARAMETERS, ParameterError, Params
from .profiles import Profile, ProfileError, available_profiles, load_profile

__all__ = [
    "Params",
    "ParameterError",
    "SYSTEM_PARAMETERS",
    "LEARNING_CONSTANTS",
    "Profile",
    "ProfileError",
    "load_profile",
    "available_profiles",
]
__version__ = "0.1.0"
