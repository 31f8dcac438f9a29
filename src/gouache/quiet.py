"""Library warnings that tell a Gouache user nothing, dropped where they are logged.

Importing diffusers' pipeline classes makes transformers resolve ``CLIPImageProcessor`` and
``SiglipImageProcessor``; without torchvision (which Gouache never installs: the build available for CPU
torch breaks it, and nothing here needs it) transformers substitutes their PIL versions and logs one warning
for each, on every start. The substitution is what we want, so only those two messages are filtered, on
transformers' own logger, before anything imports transformers (:mod:`gouache` calls this on import)."""

from __future__ import annotations

import logging

#: The logger transformers reports the fallback on, and the words that identify it.
_FALLBACK_LOGGER = "transformers.utils.import_utils"
_FALLBACK_WORDS = "requires torchvision (not installed); falling back to"


class _TorchvisionFallback(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return _FALLBACK_WORDS not in record.getMessage()


def quiet_library_warnings() -> None:
    """Install the filter once (idempotent); other messages of that logger pass."""
    logger = logging.getLogger(_FALLBACK_LOGGER)
    if not any(isinstance(f, _TorchvisionFallback) for f in logger.filters):
        logger.addFilter(_TorchvisionFallback())
