// footyd fan page: the day's goals newest first, each with its best clip playing inline (muted).
// Paths: /  (today), /day/YYYY-MM-DD, /goal/{id} (one goal, opened on its clip). Filters: ?team=&league=.
// Cards are keyed by goal id and updated in place, so a playing <video> is never rebuilt.
"use strict";

const params = new URLSearchParams(location.search);
const token = params.get("token");
const path = location.pathname;
const goalMatch = /^\/goal\/([A-Za-z0-9_.:-]{1,100})$/.exec(path);
const dayMatch = /^\/day\/(\d{4}-\d{2}-\d{2})$/.exec(path);
const state = {
  goalId: goalMatch ? decodeURIComponent(goalMatch[1]) : null,
  day: dayMatch ? dayMatch[1] : null,
  team: params.get("team") || "",
  league: params.get("league") || "",
};
const cards = new Map(); // goal id -> <li>
let known = null; // goal ids of the first load: later ones flash as new
let reloadTimer = null;
let loading = false;
let again = false;

function withToken(url) {
  const u = new URL(url, location.href);
  if (token) u.searchParams.set("token", token);
  return u.pathname + u.search;
}

function api(path, query) {
  const url = new URL(path, location.href);
  for (const [k, v] of Object.entries(query || {})) if (v) url.searchParams.set(k, v);
  return withToken(url.toString());
}

function pageUrl(p, query) {
  const url = new URL(p, location.href);
  for (const [k, v] of Object.entries(query || {})) if (v) url.searchParams.set(k, v);
  return withToken(url.toString());
}

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text != null) node.textContent = text;
  return node;
}

function link(href, text, external) {
  const a = el("a", null, text);
  a.href = href;
  if (external) { a.rel = "noopener noreferrer nofollow"; a.target = "_blank"; }
  return a;
}

function showReplica(resp) {  // which footyd replica answered (several may serve this page)
  const who = resp.headers.get("X-Footyd-Replica");
  const node = document.getElementById("replica");
  if (who && node) node.textContent = ` · answered by ${who}`;
}

async function getJSON(url) {
  const resp = await fetch(url, { cache: "no-store" });
  showReplica(resp);
  if (!resp.ok) throw new Error(resp.status === 404 ? "not found" : `HTTP ${resp.status}`);
  return resp.json();
}

// -- playing: the visible cards' clips play (muted); the others pause and stop loading ---------
const watcher = "IntersectionObserver" in window ? new IntersectionObserver((entries) => {
  for (const e of entries) {
    const v = e.target;
    if (e.isIntersecting) { v.preload = "auto"; v.play().catch(() => {}); } else v.pause();
  }
}, { threshold: 0.5 }) : null;

function mainVideo(card, clip) {
  const player = card.querySelector(".player");
  let video = player.querySelector("video.best");
  if (!clip) {
    if (video) { if (watcher) watcher.unobserve(video); video.remove(); }
    return;
  }
  if (!video) {
    video = el("video", "best");
    Object.assign(video, { muted: true, defaultMuted: true, loop: true, playsInline: true,
                           autoplay: true, controls: true, preload: "metadata" });
    video.setAttribute("muted", ""); // the attribute too: autoplay policies read it
    player.prepend(video);
    if (watcher) watcher.observe(video); else video.play().catch(() => {});
  }
  if (video.dataset.clipId !== clip.id) {
    video.dataset.clipId = clip.id;
    if (clip.poster_url) video.poster = api(clip.poster_url); else video.removeAttribute("poster");
    video.src = api(clip.video_url);
  }
}

// -- rendering ---------------------------------------------------------------------------------
function matchLine(g) {
  const line = el("div", "match");
  const f = g.fixture;
  if (!f) return line;
  const home = el("span", null, f.home.name || "Home");
  const away = el("span", null, f.away.name || "Away");
  if (g.team.id != null) (g.team.id === f.home.id ? home : away).classList.add("for");
  const score = g.score.home == null ? "–" : `${g.score.home}–${g.score.away}`;
  line.append(home, el("b", null, score), away);
  return line;
}

function sizeText(c) {
  const parts = [];
  if (c.height) parts.push(`${c.height}p`);
  if (c.duration_s) parts.push(`${c.duration_s.toFixed(0)} s`);
  if (c.source) parts.push(c.source);
  return parts.join(" · ");
}

function othersEl(g) {
  const box = el("div", "others");
  for (const c of g.more) {
    const fig = el("figure");
    fig.dataset.clipId = c.id;
    const v = el("video");
    Object.assign(v, { controls: true, muted: true, playsInline: true, preload: "none" });
    if (c.poster_url) v.poster = api(c.poster_url);
    v.src = api(c.video_url);
    const cap = el("figcaption", null, sizeText(c) + " ");
    if (c.post_url) cap.append(link(c.post_url, "post", true));
    fig.append(v, cap);
    box.append(fig);
  }
  return box;
}

function waitText(g) {
  if (g.disallowed) return "Goal disallowed: no longer in the match events (VAR or a correction).";
  return g.searching ? "Looking for a clip…" : "No clip was found for this goal.";
}

function fill(card, g) {
  card.classList.toggle("disallowed", g.disallowed);
  mainVideo(card, g.best);
  const wait = card.querySelector(".wait");
  wait.hidden = !!g.best;
  wait.textContent = g.best ? "" : waitText(g);
  card.querySelector(".min").textContent = g.minute || "";
  card.querySelector(".scorer").textContent = g.scorer || "Goal";
  const tag = card.querySelector(".tag");
  tag.textContent = g.disallowed ? "disallowed" : g.own_goal ? "own goal" : g.penalty ? "penalty" : "";
  tag.className = `tag${g.disallowed ? " var" : ""}`;
  tag.hidden = !tag.textContent;
  card.querySelector(".match").replaceWith(matchLine(g));
  const meta = [];
  if (g.assist) meta.push(`Assist: ${g.assist}`);
  if (g.own_goal && g.team.name) meta.push(`counts for ${g.team.name}`);
  if (g.fixture && g.fixture.league.name) meta.push(g.fixture.league.name);
  card.querySelector(".meta").textContent = meta.join(" · ");
  const actions = card.querySelector(".actions");
  const share = link(pageUrl(g.url), "Link to this goal");
  share.className = "share";
  const items = [share];
  if (g.best && g.best.post_url) items.push(link(g.best.post_url, `Source post (${g.best.source || "web"})`, true));
  if (g.more.length) {
    const btn = el("button", "more", `${g.more.length} more ${g.more.length === 1 ? "clip" : "clips"}`);
    btn.type = "button";
    btn.setAttribute("aria-expanded", String(!card.querySelector(".others").hidden));
    btn.addEventListener("click", () => {
      const box = card.querySelector(".others");
      box.hidden = !box.hidden;
      btn.setAttribute("aria-expanded", String(!box.hidden));
    });
    items.push(btn);
  }
  actions.replaceChildren(...items);
  const old = card.querySelector(".others");
  const box = othersEl(g);
  box.hidden = old.hidden;
  const same = [...old.querySelectorAll("figure")].map((f) => f.dataset.clipId).join() === g.more.map((c) => c.id).join();
  if (!same) old.replaceWith(box); // keep a playing extra clip when nothing changed
}

function cardEl(g) {
  let card = cards.get(g.id);
  if (!card) {
    card = el("li", "card");
    card.dataset.goalId = g.id;
    const player = el("div", "player");
    player.append(el("div", "wait"));
    const info = el("div", "info");
    const who = el("div", "who");
    who.append(el("span", "min"), el("span", "scorer"), el("span", "tag"));
    const others = el("div", "others");
    others.hidden = !state.goalId;
    info.append(who, el("div", "match"), el("div", "meta"), el("div", "actions"), others);
    card.append(player, info);
    cards.set(g.id, card);
    if (known && !known.has(g.id)) card.classList.add("new");
  }
  fill(card, g);
  return card;
}

function options(select, items, current) {
  const keep = select.options[0];
  const opts = items.map((it) => { const o = el("option", null, it.name); o.value = String(it.id); return o; });
  select.replaceChildren(keep, ...opts);
  select.value = current;
  if (select.value !== current) select.value = "";
}

function dayShift(day, n) {
  const d = new Date(`${day}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
}

function header(day) {
  const filters = { team: state.team, league: state.league };
  document.getElementById("day").textContent = day || "";
  document.getElementById("prev").href = pageUrl(`/day/${dayShift(day, -1)}`, filters);
  document.getElementById("next").href = pageUrl(`/day/${dayShift(day, 1)}`, filters);
  document.getElementById("home").href = pageUrl("/");
  document.getElementById("ops").href = pageUrl("/ops");
  document.getElementById("feed").href = pageUrl("/feed.atom", { team: state.team });
}

function render(data) {
  const list = document.getElementById("goals");
  list.classList.toggle("single", !!state.goalId);
  const goals = data.goals;
  const want = goals.map(cardEl);
  for (const node of [...list.children]) if (!want.includes(node)) {
    const v = node.querySelector("video.best");
    if (v && watcher) watcher.unobserve(v);
    cards.delete(node.dataset.goalId);
    node.remove();
  }
  want.forEach((node, i) => { if (list.children[i] !== node) list.insertBefore(node, list.children[i] || null); });
  if (!known) known = new Set(goals.map((g) => g.id));
  document.getElementById("empty").hidden = goals.length > 0;
}

async function load() {
  if (loading) { again = true; return; }
  loading = true;
  const box = document.getElementById("error");
  try {
    if (state.goalId) {
      const data = await getJSON(api("/api/goals", { goal: state.goalId }));
      const g = data.goals[0];
      const day = g.fixture && g.fixture.kickoff ? g.fixture.kickoff.slice(0, 10) : null;
      header(day);
      document.getElementById("back").hidden = false;
      document.getElementById("back-link").href = pageUrl(day ? `/day/${day}` : "/");
      document.getElementById("filters").hidden = true;
      document.title = `${g.title} · footyd`;
      render(data);
    } else {
      const data = await getJSON(api("/api/goals", { date: state.day, team: state.team, league: state.league }));
      header(data.date);
      options(document.getElementById("team"), data.teams, state.team);
      options(document.getElementById("league"), data.leagues, state.league);
      render(data);
    }
    box.hidden = true;
  } catch (err) {
    box.textContent = err.message === "not found" ? "This goal is not (or no longer) here."
      : `Could not load: ${err.message}`;
    box.hidden = false;
    document.getElementById("empty").hidden = true;
  } finally {
    loading = false;
    if (again) { again = false; load(); }
  }
}

function soon() {
  // a goal and its clips arrive as several stream events: one reload after a short quiet time
  if (reloadTimer) return;
  reloadTimer = setTimeout(() => { reloadTimer = null; load(); }, 300);
}

function relevant(kind, data) {
  if (!state.goalId) return true;
  return kind === "fixture" || data.id === state.goalId || data.goal_id === state.goalId;
}

function connect() {
  const conn = document.getElementById("conn");
  const es = new EventSource(api("/api/stream"));
  es.addEventListener("open", () => { conn.dataset.state = "live"; });
  es.addEventListener("error", () => { conn.dataset.state = "down"; });
  es.addEventListener("reset", soon);
  for (const kind of ["fixture", "goal", "clip"]) {
    es.addEventListener(kind, (msg) => { if (relevant(kind, JSON.parse(msg.data))) soon(); });
  }
}

function onFilter() {
  state.team = document.getElementById("team").value;
  state.league = document.getElementById("league").value;
  const url = new URL(location.href);
  for (const k of ["team", "league"]) { if (state[k]) url.searchParams.set(k, state[k]); else url.searchParams.delete(k); }
  history.replaceState(null, "", url);
  known = null;
  load();
}

document.getElementById("team").addEventListener("change", onFilter);
document.getElementById("league").addEventListener("change", onFilter);
load();
connect();
