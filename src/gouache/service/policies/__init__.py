"""What the operator decides, beside the files that decide it: prices (`prices.toml`, `pricing.py`), the
moderation policy (`moderation.toml`, `moderation.py`), monthly money budgets (`budgets.py`) and per-key rate
limits (`rate_limits.py`). Each is loaded from `Settings` once and consulted through `service/operations.py`;
none of them knows about HTTP, the engine or a request's pixels."""
