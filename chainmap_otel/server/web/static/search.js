// Trace lists from GET /api/v1/traces: the search page's results (its form's fields are the
// API's parameters, kept in the page URL so a search can be shared) and the chain page's
// "slowest / failing / recent" lists (<div class="trace-list" data-query="...">).
// Every row links to the trace view.
(function () {
  "use strict";
  var COLUMNS = ["start", "root", "duration", "status", "spans", "services", "chains"];
  // The chain page's lists are narrow: the chain is known, the services are in the graph.
  var COMPACT = 5;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined) { e.textContent = text; }
    return e;
  }

  function ms(v) { return v < 10000 ? v.toFixed(1) + " ms" : (v / 1000).toFixed(2) + " s"; }

  function when(iso) {
    var d = new Date(iso);
    return isNaN(d.getTime()) ? String(iso) : d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
  }

  function results(traces, compact) {
    var t = el("table", "traces" + (compact ? " compact" : ""));
    var head = el("tr");
    COLUMNS.slice(0, compact ? COMPACT : COLUMNS.length).forEach(function (c) { head.appendChild(el("th", "", c)); });
    var thead = el("thead");
    thead.appendChild(head);
    t.appendChild(thead);
    var body = el("tbody");
    traces.forEach(function (tr) {
      var row = el("tr", tr.status === "error" ? "failed" : "");
      row.setAttribute("data-trace-id", tr.trace_id);
      var start = el("td");
      var a = el("a", "trace-link", compact ? when(tr.start).slice(11) : when(tr.start));
      a.href = "/traces/" + encodeURIComponent(tr.trace_id);
      a.title = tr.trace_id + " started " + when(tr.start);
      start.appendChild(a);
      row.appendChild(start);
      row.appendChild(el("td", "", tr.root_service + " · " + tr.root_operation));
      row.appendChild(el("td", "num", ms(tr.duration_ms)));
      var status = el("td", tr.status === "error" ? "error" : "");
      status.textContent = tr.status + (tr.error_count ? " (" + tr.error_count + ")" : "");
      row.appendChild(status);
      row.appendChild(el("td", "num", String(tr.span_count)));
      if (!compact) {
        row.appendChild(el("td", "services", (tr.services || []).join(", ")));
        row.appendChild(el("td", "", (tr.chain_ids || []).join(", ")));
      }
      body.appendChild(row);
    });
    t.appendChild(body);
    return t;
  }

  function load(box, query) {
    var shown = box.getAttribute("data-state") === "done";
    box.setAttribute("data-state", "loading");
    if (!shown) { box.replaceChildren(el("p", "muted", "searching…")); }  // a reload keeps the old rows up
    return fetch("/api/v1/traces?" + query)
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (body) { return [r.ok, body, r.status]; });
      })
      .then(function (res) {
        if (res[2] === 404 && res[1].detail === "Not Found") {  // no such route: an older server
          box.replaceChildren(el("p", "muted", "This server has no trace search (GET /api/v1/traces)."));
          box.setAttribute("data-state", "error");
          return;
        }
        if (!res[0]) {
          box.replaceChildren(el("p", "error", res[1].detail || "the search failed (HTTP " + res[2] + ")"));
          box.setAttribute("data-state", "error");
          return;
        }
        var traces = res[1].traces || [];
        var compact = box.hasAttribute("data-compact");
        box.replaceChildren(traces.length ? results(traces, compact) : el("p", "muted", "no traces match"));
        box.setAttribute("data-state", "done");
        box.setAttribute("data-count", String(traces.length));
      })
      .catch(function (exc) {
        box.replaceChildren(el("p", "error", "the search failed: " + exc));
        box.setAttribute("data-state", "error");
      });
  }

  function searchPage() {
    var form = document.getElementById("trace-search");
    var box = document.getElementById("search-results");
    if (!form || !box) { return; }
    function query() {
      var params = new URLSearchParams();
      new FormData(form).forEach(function (value, key) {
        if (String(value).trim() !== "") { params.append(key, String(value).trim()); }
      });
      return params.toString();
    }
    form.addEventListener("submit", function (evt) {
      evt.preventDefault();
      var q = query();
      window.history.replaceState(null, "", "/search" + (q ? "?" + q : ""));
      load(box, q);
    });
    load(box, query());
  }

  function lists() {
    document.querySelectorAll(".trace-list[data-query]").forEach(function (box) {
      load(box, box.getAttribute("data-query"));
    });
  }

  function start() { searchPage(); lists(); }
  window.chainmapLoadTraceLists = lists;
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
}());
