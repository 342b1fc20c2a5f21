// Draws a topology (the JSON of GET /api/v1/chains/.../topology, embedded in the page as
// <script type="application/json" class="topology-data">) with Cytoscape.js and the dagre
// layered layout (vendored in /static/vendor): left to right, fitted to the box, zoom and
// pan with wheel and drag, edge labels "calls · errors · p95", self-calls as loops.
// Clicking a node opens a panel with its chains (from the impact API), its traces and links.
(function () {
  "use strict";
  var COLOURS = {
    service: "#2f6fb0", database: "#c77d1a", messaging: "#7b4fb3",
    virtual: "#6b7280", user: "#2e8b57", caller: "#ffffff"
  };

  function ms(value) {
    return value < 10000 ? value.toFixed(1) + " ms" : (value / 1000).toFixed(2) + " s";
  }

  function elements(topo) {
    var out = [];
    topo.nodes.forEach(function (n) {
      var stat = n.calls ? n.calls + " calls" + (n.errors ? " · " + n.errors + " err" : "") : "";
      // A chain's caller node is titled by its service (its id may be qualified).
      var title = n.title || n.service || n.id;
      var longest = Math.max(title.length, stat.length);
      out.push({ group: "nodes", data: {
        id: n.id, label: title + (stat ? "\n" + stat : ""), type: n.type, service: title,
        w: Math.max(60, longest * 7.2 + 24), h: stat ? 46 : 30,
        colour: COLOURS[n.type] || COLOURS.service, failed: n.errors > 0 ? 1 : 0
      } });
    });
    topo.edges.forEach(function (e, i) {
      var label = e.calls + " calls" + (e.errors ? " · " + e.errors + " err" : "") +
        " · p95 " + ms(e.p95_ms);
      out.push({ group: "edges", data: {
        id: "e" + i, source: e.source, target: e.target, label: label, calls: e.calls,
        failed: e.errors > 0 ? 1 : 0, async: e.connection_type === "messaging_system" ? 1 : 0
      } });
    });
    return out;
  }

  var STYLE = [
    { selector: "node", style: {
      "shape": "round-rectangle", "background-color": "data(colour)", "label": "data(label)",
      "color": "#fff", "font-size": 12, "font-weight": 600, "text-wrap": "wrap",
      "text-valign": "center", "text-halign": "center", "width": "data(w)", "height": "data(h)",
      "border-width": 0
    } },
    { selector: "node[type = 'caller']", style: {
      "color": "#24292f", "border-width": 2, "border-style": "dashed", "border-color": "#6b7280"
    } },
    { selector: "node[failed = 1]", style: { "border-width": 3, "border-color": "#cf222e" } },
    { selector: "node:selected", style: { "overlay-color": "#2f6fb0", "overlay-opacity": 0.25 } },
    { selector: "edge", style: {
      "width": 1.6, "line-color": "#555", "target-arrow-color": "#555",
      "target-arrow-shape": "triangle", "curve-style": "bezier", "label": "data(label)",
      "font-size": 11, "color": "#24292f", "text-background-color": "#f6f8fa",
      "text-background-opacity": 0.9, "text-background-padding": 2,
      "text-rotation": "autorotate", "loop-direction": "-45deg", "loop-sweep": "-60deg",
      "control-point-step-size": 60
    } },
    { selector: "edge[failed = 1]", style: { "line-color": "#cf222e", "target-arrow-color": "#cf222e" } },
    { selector: "edge[async = 1]", style: { "line-style": "dashed" } }
  ];

  function link(href, text) {
    var a = document.createElement("a");
    a.href = href; a.textContent = text;
    return a;
  }

  function showNode(panel, node, since) {
    var id = node.data("service");
    var q = since ? "&since=" + encodeURIComponent(since) : "";
    panel.replaceChildren();
    var close = document.createElement("button");
    close.type = "button"; close.className = "close"; close.title = "close"; close.textContent = "×";
    close.addEventListener("click", function () { panel.hidden = true; });
    panel.appendChild(close);
    var title = document.createElement("h3");
    title.textContent = id + " (" + node.data("type") + ")";
    panel.appendChild(title);
    var list = document.createElement("ul");
    [
      link("/search?service=" + encodeURIComponent(id) + q, "traces through " + id),
      link("/search?service=" + encodeURIComponent(id) + "&status=error" + q, "failing traces"),
      link("/api/v1/chains/impact/" + encodeURIComponent(id) + (since ? "?since=" + encodeURIComponent(since) : ""), "impact (JSON)")
    ].forEach(function (a) { var li = document.createElement("li"); li.appendChild(a); list.appendChild(li); });
    panel.appendChild(list);
    var chains = document.createElement("p");
    chains.className = "muted";
    chains.textContent = "chains through " + id + ": loading…";
    panel.appendChild(chains);
    panel.hidden = false;
    fetch("/api/v1/chains/impact/" + encodeURIComponent(id) + (since ? "?since=" + encodeURIComponent(since) : ""))
      .then(function (r) { return r.ok ? r.json() : { chains: [] }; })
      .then(function (impact) {
        chains.replaceChildren(document.createTextNode("chains through " + id + ": "));
        if (!impact.chains.length) { chains.appendChild(document.createTextNode("none in this window")); }
        impact.chains.forEach(function (c, i) {
          if (i) { chains.appendChild(document.createTextNode(", ")); }
          var cid = c.chain_id || c.id;
          var a = link("/chains/" + encodeURIComponent(cid), cid + (c.name ? " " + c.name : ""));
          a.className = "chain-link";
          chains.appendChild(a);
          if (c.relation || c.kind) { chains.appendChild(document.createTextNode(" (" + (c.relation || c.kind) + ")")); }
        });
      })
      .catch(function () { chains.textContent = "chains through " + id + ": the impact query failed"; });
  }

  var LAYOUT = { name: "dagre", rankDir: "LR", nodeSep: 36, rankSep: 170, edgeSep: 24, padding: 20 };
  // A small graph fitted to a wide box is not blown up past this zoom.
  var MAX_FIT_ZOOM = 1.25;
  // Room kept between an edge and a node it goes around, and between labels (model px).
  var CLEARANCE = 12;

  function expanded(box, by) {
    return { x1: box.x1 - by, y1: box.y1 - by, x2: box.x2 + by, y2: box.y2 + by };
  }

  function overlaps(a, b) {
    return a.x1 < b.x2 && b.x1 < a.x2 && a.y1 < b.y2 && b.y1 < a.y2;
  }

  // Whether the segment p-q passes through the box (Liang-Barsky clipping).
  function crosses(p, q, box) {
    var t0 = 0, t1 = 1, dx = q.x - p.x, dy = q.y - p.y;
    var edges = [[-dx, p.x - box.x1], [dx, box.x2 - p.x], [-dy, p.y - box.y1], [dy, box.y2 - p.y]];
    for (var i = 0; i < 4; i++) {
      var pk = edges[i][0], qk = edges[i][1];
      if (pk === 0) { if (qk < 0) { return false; } continue; }
      var r = qk / pk;
      if (pk < 0) { if (r > t1) { return false; } if (r > t0) { t0 = r; } }
      else { if (r < t0) { return false; } if (r < t1) { t1 = r; } }
    }
    return t0 < t1;
  }

  // The nodes other than its ends that the polyline through points crosses.
  function blockers(cy, edge, points) {
    var ends = [edge.source().id(), edge.target().id()];
    return cy.nodes().filter(function (n) {
      if (ends.indexOf(n.id()) >= 0) { return false; }
      var box = expanded(n.boundingBox(), CLEARANCE / 2);
      for (var i = 0; i + 1 < points.length; i++) {
        if (crosses(points[i], points[i + 1], box)) { return true; }
      }
      return false;
    });
  }

  // Dagre places nodes only; a straight edge between ranks far apart can run through the
  // nodes between them. Such an edge becomes a polyline that bridges over (or under) all of
  // them: two bends at the first and last obstacle, offset past the farthest corner.
  function route(cy) {
    cy.edges().forEach(function (edge) {
      edge.removeStyle("curve-style segment-distances segment-weights");
      if (edge.isLoop() || edge.parallelEdges().length > 1) { return; }
      var p = edge.source().position(), q = edge.target().position();
      var length = Math.hypot(q.x - p.x, q.y - p.y);
      if (!length) { return; }
      var u = { x: (q.x - p.x) / length, y: (q.y - p.y) / length };
      var normal = { x: -u.y, y: u.x };
      var found = blockers(cy, edge, [p, q]);
      var seen = {};
      for (var round = 0; round < 6 && found.length; round++) {
        found.forEach(function (n) { seen[n.id()] = n; });
        var lo = 1, hi = 0, above = -Infinity, below = Infinity;
        Object.keys(seen).forEach(function (id) {
          var b = expanded(seen[id].boundingBox(), CLEARANCE);
          [[b.x1, b.y1], [b.x2, b.y1], [b.x1, b.y2], [b.x2, b.y2]].forEach(function (c) {
            var rx = c[0] - p.x, ry = c[1] - p.y;
            var t = (rx * u.x + ry * u.y) / length, side = rx * normal.x + ry * normal.y;
            lo = Math.min(lo, t); hi = Math.max(hi, t);
            above = Math.max(above, side); below = Math.min(below, side);
          });
        });
        // Each round that still touches a node goes wider (weights are measured between the
        // edge's end points on the node borders, not between the centres used here).
        var extra = round * CLEARANCE;
        var offset = above < -below ? above + extra : below - extra;
        var slack = 0.03 * (round + 1);
        lo = Math.max(0.02, Math.min(lo - slack, 0.9));
        hi = Math.max(lo + 0.02, Math.min(hi + slack, 0.98));
        for (var sign = 1; sign >= -1; sign -= 2) {
          edge.style({
            "curve-style": "segments",
            "segment-distances": [sign * offset, sign * offset],
            "segment-weights": [lo, hi]
          });
          var drawn = edge.segmentPoints() || [];
          // Which side a positive distance lies on is Cytoscape's convention: check it.
          var side = drawn.length
            ? (drawn[0].x - p.x) * normal.x + (drawn[0].y - p.y) * normal.y : 0;
          if (side * offset > 0) { break; }
        }
        found = blockers(cy, edge, [p].concat(edge.segmentPoints() || [], [q]));
      }
    });
  }

  // Edge labels that would cover another label or a node move along their edge's normal
  // (busiest edges keep their place).
  function separateLabels(cy) {
    var placed = cy.nodes().map(function (n) { return n.boundingBox(); });
    var options = { includeNodes: false, includeEdges: false, includeLabels: true,
                    includeMainLabels: true, includeSourceLabels: false,
                    includeTargetLabels: false, includeOverlays: false };
    var edges = cy.edges().sort(function (a, b) {
      return (b.data("calls") || 0) - (a.data("calls") || 0);
    });
    edges.forEach(function (edge) {
      edge.removeStyle("text-margin-y");
      var shifts = [0, -16, 16, -32, 32, -48, 48, -64, 64];
      for (var i = 0; i < shifts.length; i++) {
        edge.style("text-margin-y", shifts[i]);
        var box = expanded(edge.boundingBox(options), 2);
        if (!placed.some(function (other) { return overlaps(box, other); })) {
          placed.push(box);
          return;
        }
      }
      edge.style("text-margin-y", 0);
      placed.push(edge.boundingBox(options));
    });
  }

  function arrange(cy) {
    route(cy);
    separateLabels(cy);
  }

  // A wide, flat graph in a tall box would be drawn tiny: size the box to the graph's
  // aspect ratio (between 260 px and 70 % of the window), then fit the graph into it.
  function fitHeight(canvas, cy) {
    var bb = cy.elements().boundingBox();
    var width = canvas.clientWidth || 1000;
    var wanted = Math.round(width * bb.h / Math.max(bb.w, 1)) + 60;
    var height = Math.max(260, Math.min(wanted, Math.round(window.innerHeight * 0.7)));
    canvas.parentNode.style.height = height + "px";
    cy.resize();
    fit(cy);
  }

  function fit(cy) {
    cy.fit(undefined, 20);
    if (cy.zoom() > MAX_FIT_ZOOM) {
      cy.zoom(MAX_FIT_ZOOM);
      cy.center();
    }
  }

  function draw(box) {
    if (box.chainmapGraph || !window.cytoscape) { return; }
    var data = box.querySelector("script.topology-data");
    var canvas = box.querySelector(".canvas");
    if (!data || !canvas) { return; }
    var topo = JSON.parse(data.textContent);
    if (!topo.nodes.length) {
      canvas.textContent = "No traffic in this window.";
      canvas.className += " empty";
      return;
    }
    if (window.cytoscapeDagre && !window.cytoscapeDagreRegistered) {
      window.cytoscape.use(window.cytoscapeDagre);
      window.cytoscapeDagreRegistered = true;
    }
    var cy = window.cytoscape({
      container: canvas, elements: elements(topo), style: STYLE,
      layout: LAYOUT,
      minZoom: 0.1, maxZoom: 3
    });
    arrange(cy);
    fitHeight(canvas, cy);
    box.chainmapGraph = cy;
    box.setAttribute("data-drawn", "1");
    var panel = box.querySelector(".node-panel");
    cy.on("tap", function (evt) {
      if (!panel) { return; }
      if (evt.target === cy) { panel.hidden = true; return; }  // a click on the background
      if (evt.target.isNode()) { showNode(panel, evt.target, box.getAttribute("data-since")); }
    });
    // The page refresh hands over new numbers: relabel in place, re-layout only when the
    // graph's shape changed, so a zoomed or panned view stays where the reader left it.
    box.chainmapUpdate = function (next) {
      var fresh = elements(next);
      var same = fresh.length === cy.elements().length && fresh.every(function (e) {
        var old = cy.getElementById(e.data.id);
        return old.nonempty() && (e.group === "nodes" ||
          (old.data("source") === e.data.source && old.data("target") === e.data.target));
      });
      if (!same) {
        cy.elements().remove();
        cy.add(fresh);
        cy.layout(LAYOUT).run();
        arrange(cy);
        fitHeight(canvas, cy);
        return;
      }
      fresh.forEach(function (e) { cy.getElementById(e.data.id).data(e.data); });
      separateLabels(cy);  // new numbers, new label widths
    };
    var refitButton = box.querySelector("button.fit");
    if (refitButton) { refitButton.addEventListener("click", function () { fit(cy); }); }
    // Refit when the box's width changes (window resize, a scrollbar appearing as the
    // trace lists fill in); the height is ours to set, so it does not count.
    var lastWidth = canvas.clientWidth;
    var refit = function () {
      if (canvas.clientWidth !== lastWidth) { lastWidth = canvas.clientWidth; fitHeight(canvas, cy); }
    };
    if (window.ResizeObserver) { new window.ResizeObserver(refit).observe(canvas); }
    window.addEventListener("resize", refit);
  }

  function drawAll() { document.querySelectorAll("[data-topology]").forEach(draw); }
  window.chainmapDrawGraphs = drawAll;
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", drawAll); } else { drawAll(); }
}());
