// Trace comparison: GET /api/v1/traces/compare drawn as one tree of matched, added and
// missing spans, B minus A. Per span: both durations, the difference, both self times and
// theirs, errors on one side; slower in B is red, faster green. "only differences" hides
// matched spans without errors that moved less than 1 ms.
(function () {
  "use strict";
  var THRESHOLD_MS = 1;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined) { e.textContent = text; }
    return e;
  }

  function ms(v) { return v === null || v === undefined ? "-" : v.toFixed(1); }
  function signed(v) {
    if (v === null || v === undefined) { return "-"; }
    return (v > 0 ? "+" : v < 0 ? "−" : "±") + Math.abs(v).toFixed(1);
  }
  function tone(v) { return v === null ? "" : v >= THRESHOLD_MS ? "slower" : v <= -THRESHOLD_MS ? "faster" : ""; }

  var ERRORS = {none: "", both: "both", only_a: "A only", only_b: "B only"};

  function changed(n) {
    if (n.state !== "matched" || n.errors !== "none") { return true; }
    return Math.max(Math.abs(n.duration_diff_ms), Math.abs(n.self_diff_ms)) >= THRESHOLD_MS;
  }

  function traceLink(id, label) {
    var a = el("a", "", label || id);
    a.href = "/traces/" + encodeURIComponent(id);
    return a;
  }

  function header(root, c) {
    var facts = el("dl", "facts compare-facts");
    function fact(name, value, cls) {
      var d = el("div");
      d.setAttribute("data-fact", name);
      d.appendChild(el("dt", "", name));
      var dd = el("dd", cls || "");
      if (typeof value === "string") { dd.textContent = value; } else { dd.appendChild(value); }
      d.appendChild(dd);
      facts.appendChild(d);
    }
    var a = el("span");
    a.appendChild(traceLink(c.a.trace_id));
    a.appendChild(document.createTextNode(" " + ms(c.a.duration_ms) + " ms"));
    fact(c.typical ? "A: typical " + c.typical.chain_id + " trace" : "A (baseline)", a);
    var b = el("span");
    b.appendChild(traceLink(c.b.trace_id));
    b.appendChild(document.createTextNode(" " + ms(c.b.duration_ms) + " ms"));
    fact("B", b);
    fact("B − A", signed(c.duration_diff_ms) + " ms", tone(c.duration_diff_ms));
    fact("spans", c.matched + " matched · " + c.added + " added · " + c.missing + " missing");
    fact("errors", c.errors.only_b + " only in B · " + c.errors.only_a + " only in A · " + c.errors.both + " in both",
      c.errors.only_b ? "error" : "");
    root.appendChild(facts);
    if (c.typical) {
      root.appendChild(el("p", "muted typical-note",
        "A is the error-free " + c.typical.chain_id + " trace nearest the chain's median latency (" +
        ms(c.typical.median_ms) + " ms over " + c.typical.traces + " traces, " + c.typical.window.since +
        " to " + c.typical.window.until + "); its " + c.typical.chain_id + " latency is " + ms(c.typical.latency_ms) + " ms."));
    }
    if (c.note) { root.appendChild(el("p", "note", c.note)); }
    if (c.a.folded_asgi_spans || c.b.folded_asgi_spans) {
      root.appendChild(el("p", "muted", "ASGI send/receive spans are folded into their server span (A " +
        c.a.folded_asgi_spans + ", B " + c.b.folded_asgi_spans + ")."));
    }
  }

  function render(root, c) {
    header(root, c);
    var tools = el("div", "wf-tools");
    var only = el("label");
    var box = el("input");
    box.type = "checkbox";
    box.className = "only-changes";
    only.appendChild(box);
    only.appendChild(document.createTextNode(" only differences (added, missing, errors, ≥ " + THRESHOLD_MS + " ms)"));
    tools.appendChild(only);
    root.appendChild(tools);
    var table = el("table", "compare");
    var head = el("tr");
    ["span", "state", "A ms", "B ms", "B − A", "A self", "B self", "self B − A", "errors"].forEach(function (h) {
      head.appendChild(el("th", "", h));
    });
    var thead = el("thead");
    thead.appendChild(head);
    table.appendChild(thead);
    var body = el("tbody");
    c.nodes.forEach(function (n) {
      var tr = el("tr", n.state + (n.errors !== "none" ? " err-" + n.errors : ""));
      tr.setAttribute("data-node", n.id);
      tr.setAttribute("data-state", n.state);
      if (!changed(n)) { tr.setAttribute("data-unchanged", "1"); }
      var name = el("td", "span-name");
      name.style.paddingLeft = (0.5 + n.depth * 1.1) + "em";
      name.appendChild(el("span", "svc", n.service));
      name.appendChild(el("span", "op", " " + n.operation + (n.occurrence > 1 ? " #" + n.occurrence : "")));
      name.title = n.service + " · " + n.operation;
      tr.appendChild(name);
      tr.appendChild(el("td", "state", n.state === "matched" ? "" : n.state));
      tr.appendChild(el("td", "num", n.a ? ms(n.a.duration_ms) : "-"));
      tr.appendChild(el("td", "num", n.b ? ms(n.b.duration_ms) : "-"));
      tr.appendChild(el("td", "num diff " + tone(n.duration_diff_ms), signed(n.duration_diff_ms)));
      tr.appendChild(el("td", "num", n.a ? ms(n.a.self_ms) : "-"));
      tr.appendChild(el("td", "num", n.b ? ms(n.b.self_ms) : "-"));
      tr.appendChild(el("td", "num self-diff " + tone(n.self_diff_ms), signed(n.self_diff_ms)));
      tr.appendChild(el("td", n.errors === "none" ? "" : "error", ERRORS[n.errors]));
      body.appendChild(tr);
    });
    table.appendChild(body);
    root.appendChild(table);
    box.addEventListener("change", function () {
      table.classList.toggle("only-changes", box.checked);
      root.setAttribute("data-shown", String(table.querySelectorAll("tbody tr:not([data-unchanged])").length));
    });
    var legend = el("p", "muted");
    legend.textContent = "added: only in B · missing: only in A · self: a span's own time (its children's union taken out) · red slower in B, green faster";
    root.appendChild(legend);
  }

  function start() {
    var root = document.getElementById("compare-view");
    if (!root) { return; }
    var params = new URLSearchParams(window.location.search);
    if (!params.get("b")) {
      root.appendChild(el("p", "muted", "Give trace B and a baseline: trace A, or a chain whose typical trace of the window is compared with B."));
      return;
    }
    ["a", "chain", "since", "until"].forEach(function (k) { if (params.get(k) === "") { params.delete(k); } });
    var status = el("p", "muted loading", "comparing…");
    root.appendChild(status);
    fetch("/api/v1/traces/compare?" + params.toString())
      .then(function (r) { return r.json().then(function (body) { return [r.ok, body]; }); })
      .then(function (res) {
        status.remove();
        if (!res[0]) {
          root.appendChild(el("p", "error", res[1].detail || "the comparison failed"));
          root.setAttribute("data-loaded", "error");
          return;
        }
        render(root, res[1]);
        root.setAttribute("data-loaded", "1");
      })
      .catch(function (exc) { status.className = "error"; status.textContent = "the comparison failed: " + exc; });
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
}());
