"""Library messages that tell a Gouache user nothing, dropped where they are logged.

Three kinds, each filtered narrowly so that the libraries' other warnings still reach the user:

* Importing diffusers' pipeline classes makes transformers resolve ``CLIPImageProcessor`` and
  ``SiglipImageProcessor``; without torchvision (which Gouache never installs: the build available for CPU
  torch breaks it, and nothing here needs it) transformers substitutes their PIL versions and logs one warning
  for each, on every start. The substitution is what we want.
* gouache-mini's pipeline is diffusers' Stable Diffusion pipeline with our own text encoder and codec in it;
  diffusers says "Expected types for text_encoder ..." for each, on every load. We chose those types.
* Alembic's plugin set-up and dialect lines (INFO, a dozen per start); the migrations it runs are still
  logged.

:func:`quiet_library_warnings` installs the filters before anything imports those libraries (:mod:`gouache`
calls it on import); :func:`quiet_loading` turns off diffusers' and transformers' own loading progress bars
(the engine logs one line per model load instead), called by the loaders that import those libraries anyway.
"""

from __future__ import annotations

import logging

#: logger name -> the words that identify the messages to drop there.
_DROPPED = {
    "transformers.utils.import_utils": ("requires torchvision (not installed); falling back to",),
    "diffusers.pipelines.pipeline_utils": ("Expected types for ",),
    "alembic.runtime.plugins": ("setup plugin ",),
    "alembic.runtime.migration": ("Context impl ", "Will assume "),
}


class _Drop(logging.Filter):
    def __init__(self, words: tuple[str, ...]) -> None:
        super().__init__()
        self.words = words

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(w in message for w in self.words)


def quiet_library_warnings() -> None:
    """Install the filters once (idempotent); other messages of those loggers pass."""
    for name, words in _DROPPED.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Drop) for f in logger.filters):
            logger.addFilter(_Drop(words))


def quiet_loading() -> None:
    """No "Loading pipeline components" / "Loading weights" bars from diffusers and transformers."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
