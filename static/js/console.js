// The console's own small script. No inline handlers anywhere: the CSP forbids them.
(function () {
  "use strict";

  // Live pushes carry every out-of-band piece a change may touch (the queue's row, the decision
  // panel, the history's row); each page holds only some of their targets, and htmx logs an
  // error for every piece whose target is missing. Drop those pieces before htmx swaps: the
  // body names this extension, so it sees socket pushes and htmx's own answers alike.
  function oobSelector(element) {
    var value = element.getAttribute("hx-swap-oob") || "true";
    var colon = value.indexOf(":");
    if (colon > 0) return value.slice(colon + 1);
    return element.id ? "#" + CSS.escape(element.id) : null;
  }
  function keepPresentTargets(html) {
    if (typeof html !== "string" || html.indexOf("hx-swap-oob") < 0) return html;
    var template = document.createElement("template");
    template.innerHTML = html;
    var dropped = false;
    template.content.querySelectorAll("[hx-swap-oob]").forEach(function (element) {
      var selector = oobSelector(element);
      var present = false;
      try { present = !!(selector && document.querySelector(selector)); } catch (e) { present = false; }
      if (!present) { element.remove(); dropped = true; }
    });
    return dropped ? template.innerHTML : html;
  }
  window.consoleKeepPresentTargets = keepPresentTargets;
  function defineExtension() {
    if (!window.htmx || defineExtension.done) return;
    defineExtension.done = true;
    window.htmx.defineExtension("present-targets", {
      transformResponse: function (text) { return keepPresentTargets(text); }
    });
  }
  defineExtension();
  document.addEventListener("DOMContentLoaded", defineExtension);


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
    // Claims are soft locks that lapse on their own: stop showing one once it has expired.
    document.querySelectorAll("[data-claim-expires]").forEach(function (el) {
      if (Date.parse(el.dataset.claimExpires) <= now) {
        var claimed = el.querySelector(".claimed");
        if (claimed) claimed.remove();
      }
    });
  }

  function rows() {
    var list = document.getElementById("queue-rows");
    return list ? Array.prototype.slice.call(list.children) : [];
  }

  // The server's order (urgent first, then risk, then deadline), re-applied after live inserts.
  function urgentMs() {
    var live = document.getElementById("queue-live");
    return 1000 * parseInt((live && live.dataset.urgentSeconds) || "300", 10);
  }
  function sortKey(row, now, urgent) {
    var due = Date.parse(row.dataset.due || "") || 0;
    return [due - now < urgent ? 0 : 1, -parseFloat(row.dataset.risk || "0"), due];
  }
  function compare(a, b) {
    for (var i = 0; i < a.length; i++) { if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1; }
    return 0;
  }
  function sortRows() {
    var list = document.getElementById("queue-rows");
    if (!list) return;
    var now = Date.now(), urgent = urgentMs();
    rows().forEach(function (row) {
      row.classList.toggle("due-soon", (Date.parse(row.dataset.due || "") || 0) - now < urgent);
    });
    var sorted = rows().sort(function (a, b) { return compare(sortKey(a, now, urgent), sortKey(b, now, urgent)); });
    // Move nodes only when the order really changed: no needless DOM churn, no flicker.
    for (var i = 0; i < sorted.length; i++) {
      if (list.children[i] !== sorted[i]) list.insertBefore(sorted[i], list.children[i] || null);
    }
  }

  // The count badge is the server's total over every page (rows here are one page of it): it
  // arrives with each counts refresh and re-read, out of band. Only the due-soon group is ours.
  function updateCount() {
    var heading = document.getElementById("due-soon-heading");
    if (heading) heading.hidden = !document.querySelector("#queue-rows > .due-soon");
  }

  function setLiveStatus(text, ok) {
    var el = document.getElementById("live-status");
    if (!el) return;
    el.textContent = text;
    el.classList.toggle("offline", !ok);
  }

  var refreshTimer = null;

  // Re-reading the rows (the queue's or the history's) races with the pushes: the answer is a
  // snapshot of when the server read it, and swapping it in whole would drop a row pushed after
  // that read, or bring back one decided since. So pushes that arrive while a re-read is on the
  // wire are held and applied on top of the rows it brings. Each push carries its rows' whole
  // state, so one the snapshot already shows changes nothing. One re-read at a time: asking
  // for another meanwhile runs it right after.
  var resyncing = false, resyncAgain = false, heldPushes = [], countsInFlight = false;
  function liveList() {
    var queue = document.getElementById("queue-live");
    if (queue) return { live: queue, rows: "#queue-rows" };
    var history = document.getElementById("history-live");
    if (history) return { live: history, rows: "#history-rows" };
    return null;
  }
  // While the list is being brought up to date (a re-read or a counts refresh due or on the
  // wire) it says so, to assistive technology and to anything else that must not read a list
  // about to change: rows may be replaced at any moment until the mark goes.
  function markBusy() {
    var list = liveList();
    if (!list) return;
    if (resyncing || countsInFlight || refreshTimer !== null) list.live.setAttribute("aria-busy", "true");
    else list.live.removeAttribute("aria-busy");
  }
  function refreshSoon(refresh, delay) {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(function () { refreshTimer = null; refresh(); markBusy(); }, delay);
    markBusy();
  }
  function resync() {
    var list = liveList();
    if (!list || !list.live.dataset.resyncUrl || !window.htmx) return;
    if (resyncing) { resyncAgain = true; return; }
    resyncing = true;
    markBusy();
    var done = false;
    function finish() {
      if (done) return;
      done = true;
      list.live.removeEventListener("htmx:onLoadError", finish);
      resyncing = false;
      var pushes = heldPushes;
      heldPushes = [];
      pushes.forEach(function (push) { window.htmx.swap(list.live, keepPresentTargets(push), { swapStyle: "none" }); });
      if (pushes.length) afterPush();
      if (resyncAgain) { resyncAgain = false; resync(); }
      markBusy();
    }
    // htmx settles the promise in every case but one, an answer it failed to swap: then only
    // this event says so, and without it every later push would stay held.
    list.live.addEventListener("htmx:onLoadError", finish);
    // Sent from the list itself: htmx queues (and answers at once) a request from an element
    // that has one in flight, and the count refresh is sent from the body.
    // No answer at all: the rows stay as they were, and the held pushes still apply.
    // Settled at once (no settle delay): the promise then settles after the rows have, so the
    // busy mark goes only when nothing more is due to change.
    window.htmx.ajax("GET", list.live.dataset.resyncUrl, { source: list.live, target: list.rows, swap: "outerHTML settle:0ms" })
      .then(finish, finish);
  }
  document.addEventListener("htmx:wsBeforeMessage", function (event) {
    if (!resyncing) return;
    heldPushes.push(event.detail.message);
    event.preventDefault();
  });

  // History: newest decision first. A push inserts at the top; a comment on an older decision
  // re-sends its row, so re-apply the order rather than trust the insert position.
  function sortHistory() {
    var list = document.getElementById("history-rows");
    if (!list) return;
    var items = Array.prototype.slice.call(list.children);
    var sorted = items.slice().sort(function (a, b) {
      return (Date.parse(b.dataset.decided || "") || 0) - (Date.parse(a.dataset.decided || "") || 0);
    });
    for (var i = 0; i < sorted.length; i++) {
      if (list.children[i] !== sorted[i]) list.insertBefore(sorted[i], list.children[i] || null);
    }
    var count = document.getElementById("history-count");
    if (count) count.textContent = list.children.length;
  }

  // A decision page pings its socket so the server keeps its "looking now" alive; without
  // pings (a dead tab or server process) the presence lapses after two periods.
  var heartbeat = null;
  function startHeartbeat(socket) {
    clearInterval(heartbeat);
    var page = document.querySelector("[data-heartbeat-seconds]");
    if (!page || !socket) return;
    var seconds = parseInt(page.dataset.heartbeatSeconds, 10);
    if (!(seconds > 0)) return;
    heartbeat = setInterval(function () {
      // A page whose request was decided meanwhile drops the mark: nobody is "looking now".
      if (!page.isConnected || !page.dataset.heartbeatSeconds) { clearInterval(heartbeat); return; }
      socket.send("ping");
    }, 1000 * seconds);
  }

  document.addEventListener("htmx:wsOpen", function (event) {
    setLiveStatus("Live", true);
    startHeartbeat(event.detail && event.detail.socketWrapper);
    // Re-read the rows on every open, the first one too: the page was rendered before its
    // socket joined its groups, and after a reconnect, pushes sent while we were away are not
    // replayed. From here on every change is either in what we read or pushed to us.
    resync();
  });
  document.addEventListener("htmx:wsClose", function () {
    clearInterval(heartbeat);
    setLiveStatus("Reconnecting…", false);
  });
  function refreshCounts() {
    var live = document.getElementById("queue-live");
    var filters = document.getElementById("filters");
    if (!live || !live.dataset.countsUrl || !window.htmx) return;
    // Never replace the filter form under a reviewer who is using it; try again shortly.
    if (filters && filters.contains(document.activeElement)) { refreshSoon(refreshCounts, 1000); return; }
    countsInFlight = true;
    // As with a re-read: an answer htmx failed to swap settles nothing but this event.
    function done() {
      document.body.removeEventListener("htmx:onLoadError", done);
      countsInFlight = false;
      markBusy();
    }
    document.body.addEventListener("htmx:onLoadError", done);
    window.htmx.ajax("GET", live.dataset.countsUrl, { target: "#filters", swap: "none" }).then(done, done);
  }
  function afterPush() {
    var live = document.getElementById("queue-live");
    if (live) {
      // A filtered queue asks the server which rows match (the filter rules live there only);
      // an unfiltered one only needs fresh counts. Debounced: a burst of pushes costs one call.
      refreshSoon(live.dataset.filtered ? resync : refreshCounts, 250);
    }
    var history = document.getElementById("history-live");
    if (history && history.dataset.filtered) {
      // Only the server knows whether a new decision matches the filters.
      refreshSoon(resync, 250);
    }
    sortHistory();
    sortRows(); updateCount(); tick(); markSelected();
  }
  document.addEventListener("htmx:wsAfterMessage", afterPush);
  document.addEventListener("htmx:afterSwap", function () { sortRows(); sortHistory(); updateCount(); tick(); markSelected(); });
  // htmx settles swapped-in rows after afterSwap: rows that kept their id get back the class the
  // server sent, dropping the keyboard's "selected" from a re-read row. Mark it again then.
  // The same for the due-soon mark, which moves with the clock (the server's is as of its read).
  document.addEventListener("htmx:afterSettle", function () { sortRows(); updateCount(); markSelected(); });
  // The filter form comes along with re-read rows and refreshed counts. Never replace it under a
  // reviewer who is using it (an answer can land while they type): what they typed would be
  // lost, and a click on Filter would then send the empty form. The counts catch up next time.
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var target = event.detail && event.detail.target;
    if (target && target.id === "filters" && target.contains(document.activeElement)) event.detail.shouldSwap = false;
  });

  // Validation errors (400) and conflicts (409) carry the panel that says what happened: swap
  // them. Set in config, not in a beforeSwap listener: when a live push has already replaced
  // the form that sent the request, events on it no longer reach the document.
  if (window.htmx) {
    window.htmx.config.responseHandling = [
      { code: "204", swap: false },
      { code: "[23]..", swap: true },
      { code: "40[09]", swap: true, error: false },
      { code: "[45]..", swap: false, error: true },
      { code: "...", swap: false }
    ];
  }
  document.addEventListener("htmx:afterRequest", function (event) {
    var form = event.detail.elt;
    if (event.detail.successful && form && form.hasAttribute && form.hasAttribute("data-reset-on-success")) form.reset();
  });

  // --- Keyboard -------------------------------------------------------------------------------
  var selected = null; // id of the selected row
  function keyboardRows() {
    var list = document.querySelector("[data-keyboard-list]");
    if (!list) return [];
    return Array.prototype.filter.call(list.querySelectorAll(".queue-row"), function (row) { return !row.hidden; });
  }
  function markSelected() {
    keyboardRows().forEach(function (row) {
      var on = row.id === selected;
      row.classList.toggle("selected", on);
      if (on) row.setAttribute("aria-current", "true"); else row.removeAttribute("aria-current");
    });
  }
  function move(step) {
    var list = keyboardRows();
    if (!list.length) return;
    var index = list.findIndex(function (row) { return row.id === selected; });
    index = index < 0 ? 0 : Math.max(0, Math.min(list.length - 1, index + step));
    selected = list[index].id;
    markSelected();
    list[index].scrollIntoView({ block: "nearest" });
  }
  function selectedLink() {
    var row = selected && document.getElementById(selected);
    return row ? row.querySelector("a.row-link") : null;
  }
  function toggleHelp() {
    var dialog = document.getElementById("keys-help");
    if (!dialog) return;
    if (dialog.open) { dialog.close(); return; }
    dialog.showModal();
    // Opened from the keyboard, nothing had focus to return to: the dialog's own button would
    // keep it, hidden, after Escape. Let it go, so the next Enter opens the selected row.
    dialog.addEventListener("close", function () {
      if (dialog.contains(document.activeElement)) document.activeElement.blur();
    }, { once: true });
  }
  // Enter opens the selected row unless focus is on a control of its own (a link, a button, a
  // checkbox): Enter belongs to that control then. One no longer shown does not count.
  function focusOnAControl(target) {
    if (!target || target === document.body || target === document.documentElement) return false;
    if (!target.matches("a[href], button, summary, input, select, textarea, [tabindex]")) return false;
    return target.checkVisibility ? target.checkVisibility() : target.offsetParent !== null;
  }
  function focusAction(action) {
    if (action === "approve") {
      var approve = document.getElementById("approve-button");
      // An agent's operator has no Approve button: show them why instead.
      var target = approve || document.getElementById("own-agent-note");
      if (target) { target.scrollIntoView({ block: "center" }); if (approve) approve.focus(); }
    } else if (action === "deny") {
      var reason = document.getElementById("id_reason");
      var drawer = reason && reason.closest("details");
      if (drawer) drawer.open = true;
      if (reason) { reason.scrollIntoView({ block: "center" }); reason.focus(); }
    } else if (action === "escalate") {
      var details = document.getElementById("escalate");
      if (details) { details.open = true; var team = document.getElementById("id_team"); if (team) team.focus(); }
    } else if (action === "escalate-next") {
      // Only while the chain has a step left (the form is absent otherwise); Enter fires it.
      var note = document.getElementById("id_escalate_next_note");
      var holder = note && note.closest("details");
      if (holder) holder.open = true;
      if (note) { note.scrollIntoView({ block: "center" }); note.focus(); }
    }
  }
  var ACTIONS = { a: "approve", d: "deny", e: "escalate", n: "escalate-next" };

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var target = event.target;
    var typing = target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
    if (typing) return;
    if (event.key === "?") { event.preventDefault(); toggleHelp(); return; }
    var detail = document.querySelector("[data-approval]");
    if (detail && ACTIONS[event.key]) { event.preventDefault(); focusAction(ACTIONS[event.key]); return; }
    if (event.key === "j") { event.preventDefault(); move(1); }
    else if (event.key === "k") { event.preventDefault(); move(-1); }
    else if (event.key === "Enter" && selectedLink() && !focusOnAControl(target)) { event.preventDefault(); selectedLink().click(); }
    else if (ACTIONS[event.key] && selectedLink()) {
      // From the queue: open the request with that action ready; a key never decides alone.
      // `a` only opens: the reviewer reads the request first, and an Enter pressed next (the
      // queue's "open") must not land on a focused Approve button.
      event.preventDefault();
      var action = ACTIONS[event.key];
      window.location.href = selectedLink().href + (action === "approve" ? "" : "#" + action);
    }
  });

  document.addEventListener("click", function (event) {
    if (event.target.closest && event.target.closest("[data-keys-help]")) toggleHelp();
  });

  document.addEventListener("DOMContentLoaded", function () {
    // Filters stay folded on a phone (the rows come first there) and open on a wide screen.
    if (window.matchMedia("(min-width: 700px)").matches) {
      document.querySelectorAll("details[data-open-on-wide]").forEach(function (details) { details.open = true; });
    }
    sortRows();
    tick();
    updateCount();
    setInterval(tick, 1000);
    setInterval(function () { sortRows(); updateCount(); }, 10000);
    var hash = window.location.hash.replace("#", "");
    if (document.querySelector("[data-approval]") && hash !== "approve" && Object.values(ACTIONS).indexOf(hash) >= 0) focusAction(hash);
  });
})();
