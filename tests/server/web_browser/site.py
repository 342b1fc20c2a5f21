"""The served demo-like site the browser tests open (built by ``conftest.site``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx


@dataclass
class Site:
    client: httpx.Client
    url: str
    trades: list[str]
    big: str
    loop: str
    asgi: str
    shots: Path
