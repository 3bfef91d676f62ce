// Dataset page: the class-distribution chart and the grid's overlay switch (the viewer's
// overlay toggles are app.js's overlayViewer).
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
