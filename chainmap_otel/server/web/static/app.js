// Refreshes the page content every N seconds (main[data-refresh]) while the tab is
// visible and nobody is typing; keeps the scroll position. A drawn graph is kept and
// relabelled (its zoom and pan survive), trace lists are kept and reloaded in place.
(function () {
  "use strict";
  var main = document.querySelector("main[data-refresh]");
  if (!main || !window.fetch || !window.DOMParser) { return; }
  var seconds = parseInt(main.getAttribute("data-refresh"), 10) || 10;
  function typing() {
    var el = document.activeElement;
    return el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA" || el.tagName === "SELECT");
  }
  function keepLive(fresh) {
    fresh.querySelectorAll("[data-topology]").forEach(function (box) {
      var old = main.querySelector('[data-topology="' + box.getAttribute("data-topology") + '"]');
      var data = box.querySelector("script.topology-data");
      if (old && old.chainmapUpdate && data) {
        old.chainmapUpdate(JSON.parse(data.textContent));
        old.querySelector("script.topology-data").textContent = data.textContent;
        box.replaceWith(old);
      }
    });
    fresh.querySelectorAll(".trace-list[data-query]").forEach(function (box) {
      var old = main.querySelector('.trace-list[data-query="' + box.getAttribute("data-query") + '"]');
      if (old) { box.replaceWith(old); }
    });
  }
  function refresh() {
    if (document.visibilityState !== "visible" || typing()) { return; }
    fetch(window.location.href, { headers: { "Accept": "text/html" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (text) {
        if (text === null) { return; }
        var fresh = new DOMParser().parseFromString(text, "text/html").querySelector("main");
        if (!fresh) { return; }
        keepLive(fresh);
        main.replaceChildren.apply(main, Array.prototype.slice.call(fresh.childNodes));
        if (window.chainmapDrawGraphs) { window.chainmapDrawGraphs(); }
        if (window.chainmapLoadTraceLists) { window.chainmapLoadTraceLists(); }
      })
      .catch(function () { /* the server is restarting: try again next tick */ });
  }
  window.setInterval(refresh, seconds * 1000);
}());
