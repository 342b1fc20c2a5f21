"""Rule coverage on every surface of a real serve (uvicorn, chDB): the web page, the API, the
CLI through ``--server`` and ``/metrics`` show the same numbers for the same window, over the
fleet of tests/support/coverage_fleet.py (source-tagged with current and stale chains files,
tagged by the real Collector's OTTL, classified at query time, unmatched endpoints)."""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from chainmap_otel.analysis.coverage import TAGGERS
from chainmap_otel.cli import COMMAND_MODULES, app
from chainmap_otel.server import create_app
from chainmap_otel.storage.store import TraceStore
from tests.server import chain_traffic
from tests.support.browser import chromium, needs_chromium, open_tab
from tests.support.coverage_fleet import EXPECTED, UNMATCHED, current_catalog, load_fleet
from tests.support.stores import fresh_store

runner = CliRunner()
WINDOW = "1h"


@dataclass
class Site:
    client: httpx.Client
    url: str
    shots: Path


@pytest.fixture(scope="module")
def site(
    chdb_store: TraceStore, chdb_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:

    store = fresh_store(chdb_path)
    try:
        load_fleet(store, tmp_path_factory.mktemp("coverage-fleet"))
        with pytest.MonkeyPatch.context() as env:
            # A scrape waits for a refresh that started after it, and that refresh counts
            # coverage over the same length of window the other surfaces are asked for.
            env.setenv("CHAINMAP_METRICS_FRESH_WAIT", "10s")
            env.setenv("CHAINMAP_METRICS_COVERAGE_WINDOW", WINDOW)
            with chain_traffic.serving(create_app(store, chains=current_catalog())) as client:
                yield Site(
                    client,
                    str(client.base_url).rstrip("/"),
                    tmp_path_factory.mktemp("screenshots"),
                )
    finally:
        store.command(f"DROP DATABASE IF EXISTS {store.database}")
        store.close()


def summary(data: dict[str, Any]) -> dict[str, Any]:
    """The numbers every surface shows: per chain instances by tagger and disagreements,
    unmatched traces and endpoints."""
    return {
        "chains": {
            c["chain_id"]: (
                c["instances"],
                *(c["tagged_by"][t] for t in TAGGERS),
                c["tag_not_rules"],
                c["rules_not_tag"],
            )
            for c in data["chains"]
        },
        "unmatched": data["unmatched"]["traces"],
        "endpoints": [
            (e["service"], e["route"], e["method"], e["traces"])
            for e in data["unmatched"]["endpoints"]
        ],
    }


def expected_summary() -> dict[str, Any]:
    return {
        "chains": {
            chain: (
                sum(e["tagged_by"].values()),
                *(e["tagged_by"][t] for t in TAGGERS),
                *e["disagree"],
            )
            for chain, e in EXPECTED.items()
        },
        "unmatched": sum(n for *_, n in UNMATCHED),
        "endpoints": UNMATCHED,
    }


def api(site: Site) -> dict[str, Any]:
    response = site.client.get("/api/v1/coverage", params={"window": WINDOW})
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def table_rows(html: str, css: str) -> list[list[str]]:
    """The text of each body cell of the page's ``<table class=css>``."""
    table = re.search(rf'<table class="{css}">.*?<tbody>(.*?)</tbody>', html, re.S)
    assert table is not None, css
    return [
        [
            unescape(re.sub(r"<[^>]+>", "", cell)).strip()
            for cell in re.findall(r"<td>(.*?)</td>", row, re.S)
        ]
        for row in re.findall(r"<tr>(.*?)</tr>", table.group(1), re.S)
    ]


def page_summary(html: str) -> dict[str, Any]:
    chains = {}
    for name, instances, source, collector, query_time, _split, disagree in table_rows(
        html, "coverage"
    ):
        chains[name.split()[0]] = (
            int(instances),
            int(source),
            int(collector),
            int(query_time),
            int(disagree),
        )
    traces = re.search(r"(\d+) traces in no chain", html)
    assert traces is not None
    endpoints = [
        (service, route, method, int(n))
        for service, method, route, _kind, n, _link in table_rows(html, "unmatched")
    ]
    return {"chains": chains, "unmatched": int(traces.group(1)), "endpoints": endpoints}


def metrics_summary(text: str) -> dict[str, Any]:
    samples = {
        family.name: [(s.labels, s.value) for s in family.samples]
        for family in text_string_to_metric_families(text)
    }
    instances: dict[str, dict[str, int]] = {}
    for labels, value in samples["chainmap_chain_instances"]:
        instances.setdefault(labels["chain_id"], {})[labels["tagged_by"]] = int(value)
    disagree: dict[str, dict[str, int]] = {}
    for labels, value in samples["chainmap_chain_rule_disagreements"]:
        disagree.setdefault(labels["chain_id"], {})[labels["kind"]] = int(value)
    return {
        "chains": {
            chain: (
                sum(by.values()),
                *(by[t] for t in TAGGERS),
                disagree[chain]["tag_not_rules"],
                disagree[chain]["rules_not_tag"],
            )
            for chain, by in instances.items()
        },
        "unmatched": int(samples["chainmap_unmatched_traces"][0][1]),
        "endpoints": sorted(
            (
                (labels["service"], labels["route"], labels["method"], int(value))
                for labels, value in samples["chainmap_unmatched_endpoint_traces"]
            ),
            key=lambda e: -e[3],
        ),
        "window_seconds": samples["chainmap_coverage_window_seconds"][0][1],
    }


def cli_json(site: Site, *args: str) -> Any:
    for module in COMMAND_MODULES:
        importlib.import_module(module)
    result = runner.invoke(app, ["coverage", "--server", site.url, *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_the_api_reports_the_fleets_coverage(site: Site) -> None:
    assert summary(api(site)) == expected_summary()


def test_web_page_api_cli_and_metrics_agree(site: Site) -> None:
    data = api(site)
    expected = summary(data)
    cli = json.loads(cli_json(site, "--window", WINDOW, "-f", "json"))
    assert summary(cli) == expected
    page = site.client.get("/coverage", params={"since": WINDOW})
    assert page.status_code == 200
    shown = page_summary(page.text)
    assert shown["chains"] == {
        chain: (n, source, collector, query_time, tag_not + rules_not)
        for chain, (n, source, collector, query_time, tag_not, rules_not) in expected[
            "chains"
        ].items()
    }
    assert (shown["unmatched"], shown["endpoints"]) == (
        expected["unmatched"],
        expected["endpoints"],
    )
    scraped = metrics_summary(site.client.get("/metrics").text)
    assert scraped.pop("window_seconds") == 3600
    assert scraped == expected


def test_cli_tables_and_tsv(site: Site) -> None:
    table = cli_json(site, "--window", WINDOW, "--wide")
    assert "tags and current rules that disagree" in table
    assert "/legacy/decide" in table and "not in the rules" in table
    tsv = cli_json(site, "--window", WINDOW, "-f", "tsv").splitlines()
    header = "chain\tinstances\tsource\tcollector\tquery time\tdisagree"
    assert tsv[0] == header
    assert "A2\t7\t7\t0\t0\t3" in tsv


def test_a_bad_window_or_limit_is_a_400_naming_it(site: Site) -> None:
    for params, name in (
        ({"window": "soon"}, "query parameter window"),
        ({"window": "1h", "since": "2h"}, "query parameter window"),
        ({"limit": "0"}, "query parameter limit"),
    ):
        response = site.client.get("/api/v1/coverage", params=params)
        assert response.status_code == 400, params
        assert name in response.json()["detail"], response.json()
    result = runner.invoke(app, ["coverage", "--server", site.url, "--window", "soon"])
    assert result.exit_code == 1 and "--window" in result.output, result.output


@needs_chromium
def test_the_coverage_page_renders_and_is_in_the_nav(site: Site) -> None:
    with chromium() as browser, open_tab(browser, site.url, site.shots) as tab:
        tab.open("/")
        tab.wait("table.chains")
        tab.page.click("nav >> text=coverage")
        tab.wait("table.coverage")
        assert tab.page.url.endswith("/coverage")
        rows = tab.page.eval_on_selector_all(
            "table.coverage tbody tr", "rows => rows.map(r => r.cells[0].innerText)"
        )
        assert [r.split()[0] for r in rows] == list(EXPECTED)
        widths = tab.page.eval_on_selector_all(
            "table.coverage tbody tr:nth-child(3) .split span",
            "spans => spans.map(s => s.getBoundingClientRect().width)",
        )
        assert len(widths) == 1 and widths[0] > 0  # A2: every instance tagged at the source
        assert tab.page.inner_text("#disagreements .count") == "5"
        assert "/healthz" in tab.page.inner_text("table.unmatched")
        assert not tab.problems, tab.problems
        tab.shot("web-view-coverage.png", full_page=True)
        # The heading's JSON link is the API's answer for the page's window.
        tab.page.click("a.json")
        assert json.loads(tab.page.inner_text("body"))["totals"]["instances"] == 30
