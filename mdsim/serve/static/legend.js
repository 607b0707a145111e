// Colour legends shared by the browse page and the 3-D page: a continuous scale (viridis
// stops) for numbers such as tempo and pitch, and swatch rows with counts for categories.
"use strict";

const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                 "#393b79", "#bcbd22", "#17becf"];
const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
const UNKNOWN = "#d0d0d0", OTHER = "#8a8a8a";

// The colour of f in [0, 1] (clipped) on the scale.
function scaleColour(f) {
  const x = Math.min(Math.max(f, 0), 1) * (VIRIDIS.length - 1), i = Math.min(Math.floor(x), VIRIDIS.length - 2);
  const c = VIRIDIS[i].map((v, j) => Math.round(v + (VIRIDIS[i + 1][j] - v) * (x - i)));
  return `rgb(${c.join(",")})`;
}

// Fill `legend` with the scale ({lo, hi}: its end labels) if any, then one entry per
// [name, colour, count] row.
function drawLegend(legend, { scale, rows }) {
  legend.replaceChildren();
  if (scale) {
    const bar = document.createElement("span");
    bar.className = "scale";
    bar.style.background = `linear-gradient(to right, ${[0, .25, .5, .75, 1].map(scaleColour).join(",")})`;
    legend.append(Object.assign(document.createElement("span"), { textContent: scale.lo }), bar,
                  Object.assign(document.createElement("span"), { textContent: scale.hi }));
  }
  for (const [name, colour, n] of rows) {
    const row = document.createElement("span");
    row.className = "entry";
    row.dataset.label = name;
    const swatch = document.createElement("i");
    swatch.style.background = colour;
    row.append(swatch, `${name} (${n})`);
    legend.append(row);
  }
}
