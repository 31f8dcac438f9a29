"""The live-server helper lives in the package (``gouache bench`` needs it too); the tests import it here."""

from gouache.benchmarks.live import LiveServer, free_port, start_server

__all__ = ["LiveServer", "free_port", "start_server"]
