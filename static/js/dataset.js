// Dataset page: the class-distribution chart and the image viewer's overlay toggles.
(function () {
  "use strict";

  function drawCharts(root) {
    root.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      if (canvas.dataset.drawn || typeof Chart === "undefined") return;
      canvas.dataset.drawn = "1";
      var data = JSON.parse(canvas.dataset.chart);
      new Chart(canvas, {
        type: "bar",
        data: {
          labels: data.labels,
          datasets: [
            { label: "images", data: data.images, backgroundColor: data.colors },
            { label: "annotations", data: data.annotations, backgroundColor: data.colors.map(function () { return "rgba(100,116,139,.35)"; }) },
          ],
        },
        options: {
          indexAxis: "y",
          maintainAspectRatio: false,
          animation: false,
          plugins: { legend: { display: true, position: "bottom" } },
          scales: { x: { beginAtZero: true, ticks: { precision: 0 } } },
        },
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    htmx.onLoad(function (elt) { drawCharts(elt); });
  });

  document.addEventListener("alpine:init", function () {
    // Per-class visibility (shared by shapes and mask overlays) and one opacity slider.
    window.Alpine.data("overlayViewer", function (config) {
      return {
        hidden: (config.hidden || []).slice(),
        opacity: 0.7,
        isVisible: function (classId) { return this.hidden.indexOf(classId) === -1; },
        toggle: function (classId) {
          var at = this.hidden.indexOf(classId);
          if (at === -1) this.hidden.push(classId); else this.hidden.splice(at, 1);
        },
        // The server colors the mask; hidden classes are left transparent there.
        maskHref: function (base) { return base + "?hide=" + this.hidden.join(","); },
        opacityLabel: function () { return Math.round(this.opacity * 100) + "%"; },
      };
    });
    // The grid's "overlays on thumbnails" switch, remembered in this browser.
    window.Alpine.data("gridOverlays", function () {
      return {
        overlays: window.localStorage.getItem("studio.gridOverlays") !== "off",
        toggleOverlays: function (event) {
          this.overlays = event.target.checked;
          window.localStorage.setItem("studio.gridOverlays", this.overlays ? "on" : "off");
        },
      };
    });
  });
})();
