"""The web view in headless Chromium (Playwright driving /usr/bin/chromium) on demo-like data:
one served app and one browser for the whole package (``site``, ``browser``), a fresh tab
per test. Screenshots go to the test's directory, and into ``docs/`` when
``UPDATE_SCREENSHOTS=1``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chainmap_otel.server import create_app
from chainmap_otel.storage.store import TraceStore
from tests.server import chain_traffic, trace_fixtures
from tests.server.web_browser.site import Site
from tests.support.browser import Tab, chromium, open_tab
from tests.support.stores import fresh_store


@pytest.fixture(scope="package")
def site(
    chdb_store: TraceStore, chdb_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:

    store = fresh_store(chdb_path)
    inserted = chain_traffic.seed(store)
    extra = trace_fixtures.seed(store)
    try:
        with chain_traffic.serving(create_app(store, chains=chain_traffic.catalog())) as client:
            yield Site(
                client,
                str(client.base_url).rstrip("/"),
                inserted["trades"],
                extra["big"],
                extra["loop"],
                extra["asgi"],
                tmp_path_factory.mktemp("screenshots"),
            )
    finally:
        store.command(f"DROP DATABASE IF EXISTS {store.database}")
        store.close()


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    with chromium() as opened:
        yield opened


@pytest.fixture
def tab(browser: Any, site: Site) -> Iterator[Tab]:
    with open_tab(browser, site.url, site.shots) as opened:
        yield opened
