"""Gouache: a self-hosted image generation service that speaks OpenAI's image APIs."""

from gouache import deferred
from gouache.quiet import quiet_library_warnings

__version__ = "0.1.0"

quiet_library_warnings()
deferred.install()
