// AI Studio front-end glue: htmx configuration, SSE bookkeeping and small shared helpers.
// Loaded (deferred) after htmx and its SSE extension, before Alpine.
(function () {
  "use strict";

  // Error fragments (4xx) say what is valid: swap them (the server retargets them to the
  // region named by the request's X-Error-Target header). 5xx never swaps; we flash instead.
  htmx.config.responseHandling = [
    { code: "204", swap: false },
    { code: "[23]..", swap: true },
    { code: "4..", swap: true, error: false },
    { code: "...", swap: false, error: true },
  ];
  htmx.config.defaultSwapStyle = "innerHTML";
  htmx.config.historyCacheSize = 0;
  // The pages' Content-Security-Policy allows no eval and no inline script: htmx talks
  // only to this studio, evaluates nothing, and its indicator styles live in app.css.
  htmx.config.selfRequestsOnly = true;
  htmx.config.allowEval = false;
  htmx.config.allowScriptTags = false;
  htmx.config.includeIndicatorStyles = false;

  function flash(message) {
    var region = document.getElementById("flash");
    if (!region) return;
    var div = document.createElement("div");
    div.className = "alert alert-error";
    div.setAttribute("role", "alert");
    div.textContent = message;
    region.replaceChildren(div);
  }
  window.studioFlash = flash;

  document.addEventListener("htmx:responseError", function (evt) {
    var status = evt.detail.xhr ? evt.detail.xhr.status : 0;
    flash("The studio answered " + status + ". Try again; if it persists, check the server log.");
  });
  // A success clears the error region its request names, so an old message never sits next
  // to a result it no longer describes.
  document.addEventListener("htmx:afterRequest", function (evt) {
    var xhr = evt.detail.xhr;
    if (!xhr || xhr.status < 200 || xhr.status >= 300) return;
    var headers = (evt.detail.requestConfig && evt.detail.requestConfig.headers) || {};
    var selector = headers["X-Error-Target"];
    var region = selector ? document.querySelector(selector) : null;
    var target = evt.detail.target;
    // Some requests name their own target (or a region around it) for errors: that region
    // now holds the fresh answer, so leave it alone.
    if (!region || (target && (region === target || region.contains(target) || target.contains(region)))) return;
    region.querySelectorAll("[role=alert]").forEach(function (alert) { alert.remove(); });
  });
  document.addEventListener("htmx:sendError", function () {
    flash("The studio did not answer. Is it still running?");
  });

  // Live regions: mark an SSE-connected element while its stream is open, so job cards poll
  // only when SSE is not working (see partials/_job_card.html). The check is here, not in
  // an hx-trigger filter, because filters need eval.
  document.addEventListener("htmx:confirm", function (evt) {
    var elt = evt.detail.elt;
    if (elt.hasAttribute("data-poll-fallback") && elt.closest("[data-sse-open]")) {
      evt.preventDefault();
    }
  });
  document.addEventListener("htmx:sseOpen", function (evt) {
    evt.detail.elt.setAttribute("data-sse-open", "1");
  });
  document.addEventListener("htmx:sseError", function (evt) {
    evt.detail.elt.removeAttribute("data-sse-open");
  });
  document.addEventListener("htmx:sseClose", function (evt) {
    evt.detail.elt.removeAttribute("data-sse-open");
  });

  // Alpine components for small local state. The CSP build of Alpine evaluates only simple
  // expressions (no statements, arrow functions or globals), so anything more lives here.
  document.addEventListener("alpine:init", function () {
    var Alpine = window.Alpine;
    Alpine.data("projectList", function () {
      return {
        creating: false,
        openCreate: function () {
          this.creating = true;
          var input = this.$refs.nameInput;
          this.$nextTick(function () { input.focus(); });
        },
        created: function () {
          this.creating = false;
          this.$refs.createForm.reset();
          this.$refs.createError.replaceChildren();
        },
      };
    });
    Alpine.data("projectCard", function () {
      return {
        editing: false,
        confirming: false,
        startRename: function () {
          this.editing = true;
          var input = this.$refs.rename;
          this.$nextTick(function () { input.select(); });
        },
      };
    });
    Alpine.data("tryPanel", function () {
      return {
        over: false,
        submit: function () { htmx.trigger(this.$refs.tryForm, "submit"); },
        dropped: function (event) {
          this.over = false;
          this.$refs.files.files = event.dataTransfer.files;
          this.submit();
        },
      };
    });
  });

  // Upload progress: a button with data-upload="#box" shows bytes, percent and speed of
  // its request body in that box, with a Cancel button (htmx's XHR upload events; the
  // upload's own loadend comes before the response's, so later progress is the download).
  function humanBytes(n) {
    if (n >= 1048576) return (n / 1048576).toFixed(1) + " MB";
    if (n >= 1024) return (n / 1024).toFixed(0) + " KB";
    return n + " B";
  }
  function uploadBox(elt) {
    var selector = elt && elt.getAttribute ? elt.getAttribute("data-upload") : null;
    return selector ? document.querySelector(selector) : null;
  }
  document.addEventListener("htmx:beforeRequest", function (evt) {
    var box = uploadBox(evt.detail.elt);
    if (!box) return;
    box.hidden = false;
    box.setAttribute("data-state", "uploading");
    box.uploadStarted = performance.now();
    box.uploadDone = false;
    box.querySelector("[data-upload-bar]").value = 0;
    box.querySelector("[data-upload-text]").textContent = "Starting the upload…";
    var cancel = box.querySelector("[data-upload-cancel]");
    cancel.hidden = false;
    cancel.onclick = function () { htmx.trigger(evt.detail.elt, "htmx:abort"); };
  });
  document.addEventListener("htmx:xhr:progress", function (evt) {
    var box = uploadBox(evt.detail.elt);
    if (!box || box.uploadDone || !evt.detail.lengthComputable) return;
    var loaded = evt.detail.loaded, total = evt.detail.total || 1;
    var seconds = Math.max(0.001, (performance.now() - box.uploadStarted) / 1000);
    var percent = Math.floor((loaded / total) * 100);
    box.querySelector("[data-upload-bar]").value = percent;
    box.querySelector("[data-upload-text]").textContent =
      humanBytes(loaded) + " of " + humanBytes(total) + " · " + percent + " % · " +
      humanBytes(loaded / seconds) + "/s";
  });
  document.addEventListener("htmx:xhr:loadend", function (evt) {
    var box = uploadBox(evt.detail.elt);
    if (!box || box.uploadDone) return;
    box.uploadDone = true;
    if (box.getAttribute("data-state") === "uploading") {
      box.setAttribute("data-state", "processing");
      box.querySelector("[data-upload-bar]").value = 100;
      box.querySelector("[data-upload-text]").textContent = "Uploaded; the studio is reading it…";
    }
  });
  document.addEventListener("htmx:xhr:abort", function (evt) {
    var box = uploadBox(evt.detail.elt);
    if (!box) return;
    box.setAttribute("data-state", "cancelled");
    box.querySelector("[data-upload-text]").textContent = "Upload cancelled; nothing was imported.";
    box.querySelector("[data-upload-cancel]").hidden = true;
  });
  document.addEventListener("htmx:afterRequest", function (evt) {
    var box = uploadBox(evt.detail.elt);
    if (!box || box.getAttribute("data-state") === "cancelled") return;
    box.hidden = true;
    box.setAttribute("data-state", "done");
  });

  // A JSON SSE subscription for charts and dashboards, with resume after reconnects
  // (EventSource sends Last-Event-ID itself) and a callback per event type.
  window.studioStream = function (url, handlers) {
    var source = new EventSource(url);
    Object.keys(handlers).forEach(function (type) {
      source.addEventListener(type, function (e) {
        var data;
        try { data = JSON.parse(e.data); } catch (_err) { data = e.data; }
        handlers[type](data, e);
      });
    });
    return source;
  };
})();
