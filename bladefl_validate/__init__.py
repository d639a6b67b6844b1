"""BLADE-FL for real: N clients training on non-IID data, lazy clients, and a SHA-256 proof-of-work ledger."""

from bladefl_theory import __version__  # defined once, in pyproject.toml
