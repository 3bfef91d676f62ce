// Evaluation charts any task's partial can use, drawn from JSON in data attributes:
//   <canvas data-eval-chart="scatter|histogram|roc" data-chart='{...}'>
//     scatter:   {"x": [...], "y": [...], "xLabel", "yLabel"}  points and the identity line y = x
//     histogram: {"edges": [...], "counts": [...], "xLabel"}   bars between consecutive edges
//     roc:       {"fpr": [...], "tpr": [...], "auc"}           the curve and the chance diagonal
// and the Alpine component thresholdExplorer: score histograms of two groups (normal,
// anomalous) with a threshold line that can be dragged (or typed), showing precision, recall,
// F1 and the false-alarm rate at that threshold live, computed from the scores in the browser.
// Loaded before Alpine (defer, in the page head), like evaluation.js.
(function () {
  "use strict";

  function parse(el) {
    try { return JSON.parse(el.dataset.chart || "{}"); } catch (_err) { return null; }
  }

  function axis(title, extra) {
    return Object.assign({ type: "linear", title: { display: !!title, text: title || "" } }, extra || {});
  }

  function scatter(canvas, d) {
    var lo = Math.min.apply(null, d.x.concat(d.y));
    var hi = Math.max.apply(null, d.x.concat(d.y));
    return new window.Chart(canvas, {
      type: "scatter",
      data: {
        datasets: [
          { label: "images", data: d.x.map(function (x, i) { return { x: x, y: d.y[i] }; }),
            backgroundColor: "rgba(37, 99, 235, 0.55)", pointRadius: 2.5 },
          { label: "identity (y = x)", type: "line", data: [{ x: lo, y: lo }, { x: hi, y: hi }],
            borderColor: "#dc2626", borderDash: [6, 4], pointRadius: 0, fill: false },
        ],
      },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        scales: { x: axis(d.xLabel || "actual"), y: axis(d.yLabel || "predicted") },
        plugins: { legend: { position: "bottom" } },
      },
    });
  }

  function bins(edges, counts) {
    return counts.map(function (n, i) { return { x: (edges[i] + edges[i + 1]) / 2, y: n }; });
  }

  function histogram(canvas, d) {
    return new window.Chart(canvas, {
      type: "bar",
      data: { datasets: [{ label: d.label || "images", data: bins(d.edges, d.counts), backgroundColor: "#93c5fd",
                           barPercentage: 1, categoryPercentage: 1 }] },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        scales: { x: axis(d.xLabel || ""), y: axis("images", { beginAtZero: true }) },
        plugins: { legend: { display: false } },
      },
    });
  }

  function roc(canvas, d) {
    return new window.Chart(canvas, {
      type: "scatter",
      data: {
        datasets: [
          { label: "ROC" + (d.auc != null ? " (AUROC " + d.auc.toFixed(3) + ")" : ""), showLine: true,
            data: d.fpr.map(function (x, i) { return { x: x, y: d.tpr[i] }; }),
            borderColor: "#2563eb", pointRadius: 0, fill: false },
          { label: "chance", showLine: true, data: [{ x: 0, y: 0 }, { x: 1, y: 1 }],
            borderColor: "#94a3b8", borderDash: [6, 4], pointRadius: 0 },
        ],
      },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        scales: { x: axis("false-positive rate", { min: 0, max: 1 }), y: axis("true-positive rate", { min: 0, max: 1 }) },
        plugins: { legend: { position: "bottom" } },
      },
    });
  }

  var KINDS = { scatter: scatter, histogram: histogram, roc: roc };

  function drawAll(root) {
    if (!window.Chart) return;
    (root || document).querySelectorAll("canvas[data-eval-chart]").forEach(function (canvas) {
      if (canvas.dataset.drawn) return;
      var d = parse(canvas);
      var kind = KINDS[canvas.dataset.evalChart];
      if (!d || !kind) return;
      canvas.dataset.drawn = "1";
      kind(canvas, d);
    });
  }

  window.evalCharts = { drawAll: drawAll };
  function later(fn) { if (window.Chart) fn(); else window.addEventListener("load", fn, { once: true }); }
  document.addEventListener("DOMContentLoaded", function () { later(function () { drawAll(document); }); });
  document.addEventListener("htmx:afterSettle", function (event) { later(function () { drawAll(event.target); }); });

  // --- the threshold explorer -------------------------------------------------------------

  function counts(normal, anomalous, t) {
    var tp = 0, fp = 0;
    anomalous.forEach(function (s) { if (s >= t) tp += 1; });
    normal.forEach(function (s) { if (s >= t) fp += 1; });
    var fn = anomalous.length - tp;
    var precision = tp + fp ? tp / (tp + fp) : null;
    var recall = anomalous.length ? tp / anomalous.length : null;
    var f1 = precision != null && recall != null && precision + recall ? 2 * precision * recall / (precision + recall) : (anomalous.length ? 0 : null);
    return { tp: tp, fp: fp, fn: fn, tn: normal.length - fp, precision: precision, recall: recall, f1: f1,
             fpr: normal.length ? fp / normal.length : null };
  }

  // Registered with Alpine.data (the CSP build reaches nothing else); the scores come in the
  // element's data-config, which keeps thousands of numbers out of Alpine's expression parser.
  function thresholdExplorer() {
    return {
      threshold: 0,
      saved: 0,
      normal: [],
      anomalous: [],
      chart: null,
      stats: {},
      init: function () {
        var self = this;
        var config = JSON.parse(this.$el.dataset.config || "{}");
        this.threshold = config.threshold;
        this.saved = config.threshold;
        this.normal = config.normal || [];
        this.anomalous = config.anomalous || [];
        this.update();
        later(function () { self.draw(); });
      },
      pct: function (v) { return v == null ? "—" : (100 * v).toFixed(1) + " %"; },
      update: function () {
        this.threshold = Number(this.threshold);
        this.stats = counts(this.normal, this.anomalous, this.threshold);
        if (this.chart) this.chart.draw();
      },
      draw: function () {
        var self = this;
        var canvas = this.$refs.canvas;
        if (!canvas || !window.Chart) return;
        var all = this.normal.concat(this.anomalous, [this.threshold]);
        var lo = Math.min.apply(null, all), hi = Math.max.apply(null, all);
        if (hi <= lo) hi = lo + 1;
        // a margin on both sides, so the line can pass every score (nothing flagged) or none
        var pad = (hi - lo) * 0.03;
        lo -= pad; hi += pad;
        var n = 40, width = (hi - lo) / n;
        function hist(values) {
          var out = new Array(n).fill(0);
          values.forEach(function (v) { out[Math.min(n - 1, Math.max(0, Math.floor((v - lo) / width)))] += 1; });
          return out.map(function (c, i) { return { x: lo + (i + 0.5) * width, y: c }; });
        }
        var line = {
          id: "thresholdLine",
          afterDatasetsDraw: function (chart) {
            var x = chart.scales.x.getPixelForValue(self.threshold);
            var ctx = chart.ctx, area = chart.chartArea;
            ctx.save();
            ctx.strokeStyle = "#111827"; ctx.lineWidth = 2; ctx.setLineDash([5, 3]);
            ctx.beginPath(); ctx.moveTo(x, area.top); ctx.lineTo(x, area.bottom); ctx.stroke();
            ctx.restore();
          },
        };
        this.chart = new window.Chart(canvas, {
          type: "bar",
          data: { datasets: [
            { label: "normal", data: hist(this.normal), backgroundColor: "rgba(22, 163, 74, 0.55)", barPercentage: 1, categoryPercentage: 1, grouped: false },
            { label: "anomalous", data: hist(this.anomalous), backgroundColor: "rgba(220, 38, 38, 0.55)", barPercentage: 1, categoryPercentage: 1, grouped: false },
          ] },
          options: {
            animation: false, responsive: true, maintainAspectRatio: false,
            scales: {
              x: axis("anomaly score", { min: lo, max: hi, ticks: { maxTicksLimit: 6, callback: function (v) { return Number(v).toPrecision(3); } } }),
              y: axis("images", { beginAtZero: true, ticks: { precision: 0 } }),
            },
            plugins: { legend: { position: "bottom" }, tooltip: { enabled: false } },
          },
          plugins: [line],
        });
        var dragging = false;
        function move(event) {
          var rect = canvas.getBoundingClientRect();
          var value = self.chart.scales.x.getValueForPixel(event.clientX - rect.left);
          self.threshold = Number(Math.min(hi, Math.max(lo, value)).toPrecision(6));
          self.update();
        }
        canvas.addEventListener("pointerdown", function (event) { dragging = true; canvas.setPointerCapture(event.pointerId); move(event); });
        canvas.addEventListener("pointermove", function (event) { if (dragging) move(event); });
        canvas.addEventListener("pointerup", function () { dragging = false; });
      },
    };
  }

  document.addEventListener("alpine:init", function () {
    window.Alpine.data("thresholdExplorer", thresholdExplorer);
  });
})();
