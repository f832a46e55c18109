// The search page: plain JavaScript, no build step, nothing fetched from elsewhere.
// The query and filters live in the URL (?q=…&top_k=…&where=…&under=…&per_video=1&group=1,
// or ?similar=<clip id>; &moments=1: start–end moments rather than clips; ?copies=1: the
// index's copies), so a search can be shared and a reload shows it again. A link
// from before `top_k` (its `k=…`) still opens the same search.
"use strict";

const $ = (id) => document.getElementById(id);
const FIELDS = ["q", "top_k", "where", "under", "per_video", "group", "moments", "similar", "copies"];
let last = null; // the latest response, for "Download JSON" and regrouping
let current = null; // the clip in the player

function readUrl() {
  const params = new URLSearchParams(location.search);
  const state = {};
  for (const f of FIELDS) if (params.has(f)) state[f] = params.get(f);
  if (!state.top_k && params.has("k")) state.top_k = params.get("k");
  return state;
}

function formState() {
  const state = {};
  const q = $("q").value.trim();
  if (q) state.q = q;
  const topK = parseInt($("top_k").value, 10);
  if (topK && topK !== 12) state.top_k = String(Math.min(100, Math.max(1, topK)));
  if ($("where").value.trim()) state.where = $("where").value.trim();
  if ($("under").value.trim()) state.under = $("under").value.trim();
  if ($("per_video").checked) state.per_video = "1";
  if ($("group").checked) state.group = "1";
  if ($("moments").checked) state.moments = "1";
  return state;
}

function fillForm(state) {
  $("q").value = state.q || "";
  $("top_k").value = state.top_k || 12;
  $("where").value = state.where || "";
  $("under").value = state.under || "";
  $("per_video").checked = state.per_video === "1";
  $("group").checked = state.group === "1";
  $("moments").checked = state.moments === "1";
  const n = ["where", "under", "per_video"].filter((f) => state[f]).length + (state.top_k && state.top_k !== "12" ? 1 : 0);
  $("filter-count").textContent = n ? String(n) : "";
  if (n) $("filters").open = true;
}

function writeUrl(state, push) {
  const params = new URLSearchParams();
  for (const f of FIELDS) if (state[f]) params.set(f, state[f]);
  const url = params.toString() ? `?${params}` : location.pathname;
  if (push) history.pushState(state, "", url);
  else history.replaceState(state, "", url);
}

function filterParams(state) {
  const params = new URLSearchParams();
  params.set("top_k", state.top_k || "12");
  for (const f of ["where", "under"]) if (state[f]) params.set(f, state[f]);
  if (state.per_video === "1") params.set("per_video", "true");
  return params;
}

function setStatus(html, error = false) {
  $("status").innerHTML = html;
  $("status").classList.toggle("error", error);
}

const escapeHtml = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

function clock(t) {
  if (t === null || t === undefined) return "";
  const m = Math.floor(t / 60), s = t - 60 * m;
  return `${m}:${s < 10 ? "0" : ""}${s.toFixed(s % 1 ? 1 : 0)}`;
}
const span = (hit) => (hit.start_s === null ? "whole video" : `${clock(hit.start_s)}–${clock(hit.end_s)}`);

async function api(url, options = {}) {
  const response = await fetch(url, { credentials: "same-origin", ...options });
  let body = null;
  try { body = await response.json(); } catch (e) { /* not JSON */ }
  if (response.status === 401) {
    $("token-form").hidden = false;
    $("token").focus();
  }
  if (!response.ok) throw new Error((body && body.error) || `${response.status} ${response.statusText}`);
  return body;
}

async function search(state) {
  let url, what;
  const moments = state.moments === "1";
  if (state.copies === "1" && !state.q && !state.similar) {
    allCopies();
    return;
  }
  if (state.similar) {
    url = `api/clips/${encodeURIComponent(state.similar)}/${moments ? "moments" : "similar"}?${filterParams(state)}`;
    what = `${moments ? "moments" : "clips"} like the chosen one`;
  } else if (state.q) {
    const params = filterParams(state);
    params.set("q", state.q);
    url = `api/${moments ? "moments" : "search"}?${params}`;
    what = `“${escapeHtml(state.q)}”`;
  } else {
    last = null;
    render();
    return;
  }
  setStatus("Searching…");
  $("results").dataset.state = "loading";
  try {
    last = withHits(await api(url));
    last.what = what;
    render();
  } catch (err) {
    last = null;
    render(false);
    setStatus(escapeHtml(err.message), true);
  }
}

async function searchUpload(file) {
  const state = { ...formState() };
  delete state.q;
  fillForm({ ...state, q: "" });
  writeUrl(state, true);
  setStatus(`Embedding <strong>${escapeHtml(file.name)}</strong>…`);
  $("results").dataset.state = "loading";
  const params = filterParams(state);
  params.set("filename", file.name);
  try {
    last = withHits(await api(`api/${state.moments === "1" ? "moments" : "search/upload"}?${params}`, {
      method: "POST", body: file, headers: { "Content-Type": file.type || "application/octet-stream" },
    }));
    last.what = `your ${file.type.startsWith("image/") ? "image" : "video"} <strong>${escapeHtml(file.name)}</strong>`;
    render();
  } catch (err) {
    $("results").dataset.state = "ready";
    setStatus(escapeHtml(err.message), true);
  }
}

// A moments answer shown as cards: each moment as a hit of its video (the poster of the
// window at its peak), the answer itself kept as it came (for the timeline and the download).
function withHits(response) {
  if (!response.moments) return response;
  response.hits = response.moments.map((m) => {
    // A video the index no longer holds (deleted meanwhile) has no entry: the path's own
    // name and the moment's window stand in.
    const video = response.videos[m.path] || {};
    return { id: m.clip || video.clip, path: m.path, name: video.name || m.path.split("/").pop(), start_s: m.start_s,
      end_s: m.end_s, duration_s: video.duration_s ?? null, score: m.score, poster_url: m.poster_url || video.poster_url,
      video_url: video.video_url || (m.clip ? `api/clips/${m.clip}/video` : undefined), moment: true };
  });
  return response;
}

// A score is the cosine similarity of the query's and the clip's embeddings. Its raw value
// depends on the model and the query (they bunch up, and may be negative), so the bar shows
// it against this search: the best hit fills it, the lowest shown keeps a stub.
let scores = { best: 1, low: -1 };
function relative(score) {
  if (scores.best <= scores.low) return 1;
  return 0.08 + 0.92 * (score - scores.low) / (scores.best - scores.low);
}

function card(hit) {
  const node = $("card-template").content.firstElementChild.cloneNode(true);
  node.dataset.id = hit.id;
  const img = node.querySelector("img");
  img.src = hit.poster_url;
  img.alt = `${hit.name}, ${span(hit)}`;
  node.querySelector(".when").textContent = span(hit);
  node.querySelector(".name").textContent = hit.name;
  node.querySelector(".name").title = hit.path;
  const box = node.querySelector(".score");
  if (hit.score === null) {
    box.hidden = true;
  } else {
    node.querySelector(".value").textContent = hit.score.toFixed(3);
    node.querySelector(".meter span").style.width = `${Math.round(100 * relative(hit.score))}%`;
    box.title = (hit.moment
      ? `Score ${hit.score.toFixed(3)}: the cosine similarity of the query's and the whole moment's embeddings: `
      : `Cosine similarity ${hit.score.toFixed(3)} of the query's and this clip's embeddings: `)
      + `−1 to 1, higher is closer. Compare scores within one search only. The bar: against this search's best hit (full).`;
    box.setAttribute("aria-label", `similarity ${hit.score.toFixed(3)}`);
  }
  node.querySelector(".thumb").addEventListener("click", () => openPlayer(hit));
  node.querySelector(".similar").addEventListener("click", () => similar(hit.id));
  return node;
}

function render(ok = true) {
  const results = $("results");
  results.replaceChildren();
  results.dataset.state = "ready"; // for whoever waits on the page (its tests)
  $("download").disabled = !last;
  const grouped = $("group").checked;
  results.classList.toggle("grouped", grouped && !!last && last.hits.length > 0);
  if (!last) {
    if (ok) empty();
    return;
  }
  const n = last.hits.length;
  const values = last.hits.map((h) => h.score).filter((v) => v !== null);
  scores = { best: Math.max(...values), low: Math.min(...values) };
  const unit = last.moments ? "moment" : "clip";
  setStatus(n ? `<strong>${n}</strong> ${unit}${n > 1 ? "s" : ""} for ${last.what} · ${last.index_size} in the index · ${Math.round(last.took_ms)} ms`
              : `Nothing matched ${last.what}${last.query.where || last.query.under ? " with these filters" : ""}.`);
  if (!grouped) {
    for (const hit of last.hits) results.append(card(hit));
    return;
  }
  const groups = new Map();
  for (const hit of last.hits) {
    if (!groups.has(hit.path)) groups.set(hit.path, []);
    groups.get(hit.path).push(hit);
  }
  for (const [path, hits] of groups) {
    const section = document.createElement("section");
    section.className = "group";
    section.innerHTML = `<h3><span>${escapeHtml(hits[0].name)}</span><span class="path">${hits.length} ${unit}${hits.length > 1 ? "s" : ""} · ${escapeHtml(path)}</span></h3><div class="cards"></div>`;
    for (const hit of hits) section.querySelector(".cards").append(card(hit));
    results.append(section);
  }
}

function empty() {
  setStatus("");
  const box = document.createElement("div");
  box.className = "empty";
  box.innerHTML = "<h2>Find a moment in your videos</h2><p>Describe it in words, or upload a video or an image to find clips like it.</p><div class=\"examples\"></div>";
  for (const example of ["people riding bikes", "a rabbit in a meadow", "a man on the phone", "someone drumming"]) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = example;
    b.addEventListener("click", () => { $("q").value = example; submit(); });
    box.querySelector(".examples").append(b);
  }
  $("results").append(box);
}

function submit() {
  const state = formState();
  fillForm(state);
  writeUrl(state, true);
  search(state);
}

function similar(id) {
  if ($("player").open) $("player").close();
  const state = formState();
  delete state.q;
  state.similar = id;
  fillForm(state);
  writeUrl(state, true);
  search(state);
  window.scrollTo({ top: 0, behavior: "smooth" });
}

// ---------------------------------------------------------------- the player
function openPlayer(hit) {
  current = hit;
  const video = $("video");
  $("player-title").textContent = hit.name;
  $("player-title").title = hit.path;
  $("player-when").textContent = `${span(hit)}${hit.duration_s ? ` of ${clock(hit.duration_s)}` : ""}${hit.score !== null ? ` · cosine similarity ${hit.score.toFixed(3)}` : ""}`;
  $("label-results").replaceChildren();
  $("copies-list").replaceChildren();
  $("copies-status").textContent = "";
  const start = hit.start_s || 0;
  // The media fragment starts at the clip and stops at its end; the handlers below do the
  // same where a browser ignores it.
  video.src = hit.start_s === null ? hit.video_url : `${hit.video_url}#t=${start},${hit.end_s}`;
  video.dataset.start = start;
  video.dataset.end = hit.end_s === null ? "" : hit.end_s;
  if (!$("player").open) $("player").showModal();
  video.play().catch(() => {});
  showTimeline(hit);
}

function playClip() {
  const video = $("video");
  video.currentTime = parseFloat(video.dataset.start || "0");
  video.play().catch(() => {});
}

$("video").addEventListener("loadedmetadata", () => {
  const video = $("video");
  const start = parseFloat(video.dataset.start || "0");
  if (Math.abs(video.currentTime - start) > 0.25) video.currentTime = start;
  drawTimeline();
});
$("video").addEventListener("timeupdate", () => {
  const video = $("video");
  const end = parseFloat(video.dataset.end);
  if (!isNaN(end) && !video.paused && video.currentTime >= end) video.pause();
  movePlayhead();
});
$("video").addEventListener("seeked", movePlayhead);
$("player").addEventListener("close", () => { $("video").pause(); $("video").removeAttribute("src"); $("video").load(); });
$("close").addEventListener("click", () => $("player").close());
$("player").addEventListener("click", (e) => { if (e.target === $("player")) $("player").close(); });
$("replay").addEventListener("click", playClip);
$("player-similar").addEventListener("click", () => current && similar(current.id));
$("labels-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const labels = $("labels").value.split(",").map((s) => s.trim()).filter(Boolean);
  const list = $("label-results");
  if (!labels.length || !current) return;
  list.innerHTML = "<li>Labelling…</li>";
  try {
    const result = await api(`api/clips/${encodeURIComponent(current.id)}/labels`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ labels }),
    });
    list.replaceChildren(...result.labels.map((l) => {
      const li = document.createElement("li");
      li.innerHTML = '<span class="l"></span><span class="lbar"><span></span></span><span class="p"></span>';
      li.querySelector(".l").textContent = l.label;
      li.querySelector(".lbar span").style.width = `${(100 * l.probability).toFixed(1)}%`;
      li.querySelector(".p").textContent = `${(100 * l.probability).toFixed(1)}%`;
      return li;
    }));
  } catch (err) {
    list.innerHTML = `<li class="error">${escapeHtml(err.message)}</li>`;
  }
});

// ------------------------------------------------------------- the timeline
// Under the player: the query's similarity over the whole video in the player (one value per
// indexed window, at its centre), its moments marked; a click seeks there. A moments answer
// carries the curves of its videos; for a clip of a search, its video's curve is asked for.
const SVG = "http://www.w3.org/2000/svg";
let shown = null; // { curve, moments, coarse } of the video in the player

function svg(name, attrs) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

async function showTimeline(hit) {
  shown = null;
  $("timeline").hidden = true;
  $("timeline-plot").replaceChildren();
  let answer = last && last.curves ? last : null;
  let curve = answer && answer.curves.find((c) => c.path === hit.path);
  if (!curve) {
    const state = readUrl();
    const params = new URLSearchParams({ top_k: "5", refine: "false", video: hit.id });
    let url = null;
    if (state.similar) url = `api/clips/${encodeURIComponent(state.similar)}/moments?${params}`;
    else if (state.q) { params.set("q", state.q); url = `api/moments?${params}`; }
    if (!url || hit.start_s === null) return; // an upload's query is not kept; a whole video has no curve
    try { answer = await api(url); } catch (err) { return; }
    curve = answer.curves.find((c) => c.path === hit.path);
    if (!curve || current !== hit) return; // nothing, or another clip opened meanwhile
  }
  shown = { curve, moments: answer.moments.filter((m) => m.path === hit.path), coarse: !answer.refined };
  $("timeline").hidden = false;
  drawTimeline();
}

function timelineSeconds() {
  const video = $("video");
  let total = isFinite(video.duration) ? video.duration : 0;
  if (current && current.duration_s) total = Math.max(total, current.duration_s);
  if (shown) for (const end of shown.curve.end_s) total = Math.max(total, end);
  return total || 1;
}

function drawTimeline() {
  if (!shown) return;
  const { curve, moments } = shown;
  const total = timelineSeconds();
  const x = (t) => (1000 * t) / total;
  let low = Infinity, high = -Infinity;
  for (const v of curve.scores) { low = Math.min(low, v); high = Math.max(high, v); }
  // Scaled to this curve: raw cosines bunch up (see `relative` above).
  const y = (v) => (high > low ? 92 - (80 * (v - low)) / (high - low) : 50);
  const plot = svg("svg", { viewBox: "0 0 1000 100", preserveAspectRatio: "none" });
  for (const m of moments) {
    const box = svg("rect", { class: "moment", x: x(m.start_s), y: 0, width: Math.max(2, x(m.end_s) - x(m.start_s)), height: 100 });
    box.dataset.start = m.start_s;
    box.dataset.end = m.end_s;
    const title = svg("title", {});
    title.textContent = `${clock(m.start_s)}–${clock(m.end_s)} · cosine similarity ${m.score.toFixed(3)}`;
    box.append(title);
    plot.append(box);
  }
  const points = curve.scores.map((v, i) => [x((curve.start_s[i] + curve.end_s[i]) / 2), y(v)]);
  const line = points.map(([px, py]) => `${px.toFixed(2)},${py.toFixed(2)}`).join(" ");
  plot.append(svg("polygon", { class: "area", points: `${points[0][0].toFixed(2)},100 ${line} ${points[points.length - 1][0].toFixed(2)},100` }));
  plot.append(svg("polyline", { class: "line", points: line }));
  plot.append(svg("line", { class: "playhead", x1: 0, x2: 0, y1: 0, y2: 100 }));
  $("timeline-plot").replaceChildren(plot);
  $("timeline-plot").setAttribute("aria-valuemax", String(Math.round(total)));
  $("timeline-end").textContent = clock(total);
  const n = moments.length;
  $("timeline-note").textContent = `${n} moment${n === 1 ? "" : "s"}${shown.coarse ? " (as indexed)" : ""} · click to seek`;
  movePlayhead();
}

function movePlayhead() {
  const head = $("timeline-plot").querySelector(".playhead");
  if (!shown || !head) return;
  const t = $("video").currentTime || 0;
  const px = ((1000 * t) / timelineSeconds()).toFixed(2);
  head.setAttribute("x1", px);
  head.setAttribute("x2", px);
  $("timeline-plot").setAttribute("aria-valuenow", String(Math.round(t)));
  for (const box of $("timeline-plot").querySelectorAll(".moment")) {
    box.classList.toggle("playing", box.dataset.start <= t && t <= box.dataset.end);
  }
}

// Inside a moment: that moment plays to its end (and "Replay" replays it); elsewhere: on
// from there.
function seekTo(t) {
  const video = $("video");
  t = Math.max(0, Math.min(timelineSeconds(), t));
  const moment = shown && shown.moments.find((m) => m.start_s <= t && t <= m.end_s);
  video.dataset.start = moment ? moment.start_s : t;
  video.dataset.end = moment ? moment.end_s : "";
  video.currentTime = t;
  video.play().catch(() => {});
  movePlayhead();
}

$("timeline-plot").addEventListener("click", (e) => {
  if (!shown) return;
  const box = $("timeline-plot").getBoundingClientRect();
  seekTo(((e.clientX - box.left) / box.width) * timelineSeconds());
});
$("timeline-plot").addEventListener("keydown", (e) => {
  const step = { ArrowLeft: -5, ArrowRight: 5 }[e.key];
  if (!shown || !step) return;
  e.preventDefault();
  seekTo($("video").currentTime + step);
});

// --------------------------------------------------------------- copies
// The other videos of the index that share a span with the one in the player, with the
// offset between them; a click opens the other one at the same content.
$("copies-find").addEventListener("click", async () => {
  if (!current) return;
  const hit = current;
  const list = $("copies-list");
  list.replaceChildren();
  $("copies-status").textContent = "Looking for copies… (the first time, in the whole index)";
  let answer;
  try {
    answer = await api(`api/clips/${encodeURIComponent(hit.id)}/copies`);
  } catch (err) {
    $("copies-status").textContent = err.message;
    return;
  }
  if (current !== hit) return;
  const n = answer.copies.length;
  $("copies-status").textContent = n ? `${n} span${n === 1 ? " of this video is" : "s of this video are"} in other videos:` : "No copies of this video in the index.";
  for (const copy of answer.copies) {
    const other = answer.videos[copy.b.path];
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "copy";
    const sign = copy.offset_s < 0 ? "−" : "+";
    button.innerHTML = `<span class="other">${escapeHtml(other ? other.name : copy.b.path)}</span>`
      + `<span class="spans">here ${clock(copy.a.start_s)}–${clock(copy.a.end_s)} · there ${clock(copy.b.start_s)}–${clock(copy.b.end_s)}`
      + ` · ${copy.score.toFixed(3)}</span>`;
    button.title = `${copy.b.path}\nA time t there is t ${sign} ${Math.abs(copy.offset_s).toFixed(2)} s here. Click to play it there.`;
    button.disabled = !other;
    button.addEventListener("click", () => openCopy(copy, other));
    item.append(button);
    list.append(item);
  }
});

// Every group of videos that share content (the whole index's copies), as lists of
// copies; a click plays one side.
let copiesAsked = 0; // the latest "all copies" request: an earlier one's answer is dropped
async function allCopies() {
  const asked = ++copiesAsked;
  // Still wanted: no newer request, and the page still shows the copies (not a search).
  const wanted = () => asked === copiesAsked && readUrl().copies === "1";
  last = null;
  $("download").disabled = true;
  const results = $("results");
  results.dataset.state = "loading";
  setStatus("Looking for copies in the whole index… (the first time takes a while)");
  let answer;
  try {
    answer = await api("api/copies");
  } catch (err) {
    if (!wanted()) return;
    results.replaceChildren();
    results.dataset.state = "ready";
    setStatus(escapeHtml(err.message), true);
    return;
  }
  if (!wanted()) return;
  results.replaceChildren();
  results.classList.add("grouped");
  const n = answer.groups.length;
  setStatus(n ? `<strong>${n}</strong> group${n > 1 ? "s" : ""} of videos that share content · ${Math.round(answer.took_ms)} ms`
              : "No copies in the index.");
  const name = (path) => (answer.videos[path] ? answer.videos[path].name : path);
  for (const group of answer.groups) {
    const section = document.createElement("section");
    section.className = "group";
    section.innerHTML = `<h3><span>${group.paths.length} videos</span><span class="path">${group.paths.map((p) => escapeHtml(name(p))).join(" · ")}</span></h3><ol class="copies-list"></ol>`;
    for (const copy of group.copies) {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.innerHTML = `<span class="other">${escapeHtml(name(copy.a.path))} ${clock(copy.a.start_s)}–${clock(copy.a.end_s)}`
        + ` ↔ ${escapeHtml(name(copy.b.path))} ${clock(copy.b.start_s)}–${clock(copy.b.end_s)}</span><span class="spans">${copy.score.toFixed(3)}</span>`;
      button.title = `${copy.a.path}\n${copy.b.path}\nA time t in the second is t ${copy.offset_s < 0 ? "−" : "+"} ${Math.abs(copy.offset_s).toFixed(2)} s in the first. Click to play the first.`;
      const video = answer.videos[copy.a.path];
      button.disabled = !video;
      button.addEventListener("click", () => openPlayer({ id: video.clip, path: video.path, name: video.name,
        start_s: copy.a.start_s, end_s: copy.a.end_s, duration_s: video.duration_s, score: null,
        video_url: video.video_url, poster_url: video.poster_url }));
      item.append(button);
      section.querySelector("ol").append(item);
    }
    results.append(section);
  }
  results.dataset.state = "ready";
}

function openCopy(copy, other) {
  // Where the player is, when inside the shared span: the same content there (a time t here
  // is t − offset_s there); else the span's start.
  const t = $("video").currentTime;
  const there = t >= copy.a.start_s && t <= copy.a.end_s ? t - copy.offset_s : copy.b.start_s;
  openPlayer({ id: other.clip, path: other.path, name: other.name, start_s: Math.max(copy.b.start_s, Math.min(copy.b.end_s, there)),
    end_s: copy.b.end_s, duration_s: other.duration_s, score: null, video_url: other.video_url, poster_url: other.poster_url });
}

// --------------------------------------------------------------- the page
$("search").addEventListener("submit", (e) => { e.preventDefault(); submit(); });
$("file").addEventListener("change", () => { const f = $("file").files[0]; if (f) searchUpload(f); $("file").value = ""; });
$("group").addEventListener("change", () => { writeUrl({ ...readUrl(), group: $("group").checked ? "1" : undefined }, false); if (!readUrl().copies) render(); });
$("all-copies").addEventListener("click", () => {
  const state = { copies: "1" };
  fillForm(state);
  writeUrl(state, true);
  search(state);
});
for (const id of ["top_k", "where", "under"]) $(id).addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); rerun(); } });
$("per_video").addEventListener("change", rerun);
$("moments").addEventListener("change", rerun);
function rerun() {
  const url = readUrl();
  const state = formState();
  if (url.similar && !state.q) state.similar = url.similar;
  fillForm(state);
  writeUrl(state, true);
  search(state);
}
$("download").addEventListener("click", () => {
  if (!last) return;
  const { what, ...data } = last;
  if (data.moments) delete data.hits; // the cards' view of the moments, not the answer's
  const blob = new Blob([JSON.stringify(data, null, 2)], { type: "application/json" });
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = "videoprism-results.json";
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
});
$("token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  setToken($("token").value.trim());
});
function setToken(token) {
  if (!token) return;
  // The token's UTF-8 bytes in unpadded base64url: a cookie carries them unchanged (the
  // server decodes them back), whatever the token holds: `/`, `+`, `=`, any script.
  const bytes = new TextEncoder().encode(token);
  const b64 = btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  document.cookie = `videoprism_token=${b64}; path=/; SameSite=Strict`;
  $("token-form").hidden = true;
  start();
}
window.addEventListener("popstate", () => { const s = readUrl(); fillForm(s); search(s); });

async function start() {
  try {
    const info = await api("api/info");
    // The clips as the index recorded them (an old index may not say: then only the count).
    const clips = info.clip_window;
    $("info").textContent = `${info.size.toLocaleString()} clip${info.size === 1 ? "" : "s"}${clips ? ` · ${clips}` : ""}`;
    $("info").title = `${info.uri}\npreset ${info.preset}\ntable version ${info.version}`
      + `\nclips: ${clips || "how the videos were cut is not recorded"}`
      + (info.num_frames ? `\n${info.num_frames} frames per clip` : "");
    if (!info.text_search) $("q").placeholder = "This index's model is video-only: upload a video";
  } catch (err) {
    if ($("token-form").hidden) setStatus(escapeHtml(err.message), true);
    return;
  }
  const state = readUrl();
  fillForm(state);
  search(state);
}

// A token may come in the URL's fragment (never sent to the server): keep it, drop it.
const fragment = new URLSearchParams(location.hash.slice(1));
if (fragment.get("token")) {
  history.replaceState(null, "", location.pathname + location.search);
  setToken(fragment.get("token"));
} else {
  start();
}
