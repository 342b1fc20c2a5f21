"""The trace view at 5,000 spans: the whole-trace API and the waterfall in headless Chromium.

    python benchmarks/trace_view.py [--repeat 7]

One chDB store holds the browser tests' 5,000-span trace (tests/server/trace_fixtures.py)
and a 10-span trading trace; ``chainmap serve``'s app runs under uvicorn. Measured, each
as the median of ``--repeat`` runs and printed next to a baseline from the same run:

1. ``GET /api/v1/traces/{id}`` (every column of every span plus the critical path) against
   ``GET /api/v1/chains/traces/{id}/critical-path`` (six columns, the path only) on the
   same 5,000-span trace;
2. opening ``/traces/{id}`` until the first waterfall rows are drawn, 5,000 spans against
   10 spans;
3. one scroll step of the waterfall (the rows in view rebuilt), 5,000 spans against 10:
   only the rows in view are in the DOM, so this should stay near 1.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from chainmap_otel.server import create_app
from chainmap_otel.storage.schema import apply_schema
from chainmap_otel.storage.store import open_store
from tests.server import chain_traffic, trace_fixtures

_RENDER_STEP = """async () => {
  const view = document.getElementById('trace-view').chainmapView;
  const times = [];
  for (let i = 0; i < 40; i += 1) {
    view.scroller.scrollTop = (i % 2) * 24 * 30;
    const t0 = performance.now();
    view.render(true);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[times.length >> 1];
}"""


def _median_ms(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("headless Chromium is needed (Debian package chromium)")
    from playwright.sync_api import sync_playwright

    directory = tempfile.mkdtemp(prefix="bench-trace-view-")
    store = open_store(f"chdb://{directory}")
    try:
        apply_schema(store, progress=lambda line: None)
        small = chain_traffic.seed(store)["trades"][0]
        big = trace_fixtures.seed(store)["big"]
        app = create_app(store, chains=chain_traffic.catalog())
        with chain_traffic.serving(app) as client, sync_playwright() as playwright:
            whole = _median_ms(lambda: client.get(f"/api/v1/traces/{big}").json(), args.repeat)
            path_only = _median_ms(
                lambda: client.get(f"/api/v1/chains/traces/{big}/critical-path").json(),
                args.repeat,
            )
            browser = playwright.chromium.launch(
                executable_path=chromium, args=["--no-sandbox", "--disable-gpu"]
            )
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            base = str(client.base_url).rstrip("/")

            def open_trace(trace: str) -> Callable[[], object]:
                def run() -> object:
                    page.goto(f"{base}/traces/{trace}")
                    return page.wait_for_selector("#trace-view[data-loaded] .wf-row")

                return run

            open_big = _median_ms(open_trace(big), args.repeat)
            open_small = _median_ms(open_trace(small), args.repeat)
            steps = {}
            for name, trace in (("big", big), ("small", small)):
                open_trace(trace)()
                steps[name] = statistics.median(
                    page.evaluate(_RENDER_STEP) for _ in range(args.repeat)
                )
            browser.close()
        print(f"spans: {trace_fixtures.BIG_SPANS} vs 10; repeat {args.repeat}")
        print(
            f"whole-trace API {whole:.1f} ms vs critical-path API {path_only:.1f} ms "
            f"(same trace): ratio {whole / path_only:.2f}"
        )
        print(
            f"open the trace view: {open_big:.1f} ms at 5,000 spans vs {open_small:.1f} ms "
            f"at 10: ratio {open_big / open_small:.2f}"
        )
        print(
            f"one scroll step: {steps['big']:.3f} ms at 5,000 spans vs {steps['small']:.3f} ms "
            f"at 10: ratio {steps['big'] / max(steps['small'], 1e-6):.2f}"
        )
    finally:
        store.close()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
