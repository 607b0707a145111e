// The browse page: a canvas map of the catalog, sliders per dimension, query by example.
// No libraries and nothing from the internet: plain DOM and fetch against the local app.
"use strict";

const state = { dims: [], tracks: [], byId: {}, xy: [], query: null, upload: null, uploadXY: null,
                results: [], colourBy: null, mapDims: null, focus: null };
const canvas = document.getElementById("map");
const ctx = canvas.getContext("2d");
const player = document.getElementById("player");
let snippetTimer = null;

function weightsParam() {
  return state.dims.map(d => `${d}=${document.getElementById("w-" + d).value}`).join(",");
}
// What each slider weighs, shown on hover (docs/method.md's similarity rules)
const DIM_HELP = {
  tempo: "tempo: beats per minute, a doubled or halved tempo counting as close",
  key: "key: the same key or its parallel (C major and C minor)",
  sound: "sound: what a recording keeps across a transposition, a tempo change and an EQ " +
         "(instruments, texture, production), learned without labels",
};
// The filter controls, by the /api/search parameter each one sets (empty or unchecked: unset).
const FILTERS = ["max_per_group", "tempo_tolerance", "dedupe", "harmonic", "exclude_group"];
function filterValues() {  // [[name, value]] of the filters that are set
  return FILTERS.map(name => {
    const el = document.getElementById("f-" + name);
    return [name, el.type === "checkbox" ? (el.checked ? "1" : "") : el.value.trim()];
  }).filter(([, value]) => value);
}
function filtersParam() {
  return filterValues().map(([name, value]) => `&${name}=${encodeURIComponent(value)}`).join("");
}

// The page's state lives in its URL (track, dims, the filters, colour, map=fixed), so a
// link reproduces a search; an upload cannot travel in a link and is left out.
function saveState() {
  const p = new URLSearchParams(filterValues());
  if (state.query) p.set("track", state.query);
  p.set("dims", weightsParam());
  p.set("colour", state.colourBy);
  if (!document.getElementById("mapByWeights").checked) p.set("map", "fixed");
  history.replaceState(null, "", "?" + p.toString());
}
function restoreState() {  // the controls from the URL; returns the track to query, if any
  const p = new URLSearchParams(location.search);
  for (const part of (p.get("dims") || "").split(",")) {
    const [d, v] = part.split("="), el = document.getElementById("w-" + d);
    if (el && v !== undefined && v.trim() !== "" && !isNaN(Number(v))) {
      el.value = v;
      document.getElementById("v-" + d).textContent = el.value;
    }
  }
  for (const name of FILTERS) {
    const el = document.getElementById("f-" + name), value = p.get(name) || "";
    if (el.type === "checkbox") el.checked = ["1", "true", "on"].includes(value);
    else el.value = value;
  }
  const colour = document.getElementById("colour");
  if ([...colour.options].some(o => o.value === p.get("colour"))) colour.value = p.get("colour");
  state.colourBy = colour.value;
  document.getElementById("mapByWeights").checked = p.get("map") !== "fixed";
  return state.byId[p.get("track")] ? p.get("track") : null;
}
function setStatus(text) { document.getElementById("status").textContent = text; }

async function getJSON(url, options) {
  const r = await fetch(url, options);
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

function labelOf(track, dim) {
  if (dim === "group") return track.group || "(none)";
  if (dim === "key") return track.key_name || "(unknown)";
  const tags = track.labels[dim] || [];
  return tags.length ? tags[0] : "(none)";
}

function toCanvas(p) {
  const m = 20, w = canvas.width - 2 * m, h = canvas.height - 2 * m;
  return [m + (p[0] + 1) / 2 * w, m + (1 - (p[1] + 1) / 2) * h];
}

// Colours for "colour by": tempo on a continuous scale (legend.js), categories in
// distinct colours, at most PALETTE.length of them: beyond that the commonest keep theirs
// and the rest are "other". Returns the colour of each track and the legend's rows.
function colouring(by) {
  if (by === "tempo") {
    const bpm = state.tracks.map(t => t.labels.tempo).filter(v => v);
    const lo = Math.min(...bpm), hi = Math.max(...bpm);
    return { colours: state.tracks.map(t => t.labels.tempo ? scaleColour((t.labels.tempo - lo) / ((hi - lo) || 1)) : UNKNOWN),
             scale: bpm.length ? { lo: `${Math.round(lo)} BPM`, hi: `${Math.round(hi)} BPM` } : null,
             rows: bpm.length < state.tracks.length ? [["(unknown)", UNKNOWN, state.tracks.length - bpm.length]] : [] };
  }
  const labels = state.tracks.map(t => labelOf(t, by)), count = {};
  labels.forEach(v => { count[v] = (count[v] || 0) + 1; });
  const known = Object.keys(count).filter(v => !v.startsWith("(")).sort((a, b) => count[b] - count[a] || a.localeCompare(b));
  const own = known.length > PALETTE.length ? known.slice(0, PALETTE.length - 1) : known;
  const colour = Object.fromEntries(own.map((v, i) => [v, PALETTE[i]]));
  const rows = own.map(v => [v, colour[v], count[v]]);
  const others = known.length - own.length;
  if (others) rows.push([`${others} others`, OTHER, known.slice(own.length).reduce((n, v) => n + count[v], 0)]);
  for (const v of Object.keys(count).filter(v => v.startsWith("("))) rows.push([v, UNKNOWN, count[v]]);
  return { colours: labels.map(v => colour[v] || (v.startsWith("(") ? UNKNOWN : OTHER)), scale: null, rows };
}
function draw() {
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const colours = colouring(state.colourBy);
  drawLegend(document.getElementById("legend"), colours);
  const rank = Object.fromEntries(state.results.map((t, i) => [t, i + 1]));
  state.tracks.forEach((t, i) => {
    const [x, y] = toCanvas(state.xy[i]);
    ctx.beginPath();
    ctx.arc(x, y, t.track_id === state.query ? 7 : 4, 0, 2 * Math.PI);
    ctx.fillStyle = colours.colours[i];
    ctx.fill();
    if (t.track_id === state.query) { ctx.strokeStyle = "#000"; ctx.lineWidth = 2; ctx.stroke(); }
  });
  // The results: a ring and their rank, drawn over every point so none hides them.
  ctx.font = "11px system-ui, sans-serif";
  state.tracks.forEach((t, i) => {
    if (!rank[t.track_id]) return;
    const [x, y] = toCanvas(state.xy[i]);
    ctx.beginPath();
    ctx.arc(x, y, t.track_id === state.focus ? 11 : 8, 0, 2 * Math.PI);
    ctx.strokeStyle = t.track_id === state.focus ? "#d62728" : "#000";
    ctx.lineWidth = t.track_id === state.focus ? 3 : 1.5;
    ctx.stroke();
    ctx.fillStyle = "#000";
    ctx.fillText(String(rank[t.track_id]), x + 9, y - 6);
  });
  if (state.upload && state.uploadXY) {  // the uploaded file: a black diamond
    const [x, y] = toCanvas(state.uploadXY);
    ctx.beginPath();
    ctx.moveTo(x, y - 9); ctx.lineTo(x + 9, y); ctx.lineTo(x, y + 9); ctx.lineTo(x - 9, y); ctx.closePath();
    ctx.fillStyle = "#000"; ctx.fill();
  }
  canvas.dataset.points = String(state.tracks.length);
  canvas.dataset.marked = String(state.tracks.filter(t => rank[t.track_id]).length);
}

function canvasPoint(ev) {
  const rect = canvas.getBoundingClientRect();
  return [(ev.clientX - rect.left) * canvas.width / rect.width, (ev.clientY - rect.top) * canvas.height / rect.height];
}
function near(ev, p) {  // squared distance, in canvas pixels, from the pointer to map point p
  const [x, y] = canvasPoint(ev), [px, py] = toCanvas(p);
  return (px - x) ** 2 + (py - y) ** 2;
}
function nearestPoint(ev) {  // the index of the track within 10 px, or -1
  let best = -1, bestD = 100;
  state.xy.forEach((p, i) => {
    const d = near(ev, p);
    if (d < bestD) { best = i; bestD = d; }
  });
  return best;
}
function onUpload(ev) { return Boolean(state.upload && state.uploadXY && near(ev, state.uploadXY) < 100); }

function describe(t, { withId = true } = {}) {
  const parts = withId ? [t.track_id] : [];
  for (const d of ["genre", "mood", "instrument", "era"]) {
    if ((t.labels[d] || []).length) parts.push(`${d}: ${t.labels[d].join(", ")}`);
  }
  if (t.labels.tempo) parts.push(`${Math.round(t.labels.tempo)} BPM`);
  if (t.key_name) parts.push(t.key_name);
  if (t.group) parts.push(`group: ${t.group}`);
  return parts.join(" · ");
}

// A catalog track, or the uploaded file (played from the browser's own copy).
function play(trackId) {
  clearTimeout(snippetTimer);
  if (player.src.startsWith("blob:")) URL.revokeObjectURL(player.src);
  player.src = trackId === null ? URL.createObjectURL(state.upload) : "/audio/" + encodeURIComponent(trackId);
  player.dataset.track = trackId === null ? "(upload)" : trackId;
  const whole = document.getElementById("whole").checked;
  player.play().catch(e => setStatus("cannot play: " + e.message));
  if (!whole) snippetTimer = setTimeout(() => player.pause(), 3000);
}

// Play a track, or pause it when it is the one playing.
function toggle(trackId) {
  if (player.dataset.track === trackId && !player.paused) player.pause();
  else if (player.dataset.track === trackId && player.src && player.currentTime > 0) player.play();
  else play(trackId);
}
// The play buttons say what the player does: ❚❚ on the result playing, ▶ on the others.
function showPlaying() {
  const playing = player.paused ? null : player.dataset.track;
  for (const li of document.querySelectorAll("#results li")) {
    const on = li.dataset.track === playing, button = li.querySelector("button.play");
    li.classList.toggle("playing", on);
    button.textContent = on ? "❚❚" : "▶";
    button.title = (on ? "pause " : "play ") + li.dataset.track;
  }
  document.body.dataset.playing = playing || "";
}

// Keyboard: from the map or a result, up and down arrows move through the results (ringed
// on the map), Enter makes the result the query, space plays or pauses it (on the map:
// the player).
function resultKeys(ev) {
  const items = [...document.querySelectorAll("#results li")];
  const at = items.indexOf(ev.target.closest ? ev.target.closest("#results li") : null);
  if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
    if (!items.length) return;
    const next = at < 0 ? (ev.key === "ArrowDown" ? 0 : items.length - 1)
                        : Math.min(Math.max(at + (ev.key === "ArrowDown" ? 1 : -1), 0), items.length - 1);
    items[next].focus();
  } else if (ev.key === " " && at >= 0 && ev.target === items[at]) {
    toggle(items[at].dataset.track);
  } else if (ev.key === " " && ev.target === canvas) {
    if (player.paused && player.src) player.play(); else player.pause();
  } else if (ev.key === "Enter" && at >= 0 && ev.target === items[at]) {
    setQuery(items[at].dataset.track);
  } else return;
  ev.preventDefault();
}
function showFocus() {
  const li = document.activeElement && document.activeElement.closest && document.activeElement.closest("#results li");
  state.focus = li ? li.dataset.track : null;
  draw();
}

function mapWeights() { return document.getElementById("mapByWeights").checked ? weightsParam() : ""; }

// The map is fetched again only when its projection changes (another weighting with
// "map follows the sliders"); the tooltip of the old layout goes with it.
async function loadMap() {
  const dims = mapWeights();
  if (dims === state.mapDims) return;
  const m = await getJSON("/api/map?dims=" + encodeURIComponent(dims));
  if (mapWeights() !== dims) return;  // the sliders moved on: a newer load is under way
  state.mapDims = dims;
  canvas.dataset.loads = String(Number(canvas.dataset.loads || 0) + 1);
  document.getElementById("tooltip").hidden = true;
  const pos = Object.fromEntries(m.track_ids.map((t, i) => [t, m.xy[i]]));
  state.xy = state.tracks.map(t => pos[t.track_id]);
  draw();
}

// Searches may overlap (a slider moved while an upload is embedded, a busy server): each has a
// number, and an answer that arrives after a newer search was asked for is dropped.
let searchesAsked = 0;
async function search() {
  saveState();
  if (!state.query && !state.upload) return;
  const asked = ++searchesAsked, upload = state.upload;
  const q = "dims=" + encodeURIComponent(weightsParam()) + "&k=10" + filtersParam();
  let result;
  try {
    if (upload) {
      result = await getJSON("/api/search?" + q + "&map_dims=" + encodeURIComponent(mapWeights()),
                             { method: "POST", body: upload, headers: { "X-Filename": upload.name } });
    } else {
      result = await getJSON("/api/search?" + q + "&track=" + encodeURIComponent(state.query));
    }
  } catch (e) {
    if (asked === searchesAsked) setStatus(e.message);
    return;
  }
  if (asked !== searchesAsked) return;  // a newer search is under way: its answer is the one to show
  if (upload) state.uploadXY = result.xy;
  const list = document.getElementById("results");
  list.replaceChildren(...result.results.map(resultItem));
  state.results = result.results.map(h => h.track_id);
  showPlaying();
  draw();
  setStatus(`${result.results.length} results`);
  document.body.dataset.searches = String(Number(document.body.dataset.searches || 0) + 1);
}

// One result: play, its labels, and per dimension a bar for its part of the score
// (normalised weight x cosine; the parts sum to the score). A full bar is the largest
// weight with cosine 1, so the bars of one list compare.
function resultItem(h) {
  const w = state.dims.map(d => Number(document.getElementById("w-" + d).value));
  const full = Math.max(...w) / Math.max(w.reduce((a, b) => a + b, 0), 1e-9) || 1;
  const li = document.createElement("li");
  li.dataset.track = h.track_id;
  li.dataset.score = String(h.score);
  li.tabIndex = 0;
  const button = document.createElement("button");
  button.className = "play";
  button.textContent = "▶";
  button.title = "play " + h.track_id;
  button.onclick = () => toggle(h.track_id);
  const head = document.createElement("div");
  head.className = "head";
  const name = document.createElement("b");
  name.textContent = h.track_id;
  const use = document.createElement("button");
  use.className = "use";
  use.textContent = "use as query";
  use.onclick = () => setQuery(h.track_id);
  head.append(button, name, ` ${h.score.toFixed(3)} `, use);
  const labels = document.createElement("div");
  labels.className = "labels";
  labels.textContent = describe(h, { withId: false }) || "(no labels)";
  const bars = document.createElement("div");
  bars.className = "bars";
  for (const d of state.dims) {
    const part = h.parts[d], cos = h.scores[d];
    const row = document.createElement("div");
    row.className = "bar" + (part < 0 ? " neg" : "") + (part === 0 ? " off" : "");
    row.dataset.dim = d;
    row.dataset.part = String(part);
    row.title = `${d}: weight ${cos ? (part / cos).toFixed(2) : "?"} × cosine ${cos.toFixed(2)} = ${part.toFixed(3)}`;
    const fill = document.createElement("span");
    fill.style.width = `${Math.min(100, Math.abs(part) / full * 100)}%`;
    const track = document.createElement("span");
    track.className = "track";
    track.append(fill);
    row.append(Object.assign(document.createElement("span"), { textContent: d }), track,
               Object.assign(document.createElement("span"), { textContent: part.toFixed(2) }));
    bars.append(row);
  }
  li.append(head, labels, bars);
  return li;
}

function setQuery(trackId) {
  state.query = trackId;
  state.upload = null;
  state.uploadXY = null;
  document.getElementById("query").textContent = trackId;
  draw();
  return search();
}

let pending = null;
function onWeightsChanged() {
  clearTimeout(pending);
  pending = setTimeout(async () => {
    for (const d of state.dims) {
      document.getElementById("v-" + d).textContent = document.getElementById("w-" + d).value;
    }
    await Promise.all([search(), loadMap()]);
  }, 150);
}

async function init() {
  const info = await getJSON("/api/catalog");
  state.dims = info.dimensions;
  state.tracks = info.tracks;
  state.tracks.forEach(t => { state.byId[t.track_id] = t; });
  document.getElementById("count").textContent = `${info.n_tracks} tracks`;
  const colour = document.getElementById("colour");
  // sound (self-supervised) has no label to colour by
  for (const d of [...state.dims.filter(d => d !== "sound"), "group"]) colour.add(new Option(d, d));
  state.colourBy = colour.value;
  colour.onchange = () => { state.colourBy = colour.value; saveState(); draw(); };
  const sliders = document.getElementById("sliders");
  for (const d of state.dims) {
    const label = document.createElement("label");
    label.innerHTML = `<span>${d}</span><input type="range" id="w-${d}" min="0" max="1" step="0.05" value="1">` +
                      `<output id="v-${d}">1</output>`;
    if (DIM_HELP[d]) label.title = DIM_HELP[d];
    sliders.append(label);
    label.querySelector("input").addEventListener("input", onWeightsChanged);
  }
  document.getElementById("mapByWeights").onchange = async () => { saveState(); await loadMap(); if (state.upload) await search(); };
  for (const name of FILTERS) document.getElementById("f-" + name).addEventListener("change", search);
  canvas.addEventListener("mousemove", ev => {
    const i = nearestPoint(ev), tip = document.getElementById("tooltip"), upload = onUpload(ev);
    if (i < 0 && !upload) { tip.hidden = true; return; }
    tip.hidden = false;
    tip.textContent = upload ? `${state.upload.name} (the uploaded file: click to play)` : describe(state.tracks[i]);
    tip.style.left = (ev.offsetX + 12) + "px";
    tip.style.top = (ev.offsetY + 12) + "px";
  });
  for (const el of [canvas, document.getElementById("results")]) el.addEventListener("keydown", resultKeys);
  document.getElementById("results").addEventListener("focusin", showFocus);
  document.getElementById("results").addEventListener("focusout", () => setTimeout(showFocus, 0));
  for (const name of ["play", "pause", "ended", "emptied"]) player.addEventListener(name, showPlaying);
  canvas.addEventListener("mouseleave", () => { document.getElementById("tooltip").hidden = true; });
  canvas.addEventListener("click", ev => {
    if (onUpload(ev)) { play(null); return; }
    const i = nearestPoint(ev);
    if (i < 0) return;
    play(state.tracks[i].track_id);
    setQuery(state.tracks[i].track_id);
  });
  document.getElementById("upload").onchange = ev => {
    state.upload = ev.target.files[0] || null;
    state.uploadXY = null;
    state.query = null;
    document.getElementById("query").textContent = state.upload ? state.upload.name : "(click a point)";
    setStatus("embedding the upload...");
    search();
  };
  const track = restoreState();
  await loadMap();
  if (track) await setQuery(track);
  document.body.dataset.ready = "1";
}

init().catch(e => setStatus(e.message));
