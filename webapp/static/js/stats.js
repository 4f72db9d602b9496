// /stats charts: volume and error rate per message type (uPlot), heatmap colours.
// Data comes from <script type="application/json" id="stats-data"> (no inline script: CSP).
(function () {
  "use strict";
  var node = document.getElementById("stats-data");
  if (!node) return;
  var report = JSON.parse(node.textContent);
  var PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
                 "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

  function cssVar(name, fallback) {
    var v = getComputedStyle(document.documentElement).getPropertyValue(name);
    return (v && v.trim()) || fallback;
  }

  function axes() {
    var fg = cssVar("--muted", "#5b6475");
    var grid = { stroke: cssVar("--border", "#d9dee7"), width: 1 };
    return [
      { stroke: fg, grid: grid, ticks: grid },
      { stroke: fg, grid: grid, ticks: grid, size: 60 },
    ];
  }

  function draw(el, data, series, yFormat) {
    if (!el || typeof uPlot === "undefined") return;
    var width = Math.max(300, el.clientWidth || 600);
    var opts = {
      width: width,
      height: 260,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); },
      axes: axes(),
      scales: { x: { time: true } },
      series: [{}].concat(series),
    };
    if (yFormat) opts.axes[1].values = function (u, vals) { return vals.map(yFormat); };
    var plot = new uPlot(opts, data, el);
    window.addEventListener("resize", function () {
      plot.setSize({ width: Math.max(300, el.clientWidth || 600), height: 260 });
    });
    return plot;
  }

  var s = report.series;
  var xs = s.buckets.map(function (iso) { return Date.parse(iso) / 1000; });
  var types = Object.keys(s.types);
  var volume = [xs], rate = [xs], volSeries = [], rateSeries = [];
  types.forEach(function (t, i) {
    var color = PALETTE[i % PALETTE.length];
    var total = s.types[t].total, errored = s.types[t].errored;
    volume.push(total);
    rate.push(total.map(function (n, k) { return n ? (100 * errored[k]) / n : null; }));
    volSeries.push({ label: t, stroke: color, width: 1.5 });
    rateSeries.push({ label: t, stroke: color, width: 1.5, spanGaps: false,
                      value: function (u, v) { return v == null ? "–" : v.toFixed(1) + " %"; } });
  });
  if (!types.length) {
    // Still draw the axes over the range so the page says "nothing" rather than breaking.
    volume.push(xs.map(function () { return 0; }));
    rate.push(xs.map(function () { return null; }));
    volSeries.push({ label: "messages", stroke: PALETTE[0] });
    rateSeries.push({ label: "failure rate", stroke: PALETTE[1] });
  }
  draw(document.getElementById("chart-volume"), volume, volSeries);
  draw(document.getElementById("chart-error-rate"), rate, rateSeries,
       function (v) { return v == null ? "" : v + " %"; });

  // Heatmap: colour each cell by its error rate (CSSOM, allowed by the CSP; no inline styles).
  var cells = document.querySelectorAll("#heatmap td.heat");
  Array.prototype.forEach.call(cells, function (td) {
    var r = parseFloat(td.getAttribute("data-rate"));
    if (isNaN(r)) return;
    var alpha = r <= 0 ? 0 : Math.min(1, 0.15 + Math.sqrt(r) * 0.85);
    td.style.backgroundColor = "rgba(214, 39, 40, " + alpha.toFixed(3) + ")";
    if (alpha > 0.55) td.style.color = "#fff";
  });
})();
