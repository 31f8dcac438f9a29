"""The Batch API: validation of input files, the use cases, the runner that renders lines in the engine's
batch lane, and the output files."""

from gouache.service.batches.runner import BatchRunner, LineResult, RetryLater, Stopping
from gouache.service.batches.service import BATCH_ENDPOINTS, BatchService, Conflict

__all__ = [
    "BATCH_ENDPOINTS",
    "BatchRunner",
    "BatchService",
    "Conflict",
    "LineResult",
    "RetryLater",
    "Stopping",
]
