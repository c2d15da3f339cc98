// The presenter's page: polls /api/state once a second and draws its charts on
// plain canvases (no library, no CDN: the booth may be offline).
"use strict";

const COLORS = { kv: "#76b900", round_robin: "#ff8a3d", err: "#ff4d6d", ink: "#eef2ff", dim: "#9aa6c8", grid: "#26304f", accent: "#4d9bff" };
const $ = (id) => document.getElementById(id);
let state = null;
let editing = false; // do not overwrite a slider while the presenter drags it

function fmtMs(v) { return v == null ? "–" : (v >= 1000 ? (v / 1000).toFixed(2) + " s" : Math.round(v) + " ms"); }
function fmtPct(v) { return v == null ? "–" : Math.round(v * 100) + "%"; }

async function api(path, body) {
  const opts = body === undefined ? {} : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const resp = await fetch(path, opts);
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(data.error || ("HTTP " + resp.status));
  return data;
}

function say(text, ok) {
  const m = $("message");
  m.textContent = text || "";
  m.className = "message" + (ok ? " ok" : "");
}

async function change(patch) {
  try { await api("/api/settings", patch); say("", true); await refresh(); }
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
    ctx.strokeStyle = s.color; ctx.lineWidth = 3; ctx.beginPath();
    let pen = false;
    s.values.forEach((v, i) => {
      if (v == null) { pen = false; return; }
      const x = X(t[i]), y = H - B - (H - T - B) * Math.min(1, v / max);
      if (pen) ctx.lineTo(x, y); else ctx.moveTo(x, y);
      pen = true;
    });
    ctx.stroke();
  }
  ctx.fillStyle = COLORS.dim; ctx.textAlign = "center"; ctx.textBaseline = "top";
  ctx.fillText("last 2 minutes", (L + W - R) / 2, H - B + 6);
  legend(g, series.map((s) => [s.name, s.color]));
}

function draw(st) {
  const bt = st.stats.by_turn;
  const turns = (bt.kv.length ? bt.kv : bt.round_robin).map((r) => r.turn);
  const pick = (rows, k) => turns.map((t) => { const r = rows.find((x) => x.turn === t); return r ? r[k] : null; });
  bars($("c-turn"), turns, [
    { name: "KV-aware", color: COLORS.kv, values: pick(bt.kv, "ttft_p50") },
    { name: "Round-robin", color: COLORS.round_robin, values: pick(bt.round_robin, "ttft_p50") },
  ], (v) => Math.round(v) + "");
  bars($("c-hit"), turns, [
    { name: "KV-aware", color: COLORS.kv, values: pick(bt.kv, "cache_hit") },
    { name: "Round-robin", color: COLORS.round_robin, values: pick(bt.round_robin, "cache_hit") },
  ], (v) => Math.round(v * 100) + "%", 1);
  const s = st.stats.series;
  lines($("c-ttft"), s.t, [
    { name: "KV-aware", color: COLORS.kv, values: s.ttft_kv },
    { name: "Round-robin", color: COLORS.round_robin, values: s.ttft_rr },
  ], (v) => Math.round(v) + "");
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
function render(st) {
  state = st;
  const set = st.settings, stats = st.stats;
  $("model").textContent = st.model;
  $("hl-kv").textContent = fmtMs(stats.followup_ttft_ms.kv);
  $("hl-rr").textContent = fmtMs(stats.followup_ttft_ms.round_robin);
  // RR / KV median follow-up TTFT: above 1 the KV-aware router wins.
  $("hl-speedup").textContent = stats.speedup ? stats.speedup.toFixed(1) + "×" : "–";
  $("t-rps").textContent = stats.rps_10s.toFixed(1);
  $("t-active").textContent = st.active.kv + st.active.round_robin;
  const hits = stats.by_turn.kv.filter((r) => r.turn >= 2 && r.cache_hit != null);
  $("t-hit").textContent = hits.length ? fmtPct(hits.reduce((a, r) => a + r.cache_hit, 0) / hits.length) : "–";
  $("t-errors").textContent = stats.totals.errors;
  $("t-errors").classList.toggle("bad", stats.totals.errors > 0);
  $("btn-start").classList.toggle("on", set.running);
  $("btn-stop").classList.toggle("on", !set.running);
  $("route-kv").classList.toggle("on", set.routing === "kv");
  $("route-rr").classList.toggle("on", set.routing === "round_robin");
  $("route-kv").setAttribute("aria-checked", set.routing === "kv");
  $("route-rr").setAttribute("aria-checked", set.routing === "round_robin");
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
      b.onclick = async () => { try { await api("/api/preset/" + name, {}); say("", true); } catch (e) { say(e.message); } refresh(); };
      box.appendChild(b);
    }
  }
  for (const b of box.children) b.classList.toggle("on", !set.auto && set.preset === b.dataset.preset);
  draw(st);
}

async function refresh() {
  try { render(await api("/api/state")); }
  catch (e) { say("load generator unreachable: " + e.message); }
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
      if (i === 2) { const p = document.createElement("span"); p.className = "pill " + c.routing; p.textContent = c.routing === "kv" ? "KV-aware" : "round-robin"; td.appendChild(p); }
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
  $("detail-meta").textContent = (c.routing === "kv" ? "KV-aware" : "round-robin") + " · " + c.turns_done + "/" + c.turns_planned + " turns · " + c.status + " · system prompt of " + c.document_words + " words";
  $("detail-turns").replaceChildren(...c.turns.map((t) => {
    const div = document.createElement("div"); div.className = "turn";
    const q = document.createElement("div"); q.className = "q"; q.textContent = "Turn " + t.turn + " (" + t.question_source + "): " + t.question;
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
  $("route-kv").onclick = () => change({ routing: "kv" });
  $("route-rr").onclick = () => change({ routing: "round_robin" });
  $("btn-reset").onclick = async () => { await api("/api/reset", {}); refresh(); };
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
