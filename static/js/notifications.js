// Browser notifications for requests routed to the reviewer's teams. Polls the console's own
// notification feed (no third-party push service); the page link opens the decision page.
(function () {
  "use strict";
  var POLL_MS = 15000;
  var KEY = "approvals.lastNotificationId";
  var body = document.body;
  var feedUrl = body && body.dataset.notificationFeed;
  if (!feedUrl || !("Notification" in window)) return;

  var button = document.getElementById("enable-browser-notifications");
  if (button && Notification.permission === "default") {
    button.hidden = false;
    // Browsers only ask for permission from a click.
    button.addEventListener("click", function () {
      Notification.requestPermission().then(function () { button.hidden = true; });
    });
  }

  // The first poll in a browser only remembers where we are: no burst of old news.
  var primed = window.localStorage.getItem(KEY) !== null;

  function poll() {
    var after = parseInt(window.localStorage.getItem(KEY) || "0", 10) || 0;
    fetch(feedUrl + "?after=" + after, { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (!data) return;
        (data.notifications || []).forEach(function (item) {
          if (primed && Notification.permission === "granted") {
            var shown = new Notification(item.title, { body: item.body, tag: "approval-" + item.id });
            shown.onclick = function () { window.focus(); window.location.href = item.url; };
          }
          after = Math.max(after, item.id);
        });
        window.localStorage.setItem(KEY, String(after));
        primed = true;
      })
      .catch(function () { /* offline: try again next round */ });
  }

  poll();
  setInterval(poll, POLL_MS);
})();
