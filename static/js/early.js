// Loaded without `defer`, before the page's body: the one script that must run before the
// rest. A form htmx sends, pressed in the instant after a page appears and before the
// deferred scripts have run, would be submitted natively by the browser — a plain reload
// (GET with the fields in the address) that silently drops what the user asked for. Until
// htmx has bound such a form, its submit is held and replayed once htmx has processed the
// page.
(function () {
  "use strict";
  var HTMX_FORM = "form[hx-post],form[hx-put],form[hx-patch],form[hx-delete],form[hx-get]";
  var held = null;

  document.addEventListener(
    "submit",
    function (event) {
      var form = event.target;
      if (!(form instanceof HTMLFormElement) || !form.matches(HTMX_FORM)) return;
      if (form["htmx-internal-data"]) return; // htmx has bound it: its own handler runs
      event.preventDefault();
      held = { form: form, submitter: event.submitter || null };
    },
    true
  );

  document.addEventListener("htmx:load", function (event) {
    if (event.target !== document.body || held === null) return;
    var pending = held;
    held = null;
    if (pending.form.isConnected) pending.form.requestSubmit(pending.submitter);
  });
})();
