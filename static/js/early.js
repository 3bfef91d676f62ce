// Loaded without `defer`, before the page's body: the one script that must run before the
// rest. A form htmx sends, pressed in the instant after a page appears and before the
// deferred scripts have run, would be submitted natively by the browser — a plain reload
// (GET with the fields in the address) that silently drops what the user asked for. Until
// htmx has processed the page, such a submit is held and replayed once htmx is ready.
(function () {
  "use strict";
  var HTMX_FORM = "form[hx-post],form[hx-put],form[hx-patch],form[hx-delete],form[hx-get]";
  var held = null;
  var ready = false; // htmx has processed the page: anything later is its business

  document.addEventListener(
    "submit",
    function (event) {
      var form = event.target;
      if (ready || !(form instanceof HTMLFormElement) || !form.matches(HTMX_FORM)) return;
      if (form["htmx-internal-data"]) {
        // htmx has bound it and sends this press itself: drop an earlier held press of the
        // same form, or the replay would send it a second time.
        if (held && held.form === form) held = null;
        return;
      }
      event.preventDefault();
      held = { form: form, submitter: event.submitter || null };
    },
    true
  );

  document.addEventListener("htmx:load", function (event) {
    if (event.target !== document.body) return;
    ready = true;
    var pending = held;
    held = null;
    if (pending === null || !pending.form.isConnected) return;
    // A click on the button, not requestSubmit: htmx learns which button was pressed (its
    // name and value, hx-* on it) from its own click listener.
    if (pending.submitter && pending.submitter.isConnected) pending.submitter.click();
    else pending.form.requestSubmit();
  });
})();
