// The 3-D map of a sound library: orthographic projection on a canvas, drag to rotate,
// shift-drag (or right-drag) to pan, wheel to zoom towards the cursor, colour by instrument
// or pitch (legend.js), click the nearest note to play it (it stays ringed).
"use strict";
const canvas = document.getElementById("map");
const ctx = canvas.getContext("2d");
const tooltip = document.getElementById("tooltip");
const player = document.getElementById("player");
const HOME = { yaw: 0.6, pitch: -0.4, zoom: 1.0, panX: 0, panY: 0 };
const view = { ...HOME };
let notes = [], shown = [], projected = [], instruments = [], pitchRange = [0, 1], selected = null;

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
  if (n.pitch < 0) return UNKNOWN;
  return scaleColour((n.pitch - pitchRange[0]) / Math.max(1, pitchRange[1] - pitchRange[0]));
}

function legendOf(by) {  // the rows and scale drawLegend shows, counted over the notes shown
  if (by === "instrument") {
    return { scale: null, rows: instruments.map((name, i) => [name || "(none)", PALETTE[i % PALETTE.length],
                                                              shown.filter(n => n.instrument === name).length]) };
  }
  const end = m => `MIDI ${m} ${(notes.find(n => n.pitch === m) || {}).pitch_name || ""}`.trim();
  const unknown = shown.filter(n => n.pitch < 0).length;
  return { scale: unknown < shown.length ? { lo: end(pitchRange[0]), hi: end(pitchRange[1]) } : null,
           rows: unknown ? [["(unknown)", UNKNOWN, unknown]] : [] };
}

function draw() {
  const heldOnly = document.getElementById("heldOnly").checked;
  shown = notes.filter(n => !heldOnly || n.split === "held_out");
  const half = canvas.width / 2, scale = 0.42 * canvas.width * view.zoom;
  const cx = half + view.panX, cy = half + view.panY;
  projected = shown.map(n => { const r = rotate(n.xyz); return { n, x: cx + scale * r[0], y: cy - scale * r[1], depth: r[2] }; });
  projected.sort((a, b) => a.depth - b.depth);  // far points first
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  for (const axis of [[1, 0, 0], [0, 1, 0], [0, 0, 1]]) {  // the map's axes, faint
    const r = rotate(axis);
    ctx.strokeStyle = "#ddd"; ctx.beginPath(); ctx.moveTo(cx, cy);
    ctx.lineTo(cx + scale * r[0], cy - scale * r[1]); ctx.stroke();
  }
  for (const p of projected) {
    ctx.fillStyle = colourOf(p.n);
    ctx.globalAlpha = 0.55 + 0.45 * (p.depth + 1) / 2;
    ctx.beginPath(); ctx.arc(p.x, p.y, p.n.split === "held_out" ? 4 : 3, 0, 2 * Math.PI); ctx.fill();
  }
  ctx.globalAlpha = 1;
  const chosen = projected.find(p => p.n.id === selected);
  if (chosen) {  // the note played, over the others: its colour, a black ring
    ctx.fillStyle = colourOf(chosen.n);
    ctx.beginPath(); ctx.arc(chosen.x, chosen.y, 7, 0, 2 * Math.PI); ctx.fill();
    ctx.strokeStyle = "#000"; ctx.lineWidth = 2.5; ctx.stroke(); ctx.lineWidth = 1;
  }
  canvas.dataset.selected = chosen ? selected : "";
  document.getElementById("count").textContent = `${shown.length} notes`;
  canvas.dataset.points = String(shown.length);
  drawLegend(document.getElementById("legend"), legendOf(document.getElementById("colour").value));
}

function nearest(ev) {
  const box = canvas.getBoundingClientRect();
  const x = (ev.clientX - box.left) * canvas.width / box.width, y = (ev.clientY - box.top) * canvas.height / box.height;
  let best = null, bestD = 100;  // within 10 px
  for (const p of projected) { const d = (p.x - x) ** 2 + (p.y - y) ** 2; if (d < bestD) { best = p; bestD = d; } }
  return best;
}

let drag = null, moved = false;
canvas.addEventListener("mousedown", ev => {
  drag = { x: ev.clientX, y: ev.clientY, pan: ev.shiftKey || ev.button === 2 }; moved = false;
});
canvas.addEventListener("contextmenu", ev => ev.preventDefault());  // right-drag pans
window.addEventListener("mouseup", () => { drag = null; });
canvas.addEventListener("mousemove", ev => {
  if (drag) {
    const dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 2) moved = true;
    if (drag.pan) {  // in canvas pixels, whatever size the canvas is shown at
      const k = canvas.width / canvas.getBoundingClientRect().width;
      view.panX += dx * k; view.panY += dy * k;
    } else {
      view.yaw += dx * 0.01; view.pitch = Math.max(-1.55, Math.min(1.55, view.pitch + dy * 0.01));
    }
    drag.x = ev.clientX; drag.y = ev.clientY; draw(); tooltip.hidden = true; return;
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
  selected = p.n.id;
  draw();
  player.src = `/audio/${encodeURIComponent(p.n.id)}`;
  player.dataset.track = p.n.id;
  player.play().catch(() => {});
  document.getElementById("playing").textContent = `${p.n.id} (${p.n.instrument}, ${p.n.pitch_name})`;
});
// Zoom towards the cursor: the point under it stays under it.
canvas.addEventListener("wheel", ev => {
  ev.preventDefault();
  const box = canvas.getBoundingClientRect(), half = canvas.width / 2;
  const x = (ev.clientX - box.left) * canvas.width / box.width - half;
  const y = (ev.clientY - box.top) * canvas.height / box.height - half;
  const zoom = Math.max(0.3, Math.min(8, view.zoom * Math.exp(-ev.deltaY * 0.001))), f = zoom / view.zoom;
  view.panX = x - (x - view.panX) * f; view.panY = y - (y - view.panY) * f; view.zoom = zoom;
  draw(); tooltip.hidden = true;
}, { passive: false });
for (const id of ["colour", "heldOnly"]) document.getElementById(id).addEventListener("change", draw);
document.getElementById("reset").addEventListener("click", () => { Object.assign(view, HOME); draw(); });

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
