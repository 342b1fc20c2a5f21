// Refreshes the page content every N seconds (main[data-refresh]) while the tab is
// visible and nobody is typing; keeps the scroll position. No libraries.
(function () {
  "use strict";
  var main = document.querySelector("main[data-refresh]");
  if (!main || !window.fetch || !window.DOMParser) { return; }
  var seconds = parseInt(main.getAttribute("data-refresh"), 10) || 10;
  function typing() {
    var el = document.activeElement;
    return el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA");
  }
  function refresh() {
    if (document.visibilityState !== "visible" || typing()) { return; }
    fetch(window.location.href, { headers: { "Accept": "text/html" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (text) {
        if (text === null) { return; }
        var fresh = new DOMParser().parseFromString(text, "text/html").querySelector("main");
        if (fresh) { main.innerHTML = fresh.innerHTML; }
      })
      .catch(function () { /* the server is restarting: try again next tick */ });
  }
  window.setInterval(refresh, seconds * 1000);
}());
