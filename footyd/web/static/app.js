// footyd page: loads the day's fixtures, goals and clips, then follows /api/stream.
// No framework: elements are keyed by id and updated in place (a playing <video> is never rebuilt).
"use strict";

const params = new URLSearchParams(location.search);
const token = params.get("token");
const LIVE = new Set(["1H", "2H", "ET", "P", "LIVE", "HT", "BT"]);

const model = { day: params.get("date"), fixtures: new Map(), goals: new Map(), clips: new Map() };
const els = { fixtures: new Map(), goals: new Map(), videos: new Map() };
const openGoals = new Set();
let loaded = false;
let loading = null;
let queued = [];
let renderPending = false;
let loadedOnce = false; // goals rendered after the first load flash as new

function api(path, query) {
  const url = new URL(path, location.href);
  for (const [k, v] of Object.entries(query || {})) if (v != null) url.searchParams.set(k, v);
  if (token) url.searchParams.set("token", token);
  return url.toString();
}

function showReplica(resp) {  // which footyd replica answered (several may serve this page)
  const who = resp.headers.get("X-Footyd-Replica");
  const node = document.getElementById("replica");
  if (who && node) node.textContent = ` · answered by ${who}`;
}

async function getJSON(path, query) {
  const resp = await fetch(api(path, query), { cache: "no-store" });
  showReplica(resp);
  if (!resp.ok) throw new Error(`${path}: HTTP ${resp.status}`);
  return resp.json();
}

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text != null) node.textContent = text;
  return node;
}

function seqOf(id) {
  const n = Number(String(id || "").split("-")[1]);
  return Number.isFinite(n) ? n : -1;
}

// -- model ------------------------------------------------------------------------------------
function putGoal(g) {
  const { clips, clip_counts, ...goal } = g;
  model.goals.set(goal.id, goal);
  for (const c of clips || []) model.clips.set(c.id, c);
}

async function loadAll() {
  const list = await getJSON("/api/fixtures", { date: model.day });
  const asOf = seqOf(list.as_of);
  model.day = list.date;
  model.fixtures.clear(); model.goals.clear(); model.clips.clear();
  for (const f of list.fixtures) model.fixtures.set(f.id, f);
  const details = await Promise.all(list.fixtures.map((f) => getJSON(`/api/fixtures/${f.id}`)));
  for (const d of details) {
    model.fixtures.set(d.fixture.id, d.fixture);
    for (const g of d.goals) putGoal(g);
  }
  return asOf;
}

function reload() {
  if (loading) return loading;
  loading = loadAll().then((asOf) => {
    loaded = true;
    document.getElementById("error").hidden = true;
    const pending = queued; queued = [];
    // changes that reached the stream after the snapshot was taken still apply
    for (const ev of pending) if (seqOf(ev.id) > asOf) apply(ev.kind, ev.data);
    schedule();
  }).catch((err) => {
    const box = document.getElementById("error");
    box.textContent = `Could not load: ${err.message}`; box.hidden = false;
  }).finally(() => { loading = null; });
  return loading;
}

function dayOf(iso) { return iso ? iso.slice(0, 10) : null; }

function apply(kind, data) {
  if (kind === "fixture") {
    if (data.deleted) model.fixtures.delete(data.id);
    else if (model.fixtures.has(data.id) || dayOf(data.kickoff) === model.day) {
      const fresh = !model.fixtures.has(data.id);
      model.fixtures.set(data.id, data);
      if (fresh) getJSON(`/api/fixtures/${data.id}`).then((d) => { d.goals.forEach(putGoal); schedule(); }).catch(() => {});
    }
  } else if (kind === "goal") {
    if (data.deleted) model.goals.delete(data.id);
    else if (model.fixtures.has(data.fixture_id)) model.goals.set(data.id, data);
  } else if (kind === "clip") {
    if (data.deleted) model.clips.delete(data.id);
    else if (model.goals.has(data.goal_id) || model.fixtures.has(data.fixture_id)) model.clips.set(data.id, data);
  }
  schedule();
}

function onEvent(kind) {
  return (msg) => {
    const data = JSON.parse(msg.data);
    if (!loaded || loading) { queued.push({ kind, data, id: msg.lastEventId }); return; }
    apply(kind, data);
  };
}

function connect() {
  const conn = document.getElementById("conn");
  const es = new EventSource(api("/api/stream"));
  es.addEventListener("open", () => { conn.dataset.state = "live"; conn.textContent = "live"; });
  es.addEventListener("error", () => { conn.dataset.state = "down"; conn.textContent = "reconnecting…"; });
  es.addEventListener("hello", () => { if (!loaded) reload(); });
  es.addEventListener("reset", () => { loaded = false; reload(); });
  for (const kind of ["fixture", "goal", "clip"]) es.addEventListener(kind, onEvent(kind));
}

// -- rendering --------------------------------------------------------------------------------
function schedule() {
  if (renderPending) return;
  renderPending = true;
  requestAnimationFrame(() => { renderPending = false; render(); });
}

function statusText(f) {
  if (f.minute != null && LIVE.has(f.status) && f.status !== "HT") return `${f.minute}'`;
  if (f.status === "NS" && f.kickoff) return new Date(f.kickoff).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return f.status || "";
}

function fixtureEl(f) {
  let node = els.fixtures.get(f.id);
  if (!node) {
    node = el("li", "fixture");
    node.dataset.fixtureId = f.id;
    const head = el("div", "fx-head");
    const league = el("div", "fx-league");
    league.append(el("span", "league"), el("span", "status"));
    head.append(league, el("span", "team home"), el("span", "score"), el("span", "team away"));
    node.append(head, el("ol", "goals"));
    els.fixtures.set(f.id, node);
  }
  node.querySelector(".league").textContent = f.league.name || "";
  const status = node.querySelector(".status");
  status.textContent = statusText(f);
  status.title = f.status_long || "";
  status.classList.toggle("live", LIVE.has(f.status));
  node.querySelector(".home").textContent = f.home.name || "Home";
  node.querySelector(".away").textContent = f.away.name || "Away";
  const s = f.score;
  const pens = s.penalty && s.penalty.home != null ? s.penalty : null;
  // a shootout decides a drawn match: say who won it, not only "1 – 1 PEN"
  node.querySelector(".score").textContent = s.home == null ? "–"
    : `${s.home} – ${s.away}${pens ? ` (${pens.home}–${pens.away} pens)` : ""}`;
  node.querySelector(".score").title = pens
    ? `${pens.home > pens.away ? f.home.name : f.away.name} won the shootout ${Math.max(pens.home, pens.away)}–${Math.min(pens.home, pens.away)}`
    : "";
  return node;
}

function clipsOf(goalId) {
  const out = [];
  for (const c of model.clips.values()) if (c.goal_id === goalId) out.push(c);
  return out;
}

function caption(c) {
  const parts = [];
  if (c.width && c.height) parts.push(`${c.width}×${c.height}`);
  if (c.duration_s) parts.push(`${c.duration_s.toFixed(1)} s`);
  if (c.source) parts.push(c.source);
  return parts.join(" · ");
}

function videoEl(c) {
  let fig = els.videos.get(c.id);
  if (!fig) {
    fig = el("figure");
    fig.dataset.clipId = c.id;
    const video = el("video");
    Object.assign(video, { controls: true, muted: true, playsInline: true, preload: "metadata", loop: true });
    video.src = api(c.video_url);
    fig.append(video, el("figcaption"));
    els.videos.set(c.id, fig);
  }
  fig.querySelector("figcaption").textContent = caption(c);
  return fig;
}

function listItem(c, text) {
  const li = el("li");
  li.dataset.clipId = c.id;
  if (c.post_url) {
    const a = el("a", null, c.source || "post");
    a.href = c.post_url; a.rel = "noopener noreferrer nofollow"; a.target = "_blank";
    li.append(a, " ");
  } else li.append(`${c.source || "clip"} `);
  li.append(el("span", "reason", text));
  return li;
}

function detailsEl(body, cls, label, items) {
  const d = body.querySelector(`details.${cls}`); // made with the body, in display order
  d.hidden = !items.length;
  d.querySelector("summary").textContent = `${items.length} ${items.length === 1 ? label[0] : label[1]}`;
  d.querySelector("ul").replaceChildren(...items);
}

function keptName(clipId) {
  // a person knows the kept clip by what they see (size, source, length), not by its id
  const c = model.clips.get(clipId);
  if (!c || !c.width) return "the kept clip";
  const more = [c.source, c.duration_s ? `${c.duration_s.toFixed(1)} s` : ""].filter(Boolean);
  return `the ${c.width}×${c.height} clip${more.length ? ` (${more.join(", ")})` : ""}`;
}

const SAME_CLIP = /^same clip as \S+(?: at offset ([+-]?[\d.]+)s)?( \(matched through another copy\))?, (.*)$/;

function dupReason(c) {
  // "same clip as c1eb... at offset +1.0s, lower resolution" -> "lower resolution; starts 1.0 s in"
  const m = SAME_CLIP.exec(c.reason || "");
  if (!m) return c.reason || "";
  const parts = [m[3]];
  const at = Number(m[1]);
  if (Number.isFinite(at) && Math.abs(at) >= 0.1) parts.push(at > 0 ? `starts ${at.toFixed(1)} s into it` : `starts ${(-at).toFixed(1)} s before it`);
  if (m[2]) parts.push("matched through another copy");
  return parts.join("; ");
}

function cancelText() {
  return "cancelled: the API no longer lists this goal (VAR or a correction); its clips were withdrawn";
}

function goalBody(node, g) {
  const body = node.querySelector(".goal-body");
  const clips = clipsOf(g.id);
  const kept = clips.filter((c) => c.state === "kept" && c.video_url).sort((a, b) => (b.height || 0) - (a.height || 0));
  const videos = body.querySelector(".videos");
  const want = kept.map(videoEl);
  // keep existing figures in place (a playing video continues); add new, drop gone
  for (const fig of [...videos.children]) if (!want.includes(fig)) fig.remove();
  want.forEach((fig, i) => { if (videos.children[i] !== fig) videos.insertBefore(fig, videos.children[i] || null); });
  const byState = (s) => clips.filter((c) => c.state === s);
  detailsEl(body, "dups", ["duplicate", "duplicates"], byState("duplicate").map((c) => { const why = dupReason(c); return listItem(c, `duplicate of ${keptName(c.duplicate_of)}${why ? ` (${why})` : ""}`); }));
  detailsEl(body, "rejected", ["rejected", "rejected"], byState("rejected").map((c) => listItem(c, c.reason || "rejected")));
  detailsEl(body, "failed", ["failed", "failed"], byState("failed").map((c) => listItem(c, c.reason || "failed")));
  const busy = clips.filter((c) => c.state === "discovered" || c.state === "downloaded").length;
  body.querySelector(".busy").textContent = g.state === "cancelled" ? cancelText()
    : busy ? `${busy} in progress` : (kept.length ? "" : "no kept clips yet");
}

function counts(g) {
  const n = { kept: 0, duplicate: 0, rejected: 0, failed: 0 };
  for (const c of clipsOf(g.id)) if (c.state in n) n[c.state] += 1;
  const parts = [`${n.kept} kept`];
  if (n.duplicate) parts.push(`${n.duplicate} dup`);
  if (n.rejected) parts.push(`${n.rejected} rejected`);
  if (n.failed) parts.push(`${n.failed} failed`);
  return parts.join(" · ");
}

function goalEl(g, fresh) {
  let node = els.goals.get(g.id);
  if (!node) {
    node = el("li", "goal");
    node.dataset.goalId = g.id;
    if (fresh) node.classList.add("new");
    const head = el("button", "goal-head");
    head.type = "button";
    head.append(el("span", "min"), el("span", "scorer"), el("span", "muted team-name"),
                el("span", "muted detail"), el("span", "badge"), el("span", "counts"));
    const body = el("div", "goal-body");
    body.append(el("div", "videos"), el("p", "muted busy"));
    for (const cls of ["dups", "rejected", "failed"]) {
      const d = el("details", cls);
      d.append(el("summary"), el("ul"));
      d.hidden = true;
      body.append(d);
    }
    body.hidden = true;
    head.addEventListener("click", () => {
      if (openGoals.has(g.id)) openGoals.delete(g.id); else openGoals.add(g.id);
      schedule();
    });
    node.append(head, body);
    els.goals.set(g.id, node);
  }
  node.className = `goal ${g.state || ""}${node.classList.contains("new") ? " new" : ""}`;
  const head = node.querySelector(".goal-head");
  head.querySelector(".min").textContent = g.minute || "";
  head.querySelector(".scorer").textContent = g.scorer || "Unknown scorer";
  // an own goal's team is the side it counts for, not the scorer's club: say so
  const own = g.detail === "Own Goal";
  head.querySelector(".team-name").textContent = !g.team.name ? (own ? "own goal" : "")
    : own ? `own goal, counts for ${g.team.name}` : `(${g.team.name})`;
  head.querySelector(".detail").textContent = !own && g.detail && g.detail !== "Normal Goal" ? g.detail : "";
  const badge = head.querySelector(".badge");
  badge.textContent = g.state || ""; badge.className = `badge ${g.state || ""}`;
  head.querySelector(".counts").textContent = counts(g);
  const open = openGoals.has(g.id);
  head.setAttribute("aria-expanded", String(open));
  node.querySelector(".goal-body").hidden = !open;
  if (open) goalBody(node, g);
  return node;
}

function byMinute(a, b) {
  return (a.elapsed ?? 0) - (b.elapsed ?? 0) || (a.extra ?? 0) - (b.extra ?? 0)
    || String(a.first_seen_at).localeCompare(String(b.first_seen_at));
}

function render() {
  document.getElementById("day").textContent = model.day || "";
  const list = document.getElementById("fixtures");
  const fixtures = [...model.fixtures.values()].sort((a, b) => String(a.kickoff).localeCompare(String(b.kickoff)) || a.id - b.id);
  document.getElementById("empty").hidden = !loaded || fixtures.length > 0;
  const wantFx = fixtures.map(fixtureEl);
  for (const node of [...list.children]) if (!wantFx.includes(node)) node.remove();
  wantFx.forEach((node, i) => { if (list.children[i] !== node) list.insertBefore(node, list.children[i] || null); });
  for (const f of fixtures) {
    const goalsList = els.fixtures.get(f.id).querySelector(".goals");
    const goals = [...model.goals.values()].filter((g) => g.fixture_id === f.id).sort(byMinute);
    const want = goals.map((g) => goalEl(g, !els.goals.has(g.id) && loadedOnce));
    for (const node of [...goalsList.children]) if (!want.includes(node)) node.remove();
    want.forEach((node, i) => { if (goalsList.children[i] !== node) goalsList.insertBefore(node, goalsList.children[i] || null); });
  }
  loadedOnce = loaded;
}

// the state comes from the JSON API at once; the stream then only brings changes (events that
// arrive while the snapshot loads are queued and applied after it)
reload();
connect();
