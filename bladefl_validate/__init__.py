"""BLADE-FL for real: N clients training on non-IID data, lazy clients, and a SHA-256 proof-of-work ledger."""

__version__ = "0.1.0"
