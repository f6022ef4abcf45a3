// The console's own small script. No inline handlers anywhere: the CSP forbids them.
(function () {
  "use strict";

  // Live countdown for every element carrying data-deadline (an ISO 8601 timestamp).
  function formatRemaining(ms) {
    if (ms <= 0) return "deadline passed";
    var s = Math.floor(ms / 1000);
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    if (h > 0) return "due in " + h + "h " + m + "m";
    if (m > 0) return "due in " + m + "m " + (sec < 10 ? "0" : "") + sec + "s";
    return "due in " + sec + "s";
  }
  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-deadline]").forEach(function (el) {
      var remaining = Date.parse(el.dataset.deadline) - now;
      el.textContent = formatRemaining(remaining);
      el.classList.toggle("urgent", remaining > 0 && remaining < 60000);
      el.classList.toggle("overdue", remaining <= 0);
    });
  }

  function updateCount() {
    var rows = document.getElementById("queue-rows");
    var count = document.getElementById("pending-count");
    if (rows && count) count.textContent = rows.children.length;
  }

  function setLiveStatus(text, ok) {
    var el = document.getElementById("live-status");
    if (!el) return;
    el.textContent = text;
    el.classList.toggle("offline", !ok);
  }

  var opened = false;
  document.addEventListener("htmx:wsOpen", function () {
    setLiveStatus("Live", true);
    // After a reconnect, reload the rows: pushes sent while we were away are not replayed.
    var live = document.getElementById("queue-live");
    if (opened && live && live.dataset.resyncUrl && window.htmx) {
      window.htmx.ajax("GET", live.dataset.resyncUrl, { target: "#queue-rows", swap: "outerHTML" });
    }
    opened = true;
  });
  document.addEventListener("htmx:wsClose", function () { setLiveStatus("Reconnecting…", false); });
  document.addEventListener("htmx:wsAfterMessage", function () { updateCount(); tick(); });
  document.addEventListener("htmx:afterSwap", function () { updateCount(); tick(); });

  document.addEventListener("DOMContentLoaded", function () {
    tick();
    updateCount();
    setInterval(tick, 1000);
  });
})();
