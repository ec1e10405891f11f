// Tollgate dashboard: sizes the bars and draws the charts with uPlot. Plain
// JavaScript, no framework; the pages are usable without it.
(function () {
  "use strict";

  // Bars carry their size in data attributes, as the page's
  // Content-Security-Policy refuses inline style attributes.
  document.querySelectorAll("[data-w]").forEach(function (el) {
    el.style.width = el.getAttribute("data-w") + "%";
  });
  document.querySelectorAll("[data-left]").forEach(function (el) {
    el.style.left = el.getAttribute("data-left") + "%";
  });

  var palette = ["#2f6fde", "#f08c00", "#2b8a3e", "#c2255c", "#7048e8", "#0c8599", "#e8590c", "#5c940d", "#862e9c", "#495057"];

  // stacked draws groups of per-day USD as stacked areas: each series is the
  // running sum of the groups up to it, filled down to the one below.
  function stacked(el, d) {
    if (typeof uPlot === "undefined" || !d.days || d.days.length === 0) {
      return;
    }
    var data = [d.days];
    var series = [{}];
    var bands = [];
    var run = d.days.map(function () { return 0; });
    (d.groups || []).forEach(function (g, i) {
      run = run.map(function (v, j) { return v + d.usd[i][j]; });
      data.push(run.slice());
      var c = palette[i % palette.length];
      series.push({
        label: g,
        stroke: c,
        fill: c + "55",
        value: function (u, v, si, di) {
          return di == null ? "" : "$" + d.usd[i][di].toFixed(2);
        }
      });
      if (i > 0) {
        bands.push({ series: [i + 1, i], fill: c + "55" });
      }
    });
    if (bands.length > 0) {
      series.forEach(function (s, i) { if (i > 1) { delete s.fill; } });
    }
    var opts = {
      width: Math.max(300, el.clientWidth - 16),
      height: 300,
      series: series,
      bands: bands,
      scales: { x: { time: true } },
      axes: [{}, { values: function (u, vals) { return vals.map(function (v) { return "$" + v; }); }, size: 60 }]
    };
    new uPlot(opts, data, el);
  }

  document.querySelectorAll("[data-chart]").forEach(function (el) {
    var src = document.getElementById(el.getAttribute("data-chart"));
    if (src) {
      stacked(el, JSON.parse(src.textContent));
    }
  });
})();
