"""Headless Chromium through Playwright for the web view's tests: the browser, and a tab that
records every console error, uncaught exception and failed load of its page."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: Marks a module whose tests need Chromium.
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless Chromium is not installed (Debian package chromium; .ci/run installs it)",
)
DOCS = Path(__file__).resolve().parents[2] / "docs"
TIMEOUT_MS = 60_000
#: Resolves after two animation frames: the graph has redrawn after a resize.
SETTLE = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
#: Scrolls the waterfall from top to bottom a screen at a time; the span ids of every row
#: drawn on the way and the most rows in the DOM at once (only the rows in view are drawn).
COLLECT_ROWS = """async () => {
  const scroller = document.querySelector('.wf-scroll');
  const seen = new Set();
  let most = 0;
  for (let top = 0; ; top += scroller.clientHeight) {
    scroller.scrollTop = top;
    await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
    const rows = document.querySelectorAll('.wf-row');
    most = Math.max(most, rows.length);
    rows.forEach(r => seen.add(r.dataset.spanId));
    if (top >= scroller.scrollHeight) break;
  }
  return {ids: [...seen], most};
}"""


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (the Debian package's binary) for the duration of the block."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Tab:
    """A page with everything it reported: console errors, uncaught exceptions, failed loads."""

    page: Any
    url: str
    shots: Path
    problems: list[str] = field(default_factory=list)

    def open(self, path: str) -> Any:
        self.page.goto(self.url + path)
        return self.page

    def wait(self, selector: str) -> None:
        self.page.wait_for_selector(selector, state="attached", timeout=TIMEOUT_MS)

    def lists_loaded(self) -> None:
        """Every trace list of the page has loaded (or failed)."""
        self.page.wait_for_function(
            "() => [...document.querySelectorAll('.trace-list')].every("
            "b => ['done', 'error'].includes(b.dataset.state))",
            timeout=TIMEOUT_MS,
        )

    def collect_rows(self) -> dict[str, Any]:
        """``{"ids": [span ids of every waterfall row], "most": rows in the DOM at once}``."""
        collected: dict[str, Any] = self.page.evaluate(COLLECT_ROWS)
        return collected

    def shot(self, name: str, full_page: bool = False, element: str | None = None) -> None:
        """A screenshot of the viewport, of one ``element`` (a selector), or of the full page
        through a viewport as tall as the page, so that the graph has redrawn at that size
        (a full-page capture catches it mid-resize). Copied into ``docs/`` when
        ``UPDATE_SCREENSHOTS=1``."""
        path = self.shots / name
        size = self.page.viewport_size
        if element is not None:
            self.page.locator(element).screenshot(path=str(path))
        elif full_page:
            height = self.page.evaluate("() => document.documentElement.scrollHeight")
            self.page.set_viewport_size({"width": size["width"], "height": height})
            self.page.evaluate(SETTLE)
            self.page.screenshot(path=str(path))
            self.page.set_viewport_size(size)
        else:
            self.page.screenshot(path=str(path))
        if os.environ.get("UPDATE_SCREENSHOTS") == "1":
            shutil.copy(path, DOCS / name)


@contextmanager
def open_tab(browser: Any, url: str, shots: Path) -> Iterator[Tab]:
    """A fresh 1400x900 browser context on ``url`` whose page reports its problems."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    opened = Tab(page, url, shots)

    def console(message: Any) -> None:
        if message.type == "error":
            opened.problems.append(f"console: {message.text} at {message.location}")

    page.on("console", console)
    page.on("pageerror", lambda exc: opened.problems.append(f"uncaught: {exc}"))
    try:
        yield opened
    finally:
        context.close()
