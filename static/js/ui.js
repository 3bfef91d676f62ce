// Page-wide behaviour that needs no markup of its own: modal dialogs keep the keyboard inside
// and give focus back when they close; tables get column labels for their stacked (phone)
// layout; field errors from the server are shown beside their fields.
(function () {
  "use strict";

  var FOCUSABLE = 'a[href], button:not([disabled]), input:not([disabled]):not([type="hidden"]), ' +
    'select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';

  function shown(el) {
    return el.getClientRects().length > 0 && getComputedStyle(el).visibility !== "hidden";
  }

  function focusables(root) {
    return Array.prototype.filter.call(root.querySelectorAll(FOCUSABLE), shown);
  }

  function openDialogs() {
    return Array.prototype.filter.call(document.querySelectorAll('[aria-modal="true"]'), shown);
  }

  // --- dialogs: trap Tab, remember who opened them, give focus back on close ---------------
  var open = new Map(); // dialog -> element that had focus when it opened

  function track() {
    var now = openDialogs();
    now.forEach(function (dialog) {
      if (open.has(dialog)) return;
      var opener = document.activeElement;
      open.set(dialog, opener && !dialog.contains(opener) ? opener : null);
      // After the dialog's own code had its turn (Alpine focuses a field in $nextTick).
      setTimeout(function () {
        if (!dialog.contains(document.activeElement) && shown(dialog)) {
          var items = focusables(dialog);
          (items[0] || dialog).focus();
        }
      }, 30);
    });
    open.forEach(function (opener, dialog) {
      if (now.indexOf(dialog) >= 0) return;
      open.delete(dialog);
      var lost = !document.activeElement || document.activeElement === document.body ||
        dialog.contains(document.activeElement) || !dialog.isConnected;
      if (lost && opener && opener.isConnected && shown(opener)) opener.focus();
    });
  }

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Tab") return;
    var dialogs = openDialogs();
    if (!dialogs.length) return;
    var dialog = dialogs[dialogs.length - 1];
    var items = focusables(dialog);
    if (!items.length) { event.preventDefault(); return; }
    var first = items[0], last = items[items.length - 1];
    var inside = dialog.contains(document.activeElement);
    if (!inside || (event.shiftKey && document.activeElement === first)) {
      event.preventDefault();
      (event.shiftKey ? last : first).focus();
    } else if (!event.shiftKey && document.activeElement === last) {
      event.preventDefault();
      first.focus();
    }
  });

  // --- arrow keys step through a list where the page offers it ([data-keynav]) -----------
  document.addEventListener("keydown", function (event) {
    if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
    if (event.altKey || event.ctrlKey || event.metaKey || event.shiftKey || event.defaultPrevented) return;
    var active = document.activeElement;
    if (active && (active.isContentEditable || /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName))) return;
    if (openDialogs().length) return;
    var link = document.querySelector('[data-keynav="' + (event.key === "ArrowLeft" ? "prev" : "next") + '"]');
    if (link) { event.preventDefault(); link.click(); }
  });

  // --- tables: each cell labelled with its column, for the stacked layout -----------------
  function labelTables(root) {
    var tables = [];
    if (root.matches && root.matches("table.table")) tables.push(root);
    if (root.closest) { var around = root.closest("table.table"); if (around) tables.push(around); }
    if (root.querySelectorAll) tables = tables.concat(Array.prototype.slice.call(root.querySelectorAll("table.table")));
    tables.forEach(function (table) {
      var head = table.tHead && table.tHead.rows[0];
      if (!head && table.rows[0] && table.rows[0].querySelector("th") && !table.rows[0].querySelector("td")) head = table.rows[0];
      if (!head) return;
      var names = Array.prototype.map.call(head.cells, function (cell) { return cell.textContent.trim(); });
      Array.prototype.forEach.call(table.querySelectorAll("tr"), function (row) {
        Array.prototype.forEach.call(row.cells, function (cell, i) {
          if (cell.tagName === "TD" && names[i] && !cell.hasAttribute("data-label")) cell.setAttribute("data-label", names[i]);
        });
      });
    });
  }

  // --- field errors beside their fields -------------------------------------------------
  function fieldFor(form, name) {
    var candidates = [name, name.replace(/\./g, "_"), name.split(".").pop()];
    for (var i = 0; i < candidates.length; i++) {
      var found = form.querySelector('[name="' + candidates[i].replace(/"/g, "") + '"]');
      if (found) return found;
    }
    return null;
  }

  function clearFieldErrors(form) {
    form.querySelectorAll(".field-error").forEach(function (el) { el.remove(); });
    form.querySelectorAll('[aria-invalid="true"]').forEach(function (el) {
      el.removeAttribute("aria-invalid");
      el.removeAttribute("aria-errormessage");
      el.removeAttribute("aria-describedby");
    });
  }

  function placeFieldErrors(alert, form) {
    var fields;
    try { fields = JSON.parse(alert.getAttribute("data-fields") || "[]"); } catch (_e) { return; }
    var placed = 0, firstInput = null;
    fields.forEach(function (f, i) {
      var input = fieldFor(form, f.field);
      if (!input) return;
      var note = document.createElement("span");
      note.className = "field-error";
      note.id = (form.id || "form") + "-error-" + i;
      note.setAttribute("data-testid", "field-error");
      note.setAttribute("data-field", f.field);
      note.textContent = f.message;
      // Inside the label but out of its name (the field stays "Name", not "Name Name is
      // required"); the field points at it as its description and error message.
      note.setAttribute("aria-hidden", "true");
      var holder = input.closest("label") || input;
      holder.insertAdjacentElement(holder === input ? "afterend" : "beforeend", note);
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-errormessage", note.id);
      input.setAttribute("aria-describedby", note.id);
      placed++;
      if (!firstInput) firstInput = input;
    });
    if (placed && placed === fields.length) {
      alert.textContent = placed === 1 ? "Check the marked field." : "Check the " + placed + " marked fields.";
    }
    if (firstInput) {
      firstInput.focus({ preventScroll: true });
      firstInput.scrollIntoView({ block: "nearest" });
    }
  }

  document.addEventListener("htmx:beforeRequest", function (event) {
    var form = event.detail.elt && event.detail.elt.closest ? event.detail.elt.closest("form") : null;
    if (form) clearFieldErrors(form);
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    var source = event.detail.requestConfig && event.detail.requestConfig.elt;
    var form = source && source.closest ? source.closest("form") : null;
    var target = event.detail.target;
    if (!form || !target || !target.querySelectorAll) return;
    target.querySelectorAll(".alert[data-fields]").forEach(function (alert) { placeFieldErrors(alert, form); });
  });

  function start() {
    labelTables(document);
    new MutationObserver(track).observe(document.body, {
      subtree: true, childList: true, attributes: true, attributeFilter: ["style", "hidden", "class"],
    });
    if (window.htmx) window.htmx.onLoad(labelTables);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
