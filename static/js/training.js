// Training curves: history from the metrics endpoint, then live points from the job's SSE
// stream (so a reload shows everything so far and keeps growing). Compare view overlays runs.
(function () {
  "use strict";

  var COLORS = ["#2563eb", "#dc2626", "#16a34a", "#ea580c", "#7c3aed", "#0d9488", "#ca8a04", "#db2777"];

  function chart(canvas, yTitle) {
    return new Chart(canvas, {
      type: "line",
      data: { datasets: [] },
      options: {
        animation: false,
        parsing: false,
        responsive: true,
        interaction: { mode: "nearest", intersect: false },
        scales: {
          x: { type: "linear", title: { display: true, text: "epoch" } },
          y: { title: { display: true, text: yTitle } },
        },
        plugins: { legend: { position: "bottom" } },
      },
    });
  }

  function dataset(target, label, color, options) {
    var found = target.data.datasets.find(function (d) { return d.label === label; });
    if (found) return found;
    var ds = Object.assign({ label: label, data: [], borderColor: color, backgroundColor: color,
      pointRadius: 2, borderWidth: 2, tension: 0.1 }, options || {});
    target.data.datasets.push(ds);
    return ds;
  }

  function upsert(ds, x, y) {
    for (var i = 0; i < ds.data.length; i++) {
      if (ds.data[i].x === x) { ds.data[i].y = y; return; }
    }
    ds.data.push({ x: x, y: y });
    ds.data.sort(function (a, b) { return a.x - b.x; });
  }

  var LOSS = { "train/loss": "#2563eb", "val/loss": "#dc2626" };
  var PALETTE = ["#16a34a", "#7c3aed", "#ea580c", "#0891b2", "#be185d", "#65a30d"];

  // The task names its validation curves (data-curves, from its TaskSpec); training loss
  // parts (train/<part>, e.g. a detector's box regression) join the loss chart.
  function metricColors(el) {
    var colors = {};
    JSON.parse(el.dataset.curves || "[]").forEach(function (key, i) { colors[key] = PALETTE[i % PALETTE.length]; });
    return colors;
  }

  function lossColor(key, index) {
    if (LOSS[key]) return LOSS[key];
    if (key.indexOf("train/") === 0 && key !== "train/step_loss") return COLORS[(index + 2) % COLORS.length];
    return null;
  }

  function live(el) {
    if (!el || typeof Chart === "undefined") return;
    var METRICS = metricColors(el);
    var lossKeys = [];
    var loss = chart(document.getElementById("chart-loss"), "loss");
    var metrics = chart(document.getElementById("chart-metrics"), "value");
    // Learning rate: per step while it is known (warm-up and schedule), else per epoch.
    var lrCanvas = document.getElementById("chart-lr");
    var lr = lrCanvas ? chart(lrCanvas, "learning rate") : null;
    var lrSteps = false;
    var stepsPerEpoch = null;
    var lastStep = -1;
    var count = 0;

    function bump() { el.dataset.points = String(count); }

    function addEpoch(epoch, values) {
      Object.keys(values).forEach(function (key) {
        var value = values[key];
        if (typeof value !== "number") return;
        if (lossKeys.indexOf(key) === -1 && lossColor(key, lossKeys.length)) lossKeys.push(key);
        var color = lossColor(key, lossKeys.indexOf(key));
        if (color) { upsert(dataset(loss, key, color), epoch, value); count++; }
        if (METRICS[key]) { upsert(dataset(metrics, key, METRICS[key]), epoch, value); count++; }
        if (key === "lr" && lr && !lrSteps) { upsert(dataset(lr, "lr", "#0d9488"), epoch, value); count++; }
      });
      loss.update(); metrics.update(); if (lr) lr.update(); bump();
    }

    function addLr(x, value) {
      if (!lr || typeof value !== "number") return;
      if (!lrSteps) { lrSteps = true; lr.data.datasets = []; }
      dataset(lr, "lr", "#0d9488", { pointRadius: 0, borderWidth: 2 }).data.push({ x: x, y: value });
      count++;
      lr.update("none"); bump();
    }

    function addStep(x, value, step) {
      if (step <= lastStep) return;
      lastStep = step;
      dataset(loss, "train/step_loss", "#93c5fd", { pointRadius: 0, borderWidth: 1 }).data.push({ x: x, y: value });
      count++;
      loss.update("none"); bump();
    }

    fetch(el.dataset.metricsUrl, { headers: { Accept: "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (body) {
        var series = body.series || {};
        var byEpoch = {};
        Object.keys(series).forEach(function (key) {
          if (key === "train/step_loss" || key === "train/step_lr") return;
          series[key].forEach(function (p) {
            (byEpoch[p.epoch] = byEpoch[p.epoch] || {})[key] = p.value;
            if (key === "train/loss" && p.epoch > 0) stepsPerEpoch = p.step / p.epoch;
          });
        });
        Object.keys(byEpoch).forEach(function (epoch) { addEpoch(Number(epoch), byEpoch[epoch]); });
        (series["train/step_loss"] || []).forEach(function (p) {
          var x = stepsPerEpoch ? p.step / stepsPerEpoch : p.epoch;
          addStep(x, p.value, p.step);
        });
        (series["train/step_lr"] || []).forEach(function (p) {
          addLr(stepsPerEpoch ? p.step / stepsPerEpoch : p.epoch, p.value);
        });
        if (el.dataset.jobId && el.dataset.active) subscribe(el.dataset.jobId);
      });

    function subscribe(jobId) {
      var source = window.studioStream("/api/jobs/" + jobId + "/events", {
        metric: function (message) {
          var data = message.payload || {};
          if (data.kind === "epoch") {
            if (data.epoch > 0) stepsPerEpoch = data.step / data.epoch;
            addEpoch(data.epoch, data.metrics || {});
          } else if (data.kind === "step" && typeof data.loss === "number") {
            if (data.step > lastStep) addLr(data.epoch - 1 + data.batch / data.batches, data.lr);
            addStep(data.epoch - 1 + data.batch / data.batches, data.loss, data.step);
          }
        },
        status: function (message) {
          var status = (message.payload || {}).status;
          if (["succeeded", "failed", "cancelled", "interrupted"].indexOf(status) >= 0) source.close();
        },
      });
    }
  }

  function compare(el) {
    if (!el || typeof Chart === "undefined") return;
    var ids = JSON.parse(el.dataset.sources);
    var names = JSON.parse(el.dataset.names);
    var loss = chart(document.getElementById("compare-loss"), "val/loss");
    var primary = el.dataset.primary || "val/acc";
    var acc = chart(document.getElementById("compare-acc"), primary);
    ids.forEach(function (id, index) {
      fetch("/api/projects/" + el.dataset.project + "/experiments/" + id + "/metrics")
        .then(function (r) { return r.json(); })
        .then(function (body) {
          var color = COLORS[index % COLORS.length];
          var series = body.series || {};
          [["val/loss", loss], [primary, acc]].forEach(function (pair) {
            var ds = dataset(pair[1], names[index], color);
            (series[pair[0]] || []).forEach(function (p) { upsert(ds, p.epoch, p.value); });
            pair[1].update();
          });
        });
    });
  }

  window.studioTraining = { live: live, compare: compare };
  // Pages carry no inline script (Content-Security-Policy): start what the page holds.
  document.addEventListener("DOMContentLoaded", function () {
    var liveRoot = document.getElementById("training-live");
    if (liveRoot) live(liveRoot);
    var compareRoot = document.getElementById("compare-data");
    if (compareRoot) compare(compareRoot);
  });
  // The experiment form: which settings apply follows the ones they depend on (momentum
  // with SGD, ...). data-cfg holds the controlling settings' values, data-rules
  // {setting: [controlling setting, [values]]}.
  document.addEventListener("alpine:init", function () {
    window.Alpine.data("recipeForm", function () {
      return {
        advanced: false,
        cfg: {},
        rules: {},
        init: function () {
          this.cfg = JSON.parse(this.$el.dataset.cfg || "{}");
          this.rules = JSON.parse(this.$el.dataset.rules || "{}");
        },
        applies: function (name) {
          var rule = this.rules[name];
          return !rule || rule[1].indexOf(this.cfg[rule[0]]) !== -1;
        },
        toggleAdvanced: function () { this.advanced = !this.advanced; },
      };
    });
  });
})();
