// The search page: plain JavaScript, no build step, nothing fetched from elsewhere.
// The query and filters live in the URL (?q=…&top_k=…&where=…&under=…&per_video=1&group=1,
// or ?similar=<clip id>), so a search can be shared and a reload shows it again. A link
// from before `top_k` (its `k=…`) still opens the same search.
"use strict";

const $ = (id) => document.getElementById(id);
const FIELDS = ["q", "top_k", "where", "under", "per_video", "group", "similar"];
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
  return state;
}

function fillForm(state) {
  $("q").value = state.q || "";
  $("top_k").value = state.top_k || 12;
  $("where").value = state.where || "";
  $("under").value = state.under || "";
  $("per_video").checked = state.per_video === "1";
  $("group").checked = state.group === "1";
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
  if (state.similar) {
    url = `api/clips/${encodeURIComponent(state.similar)}/similar?${filterParams(state)}`;
    what = "clips like the chosen one";
  } else if (state.q) {
    const params = filterParams(state);
    params.set("q", state.q);
    url = `api/search?${params}`;
    what = `“${escapeHtml(state.q)}”`;
  } else {
    last = null;
    render();
    return;
  }
  setStatus("Searching…");
  $("results").dataset.state = "loading";
  try {
    last = await api(url);
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
    last = await api(`api/search/upload?${params}`, {
      method: "POST", body: file, headers: { "Content-Type": file.type || "application/octet-stream" },
    });
    last.what = `your ${file.type.startsWith("image/") ? "image" : "video"} <strong>${escapeHtml(file.name)}</strong>`;
    render();
  } catch (err) {
    $("results").dataset.state = "ready";
    setStatus(escapeHtml(err.message), true);
  }
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
    box.title = `Cosine similarity ${hit.score.toFixed(3)} of the query's and this clip's embeddings: `
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
  setStatus(n ? `<strong>${n}</strong> clip${n > 1 ? "s" : ""} for ${last.what} · ${last.index_size} in the index · ${Math.round(last.took_ms)} ms`
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
    section.innerHTML = `<h3><span>${escapeHtml(hits[0].name)}</span><span class="path">${hits.length} clip${hits.length > 1 ? "s" : ""} · ${escapeHtml(path)}</span></h3><div class="cards"></div>`;
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
  const start = hit.start_s || 0;
  // The media fragment starts at the clip and stops at its end; the handlers below do the
  // same where a browser ignores it.
  video.src = hit.start_s === null ? hit.video_url : `${hit.video_url}#t=${start},${hit.end_s}`;
  video.dataset.start = start;
  video.dataset.end = hit.end_s === null ? "" : hit.end_s;
  $("player").showModal();
  video.play().catch(() => {});
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
});
$("video").addEventListener("timeupdate", () => {
  const video = $("video");
  const end = parseFloat(video.dataset.end);
  if (!isNaN(end) && !video.paused && video.currentTime >= end) video.pause();
});
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

// --------------------------------------------------------------- the page
$("search").addEventListener("submit", (e) => { e.preventDefault(); submit(); });
$("file").addEventListener("change", () => { const f = $("file").files[0]; if (f) searchUpload(f); $("file").value = ""; });
$("group").addEventListener("change", () => { writeUrl({ ...readUrl(), group: $("group").checked ? "1" : undefined }, false); render(); });
for (const id of ["top_k", "where", "under"]) $(id).addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); rerun(); } });
$("per_video").addEventListener("change", rerun);
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
