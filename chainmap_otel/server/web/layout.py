"""The web view's page chrome and the cells every page shares: the header and its
navigation, the window picker, the auto-refresh (``static/app.js``), tables, badges and
sparklines, escaped once here."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any
from urllib.parse import urlencode

from fastapi import HTTPException
from fastapi.responses import HTMLResponse

__all__ = [
    "WINDOWS",
    "environment_picker",
    "error_page",
    "escape_html",
    "html_table",
    "json_for_html",
    "ms_text",
    "page",
    "pct_text",
    "plural",
    "query_string",
    "sparkline",
    "status_badge",
    "window_text",
]

WINDOWS = ("15m", "1h", "6h", "24h", "7d")


def escape_html(value: object) -> str:
    return escape(str(value))


#: What JSON must not carry verbatim inside an HTML ``<script>``: ``<`` and ``>`` (``<!--``,
#: ``<script``, ``</script`` change how the browser tokenises the element), ``&``, and the
#: line separators JavaScript before ES2019 ends a string at.
_HTML_UNSAFE = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def json_for_html(value: Any) -> str:
    """``value`` as JSON safe to embed in an HTML ``<script type="application/json">``.

    Every page that embeds JSON goes through this: the escapes are JSON string escapes,
    so ``JSON.parse`` of the element's text gives ``value`` back unchanged, whatever
    span, service or chain names it holds.
    """
    return json.dumps(value, separators=(",", ":")).translate(_HTML_UNSAFE)


def ms_text(value: float) -> str:
    return f"{value:,.1f} ms" if value < 10_000 else f"{value / 1000:,.2f} s"


def pct_text(value: float) -> str:
    return f"{value:.2%}"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def status_badge(status: str) -> str:
    return (
        f'<span class="badge {escape_html(status)}">{escape_html(status.replace("_", " "))}</span>'
    )


def query_string(since: str | None, until: str | None, **extra: str) -> str:
    params = {k: v for k, v in (("since", since), ("until", until), *extra.items()) if v}
    return ("?" + urlencode(params)) if params else ""


def html_table(headers: Sequence[str], rows: Iterable[Sequence[str]], css: str = "") -> str:
    head = "".join(f"<th>{escape_html(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def page(
    title: str,
    body: str,
    since: str | None = None,
    status: int = 200,
    window_text: str = "",
    scripts: Sequence[str] = (),
    refresh: bool = False,
    environment: str = "",
    environments: Sequence[str] = (),
    until: str | None = None,
) -> HTMLResponse:
    """A full page; pages over a time window get the window picker and the auto-refresh
    (``refresh``: the auto-refresh without a window).

    ``scripts`` are more files under ``/static`` the page needs (graph, trace view, ...).
    ``environment`` (the ``env`` query parameter) is kept by the window picker and the
    chains link; ``environments`` (the ones seen) make the environment selector.
    """
    tags = "".join(
        f'<script src="/static/{escape_html(name)}" defer></script>\n' for name in scripts
    )
    kept = {"env": environment} if environment else {}
    windows = " ".join(
        f'<a href="?{escape_html(urlencode({"since": w, **kept}))}" class="{"on" if (since or "1h") == w else ""}">{w}</a>'
        for w in WINDOWS
    )
    picker = (
        f'<div class="window">window: {windows} <span class="muted">{escape_html(window_text)}</span></div>'
        if window_text
        else ""
    )
    picker += environment_picker(since, until, environment, environments)
    home = "/" + query_string(None, None, env=environment)
    refresh_attribute = ' data-refresh="10"' if window_text or refresh else ""
    html = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape_html(title)} · chainmap</title>
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/style.css">
<script src="/static/app.js" defer></script>
{tags}</head><body>
<header><a class="brand" href="/">chainmap</a>
<nav><a href="{escape_html(home)}">chains</a> <a href="/topology">all traffic</a> <a href="/search">traces</a> <a href="/coverage">coverage</a> <a href="/alerts">alerts</a> <a href="/docs">API</a></nav>
<form class="lookup" action="/traces" method="get">
<input name="trace_id" placeholder="trace id (32 hex)" size="34" aria-label="trace id">
<button>open trace</button></form>
</header>
<main{refresh_attribute}>
{picker}
{body}
</main></body></html>"""
    return HTMLResponse(html, status_code=status)


def error_page(exc: HTTPException) -> HTMLResponse:
    body = f'<h1>Error {exc.status_code}</h1><p class="error">{escape_html(exc.detail)}</p>'
    return page(f"error {exc.status_code}", body, status=exc.status_code)


def window_text(window: dict[str, Any]) -> str:
    """The window as a page's header says it, with its environment when it has one."""
    shown = f"{window['since']} .. {window['until']}"
    return f"{shown} · environment {window['environment']}" if "environment" in window else shown


def sparkline(values: Sequence[float | None], title: str, css: str = "") -> str:
    """A tiny inline SVG line of ``values`` (gaps for ``None`` bridged), scaled to its own
    maximum; one step (a short window) is a level line, one value among empty steps a dot."""
    points = [(i, float(v)) for i, v in enumerate(values) if v is not None]
    if not points:
        return '<span class="muted" title="no traffic in the window">no data</span>'
    width, height = 80.0, 18.0
    top = max(v for _, v in points) or 1.0
    if len(values) == 1:  # one step (a short window): a level line across the box
        points = [(0, points[0][1]), (1, points[0][1])]
    step = width / max(1, len(values) - 1)
    xy = [(i * step, height - 1 - v / top * (height - 2)) for i, v in points]
    mark = (
        f'<circle cx="{xy[0][0]:.1f}" cy="{xy[0][1]:.1f}" r="2"/>'
        if len(xy) == 1
        else f'<polyline points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in xy)}"/>'
    )
    return (
        f'<svg class="spark {escape_html(css)}" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="{escape_html(title)}">'
        f"<title>{escape_html(title)}</title>{mark}</svg>"
    )


def environment_picker(
    since: str | None, until: str | None, environment: str, environments: Sequence[str]
) -> str:
    """The environment selector: every environment, then each one seen (and the chosen one,
    seen or not), as links that keep the window."""
    names = sorted({*(n for n in environments if n), *([environment] if environment else [])})
    if not names:
        return ""
    choices = [("", "all"), *((name, name) for name in names)]
    links = " ".join(
        f'<a href="{escape_html(query_string(since, until, env=value) or "?")}"'
        f' class="{"on" if value == environment else ""}">{escape_html(text)}</a>'
        for value, text in choices
    )
    return f'<div class="window environments">environment: {links}</div>'
