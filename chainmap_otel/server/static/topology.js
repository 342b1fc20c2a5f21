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
        id: "e" + i, source: e.source, target: e.target, label: label,
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

  // A wide, flat graph in a tall box would be drawn tiny: size the box to the graph's
  // aspect ratio (between 260 px and 70 % of the window), then fit the graph into it.
  function fitHeight(canvas, cy) {
    var bb = cy.elements().boundingBox();
    var width = canvas.clientWidth || 1000;
    var wanted = Math.round(width * bb.h / Math.max(bb.w, 1)) + 60;
    var height = Math.max(260, Math.min(wanted, Math.round(window.innerHeight * 0.7)));
    canvas.parentNode.style.height = height + "px";
    cy.resize();
    cy.fit(undefined, 20);
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
        fitHeight(canvas, cy);
        return;
      }
      fresh.forEach(function (e) { cy.getElementById(e.data.id).data(e.data); });
    };
    var fit = box.querySelector("button.fit");
    if (fit) { fit.addEventListener("click", function () { cy.fit(undefined, 20); }); }
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
