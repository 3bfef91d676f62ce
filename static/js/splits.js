// Split page: the form's Alpine component (ratio sliders that always sum to 100%) and the
// preview's class-distribution charts (Chart.js), drawn whenever htmx swaps a preview in.
(function () {
  "use strict";

  var KFOLD = ["stratified_kfold", "group_kfold"];
  var GROUP = ["group", "group_kfold", "leave_one_group_out"];

  function splitForm() {
    return {
      name: "",
      strategy: "stratified",
      ratios: { train: 80, val: 10, test: 10 },
      get keys() {
        return this.strategy === "leave_one_group_out" ? ["train", "val"] : ["train", "val", "test"];
      },
      get usesRatios() { return KFOLD.indexOf(this.strategy) < 0 && this.strategy !== "predefined"; },
      get usesK() { return KFOLD.indexOf(this.strategy) >= 0; },
      get usesGroup() { return GROUP.indexOf(this.strategy) >= 0; },
      get total() {
        var self = this;
        return this.keys.reduce(function (sum, key) { return sum + self.ratios[key]; }, 0);
      },
      // Set one share and spread the rest over the others in proportion, in whole percents.
      setRatio: function (key, value) {
        var v = Math.max(0, Math.min(100, Math.round(Number(value) || 0)));
        var others = this.keys.filter(function (k) { return k !== key; });
        var rest = 100 - v;
        var self = this;
        var sum = others.reduce(function (s, k) { return s + self.ratios[k]; }, 0);
        var given = 0;
        others.forEach(function (k, i) {
          var share;
          if (i === others.length - 1) share = rest - given;
          else if (sum === 0) share = Math.floor(rest / others.length);
          else share = Math.floor((rest * self.ratios[k]) / sum);
          self.ratios[k] = share;
          given += share;
        });
        this.ratios[key] = v;
      },
      // After a save: the form's own reset() puts range inputs at their midpoint, so the
      // shares are set again from the defaults (a new object, so every binding re-renders).
      created: function () {
        this.$refs.form.reset();
        this.resetForm();
        this.clearError();
      },
      clearError: function () {
        this.$refs.formError.replaceChildren();
      },
      resetForm: function () {
        this.name = "";
        this.strategy = "stratified";
        this.ratios = { train: 80, val: 10, test: 10 };
      },
      init: function () {
        var self = this;
        this.$watch("strategy", function (now, before) {
          if (now === "leave_one_group_out") {
            self.ratios.test = 0;
            self.setRatio("train", self.ratios.train);
          } else if (before === "leave_one_group_out" && self.ratios.test === 0) {
            self.setRatio("test", 10); // test was the held-out group there; give it back
          }
        });
      },
    };
  }

  document.addEventListener("alpine:init", function () {
    window.Alpine.data("splitForm", splitForm);
  });

  var COLORS = ["#2563eb", "#16a34a", "#ea580c", "#7c3aed", "#0d9488", "#dc2626", "#ca8a04", "#64748b"];

  function drawCharts(root) {
    if (!window.Chart) return;
    (root || document).querySelectorAll("canvas[data-split-chart]").forEach(function (canvas) {
      if (canvas.dataset.drawn) return;
      canvas.dataset.drawn = "1";
      var data = JSON.parse(canvas.dataset.splitChart);
      data.datasets.forEach(function (ds, i) { ds.backgroundColor = COLORS[i % COLORS.length]; });
      new window.Chart(canvas, {
        type: "bar",
        data: data,
        options: {
          animation: false,
          maintainAspectRatio: false,
          scales: { y: { title: { display: true, text: "% of subset" }, beginAtZero: true } },
          plugins: { legend: { position: "bottom" } },
        },
      });
    });
  }

  // after settling, so it works whatever the swap style (outerHTML detaches the old target)
  document.addEventListener("htmx:afterSettle", function () { drawCharts(document); });
})();
