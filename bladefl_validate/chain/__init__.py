"""The blockchain side of a run: the content-addressed cache pool of uploads (``pool``), Merkle roots (``merkle``),
SHA-256 proof of work (``mining``), the ledger and its manifest (``ledger``), what the chain commits to of the
run's reports (``anchor``), and the audit of a persisted run (``verify``). Torch-free; nothing is imported here."""
