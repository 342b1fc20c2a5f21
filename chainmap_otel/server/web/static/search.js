// Trace lists from GET /api/v1/traces: the search page's results (its form's fields are the
// API's parameters, kept in the page URL so a search can be shared; service and operation
// picked from GET /api/v1/traces/services and /operations for the window) with a
// duration-over-time scatter plot, and the chain page's "slowest / chain failed / a span
// failed / recent" lists (<div class="trace-list" data-query="...">). Every row and every
// point links to the trace view; every row names its error source.
(function () {
  "use strict";
  var COLUMNS = ["start", "root", "duration", "status", "spans", "services", "chains", "failed at"];
  // The chain page's lists are narrow: the chain is known, the services are in the graph.
  var COMPACT = ["start", "root", "duration", "status", "failed at"];
  // The SVG namespace, as the HTML parser assigns it (the page names no URL).
  var SVG = (function () {
    var holder = document.createElement("div");
    holder.innerHTML = "<svg></svg>";
    return holder.firstChild.namespaceURI;
  }());

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

  // The duration searched: the chain's entry span with a chain, else the whole trace.
  function duration(tr) { return tr.chain ? tr.chain.duration_ms : tr.duration_ms; }

  function statusText(tr) {
    var text = tr.status + (tr.error_count ? " (" + tr.error_count + ")" : "");
    if (tr.chain && tr.status === "error") {
      text += tr.chain.status === "error" ? " · chain failed" : " · chain ok";
    }
    return text;
  }

  function spanText(s) { return s.service + " · " + s.operation; }

  // Where it failed: the deepest Error span (where a failure usually begins), then the
  // first by time when that is another span; the status messages in the tooltip.
  function errorSource(tr) {
    var td = el("td", "error-source");
    var src = tr.error_source;
    if (!src) { td.textContent = "–"; return td; }
    var deepest = el("span", "deepest", spanText(src.deepest));
    td.appendChild(deepest);
    var tip = ["deepest: " + spanText(src.deepest) + (src.deepest.message ? " — " + src.deepest.message : "")];
    if (src.first.span_id !== src.deepest.span_id) {
      td.appendChild(el("span", "first muted", "first: " + spanText(src.first)));
      tip.push("first: " + spanText(src.first) + (src.first.message ? " — " + src.first.message : ""));
    } else if (src.deepest.message) {
      td.appendChild(el("span", "message muted", src.deepest.message));
    }
    td.title = tip.join("\n");
    return td;
  }

  function results(traces, compact) {
    var t = el("table", "traces" + (compact ? " compact" : ""));
    var head = el("tr");
    (compact ? COMPACT : COLUMNS).forEach(function (c) { head.appendChild(el("th", "", c)); });
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
      // The rest of its chain instances: traces linking to its spans (a queue's consumers).
      var linked = tr.linked_traces || [];
      if (linked.length) {
        var more = el("span", "linked muted",
          " +" + linked.length + " linked trace" + (linked.length === 1 ? "" : "s"));
        more.title = linked.join("\n");
        start.appendChild(more);
      }
      row.appendChild(start);
      row.appendChild(el("td", "", tr.root_service + " · " + tr.root_operation));
      var dur = el("td", "num", ms(duration(tr)));
      if (tr.chain) { dur.title = tr.chain.chain_id + " entry span; whole trace " + ms(tr.duration_ms); }
      row.appendChild(dur);
      row.appendChild(el("td", tr.status === "error" ? "error" : "", statusText(tr)));
      if (!compact) {
        row.appendChild(el("td", "num", String(tr.span_count)));
        row.appendChild(el("td", "services", (tr.services || []).join(", ")));
        row.appendChild(el("td", "", (tr.chain_ids || []).join(", ")));
      }
      row.appendChild(errorSource(tr));
      body.appendChild(row);
    });
    t.appendChild(body);
    return t;
  }

  function svg(tag, attrs) {
    var e = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    return e;
  }

  // Duration over time, one point per trace (red: failed); a click opens the trace.
  function scatter(box, traces) {
    if (!box) { return; }
    if (!traces.length) { box.replaceChildren(); box.removeAttribute("data-points"); return; }
    var W = Math.max(320, box.clientWidth || 800), H = 180, L = 64, R = 12, T = 10, B = 28;
    var times = traces.map(function (tr) { return new Date(tr.start).getTime(); });
    var t0 = Math.min.apply(null, times), t1 = Math.max.apply(null, times);
    if (t1 === t0) { t0 -= 1000; t1 += 1000; }
    var most = Math.max.apply(null, traces.map(duration)) || 1, top = most * 1.1;
    function y(v) { return H - B - v / top * (H - B - T); }
    var plot = svg("svg", {width: W, height: H, viewBox: "0 0 " + W + " " + H, role: "img",
                           "aria-label": "duration over time"});
    plot.appendChild(svg("line", {x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis"}));
    plot.appendChild(svg("line", {x1: L, y1: T, x2: L, y2: H - B, class: "axis"}));
    [most, most / 2, 0].forEach(function (v) {
      var label = svg("text", {x: L - 6, y: y(v) + 4, "text-anchor": "end", class: "tick"});
      label.textContent = ms(v);
      plot.appendChild(label);
    });
    [[t0, "start"], [t1, "end"]].forEach(function (tick) {
      var label = svg("text", {x: tick[1] === "start" ? L : W - R, y: H - 8,
                               "text-anchor": tick[1], class: "tick"});
      label.textContent = when(new Date(tick[0]).toISOString()).slice(11);
      plot.appendChild(label);
    });
    traces.forEach(function (tr, i) {
      var x = L + (times[i] - t0) / (t1 - t0) * (W - L - R);

      var a = svg("a", {href: "/traces/" + encodeURIComponent(tr.trace_id), class: "point"});
      var dot = svg("circle", {cx: x.toFixed(1), cy: y(duration(tr)).toFixed(1), r: 4.5,
                               class: tr.status === "error" ? "failed" : "ok",
                               "data-trace-id": tr.trace_id});
      var title = svg("title", {});
      title.textContent = when(tr.start) + " · " + ms(duration(tr)) + " · " +
        tr.root_service + " · " + tr.root_operation + (tr.status === "error" ? " · error" : "");
      dot.appendChild(title);
      a.appendChild(dot);
      plot.appendChild(a);
    });
    box.replaceChildren(plot);
    box.setAttribute("data-points", String(traces.length));
  }

  function load(box, query, plotBox) {
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
        scatter(plotBox, traces);
        box.setAttribute("data-state", "done");
        box.setAttribute("data-count", String(traces.length));
      })
      .catch(function (exc) {
        box.replaceChildren(el("p", "error", "the search failed: " + exc));
        box.setAttribute("data-state", "error");
      });
  }

  // Fills a pick list with the names the API lists, keeping the chosen one.
  function fill(select, names) {
    var chosen = select.value;
    var keep = select.options[0];
    select.replaceChildren(keep);
    if (chosen && names.indexOf(chosen) < 0) { names = [chosen].concat(names); }
    names.forEach(function (n) {
      var o = el("option", "", n);
      o.value = n;
      select.appendChild(o);
    });
    select.value = chosen;
  }

  function pickLists(form) {
    var service = form.querySelector("select[data-pick=service]");
    var operation = form.querySelector("select[data-pick=operation]");
    if (!service || !operation) { return; }
    function windowParams() {
      var p = new URLSearchParams();
      ["since", "until"].forEach(function (k) {
        var v = form.elements[k] && form.elements[k].value.trim();
        if (v) { p.set(k, v); }
      });
      return p;
    }
    function get(path, params, key) {
      return fetch(path + "?" + params.toString())
        .then(function (r) { return r.ok ? r.json() : {}; })
        .then(function (body) { return body[key] || []; })
        .catch(function () { return []; });
    }
    function operations() {
      var p = windowParams();
      operation.removeAttribute("data-loaded");
      if (!service.value) {
        fill(operation, []);
        operation.setAttribute("data-loaded", "");
        return Promise.resolve();
      }
      p.set("service", service.value);
      return get("/api/v1/traces/operations", p, "operations").then(function (names) {
        fill(operation, names);
        operation.setAttribute("data-loaded", "");
      });
    }
    function services() {
      return get("/api/v1/traces/services", windowParams(), "services").then(function (names) {
        fill(service, names);
        service.setAttribute("data-loaded", "");
        return operations();
      });
    }
    service.addEventListener("change", function () { operation.value = ""; operations(); });
    ["since", "until"].forEach(function (k) {
      if (form.elements[k]) { form.elements[k].addEventListener("change", services); }
    });
    services();
  }

  function searchPage() {
    var form = document.getElementById("trace-search");
    var box = document.getElementById("search-results");
    var plotBox = document.getElementById("search-scatter");
    if (!form || !box) { return; }
    pickLists(form);
    var add = document.getElementById("add-attr");
    if (add) {
      add.addEventListener("click", function () {
        var inputs = form.querySelectorAll("input[name=attr]");
        if (inputs.length >= 16) { return; }
        var last = inputs[inputs.length - 1];
        var next = last.cloneNode();
        next.value = "";
        last.after(next);
        next.focus();
      });
    }
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
      load(box, q, plotBox);
    });
    load(box, query(), plotBox);
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
