// The decision page's own behaviour (templates/approvals/detail.html). No inline handlers: the
// CSP forbids them. Shared things (countdowns, sockets, the queue's keys) are in console.js.
(function () {
  "use strict";

  // A reviewer must have seen the request before approving it: approve buttons (data-arm) work
  // only after the page, or the confirmation step, has been on screen for a moment.
  var ARM_MS = 1200;
  var NEXT_DELAY_MS = 1500;

  function page() { return document.querySelector(".decision-page[data-approval]"); }

  function arm(root) {
    (root || document).querySelectorAll("button[data-arm]:not([data-armed])").forEach(function (button) {
      // aria-disabled, not disabled: the button can still take focus (the `a` key), but a
      // click or Enter does nothing until it is armed (see the click listener below).
      button.setAttribute("data-armed", "waiting");
      button.setAttribute("aria-disabled", "true");
      setTimeout(function () {
        button.removeAttribute("aria-disabled");
        button.setAttribute("data-armed", "ready");
      }, ARM_MS);
    });
  }
  // Capture phase: runs before the form's submission (and htmx's) for clicks, Enter and Space on
  // the button, and the implicit submission from Enter in the note field (a click on it too).
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button[data-armed=waiting]");
    if (button) { event.preventDefault(); event.stopPropagation(); }
  }, true);

  // --- The outcome, at once ------------------------------------------------------------------
  // However the outcome arrives (this reviewer's answer, or a push when someone else decided,
  // the request expired or the agent cancelled it), the panel then holds [data-outcome-status]:
  // the rest of the page follows it here, so no part of it still says "pending".
  var decidedHere = false;
  var handled = false;

  function syncOutcome() {
    var root = page();
    if (!root) return;
    var block = root.querySelector(".decision-panel [data-outcome-status]");
    if (!block) return;
    var status = block.dataset.outcomeStatus, label = block.dataset.outcomeLabel;
    root.dataset.status = status;
    var badge = document.getElementById("status-badge");
    if (badge) { badge.textContent = label; badge.className = "badge status-" + status; }
    // Nobody needs to know who is looking at a decided request: the server shows nobody from
    // now on, and this empties the line at once, even before (or without) the push saying so.
    var presence = document.getElementById("presence-" + root.dataset.approval);
    if (presence) presence.replaceChildren();
    // Nor does anyone need to keep saying so: the heartbeat (console.js) stops with this mark.
    delete root.dataset.heartbeatSeconds;
    var left = document.getElementById("time-left");
    if (left && left.querySelector("[data-deadline]")) {
      // Replacing the element stops console.js's countdown: it ticks [data-deadline] only.
      var at = block.dataset.outcomeAt ? new Date(block.dataset.outcomeAt) : null;
      left.textContent = label + (at ? " at " + at.toISOString().slice(11, 19) + " UTC" : "");
    }
    // Rebuilt from the server's words, never by editing the old title: a tool named after a
    // status ("Approved") would otherwise be taken for the old status and dropped.
    if (root.dataset.titleTail) document.title = label + " · " + root.dataset.titleTail;
    if (handled) return;
    handled = true;
    if (decidedHere && root.dataset.openNext && root.dataset.nextUrl) {
      var note = document.createElement("p");
      note.className = "info next-note";
      note.setAttribute("role", "status");
      note.textContent = "Opening the next request…";
      block.appendChild(note);
      setTimeout(function () { window.location.assign(root.dataset.nextUrl); }, NEXT_DELAY_MS);
    }
  }

  // --- An edit in progress survives --------------------------------------------------------
  function editInProgress() {
    var details = document.getElementById("changes");
    var json = document.getElementById("id_arguments");
    if (!details || !json) return null;
    var changed = json.value !== json.defaultValue;
    details.querySelectorAll("[data-argument]").forEach(function (field) {
      if (field.value !== field.defaultValue) changed = true;
    });
    var note = document.getElementById("id_changes_note");
    if (note && note.value !== note.defaultValue) changed = true;
    return changed ? details : null;
  }

  function keepEdit(why) {
    var root = page();
    var details = editInProgress();
    if (!root || !details) return;
    var kept = document.getElementById("kept-edit-" + root.dataset.approval);
    if (!kept) return;
    var message = document.createElement("p");
    message.className = "why";
    message.setAttribute("role", "alert");
    message.textContent = why + " Your changed arguments can no longer be sent; they are kept here so you can copy them.";
    details.id = "kept-changes";
    details.open = true;
    details.querySelectorAll("button, input[type=submit]").forEach(function (button) { button.disabled = true; });
    details.querySelectorAll("form").forEach(function (form) {
      form.removeAttribute("hx-post");
      form.addEventListener("submit", function (event) { event.preventDefault(); });
    });
    details.querySelectorAll("[id]").forEach(function (el) { el.id = "kept-" + el.id; });
    details.querySelectorAll("label[for]").forEach(function (el) { el.htmlFor = "kept-" + el.htmlFor; });
    kept.replaceChildren(message, details);
    kept.hidden = false;
  }

  function outcomeIn(fragment) {
    if (!fragment || !fragment.querySelector) return null;
    return fragment.querySelector("[data-outcome-status]");
  }

  function whyFrom(block, fallback) {
    if (!block) return fallback;
    var line = block.querySelector(".outcome");
    return "This request is now " + (line ? line.textContent.replace(/\s+/g, " ").trim() : block.dataset.outcomeLabel) + ".";
  }

  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var target = event.detail && event.detail.target;
    if (!target || !target.id || target.id.indexOf("decision-panel-") !== 0) return;
    var block = outcomeIn(event.detail.fragment);
    keepEdit(whyFrom(block, "This request has left your queue."));
  });
  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail && event.detail.target;
    if (!target || !target.id || target.id.indexOf("decision-") !== 0) return;
    var xhr = event.detail.xhr;
    // 409: someone else decided first. The answer carries the outcome: keep what was typed.
    if (xhr && xhr.status === 409) {
      var parsed = document.createElement("template");
      parsed.innerHTML = xhr.responseText || "";
      keepEdit(whyFrom(outcomeIn(parsed.content), "Not recorded: someone else got there first."));
    }
  });
  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail && event.detail.elt;
    if (!elt || !elt.closest) return;
    var form = elt.closest("form");
    if (form && form.closest(".decision-panel") && !form.closest(".claim-controls")) decidedHere = true;
  });

  // --- Approve with changes: one field per argument, written into the JSON that is sent ------
  function typed(field) {
    var kind = field.dataset.kind, value = field.value;
    if (kind === "boolean") return value === "true";
    if (kind === "integer" || kind === "number") {
      var number = Number(value);
      // Not a number: sent as typed, so the server names the problem.
      return value.trim() !== "" && isFinite(number) ? number : value;
    }
    return value;
  }
  document.addEventListener("input", function (event) {
    var field = event.target;
    if (!field.dataset || !field.dataset.argument) return;
    var fieldset = field.closest("[data-arguments-target]");
    var json = fieldset && document.getElementById(fieldset.dataset.argumentsTarget);
    if (!json) return;
    var value;
    try { value = JSON.parse(json.value); } catch (error) { return; } // the raw JSON has an error: leave it
    if (!value || typeof value !== "object" || Array.isArray(value)) return;
    value[field.dataset.argument] = typed(field);
    json.value = JSON.stringify(value, null, 2);
  });
  document.addEventListener("change", function (event) {
    if (event.target.id === "id_open_next" && page()) {
      // Saved by the form (htmx); this page follows the choice at once.
      if (event.target.checked) page().dataset.openNext = "1"; else delete page().dataset.openNext;
    }
    if (event.target.tagName === "SELECT" && event.target.dataset.argument) {
      event.target.dispatchEvent(new Event("input", { bubbles: true }));
    }
  });

  // --- The typed confirmation: its button works once the tool's name is typed ---------------
  // High and critical impact (templates/approvals/_confirm_typed.html). Without this script the
  // button stays enabled and the server refuses a name that does not match; with it, the button
  // is disabled until the text (surrounding whitespace aside, letter case included) matches.
  // data-confirm-name is what the server asks (approvals.services.confirmation): the tool's name
  // as shown, or, where data-confirm-word is set, the word that confirms a name showing as nothing.
  // "Surrounding whitespace" is the server's: exactly what Python's str.strip() removes
  // (str.isspace). String.prototype.trim differs: it removes U+FEFF, which the server keeps, and
  // keeps U+001C-U+001F and U+0085, which the server removes. tests/browser checks every character.
  var SERVER_WHITESPACE = "[\\t-\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]";
  var SERVER_TRIM = new RegExp("^" + SERVER_WHITESPACE + "+|" + SERVER_WHITESPACE + "+$", "g");
  function trimAsServer(text) { return text.replace(SERVER_TRIM, ""); }
  function confirmTyped(field) {
    var button = document.getElementById(field.dataset.confirmButton);
    if (!button) return;
    var typed = trimAsServer(field.value);
    var matches = typed !== "" && typed === field.dataset.confirmName;
    button.disabled = !matches;
    var status = document.getElementById(field.dataset.confirmStatus);
    var word = "confirmWord" in field.dataset;
    var said = typed === "" ? "" : matches ? (word ? "The word matches" : "The name matches") + ": you can confirm."
      : word ? "Not the word yet." : "Not the tool's name yet.";
    // Only a change is written, so a screen reader hears it once, not at every key.
    if (status && status.textContent !== said) status.textContent = said;
    // The server's error was about the name sent: once that is changed, it no longer applies.
    var error = document.getElementById(field.dataset.confirmError);
    if (error && field.value !== field.defaultValue) {
      error.hidden = true;
      field.removeAttribute("aria-invalid");
      field.setAttribute("aria-describedby", field.getAttribute("aria-describedby").replace(" " + error.id, ""));
    }
  }
  function confirmAll() { document.querySelectorAll("input[data-confirm-name]").forEach(confirmTyped); }
  document.addEventListener("input", function (event) {
    if (event.target.dataset && "confirmName" in event.target.dataset) confirmTyped(event.target);
  });

  // --- Preset deny reasons fill the (still editable) reason ----------------------------------
  document.addEventListener("click", function (event) {
    var preset = event.target.closest && event.target.closest("[data-deny-preset]");
    if (!preset) return;
    var reason = document.getElementById("id_reason");
    if (!reason) return;
    reason.value = preset.dataset.denyPreset;
    reason.focus();
  });

  // --- j / k: the next and previous request of the queue ------------------------------------
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var target = event.target;
    if (target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName))) return;
    var root = page();
    if (!root) return;
    var url = event.key === "j" ? root.dataset.nextUrl : event.key === "k" ? root.dataset.previousUrl : null;
    if (url) { event.preventDefault(); window.location.assign(url); }
  });

  // The step that asks for the tool's name takes the focus when it arrives: `autofocus` is not
  // applied to content swapped in after the page loaded while something else has the focus (the
  // Approve button the reviewer just pressed). Only within what was swapped: a push elsewhere
  // must not take the focus from a field being typed in.
  // The button follows it into view: on a phone the bar scrolls on its own when the step is
  // taller than the screen (a long name, its warnings), and the reviewer must see both.
  function focusConfirmation(swapped) {
    var field = swapped && swapped.querySelector && swapped.querySelector("input[data-confirm-name][autofocus]");
    if (!field) return;
    if (document.activeElement !== field) field.focus();
    var button = document.getElementById(field.dataset.confirmButton);
    if (button) button.scrollIntoView({ block: "nearest" });
  }
  document.addEventListener("htmx:afterSettle", function (event) {
    arm();
    confirmAll();
    syncOutcome();
    focusConfirmation(event.detail && event.detail.target);
  });
  document.addEventListener("htmx:oobAfterSwap", function () { arm(); syncOutcome(); });
  document.addEventListener("htmx:wsAfterMessage", syncOutcome);
  document.addEventListener("DOMContentLoaded", function () {
    if (!page()) return;
    arm();
    confirmAll();
    syncOutcome();
    // On a phone the run's steps start folded: the request and its decision come first.
    var steps = document.getElementById("run-steps");
    if (steps && window.matchMedia("(max-width: 899.98px)").matches) steps.open = false;
    // On a phone the bar is fixed over the foot of the page, and its height varies (a question's
    // answer form, an open drawer): the page leaves that much room, so its end (the history, the
    // comment box) can always be scrolled out from under it. CSSOM, not a style attribute: the
    // CSP allows it.
    var bar = document.getElementById("decide");
    if (bar && window.ResizeObserver) {
      new ResizeObserver(function () {
        page().style.setProperty("--decision-bar-height", bar.offsetHeight + "px");
      }).observe(bar);
    }
  });
})();
