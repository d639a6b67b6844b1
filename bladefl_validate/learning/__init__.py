"""What the clients compute: the models (``model``), batched local training, evaluation and FedAvg (``training``),
lazy clients' copies (``lazy``), lazy-client detectors (``detect``) and CKKS-encrypted uploads (``encrypt``).

Nothing is imported here, so ``import bladefl_validate.learning.encrypt`` (which the config needs) does not import
torch."""
