// /errors: a sparkline (SVG) of each group's errors over the range.
// Data comes from <script type="application/json" id="errors-data"> (no inline script: CSP).
(function () {
  "use strict";
  var node = document.getElementById("errors-data");
  if (!node) return;
  var data = JSON.parse(node.textContent);
  var NS = "http://www.w3.org/2000/svg";
  var W = 120, H = 28, PAD = 2;
  var boxes = document.querySelectorAll("[data-sparkline]");
  Array.prototype.forEach.call(boxes, function (box) {
    var values = (data.groups || {})[box.getAttribute("data-sparkline")];
    if (!values || !values.length) return;
    var max = Math.max.apply(null, values.concat([1]));
    var step = values.length > 1 ? (W - 2 * PAD) / (values.length - 1) : 0;
    var points = values.map(function (v, i) {
      var x = PAD + i * step;
      var y = H - PAD - (v / max) * (H - 2 * PAD);
      return x.toFixed(1) + "," + y.toFixed(1);
    });
    if (values.length === 1) points.push((W - PAD) + "," + points[0].split(",")[1]);
    var svg = document.createElementNS(NS, "svg");
    svg.setAttribute("width", W);
    svg.setAttribute("height", H);
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    var line = document.createElementNS(NS, "polyline");
    line.setAttribute("points", points.join(" "));
    svg.appendChild(line);
    var title = document.createElementNS(NS, "title");
    var total = values.reduce(function (a, b) { return a + b; }, 0);
    title.textContent = total + " errors, peak " + max + " per " + (data.granularity || "bucket");
    svg.appendChild(title);
    box.appendChild(svg);
  });
})();
