"""The receivers are tested through the in-process serve stack of the server tests."""

from __future__ import annotations

from tests.server.conftest import serve

__all__ = ["serve"]
