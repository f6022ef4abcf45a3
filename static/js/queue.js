// The queue page's own behaviour: what changed, said aloud; the bulk bar; the filters panel.
(function () {
  "use strict";

  function announce(text) {
    var region = document.getElementById("announcer");
    if (!region || !text) return;
    // A fresh text node each time: screen readers repeat an identical message only if it changes.
    region.textContent = "";
    window.setTimeout(function () { region.textContent = text; }, 50);
  }

  function rowIds() {
    var list = document.getElementById("queue-rows");
    var ids = {};
    if (list) Array.prototype.forEach.call(list.children, function (row) { ids[row.id] = row; });
    return ids;
  }
  // Said in the console's voice, so the agent's text is said as the agent's, in quotes: a
  // summary or a tool named "Approved" must not sound like the console's verdict.
  function headline(row) {
    var claim = row.querySelector(".agent-claim");
    if (claim) {
      var says = row.querySelector(".says");
      return (says ? says.textContent.trim() : "Agent says") + " \u201c" + claim.textContent.trim() + "\u201d";
    }
    var tool = row.querySelector("code.tool");
    if (tool) return "tool \u201c" + tool.textContent.trim() + "\u201d, no summary given";
    var unnamed = row.querySelector(".tool-unnamed");
    return unnamed ? unnamed.textContent.trim() : "a request";
  }

  // Compare the rows before and after each live push: arrivals and departures are announced.
  // Compare the rows with those last seen whenever the list changes (a push, a re-read, a
  // held push applied late): arrivals and departures are announced once, whatever brought them.
  var known = null, announceTimer = null, restoreTimer = null;
  function compareRows() {
    var now = rowIds();
    if (known) {
      var added = Object.keys(now).filter(function (id) { return !known[id]; });
      var removed = Object.keys(known).filter(function (id) { return !now[id]; });
      var parts = [];
      if (added.length === 1) parts.push("New request. " + headline(now[added[0]]) + ".");
      else if (added.length > 1) parts.push(added.length + " new requests.");
      if (removed.length === 1) parts.push("Left the queue (decided or moved): " + headline(known[removed[0]]) + ".");
      else if (removed.length > 1) parts.push(removed.length + " requests left the queue (decided or moved).");
      if (parts.length) announce(parts.join(" "));
    }
    known = now;
  }

  // Rows are replaced whole by pushes (claimed, voted on) and by re-reads: the ticks for the
  // bulk bar live here, by request code, and are put back on whatever rows carry them now.
  var ticked = {};
  function restoreTicks() {
    var present = {};
    document.querySelectorAll("#queue-rows input.bulk-pick").forEach(function (box) {
      present[box.value] = true;
      if (ticked[box.value]) box.checked = true;
    });
    Object.keys(ticked).forEach(function (code) { if (!present[code]) delete ticked[code]; });
    updatePicked();
  }
  document.addEventListener("htmx:wsAfterMessage", restoreTicks);
  document.addEventListener("htmx:afterSettle", restoreTicks);

  // The bulk bar: how many are ticked, and its buttons only when something is.
  function updatePicked() {
    var form = document.getElementById("bulk-form");
    if (!form) return;
    var picked = document.querySelectorAll('#queue-rows input.bulk-pick:checked').length;
    var label = document.getElementById("bulk-picked");
    var text = picked ? picked + " selected." : "Tick requests to decide several at once.";
    if (label && label.textContent !== text) label.textContent = text;
    // The buttons only once something is ticked: on a phone the rows need the room.
    form.querySelectorAll("button").forEach(function (button) {
      if (button.hidden !== (picked === 0)) button.hidden = picked === 0;
    });
  }
  document.addEventListener("change", function (event) {
    var box = event.target;
    if (!box || !box.classList || !box.classList.contains("bulk-pick")) return;
    if (box.checked) ticked[box.value] = true; else delete ticked[box.value];
    updatePicked();
  });

  document.addEventListener("DOMContentLoaded", function () {
    updatePicked();
    var live = document.getElementById("queue-live");
    if (live && window.MutationObserver) {
      known = rowIds();
      // Only changes of the list itself: rows in or out, or the list replaced by a re-read
      // (the countdowns and the bulk bar change text every second and are no news).
      new MutationObserver(function (records) {
        var listChanged = records.some(function (record) {
          if (record.target.id === "queue-rows") return true;
          return Array.prototype.some.call(record.addedNodes, function (node) { return node.id === "queue-rows"; });
        });
        if (!listChanged) return;
        clearTimeout(announceTimer);
        clearTimeout(restoreTimer);
        restoreTimer = setTimeout(restoreTicks, 0);
        announceTimer = setTimeout(compareRows, 200);
      }).observe(live, { childList: true, subtree: true });
    }
  });
})();
