// The presenter's page: polls /api/state once a second and draws its charts on
// plain canvases (no library, no CDN: the booth may be offline).
"use strict";

const COLORS = { err: "#ff4d6d", ink: "#eef2ff", dim: "#9aa6c8", grid: "#26304f", accent: "#4d9bff" };
// One colour per frontend, by its place in the switch (the server's order).
const PALETTE = ["#76b900", "#ff8a3d", "#4dc9ff", "#c77dff", "#ffd23f", "#ff5fa2", "#3ddc97", "#a0a0ff"];
const $ = (id) => document.getElementById(id);
let state = null;
let editing = false; // do not overwrite a slider while the presenter drags it
// The presenter's changes sent so far, and those answered. A poll asked before the newest change
// was answered carries the settings from before it: drawn, it would put them back on the controls
// (a checkbox unticks under the click until the next poll), so its answer is dropped.
const changes = { sent: 0, answered: 0 };
let frontends = []; // [{id, title, color}] as the server lists them
let built = ""; // the frontends the switch and headline were built for

function colorOf(id) { const f = frontends.find((x) => x.id === id); return f ? f.color : COLORS.dim; }
function titleOf(id) { const f = frontends.find((x) => x.id === id); return f ? f.title : id; }

function fmtMs(v) { return v == null ? "–" : (v >= 1000 ? (v / 1000).toFixed(2) + " s" : Math.round(v) + " ms"); }
function fmtPct(v) { return v == null ? "–" : Math.round(v * 100) + "%"; }
function fmtTokMin(v) { return v == null ? "–" : (v >= 1000 ? (v / 1000).toFixed(1) + "k" : Math.round(v) + "") + " tok/min"; }
function fmtRatio(v) { return v == null ? "–" : v.toFixed(1) + "×"; }
// Sets a headline element's text and its exact value (data-value), which the browser test reads.
function show(id, text, value) {
  const el = $(id);
  el.textContent = text;
  el.dataset.value = value == null ? "" : String(value);
}

// ---- the presenter token ----------------------------------------------------------
// Reads are open; a control (any POST) carries the token when this tab has one. A 401 asks
// for it once (the form in the controls), keeps it in sessionStorage (this tab only, gone
// when it closes) and sends the control again; a wrong token is forgotten and asked again.
const TOKEN_KEY = "gtc-loadgen-presenter-token";
let pending = null; // the control that met a 401, sent again once a token is given
function storedToken() { try { return sessionStorage.getItem(TOKEN_KEY) || ""; } catch (e) { return ""; } }
function storeToken(t) { try { if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* private mode */ } }

// "open" (no token configured), "view" (token needed, none given: the audience's view, no form),
// "ask" (a control met a 401: the form), "presenter" (token given), "wrong" (refused: the form
// again), "limited" (too many wrong tokens: wait).
function setAuth(mode, text) {
  const el = $("auth-state");
  el.dataset.mode = mode;
  el.textContent = text || { open: "", view: "", ask: "presenter token required", presenter: "",
    wrong: "wrong token", limited: "too many wrong tokens" }[mode];
  $("auth").classList.toggle("hidden", mode === "open" || mode === "presenter" || mode === "view");
  $("auth-badge").textContent = mode === "open" ? "" : (mode === "presenter" ? "presenter" : "view only");
  $("auth-badge").dataset.mode = mode;
  document.querySelector(".controls").classList.toggle("locked", mode !== "open" && mode !== "presenter");
}

async function api(path, body) {
  const opts = {};
  if (body !== undefined) {
    const headers = { "Content-Type": "application/json" };
    const t = storedToken();
    if (t) headers.Authorization = "Bearer " + t;
    Object.assign(opts, { method: "POST", headers, body: JSON.stringify(body) });
  }
  // "no-store": else Chromium holds each poll of a URL until the one before it has answered (its
  // cache lock), and on a slow server the polls queue up and answer ever later. The timeout: a
  // request that never answers must not freeze the page (a change in flight holds the polls back).
  const resp = await fetch(path, { ...opts, cache: "no-store", signal: AbortSignal.timeout(15000) });
  const data = await resp.json().catch(() => ({}));
  if (resp.status === 401 || resp.status === 429) {
    const err = new Error(data.error || ("HTTP " + resp.status));
    err.auth = resp.status === 429 ? "limited" : (data.auth || "required");
    throw err;
  }
  if (!resp.ok) throw new Error(data.error || ("HTTP " + resp.status));
  return data;
}

// A control: the call, or (on 401) the token form and the call kept for when a token is given.
async function control(path, body) {
  changes.sent++;
  try {
    const out = await api(path, body);
    if (storedToken()) setAuth("presenter");
    return out;
  } catch (e) {
    if (!e.auth) throw e;
    if (e.auth === "wrong") storeToken("");
    pending = { path, body };
    setAuth(e.auth === "required" ? "ask" : e.auth, e.auth === "limited" ? e.message : undefined);
    $("auth-token").focus();
    throw new Error(e.auth === "wrong" ? "wrong presenter token" : e.message);
  } finally {
    changes.answered++;
  }
}

async function unlock(ev) {
  ev.preventDefault();
  const t = $("auth-token").value.trim();
  if (!t) return;
  storeToken(t);
  $("auth-token").value = "";
  setAuth("presenter");
  const again = pending;
  pending = null;
  if (again) {
    try { await control(again.path, again.body); say("", true); } catch (e) { say(e.message); }
  }
  refresh();
}

function say(text, ok) {
  const m = $("message");
  m.textContent = text || "";
  m.className = "message" + (ok ? " ok" : "");
}

async function change(patch) {
  try { await control("/api/settings", patch); say("", true); await refresh(); }
  catch (e) { say(e.message); await refresh(); }
}

// ---- charts ------------------------------------------------------------------
function setup(canvas) {
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height;
  ctx.clearRect(0, 0, W, H);
  ctx.font = "18px system-ui, 'DejaVu Sans', sans-serif";
  return { ctx, W, H, L: 62, R: 12, T: 40, B: 34 };
}

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 4, 6, 8, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function axes(g, max, fmt) {
  const { ctx, W, H, L, R, T, B } = g;
  ctx.strokeStyle = COLORS.grid; ctx.fillStyle = COLORS.dim; ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = T + (H - T - B) * (1 - i / 4);
    ctx.beginPath(); ctx.moveTo(L, y); ctx.lineTo(W - R, y); ctx.stroke();
    ctx.textAlign = "right"; ctx.textBaseline = "middle";
    ctx.fillText(fmt(max * i / 4), L - 6, y);
  }
}

function legend(g, items) {
  const { ctx, W } = g;
  let x = W - 12;
  ctx.textAlign = "right"; ctx.textBaseline = "top";
  for (const [name, color] of items.slice().reverse()) {
    ctx.fillStyle = COLORS.ink; ctx.fillText(name, x, 2);
    x -= ctx.measureText(name).width + 6;
    ctx.fillStyle = color; ctx.fillRect(x - 14, 6, 14, 12);
    x -= 30;
  }
}

function bars(canvas, cats, series, fmt, fixedMax) {
  const g = setup(canvas);
  const { ctx, W, H, L, R, T, B } = g;
  let max = fixedMax || niceMax(Math.max(0, ...series.flatMap((s) => s.values.filter((v) => v != null))));
  axes(g, max, fmt);
  if (!cats.length) { ctx.fillStyle = COLORS.dim; ctx.textAlign = "center"; ctx.fillText("waiting for data…", W / 2, H / 2); return; }
  const slot = (W - L - R) / cats.length, bw = Math.min(70, slot * 0.8 / series.length);
  cats.forEach((c, i) => {
    series.forEach((s, j) => {
      const v = s.values[i];
      const x = L + slot * i + slot / 2 - (bw * series.length) / 2 + bw * j;
      if (v != null) {
        const h = (H - T - B) * Math.min(1, v / max);
        ctx.fillStyle = s.color; ctx.fillRect(x + 2, H - B - h, bw - 4, h);
        ctx.fillStyle = COLORS.ink; ctx.textAlign = "center"; ctx.textBaseline = "bottom";
        ctx.font = "bold 16px system-ui, 'DejaVu Sans', sans-serif";
        ctx.fillText(fmt(v), x + bw / 2, H - B - h - 2);
        ctx.font = "18px system-ui, 'DejaVu Sans', sans-serif";
      }
    });
    ctx.fillStyle = COLORS.dim; ctx.textAlign = "center"; ctx.textBaseline = "top";
    ctx.fillText("turn " + c, L + slot * i + slot / 2, H - B + 6);
  });
  legend(g, series.map((s) => [s.name, s.color]));
}

function lines(canvas, t, series, fmt) {
  const g = setup(canvas);
  const { ctx, W, H, L, R, T, B } = g;
  const max = niceMax(Math.max(0, ...series.flatMap((s) => s.values.filter((v) => v != null))));
  axes(g, max, fmt);
  if (t.length < 2) { ctx.fillStyle = COLORS.dim; ctx.textAlign = "center"; ctx.fillText("waiting for data…", W / 2, H / 2); return; }
  const t0 = t[t.length - 1] - 120;
  const X = (ts) => L + (W - L - R) * Math.max(0, (ts - t0) / 120);
  for (const s of series) {
    ctx.strokeStyle = s.color; ctx.lineWidth = s.dash ? 2 : 3; ctx.setLineDash(s.dash ? [8, 6] : []); ctx.beginPath();
    let pen = false;
    s.values.forEach((v, i) => {
      if (v == null) { if (!s.connect) pen = false; return; }
      const x = X(t[i]), y = H - B - (H - T - B) * Math.min(1, v / max);
      if (pen) ctx.lineTo(x, y); else ctx.moveTo(x, y);
      pen = true;
    });
    ctx.stroke();
  }
  ctx.setLineDash([]);
  ctx.fillStyle = COLORS.dim; ctx.textAlign = "center"; ctx.textBaseline = "top";
  ctx.fillText("last 2 minutes", (L + W - R) / 2, H - B + 6);
  legend(g, series.filter((s) => !s.dash).map((s) => [s.name, s.color]));
}

// Every follow-up as a dot: one lane per routing, jittered sideways (stably, from the
// request's own time), TTFT up a log scale so a 30 ms band and 300 ms misses both read.
// Filled: the server found most of the prompt cached; ring: a miss.
function dots(canvas, data, now) {
  const g = setup(canvas);
  g.L = 84;
  const { ctx, W, H, L, R, T, B } = g;
  const all = frontends.flatMap((f) => (data[f.id] || []).map((d) => d[1]));
  const lo = 10, hi = Math.max(1000, niceMax(Math.max(0, ...all)));
  const Y = (v) => H - B - (H - T - B) * (Math.log10(Math.max(lo, Math.min(hi, v))) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo));
  ctx.strokeStyle = COLORS.grid; ctx.fillStyle = COLORS.dim; ctx.lineWidth = 1;
  for (const v of [10, 30, 100, 300, 1000, 3000, 10000, 30000]) {
    if (v > hi) break;
    const y = Y(v);
    ctx.beginPath(); ctx.moveTo(L, y); ctx.lineTo(W - R, y); ctx.stroke();
    ctx.textAlign = "right"; ctx.textBaseline = "middle"; ctx.fillText(v >= 1000 ? v / 1000 + " s" : v + " ms", L - 8, y);
  }
  if (!all.length) { ctx.fillStyle = COLORS.dim; ctx.textAlign = "center"; ctx.fillText("waiting for follow-ups…", W / 2, H / 2); return; }
  const lane = (W - L - R) / Math.max(1, frontends.length);
  frontends.forEach((f, i) => {
    const x0 = L + lane * i;
    ctx.fillStyle = COLORS.ink; ctx.textAlign = "center"; ctx.textBaseline = "top";
    ctx.fillText(f.title, x0 + lane / 2, H - B + 6);
    for (const [t, v, miss] of data[f.id] || []) {
      const age = Math.max(0, now - t);
      const frac = (Math.sin(t * 12.9898) * 43758.5453) % 1;  // stable jitter in (-1, 1)
      const x = x0 + lane / 2 + frac * lane * 0.42;
      ctx.globalAlpha = Math.max(0.25, 1 - age / 150);
      ctx.beginPath(); ctx.arc(x, Y(v), 5, 0, 2 * Math.PI);
      if (miss === 1) { ctx.strokeStyle = f.color; ctx.lineWidth = 2.5; ctx.stroke(); }
      else { ctx.fillStyle = f.color; ctx.fill(); }
    }
    ctx.globalAlpha = 1;
  });
}

function draw(st) {
  const bt = st.stats.by_turn;
  const rows = (id) => bt[id] || [];
  const turns = [...new Set(frontends.flatMap((f) => rows(f.id).map((r) => r.turn)))].sort((a, b) => a - b);
  const pick = (id, k) => turns.map((t) => { const r = rows(id).find((x) => x.turn === t); return r ? r[k] : null; });
  bars($("c-turn"), turns, frontends.map((f) => ({ name: f.title, color: f.color, values: pick(f.id, "ttft_p50") })),
    (v) => Math.round(v) + "");
  bars($("c-hit"), turns, frontends.map((f) => ({ name: f.title, color: f.color, values: pick(f.id, "cache_hit") })),
    (v) => Math.round(v * 100) + "%", 1);
  const s = st.stats.series;
  lines($("c-ttft"), s.t, [
    ...frontends.map((f) => ({ name: f.title, color: f.color, connect: true, values: (s.ttft || {})[f.id] || [] })),
    ...frontends.map((f) => ({ name: f.title + " turn 1", color: f.color, dash: true, connect: true, values: (s.ttft_first || {})[f.id] || [] })),
  ], (v) => Math.round(v) + "");
  dots($("c-dots"), st.stats.dots || {}, st.stats.now || (s.t.length ? s.t[s.t.length - 1] : 0));
  // One-second buckets are jumpy at booth rates: show a 5-second average.
  const smooth = s.rps.map((_, i) => { const w = s.rps.slice(Math.max(0, i - 4), i + 1); return w.reduce((a, b) => a + b, 0) / w.length; });
  lines($("c-rps"), s.t, [
    { name: "req/s", color: COLORS.accent, values: smooth },
    { name: "errors/s", color: COLORS.err, values: s.errors },
  ], (v) => (Math.round(v * 10) / 10) + "");
  lines($("c-itl"), s.t, [{ name: "ITL", color: COLORS.ink, values: s.itl_ms }], (v) => v.toFixed(1));
  lines($("c-active"), s.t, [{ name: "active", color: COLORS.accent, values: s.active }], (v) => Math.round(v) + "");
}

// ---- numbers and controls -------------------------------------------------------
// The routing switch and the headline have one entry per frontend, in the
// server's order; rebuilt only when that list changes.
function buildFrontends(list) {
  const key = JSON.stringify(list);
  if (key === built) return;
  built = key;
  frontends = list.map((f, i) => ({ id: f.id, title: f.title, color: PALETTE[i % PALETTE.length] }));
  $("routing-switch").replaceChildren(...frontends.map((f) => {
    const b = document.createElement("button");
    b.id = "route-" + f.id; b.dataset.routing = f.id; b.textContent = f.title;
    b.setAttribute("role", "radio"); b.style.setProperty("--c", f.color);
    b.onclick = () => change({ routing: f.id, ab: false });
    return b;
  }));
  if (frontends.length > 1) {
    const ab = document.createElement("button");
    ab.id = "route-ab"; ab.textContent = "A/B"; ab.title = "new conversations alternate between the routings";
    ab.setAttribute("role", "radio"); ab.style.setProperty("--c", COLORS.ink);
    ab.onclick = () => change({ ab: true });
    $("routing-switch").appendChild(ab);
  }
  const tiles = frontends.map((f) => {
    const d = document.createElement("div");
    d.className = "hl"; d.dataset.routing = f.id; d.style.setProperty("--c", f.color);
    const label = document.createElement("div"); label.className = "hl-label"; label.textContent = f.title + " · follow-up TTFT p90";
    const value = document.createElement("div"); value.className = "hl-value"; value.id = "hl-p90-" + f.id; value.textContent = "–";
    const sub = (text, id) => {
      const e = document.createElement("div"); e.className = "hl-sub"; e.append(text + " ");
      const b = document.createElement("b"); b.id = id; b.textContent = "–"; e.appendChild(b); return e;
    };
    d.append(label, value, sub("misses", "hl-miss-" + f.id), sub("median", "hl-p50-" + f.id),
      sub("recomputed", "hl-recomp-" + f.id), sub("follow-ups (5 min)", "hl-n-" + f.id));
    return d;
  });
  $("headline").replaceChildren(...tiles, $("hl-ratio"));
  $("headline").style.gridTemplateColumns = "repeat(" + frontends.length + ", 1fr) 1.1fr";
  $("hl-ratio").classList.toggle("hidden", frontends.length < 2);
}

function render(st) {
  state = st;
  buildFrontends(st.frontends);
  // The first state says whether the controls need a token; later changes come from the controls' answers.
  const mode = $("auth-state").dataset.mode;
  if (!(st.auth && st.auth.required)) { if (mode !== "open") setAuth("open"); }
  else if (mode === "open" || !mode) setAuth(storedToken() ? "presenter" : "view");
  const set = st.settings, stats = st.stats;
  $("model").textContent = st.model;
  $("topology").textContent = st.topology ? st.topology.label : st.model;
  // The headlines, per routing: p90 (the tail) large; misses, median, recomputed tokens below.
  // With too few follow-ups a routing says "collecting" and no ratio is shown.
  const heads = stats.headlines || {};
  for (const f of frontends) {
    const h = heads[f.id] || {};
    const p90 = $("hl-p90-" + f.id);
    if (h.collecting) show("hl-p90-" + f.id, "collecting", null); else show("hl-p90-" + f.id, fmtMs(h.p90_ms), h.p90_ms);
    p90.classList.toggle("collecting", !!h.collecting);
    show("hl-miss-" + f.id, fmtPct(h.miss_share), h.miss_share);
    show("hl-p50-" + f.id, fmtMs(h.p50_ms), h.p50_ms);
    show("hl-recomp-" + f.id, fmtTokMin(h.recomputed_per_min), h.recomputed_per_min);
    show("hl-n-" + f.id, (h.n || 0) + (h.collecting ? " of " + stats.min_followups + " needed" : ""), h.n || 0);
  }
  const tail = stats.tail_ratio || {}, med = stats.median_ratio || {};
  if (tail.value == null) { show("hl-tail", "collecting", null); $("hl-tail-label").textContent = "ratio"; }
  else { show("hl-tail", fmtRatio(tail.value), tail.value); $("hl-tail-label").textContent = titleOf(tail.slow) + " ÷ " + titleOf(tail.fast); }
  $("hl-tail").classList.toggle("collecting", tail.value == null);
  show("hl-median-ratio", med.value == null ? "collecting" : fmtRatio(med.value) + " (" + titleOf(med.slow) + " ÷ " + titleOf(med.fast) + ")", med.value);
  // "Round-robin 31% · KV-aware 0%": every routing's miss share, most missing first.
  const shares = frontends.map((f) => [f, (heads[f.id] || {}).miss_share]).filter(([, v]) => v != null)
    .sort((a, b) => b[1] - a[1]);
  $("hl-misses").textContent = shares.length ? shares.map(([f, v]) => f.title + " " + fmtPct(v)).join(" · ") : "–";
  $("t-rps").textContent = stats.rps_10s.toFixed(1);
  $("t-active").textContent = Object.values(st.active).reduce((a, b) => a + b, 0);
  // Cache hit on turns 2 and later: of the routing in force, or of every routing
  // side by side while new conversations alternate (A/B, auto mode).
  const hitOf = (id) => {
    const hits = (stats.by_turn[id] || []).filter((r) => r.turn >= 2 && r.cache_hit != null);
    return hits.length ? fmtPct(hits.reduce((a, r) => a + r.cache_hit, 0) / hits.length) : "–";
  };
  $("t-hit").classList.toggle("split", !!st.effective.alternating);
  if (st.effective.alternating) {
    $("t-hit-title").textContent = "by routing";
    $("t-hit").textContent = frontends.map((f) => f.title + " " + hitOf(f.id)).join(" · ");
  } else {
    $("t-hit-title").textContent = titleOf(set.routing);
    $("t-hit").textContent = hitOf(set.routing);
  }
  $("t-errors").textContent = stats.totals.errors;
  $("t-errors").classList.toggle("bad", stats.totals.errors > 0);
  $("btn-start").classList.toggle("on", set.running);
  $("btn-stop").classList.toggle("on", !set.running);
  const alternating = st.effective.alternating;
  for (const b of $("routing-switch").children) {
    const on = b.id === "route-ab" ? alternating : !alternating && set.routing === b.dataset.routing;
    b.classList.toggle("on", on);
    b.setAttribute("aria-checked", on);
  }
  $("ab-note").textContent = alternating ? (set.auto && !set.ab ? "· alternating (auto)" : "· alternating") : "";
  if (!editing) {
    $("concurrency").value = set.concurrency; $("rate").value = set.rate;
    for (const k of ["auto_ramp_s", "auto_steady_s", "auto_high_s", "auto_cooldown_s", "turns_min", "turns_max"]) {
      if (document.activeElement !== $(k)) $(k).value = set[k];
    }
  }
  $("concurrency-val").textContent = st.effective.concurrency + (set.auto ? " (auto)" : "");
  $("rate-val").textContent = st.effective.rate > 0 ? st.effective.rate + " req/s" : "no cap";
  $("auto").checked = set.auto;
  $("auto-phase").textContent = set.auto && st.effective.auto_phase ? "· " + st.effective.auto_phase : "";
  const box = $("presets");
  if (!box.children.length) {
    for (const name of Object.keys(st.presets)) {
      const b = document.createElement("button");
      b.textContent = name; b.dataset.preset = name; b.id = "preset-" + name;
      b.onclick = async () => { try { await control("/api/preset/" + name, {}); say("", true); } catch (e) { say(e.message); } refresh(); };
      box.appendChild(b);
    }
  }
  for (const b of box.children) b.classList.toggle("on", !set.auto && set.preset === b.dataset.preset);
  draw(st);
}

async function refresh() {
  const asked = changes.sent;
  const settled = changes.sent === changes.answered;
  let st;
  try { st = await api("/api/state"); }
  catch (e) { say("load generator unreachable: " + e.message); return; }
  if (settled && asked === changes.sent) render(st);
}

async function refreshConversations() {
  let data;
  try { data = await api("/api/conversations"); } catch (e) { return; }
  const tbody = document.querySelector("#conv-table tbody");
  tbody.replaceChildren(...data.conversations.slice(0, 12).map((c) => {
    const tr = document.createElement("tr");
    tr.dataset.cid = c.id;
    const cells = [c.id, c.title, null, c.turns_done + "/" + c.turns_planned, c.ttft_ms.map((v) => Math.round(v)).join(" · ") || "–", c.status + (c.errors ? " (" + c.errors + " err)" : "")];
    cells.forEach((v, i) => {
      const td = document.createElement("td");
      if (i === 2) { const p = document.createElement("span"); p.className = "pill"; p.dataset.routing = c.routing; p.style.background = colorOf(c.routing); p.textContent = titleOf(c.routing); td.appendChild(p); }
      else td.textContent = v;
      tr.appendChild(td);
    });
    tr.onclick = () => openConversation(c.id);
    return tr;
  }));
}

async function openConversation(cid) {
  let c;
  try { c = await api("/api/conversations/" + cid); } catch (e) { say(e.message); return; }
  $("detail-title").textContent = c.id + " · " + c.title;
  $("detail-meta").textContent = titleOf(c.routing) + " · " + c.turns_done + "/" + c.turns_planned + " turns · " + c.status + " · system prompt of " + c.document_words + " words";
  $("detail-turns").replaceChildren(...c.turns.map((t) => {
    const div = document.createElement("div"); div.className = t.affected ? "turn affected" : "turn";
    const q = document.createElement("div"); q.className = "q"; q.textContent = "Turn " + t.turn + " (" + t.question_source + "): " + t.question + (t.affected ? " · failed (" + t.error_kind + ")" : "");
    const a = document.createElement("div"); a.className = t.ok === false ? "a err" : "a"; a.textContent = t.ok === false ? (t.error_kind + ": " + t.error) : (t.answer || "…");
    const n = document.createElement("div"); n.className = "nums";
    const items = [["TTFT", fmtMs(t.ttft_ms)], ["server TTFT", fmtMs(t.server_ttft_ms)], ["ITL", t.itl_ms == null ? "–" : t.itl_ms + " ms"],
      ["cached", t.cached_tokens == null ? "–" : t.cached_tokens + " / " + t.prompt_tokens + " tokens"], ["cache hit", fmtPct(t.cache_hit)],
      ["worker", t.worker_id || "–"]];
    for (const [k, v] of items) { const s = document.createElement("span"); s.append(k + " "); const b = document.createElement("b"); b.textContent = v; s.appendChild(b); n.appendChild(s); }
    div.append(q, a, n);
    return div;
  }));
  $("detail").classList.remove("hidden");
}

function wire() {
  $("btn-start").onclick = () => change({ running: true });
  $("btn-stop").onclick = () => change({ running: false });
  $("btn-reset").onclick = async () => { try { await control("/api/reset", {}); } catch (e) { say(e.message); } refresh(); };
  $("auth-form").addEventListener("submit", unlock);
  $("auto").onchange = (e) => change({ auto: e.target.checked });
  for (const id of ["concurrency", "rate"]) {
    const el = $(id);
    el.addEventListener("input", () => { editing = true; $(id + "-val").textContent = el.value; });
    el.addEventListener("change", async () => { await change({ [id]: Number(el.value), auto: false }); editing = false; });
  }
  for (const id of ["auto_ramp_s", "auto_steady_s", "auto_high_s", "auto_cooldown_s", "turns_min", "turns_max"]) {
    $(id).addEventListener("change", (e) => change({ [id]: Number(e.target.value) }));
  }
  $("detail-close").onclick = () => $("detail").classList.add("hidden");
  $("detail").onclick = (e) => { if (e.target === $("detail")) $("detail").classList.add("hidden"); };
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") $("detail").classList.add("hidden"); });
}

wire();
refresh();
refreshConversations();
setInterval(refresh, 1000);
setInterval(refreshConversations, 2000);
