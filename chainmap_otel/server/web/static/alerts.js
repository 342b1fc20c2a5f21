// Firing alerts in a corner of the page: every chain's on the chain list, the chain's own on
// its page, with a link to /alerts.
// Reads GET /api/v1/alerts every 10 s; silent when the server runs without a registry.
(function () {
  "use strict";
  if (!window.fetch) { return; }
  var match = window.location.pathname.match(/^\/chains\/([^/]+)$/);
  var only = match ? decodeURIComponent(match[1]) : null;
  if (!only && window.location.pathname !== "/") { return; }
  var banner = document.createElement("section");
  banner.id = "chain-alerts";
  banner.className = "alerts";
  banner.hidden = true;
  var main = document.querySelector("main");
  if (!main || !main.parentNode) { return; }
  // Fixed in a corner (style.css): appearing, growing or going never moves the page.
  main.parentNode.insertBefore(banner, main);
  function text(tag, value, css) {
    var el = document.createElement(tag);
    el.textContent = value;
    if (css) { el.className = css; }
    return el;
  }
  function render(alerts) {
    var firing = alerts.filter(function (a) {
      return a.state === "firing" && (!only || a.chain_id === only);
    });
    banner.textContent = "";
    banner.hidden = firing.length === 0;
    if (!firing.length) { return; }
    banner.appendChild(text("h2", firing.length + " firing alert" + (firing.length > 1 ? "s" : "")));
    var list = document.createElement("ul");
    firing.forEach(function (a) {
      var item = document.createElement("li");
      item.className = "alert " + a.severity;
      var link = document.createElement("a");
      link.href = "/chains/" + encodeURIComponent(a.chain_id);
      link.textContent = a.chain_id;
      item.appendChild(link);
      item.appendChild(text("span", " " + a.severity + " ", "badge critical"));
      item.appendChild(text("span", (a.annotations && a.annotations.summary) || a.objective));
      list.appendChild(item);
    });
    banner.appendChild(list);
    var all = document.createElement("a");
    all.href = "/alerts";
    all.textContent = "all alerts, history and deliveries";
    banner.appendChild(all);
  }
  function poll() {
    fetch("/api/v1/alerts", { headers: { "Accept": "application/json" } })
      .then(function (response) { return response.ok ? response.json() : { alerts: [] }; })
      .then(function (body) { render(body.alerts || []); })
      .catch(function () { /* serve is restarting: try again next tick */ });
  }
  poll();
  window.setInterval(poll, 10000);
}());
