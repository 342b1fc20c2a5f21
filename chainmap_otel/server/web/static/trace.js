// The trace view: a waterfall of every span of GET /api/v1/traces/{id}, Jaeger-like.
// Rows are the span tree (children by start time, collapsible), bars sit on a shared time
// axis, one colour per service, error spans marked red, the critical path drawn as dark
// segments over the bars. Only the rows in view are in the DOM (fixed row height,
// absolutely positioned), so a 5,000-span trace scrolls as cheaply as a 50-span one.
// The ASGI send/receive spans (asgi_internal) are folded until the toggle shows them; their
// critical-path time is drawn on the span they belong to. Previous/next error and the find
// box walk the spans in tree order, unfold what hides a hit and open its details. "Compare"
// links lead to the comparison with the typical trace of each of the trace's chains.
(function () {
  "use strict";
  var ROW = 24;
  var PALETTE = ["#2f6fb0", "#2e8b57", "#c77d1a", "#7b4fb3", "#0f8a8a", "#b0476a", "#5a6b2f",
    "#8a5a2b", "#3e5aa8", "#9a3fa0", "#2b7a4b", "#a86b00"];

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined) { e.textContent = text; }
    return e;
  }

  function ms(ns) {
    var v = ns / 1e6;
    if (v < 1) { return v.toFixed(3) + " ms"; }
    return v < 10000 ? v.toFixed(1) + " ms" : (v / 1000).toFixed(2) + " s";
  }

  function buildTree(trace) {
    var byId = {}, children = {}, roots = [];
    trace.spans.forEach(function (s) { byId[s.span_id] = s; });
    trace.spans.forEach(function (s) {
      if (s.parent_span_id && byId[s.parent_span_id] && s.parent_span_id !== s.span_id) {
        (children[s.parent_span_id] = children[s.parent_span_id] || []).push(s);
      } else { roots.push(s); }
    });
    var byStart = function (a, b) { return a.start_unix_nano - b.start_unix_nano; };
    roots.sort(byStart);
    Object.keys(children).forEach(function (k) { children[k].sort(byStart); });
    return { byId: byId, children: children, roots: roots };
  }

  function criticalBySpan(trace) {
    var out = {};
    trace.critical_path.forEach(function (c) {
      (out[c.span_id] = out[c.span_id] || []).push([c.start_unix_nano, c.end_unix_nano]);
    });
    return out;
  }

  function pct(part, whole) {
    var v = whole > 0 ? part / whole * 100 : 0;
    return (v >= 10 || v === 0 ? v.toFixed(0) : v.toFixed(1)) + " %";
  }

  // The critical path's total and the span (service · operation) with most time on it.
  function criticalSummary(trace, total) {
    var byOp = {}, sum = 0, names = {};
    trace.spans.forEach(function (s) { names[s.span_id] = s; });
    trace.critical_path.forEach(function (c) {
      var d = c.end_unix_nano - c.start_unix_nano;
      sum += d;
      var s = names[c.span_id];
      var owner = s && s.asgi_internal && names[s.parent_span_id] ? names[s.parent_span_id] : s;
      var key = owner ? owner.service + " · " + owner.name : c.service + " · " + c.name;
      byOp[key] = (byOp[key] || 0) + d;
    });
    var top = null;
    Object.keys(byOp).forEach(function (k) { if (!top || byOp[k] > top.ns) { top = {label: k, ns: byOp[k]}; } });
    return {ns: Math.min(sum, total), top: top};
  }

  function View(root, trace) {
    this.root = root;
    this.trace = trace;
    this.tree = buildTree(trace);
    this.critical = criticalBySpan(trace);
    this.collapsed = {};
    this.colours = {};
    var self = this;
    trace.services.forEach(function (s, i) { self.colours[s] = PALETTE[i % PALETTE.length]; });
    this.t0 = trace.start_unix_nano;
    this.total = Math.max(trace.end_unix_nano - trace.start_unix_nano, 1);
    this.selected = null;
    this.showAsgi = false;
    this.matches = [];
    this.cursor = {error: -1, match: -1};
    // Spans of other traces joined to this one by span links, by the span of this trace.
    this.linked = {};
    (trace.linked_traces || []).forEach(function (l) {
      (self.linked[l.span_id] = self.linked[l.span_id] || []).push(l);
    });
    this.build();
    this.flatten();
    this.render();
  }

  View.prototype.build = function () {
    var self = this;
    var t = this.trace;
    var summary = el("div", "trace-summary");
    var cp = criticalSummary(t, this.total);
    var facts = [
      ["duration", ms(t.end_unix_nano - t.start_unix_nano)],
      ["spans", String(t.span_count) + (t.asgi_internal_count ? " (" + t.asgi_internal_count + " ASGI send/receive)" : "")],
      ["errors", String(t.error_count)],
      ["services", String(t.services.length)],
      ["critical path", ms(cp.ns) + " · " + pct(cp.ns, this.total) + " of the trace"],
      ["most on it", cp.top ? cp.top.label + " " + ms(cp.top.ns) + " (" + pct(cp.top.ns, this.total) + ")" : "-"]
    ];
    facts.forEach(function (f) {
      var d = el("div");
      d.setAttribute("data-fact", f[0]);
      d.appendChild(el("dt", "", f[0]));
      d.appendChild(el("dd", f[0] === "errors" && t.error_count ? "error" : "", f[1]));
      summary.appendChild(d);
    });
    summary.querySelector('[data-fact="errors"] dt').title =
      "spans with status Error; the ASGI send/receive spans are not counted (their error repeats the server span's)";
    var chains = el("div");
    chains.appendChild(el("dt", "", "chains"));
    var dd = el("dd");
    if (!t.chain_ids.length) { dd.textContent = "none"; }
    t.chain_ids.forEach(function (c, i) {
      if (i) { dd.appendChild(document.createTextNode(" ")); }
      var a = el("a", "chain-tag", c);
      a.href = "/chains/" + encodeURIComponent(c);
      dd.appendChild(a);
    });
    chains.appendChild(dd);
    summary.appendChild(chains);
    this.root.appendChild(summary);
    if (t.note) { this.root.appendChild(el("p", "note", t.note)); }

    var legend = el("div", "legend");
    t.services.forEach(function (s) {
      var item = el("span");
      var swatch = el("i");
      swatch.style.background = self.colours[s];
      item.appendChild(swatch);
      item.appendChild(document.createTextNode(s));
      legend.appendChild(item);
    });
    var cp = el("span");
    cp.appendChild(el("i", "critical-swatch"));
    cp.appendChild(document.createTextNode("critical path"));
    legend.appendChild(cp);
    var err = el("span");
    err.appendChild(el("i", "error-swatch"));
    err.appendChild(document.createTextNode("error"));
    legend.appendChild(err);
    this.root.appendChild(legend);

    var tools = el("div", "wf-tools");
    var expand = el("button", "expand-all", "expand all");
    var collapse = el("button", "collapse-all", "collapse all");
    expand.type = collapse.type = "button";
    expand.addEventListener("click", function () { self.collapsed = {}; self.flatten(); self.render(true); });
    collapse.addEventListener("click", function () {
      self.tree.roots.forEach(function (r) { if (self.tree.children[r.span_id]) { self.collapsed[r.span_id] = true; } });
      self.flatten(); self.render(true);
    });
    tools.appendChild(expand);
    tools.appendChild(collapse);
    if (t.asgi_internal_count) {
      var asgi = el("label", "asgi-toggle");
      var box = el("input");
      box.type = "checkbox";
      box.addEventListener("change", function () { self.showAsgi = box.checked; self.flatten(); self.render(true); self.find(self.query || ""); });
      asgi.appendChild(box);
      asgi.appendChild(document.createTextNode(" show " + t.asgi_internal_count + " ASGI send/receive spans"));
      tools.appendChild(asgi);
    }
    var prev = el("button", "prev-error", "◀ previous error");
    var next = el("button", "next-error", "next error ▶");
    prev.type = next.type = "button";
    prev.disabled = next.disabled = !t.error_count;
    this.errorPosition = el("span", "muted error-position", t.error_count ? "" : "no errors");
    prev.addEventListener("click", function () { self.step("error", -1); });
    next.addEventListener("click", function () { self.step("error", 1); });
    tools.appendChild(prev);
    tools.appendChild(next);
    tools.appendChild(this.errorPosition);
    var find = el("input", "find");
    find.type = "search";
    find.placeholder = "find in trace: service, operation, attribute, id";
    find.setAttribute("aria-label", "find in trace");
    this.findCount = el("span", "muted find-count");
    find.addEventListener("input", function () { self.find(find.value); });
    find.addEventListener("keydown", function (evt) {
      if (evt.key === "Enter") { evt.preventDefault(); self.step("match", evt.shiftKey ? -1 : 1); }
    });
    tools.appendChild(find);
    tools.appendChild(this.findCount);
    this.root.appendChild(tools);

    if (t.chain_ids.length) {
      var compare = el("div", "compare-links");
      compare.appendChild(el("span", "muted", "compare with a typical trace of "));
      var until = new Date(Math.min(Date.now(), t.start_unix_nano / 1e6 + 30 * 60 * 1000)).toISOString();
      t.chain_ids.forEach(function (c) {
        var a = el("a", "compare-typical", c);
        a.href = "/compare?" + new URLSearchParams({b: t.trace_id, chain: c, since: "1h", until: until}).toString();
        a.title = "this trace against the error-free " + c + " trace nearest the chain's median latency in the hour up to " + until;
        compare.appendChild(a);
      });
      var other = el("form", "compare-other");
      other.action = "/compare";
      other.innerHTML = '<input name="a" size="34" placeholder="or a baseline trace id" aria-label="baseline trace id"><input type="hidden" name="b"><button type="submit">compare</button>';
      other.querySelector('input[name="b"]').value = t.trace_id;
      compare.appendChild(other);
      this.root.appendChild(compare);
    }

    if ((t.linked_traces || []).length) {
      // A message's consumers continue the trace elsewhere (linked_from); a consumer's
      // trace began at its producer (links_to). Each leads to the other trace.
      var linked = el("div", "linked-traces");
      linked.appendChild(el("span", "muted", "linked traces "));
      t.linked_traces.forEach(function (l) {
        var onward = l.direction === "linked_from";
        var a = el("a", "linked-trace " + l.direction, (onward ? "→ " : "← ") + l.service + " · " + l.name);
        a.href = "/traces/" + encodeURIComponent(l.trace_id);
        a.setAttribute("data-trace-id", l.trace_id);
        a.title = (onward ? "continues in trace " : "started by trace ") + l.trace_id + ", " + ms(l.wait_ms * 1e6) + " between them (the queue wait of a message)";
        linked.appendChild(a);
        linked.appendChild(el("span", "muted wait", ms(l.wait_ms * 1e6) + (onward ? " later" : " earlier")));
      });
      this.root.appendChild(linked);
      if (t.linked_traces.some(function (l) { return l.direction === "linked_from"; })) {
        this.instancePath(t.trace_id);
      }
    }

    var axis = el("div", "wf-axis");
    var axisLabel = el("div", "wf-label", "service · operation");
    var ticks = el("div", "wf-ticks");
    for (var i = 0; i <= 4; i += 1) {
      var tick = el("span", "tick", ms(this.total * i / 4));
      tick.style.left = (i * 25) + "%";
      ticks.appendChild(tick);
    }
    axis.appendChild(axisLabel);
    axis.appendChild(ticks);

    var layout = el("div", "wf-layout");
    var column = el("div", "wf-column");
    this.scroller = el("div", "wf-scroll");
    this.body = el("div", "wf-body");
    this.scroller.appendChild(this.body);
    column.appendChild(axis);
    column.appendChild(this.scroller);
    this.details = el("aside", "span-details");
    this.details.hidden = true;
    layout.appendChild(column);
    layout.appendChild(this.details);
    this.root.appendChild(layout);
    this.scroller.addEventListener("scroll", function () { self.render(); });
    window.addEventListener("resize", function () { self.render(true); });
    this.body.addEventListener("click", function (evt) {
      var row = evt.target.closest(".wf-row");
      if (!row) { return; }
      var id = row.getAttribute("data-span-id");
      if (evt.target.closest(".toggle")) {
        self.collapsed[id] = !self.collapsed[id];
        self.flatten(); self.render(true);
        return;
      }
      self.select(id);
    });
  };

  View.prototype.hidden = function (span) { return span.asgi_internal && !this.showAsgi; };

  View.prototype.flatten = function () {
    var rows = [], stack = [], tree = this.tree, collapsed = this.collapsed;
    for (var i = tree.roots.length - 1; i >= 0; i -= 1) { stack.push([tree.roots[i], 0]); }
    while (stack.length) {
      var top = stack.pop(), span = top[0], depth = top[1];
      var hidden = this.hidden(span);
      if (!hidden) { rows.push([span, depth]); }
      var kids = tree.children[span.span_id];
      if (kids && !collapsed[span.span_id]) {
        // A folded span's children (none in practice) take its place.
        for (var k = kids.length - 1; k >= 0; k -= 1) { stack.push([kids[k], hidden ? depth : depth + 1]); }
      }
    }
    this.rows = rows;
    this.rowIndex = {};
    for (var r = 0; r < rows.length; r += 1) { this.rowIndex[rows[r][0].span_id] = r; }
    this.root.setAttribute("data-asgi", this.showAsgi ? "shown" : "folded");
    this.body.style.height = (rows.length * ROW) + "px";
    this.root.setAttribute("data-rows", String(rows.length));
  };

  View.prototype.row = function (span, depth, index) {
    var row = el("div", "wf-row");
    row.style.top = (index * ROW) + "px";
    row.setAttribute("data-span-id", span.span_id);
    if (span.status === "error") { row.className += " failed"; }
    if (this.selected === span.span_id) { row.className += " selected"; }
    var sections = this.sectionsOf(span);
    if (sections.length) { row.className += " on-critical-path"; }
    if (this.matchSet && this.matchSet[span.span_id]) { row.className += " match"; }
    var label = el("div", "wf-label");
    label.style.paddingLeft = (4 + depth * 14) + "px";
    var kids = this.tree.children[span.span_id];
    var toggle = el("span", "toggle", kids ? (this.collapsed[span.span_id] ? "▸" : "▾") : "");
    if (kids) { toggle.title = kids.length + " children"; }
    label.appendChild(toggle);
    var svc = el("span", "svc", span.service);
    svc.style.borderLeftColor = this.colours[span.service];
    label.appendChild(svc);
    if (span.status === "error") { label.appendChild(el("span", "err-mark", "!")); }
    span.entry_ids.forEach(function (c) { label.appendChild(el("span", "entry-tag", c + " entry")); });
    (this.linked[span.span_id] || []).forEach(function (l) {
      var tag = el("a", "link-tag", (l.direction === "linked_from" ? "↪ " : "↩ ") + l.service);
      tag.href = "/traces/" + encodeURIComponent(l.trace_id);
      tag.title = l.service + " · " + l.name + " in trace " + l.trace_id;
      label.appendChild(tag);
    });
    label.appendChild(el("span", "op", " " + span.name));
    label.title = span.service + " · " + span.name + " (" + span.kind + ")";
    row.appendChild(label);
    var track = el("div", "wf-track");
    var bar = el("span", "bar");
    var left = (span.start_unix_nano - this.t0) / this.total * 100;
    var width = Math.max(span.duration_ns / this.total * 100, 0.15);
    bar.style.left = left + "%";
    bar.style.width = width + "%";
    bar.style.background = this.colours[span.service];
    track.appendChild(bar);
    var self = this;
    sections.forEach(function (c) {
      var seg = el("span", "cp");
      seg.style.left = ((c[0] - self.t0) / self.total * 100) + "%";
      seg.style.width = Math.max((c[1] - c[0]) / self.total * 100, 0.1) + "%";
      track.appendChild(seg);
    });
    var value = el("span", "wf-value", ms(span.duration_ns));
    if (left + width <= 80) {
      value.style.left = (left + width) + "%";
    } else if (left > 12) {  // no room after the bar: put the duration before it
      value.style.right = (100 - left) + "%";
      value.className += " before";
    } else {  // the bar spans (nearly) the whole axis: write inside its end
      value.style.right = (100 - left - width) + "%";
      value.className += " inside";
    }
    track.appendChild(value);
    row.appendChild(track);
    return row;
  };

  View.prototype.render = function (force) {
    var top = this.scroller.scrollTop;
    var height = this.scroller.clientHeight || 600;
    var first = Math.max(0, Math.floor(top / ROW) - 10);
    var last = Math.min(this.rows.length, Math.ceil((top + height) / ROW) + 10);
    if (!force && first === this.first && last === this.last) { return; }
    this.first = first; this.last = last;
    var frag = document.createDocumentFragment();
    for (var i = first; i < last; i += 1) { frag.appendChild(this.row(this.rows[i][0], this.rows[i][1], i)); }
    this.body.replaceChildren(frag);
  };

  // Critical sections drawn on a row: its own, plus (while folded) its ASGI children's.
  View.prototype.sectionsOf = function (span) {
    var own = this.critical[span.span_id] || [];
    if (this.showAsgi) { return own; }
    var self = this, extra = [];
    (this.tree.children[span.span_id] || []).forEach(function (k) {
      if (k.asgi_internal) { extra = extra.concat(self.critical[k.span_id] || []); }
    });
    return extra.length ? own.concat(extra) : own;
  };

  // Every span in tree order, whatever is collapsed (the order error and find walk).
  View.prototype.treeOrder = function () {
    if (this.ordered) { return this.ordered; }
    var out = [], stack = [], tree = this.tree;
    for (var i = tree.roots.length - 1; i >= 0; i -= 1) { stack.push(tree.roots[i]); }
    while (stack.length) {
      var span = stack.pop();
      out.push(span);
      var kids = tree.children[span.span_id] || [];
      for (var k = kids.length - 1; k >= 0; k -= 1) { stack.push(kids[k]); }
    }
    this.ordered = out;
    return out;
  };

  View.prototype.errors = function () {
    return this.treeOrder().filter(function (s) { return s.status === "error" && !s.asgi_internal; });
  };

  // Unfold the ancestors of a span, scroll its row into view and open its details.
  View.prototype.reveal = function (span) {
    var parent = this.tree.byId[span.parent_span_id], changed = false;
    while (parent && parent.span_id !== span.span_id) {
      if (this.collapsed[parent.span_id]) { this.collapsed[parent.span_id] = false; changed = true; }
      parent = this.tree.byId[parent.parent_span_id];
    }
    if (changed) { this.flatten(); }
    var index = this.rowIndex[span.span_id];
    var view = this.scroller.clientHeight || 600;
    if (index * ROW < this.scroller.scrollTop || (index + 1) * ROW > this.scroller.scrollTop + view) {
      this.scroller.scrollTop = Math.max(0, index * ROW - view / 3);
    }
    this.render(true);
    this.select(span.span_id);
  };

  View.prototype.step = function (what, direction) {
    var list = what === "error" ? this.errors() : this.matches;
    if (!list.length) { return; }
    var at = this.cursor[what] + direction;
    at = (at + list.length) % list.length;
    this.cursor[what] = at;
    this.reveal(list[at]);
    var label = (at + 1) + " of " + list.length;
    if (what === "error") { this.errorPosition.textContent = "error " + label; } else { this.findCount.textContent = label + " matches"; }
    this.root.setAttribute("data-" + what + "-at", String(at + 1));
  };

  View.prototype.find = function (text) {
    var query = text.trim().toLowerCase(), self = this;
    this.query = text;
    this.matches = [];
    this.matchSet = null;
    this.cursor.match = -1;
    if (query) {
      this.matchSet = {};
      this.matches = this.treeOrder().filter(function (s) {
        if (self.hidden(s)) { return false; }
        var hit = [s.service, s.name, s.span_id].some(function (v) { return v.toLowerCase().indexOf(query) >= 0; }) ||
          Object.keys(s.attributes).some(function (k) {
            return k.toLowerCase().indexOf(query) >= 0 || String(s.attributes[k]).toLowerCase().indexOf(query) >= 0;
          });
        if (hit) { self.matchSet[s.span_id] = true; }
        return hit;
      });
    }
    this.findCount.textContent = query ? this.matches.length + " matches" : "";
    this.root.setAttribute("data-matches", String(this.matches.length));
    this.render(true);
  };

  function table(title, map) {
    var keys = Object.keys(map || {}).sort();
    var box = el("section");
    box.appendChild(el("h4", "", title + " (" + keys.length + ")"));
    if (!keys.length) { return box; }
    var t = el("table", "kv");
    keys.forEach(function (k) {
      var tr = el("tr");
      tr.appendChild(el("th", "", k));
      tr.appendChild(el("td", "", String(map[k])));
      t.appendChild(tr);
    });
    box.appendChild(t);
    return box;
  }

  View.prototype.select = function (id) {
    var span = this.tree.byId[id];
    if (!span) { return; }
    this.selected = id;
    this.render(true);
    var d = this.details;
    d.replaceChildren();
    var close = el("button", "close", "×");
    close.type = "button";
    close.title = "close";
    var self = this;
    close.addEventListener("click", function () { d.hidden = true; self.selected = null; self.render(true); });
    d.appendChild(close);
    d.appendChild(el("h3", "", span.service + " · " + span.name));
    var facts = el("dl", "facts");
    [["kind", span.kind], ["status", span.status + (span.status_message ? ": " + span.status_message : "")],
      ["start", "+" + ms(span.start_unix_nano - this.t0)], ["duration", ms(span.duration_ns)],
      ["span id", span.span_id], ["parent", span.parent_span_id || "(root)"],
      ["chains", span.chain_ids.join(" > ") || "none"],
      ["entry of", span.entry_ids.join(", ") || "-"],
      ["scope", span.scope.name + (span.scope.version ? " " + span.scope.version : "")]
    ].forEach(function (f) {
      var div = el("div");
      div.appendChild(el("dt", "", f[0]));
      div.appendChild(el("dd", f[0] === "status" && span.status === "error" ? "error" : "", f[1]));
      facts.appendChild(div);
    });
    d.appendChild(facts);
    var cp = this.critical[id];
    if (cp) {
      var total = cp.reduce(function (sum, c) { return sum + c[1] - c[0]; }, 0);
      d.appendChild(el("p", "critical-share", "On the critical path for " + ms(total) + ", " + pct(total, this.total) + " of the trace."));
    }
    d.appendChild(table("attributes", span.attributes));
    var events = el("section");
    events.appendChild(el("h4", "", "events (" + span.events.length + ")"));
    span.events.forEach(function (e) {
      events.appendChild(el("div", "event", "+" + ms(e.time_unix_nano - self.t0) + " " + e.name));
      if (Object.keys(e.attributes).length) { events.appendChild(table("", e.attributes)); }
    });
    d.appendChild(events);
    var links = el("section");
    links.appendChild(el("h4", "", "links (" + span.links.length + ")"));
    span.links.forEach(function (l) {
      var a = el("a", "", l.trace_id + " / " + l.span_id);
      a.href = "/traces/" + encodeURIComponent(l.trace_id);
      var div = el("div");
      div.appendChild(a);
      links.appendChild(div);
    });
    d.appendChild(links);
    d.appendChild(table("resource", span.resource));
    d.hidden = false;
  };

  // The chain instance this trace starts, when its critical path runs on through a queue
  // into a linked trace: end to end, with each section (queue waits marked) leading to
  // its trace.
  View.prototype.instancePath = function (traceId) {
    var box = el("div", "instance-path");
    this.root.insertBefore(box, this.root.querySelector(".linked-traces").nextSibling);
    fetch("/api/v1/chains/traces/" + encodeURIComponent(traceId) + "/critical-path")
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (cp) {
        if (!cp || !cp.instance) { box.remove(); return; }
        var inst = cp.instance;
        box.appendChild(el("span", "muted", "chain instance end to end " + ms(inst.end_to_end_ms * 1e6) +
          " over " + inst.traces.length + " traces; its critical path: "));
        var list = el("ol", "instance-sections");
        inst.sections.forEach(function (s) {
          var item = el("li", s.queue ? "queue" : "");
          var a = el("a", "", s.service + " · " + s.name);
          a.href = "/traces/" + encodeURIComponent(s.trace_id);
          a.setAttribute("data-trace-id", s.trace_id);
          item.appendChild(a);
          item.appendChild(el("span", "muted", " " + ms(s.end_unix_nano - s.start_unix_nano)));
          list.appendChild(item);
        });
        box.appendChild(list);
        box.setAttribute("data-sections", String(inst.sections.length));
      })
      .catch(function () { box.remove(); });
  };

  function start() {
    var root = document.getElementById("trace-view");
    if (!root) { return; }
    var id = root.getAttribute("data-trace-id");
    var status = el("p", "muted loading", "loading trace…");
    root.appendChild(status);
    fetch("/api/v1/traces/" + encodeURIComponent(id) + window.location.search)
      .then(function (r) { return r.json().then(function (body) { return [r.ok, body]; }); })
      .then(function (res) {
        status.remove();
        if (!res[0]) { root.appendChild(el("p", "error", res[1].detail || "the trace could not be loaded")); return; }
        root.chainmapView = new View(root, res[1]);
        root.setAttribute("data-loaded", "1");
      })
      .catch(function (exc) { status.className = "error"; status.textContent = "the trace could not be loaded: " + exc; });
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
}());
