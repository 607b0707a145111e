// The 3-D map of a sound library: orthographic projection on a canvas, drag to rotate,
// wheel to zoom, colour by instrument or pitch, click the nearest note to play it.
"use strict";
const canvas = document.getElementById("map");
const ctx = canvas.getContext("2d");
const tooltip = document.getElementById("tooltip");
const player = document.getElementById("player");
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                 "#bcbd22", "#17becf"];
const view = { yaw: 0.6, pitch: -0.4, zoom: 1.0 };
let notes = [], shown = [], projected = [], instruments = [], pitchRange = [0, 1];

function rotate(p) {  // yaw about the vertical axis, then pitch about the horizontal one
  const [x, y, z] = p, cy = Math.cos(view.yaw), sy = Math.sin(view.yaw);
  const cp = Math.cos(view.pitch), sp = Math.sin(view.pitch);
  const x1 = cy * x + sy * z, z1 = -sy * x + cy * z;
  return [x1, cp * y - sp * z1, sp * y + cp * z1];
}

function colourOf(n) {
  if (document.getElementById("colour").value === "instrument") {
    return PALETTE[instruments.indexOf(n.instrument) % PALETTE.length];
  }
  const t = (n.pitch - pitchRange[0]) / Math.max(1, pitchRange[1] - pitchRange[0]);
  return `hsl(${Math.round(260 - 260 * t)}, 75%, 45%)`;
}

function draw() {
  const heldOnly = document.getElementById("heldOnly").checked;
  shown = notes.filter(n => !heldOnly || n.split === "held_out");
  const half = canvas.width / 2, scale = 0.42 * canvas.width * view.zoom;
  projected = shown.map(n => { const r = rotate(n.xyz); return { n, x: half + scale * r[0], y: half - scale * r[1], depth: r[2] }; });
  projected.sort((a, b) => a.depth - b.depth);  // far points first
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  for (const axis of [[1, 0, 0], [0, 1, 0], [0, 0, 1]]) {  // the map's axes, faint
    const r = rotate(axis);
    ctx.strokeStyle = "#ddd"; ctx.beginPath(); ctx.moveTo(half, half);
    ctx.lineTo(half + scale * r[0], half - scale * r[1]); ctx.stroke();
  }
  for (const p of projected) {
    ctx.fillStyle = colourOf(p.n);
    ctx.globalAlpha = 0.55 + 0.45 * (p.depth + 1) / 2;
    ctx.beginPath(); ctx.arc(p.x, p.y, p.n.split === "held_out" ? 4 : 3, 0, 2 * Math.PI); ctx.fill();
  }
  ctx.globalAlpha = 1;
  document.getElementById("count").textContent = `${shown.length} notes`;
  canvas.dataset.points = String(shown.length);
  const legend = document.getElementById("legend");
  legend.innerHTML = "";
  if (document.getElementById("colour").value === "instrument") {
    instruments.forEach((name, i) => {
      const li = document.createElement("li");
      li.innerHTML = `<span style="color:${PALETTE[i % PALETTE.length]}">&#9679;</span> `;
      li.append(name || "(none)"); legend.append(li);
    });
  } else {
    const li = document.createElement("li");
    li.textContent = `pitch: violet = MIDI ${pitchRange[0]}, red = MIDI ${pitchRange[1]}`;
    legend.append(li);
  }
}

function nearest(ev) {
  const box = canvas.getBoundingClientRect();
  const x = (ev.clientX - box.left) * canvas.width / box.width, y = (ev.clientY - box.top) * canvas.height / box.height;
  let best = null, bestD = 100;  // within 10 px
  for (const p of projected) { const d = (p.x - x) ** 2 + (p.y - y) ** 2; if (d < bestD) { best = p; bestD = d; } }
  return best;
}

let drag = null, moved = false;
canvas.addEventListener("mousedown", ev => { drag = [ev.clientX, ev.clientY]; moved = false; });
window.addEventListener("mouseup", () => { drag = null; });
canvas.addEventListener("mousemove", ev => {
  if (drag) {
    const dx = ev.clientX - drag[0], dy = ev.clientY - drag[1];
    if (Math.abs(dx) + Math.abs(dy) > 2) moved = true;
    view.yaw += dx * 0.01; view.pitch = Math.max(-1.55, Math.min(1.55, view.pitch + dy * 0.01));
    drag = [ev.clientX, ev.clientY]; draw(); tooltip.hidden = true; return;
  }
  const p = nearest(ev);
  if (!p) { tooltip.hidden = true; return; }
  tooltip.textContent = `${p.n.id}: ${p.n.instrument || "?"}, ${p.n.pitch_name || "?"} (${p.n.split})`;
  tooltip.style.left = `${p.x + 10}px`; tooltip.style.top = `${p.y + 10}px`; tooltip.hidden = false;
});
canvas.addEventListener("click", ev => {
  if (moved) return;
  const p = nearest(ev);
  if (!p) return;
  player.src = `/audio/${encodeURIComponent(p.n.id)}`;
  player.dataset.track = p.n.id;
  player.play().catch(() => {});
  document.getElementById("playing").textContent = `${p.n.id} (${p.n.instrument}, ${p.n.pitch_name})`;
});
canvas.addEventListener("wheel", ev => {
  ev.preventDefault();
  view.zoom = Math.max(0.3, Math.min(8, view.zoom * Math.exp(-ev.deltaY * 0.001))); draw();
}, { passive: false });
for (const id of ["colour", "heldOnly"]) document.getElementById(id).addEventListener("change", draw);
document.getElementById("reset").addEventListener("click", () => { Object.assign(view, { yaw: 0.6, pitch: -0.4, zoom: 1 }); draw(); });

fetch("/api/points").then(r => r.json()).then(data => {
  notes = data.notes;
  instruments = [...new Set(notes.map(n => n.instrument))].sort();
  const pitches = notes.map(n => n.pitch).filter(p => p >= 0);
  pitchRange = pitches.length ? [Math.min(...pitches), Math.max(...pitches)] : [0, 1];
  document.title = `mdsim: ${data.neighbourhood} map of ${data.n_notes} notes`;
  draw();
  document.body.dataset.ready = "1";
});

// Where a note is drawn now, in canvas pixels (for tests and the console).
function screenOf(id) { const p = projected.find(q => q.n.id === id); return p ? [p.x, p.y] : null; }
