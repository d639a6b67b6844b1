"""The K* study: predict K* in settings nobody ran, from a few pilot sweeps, and score it against measurement.

One job per module: :mod:`.design` (what is measured), :mod:`.scoring` (the measured K*, its plausible set, hit,
regret and targets), :mod:`.analysis` (pilots, predictors, calibration, prediction and the choice of form),
:mod:`.report` (prose, tables, figures and profiles) and :mod:`.study` (the commands ``kstar-report``,
``kstar-confirm`` and ``calibrate``).
"""
