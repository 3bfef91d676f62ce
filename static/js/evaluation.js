// Evaluation page: the panel's Alpine component (confusion-matrix cells filter the per-image
// grid) and the per-class bar chart. Registered on alpine:init (the CSP build of Alpine only
// reaches components registered with Alpine.data).
(function () {
  "use strict";

  var PALETTE = ["#2563eb", "#16a34a", "#ea580c", "#7c3aed", "#db2777", "#0891b2", "#ca8a04", "#dc2626"];

  // Task partials describe their charts as data: {"kind": "bars"|"lines", "labels",
  // "series": [{"label", "data"}] (bars) or [[...], ...] with "names" (lines)}.
  function drawGeneric(canvas, data) {
    var lines = data.kind === "lines";
    var series = lines
      ? (data.series || []).map(function (values, i) {
          var color = PALETTE[i % PALETTE.length];
          return { label: (data.names || [])[i] || String(i), data: values, borderColor: color,
                   backgroundColor: color, pointRadius: 0, borderWidth: 2, fill: false };
        })
      : (data.series || []).map(function (s, i) {
          return { label: s.label, data: s.data, backgroundColor: PALETTE[i % PALETTE.length] };
        });
    new window.Chart(canvas, {
      type: lines ? "line" : "bar",
      data: { labels: data.labels, datasets: series },
      options: {
        responsive: true,
        animation: false,
        scales: lines
          ? { x: { title: { display: true, text: "recall" }, ticks: { maxTicksLimit: 6 } },
              y: { min: 0, max: 1, title: { display: true, text: "precision" } } }
          : { y: { min: 0, max: 1 } },
        plugins: { legend: { position: "bottom" } },
      },
    });
  }

  function drawChart(canvas) {
    if (!canvas || !window.Chart || canvas.dataset.drawn) return;
    var data;
    try { data = JSON.parse(canvas.dataset.chart || "{}"); } catch (_err) { return; }
    if (!data.labels || !data.labels.length) return;
    canvas.dataset.drawn = "1";
    if (data.kind) { drawGeneric(canvas, data); return; }
    new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: [
          { label: "precision", data: data.precision, backgroundColor: "#93c5fd" },
          { label: "recall", data: data.recall, backgroundColor: "#2563eb" },
          { label: "F1", data: data.f1, backgroundColor: "#16a34a" },
        ],
      },
      options: {
        responsive: true,
        animation: false,
        scales: { y: { min: 0, max: 1 } },
        plugins: { legend: { position: "bottom" } },
      },
    });
  }

  function evalPanel() {
    return {
      init: function () {
        var root = this.$el;
        // Chart.js is deferred like this file; draw once everything has loaded.
        var draw = function () { root.querySelectorAll("canvas[data-chart]").forEach(drawChart); };
        if (window.Chart) draw(); else window.addEventListener("load", draw, { once: true });
      },
      showCell: function (trueClass, predictedClass, subset) {
        var form = this.$refs.filters;
        if (!form) return;
        form.reset();
        form.elements.true_class.value = String(trueClass);
        form.elements.predicted_class.value = String(predictedClass);
        if (form.elements.subset) form.elements.subset.value = subset || "";  // the subset the matrix counted
        if (form.elements.outcome) form.elements.outcome.value = "";
        var section = document.getElementById("eval-images-section");
        if (section) section.open = true;
        htmx.trigger(form, "submit");
        if (section) section.scrollIntoView({ behavior: "smooth", block: "start" });
      },
      clearFilters: function () {
        var form = this.$refs.filters;
        form.reset();
        htmx.trigger(form, "submit");
      },
    };
  }

  document.addEventListener("alpine:init", function () {
    window.Alpine.data("evalPanel", evalPanel);
  });
})();
