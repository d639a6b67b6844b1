"""Studies: multi-run experiments that measure the real system through the result store and report on it."""
