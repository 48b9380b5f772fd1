// The claimant's board: reads the progress a share link opens (token from the URL fragment,
// sent only in an Authorization header), live over server-sent events, and announces new steps.
import { duration, TEXT } from "./i18n.js";

const $ = (sel) => document.querySelector(sel);
const token = new URLSearchParams(location.hash.slice(1)).get("t");
const prefs = loadPrefs();
let board = null;
let seen = -1;
let refused = null;

function loadPrefs() {
  const fallback = { lang: (navigator.language || "").toLowerCase().startsWith("zh") ? "zh" : "en", larger: false, contrast: false };
  try {
    return { ...fallback, ...JSON.parse(localStorage.getItem("claimx.progress") || "{}") };
  } catch {
    return fallback;
  }
}

function savePrefs() {
  try { localStorage.setItem("claimx.progress", JSON.stringify(prefs)); } catch { /* private mode */ }
}

const t = () => TEXT[prefs.lang];
const when = (iso) => new Intl.DateTimeFormat(prefs.lang === "zh" ? "zh-CN" : "en-GB",
  { dateStyle: "medium", timeStyle: "short" }).format(new Date(iso));

function stepText(s) {
  const v = t()[s.step];
  return typeof v === "function" ? v(s) : v;
}

function stepItem(s) {
  const li = document.createElement("li");
  li.dataset.step = s.step;
  const time = document.createElement("time");
  time.dateTime = s.at;
  time.textContent = when(s.at);
  const what = document.createElement("p");
  what.className = "what";
  what.textContent = stepText(s);
  li.append(time, what);
  if (s.step === "requested") {
    const extra = document.createElement("p");
    extra.className = "extra";
    const parts = [t().status[s.status] ?? s.status];
    if (["open", "sent"].includes(s.status) && s.remaining_seconds > 0) parts.push(t().due(duration(s.remaining_seconds, prefs.lang)));
    if (s.urgent) parts.push(t().urgent);
    extra.textContent = parts.join(" · ");
    li.append(extra);
  }
  return li;
}

function render() {
  document.documentElement.lang = prefs.lang === "zh" ? "zh-Hans" : "en";
  document.documentElement.classList.toggle("larger", prefs.larger);
  document.documentElement.classList.toggle("contrast", prefs.contrast);
  document.title = t().title;
  for (const el of document.querySelectorAll("[data-t]")) el.textContent = t()[el.dataset.t];
  $("#lang").textContent = t().lang;
  $("#lang").lang = prefs.lang === "zh" ? "en" : "zh-Hans";
  $("#larger").setAttribute("aria-pressed", String(prefs.larger));
  $("#contrast").setAttribute("aria-pressed", String(prefs.contrast));
  if (refused || !token) {
    $("#error").textContent = !token ? t().noToken : (t().refused[refused] ?? t().refused.share_unknown);
    $("#error").dataset.code = refused ?? "no_token";
    $("#board").hidden = true;
    return;
  }
  if (!board) {
    $("#now").textContent = t().loading;
    return;
  }
  const last = board.steps[board.steps.length - 1];
  $("#now").textContent = board.status === "closed" ? t().closed : board.status === "ready" ? t().ready : stepText(last);
  $("#now").dataset.step = board.status;
  $("#timeline").replaceChildren(...[...board.steps].reverse().map(stepItem));
  $("#typical").textContent = board.typical
    ? t().typicalText(duration(board.typical.median_seconds, prefs.lang), board.typical.claims) : t().typicalNone;
}

function show(next) {
  const fresh = seen >= 0 ? next.steps.slice(seen) : [];
  board = next;
  seen = next.steps.length;
  $("#error").textContent = "";
  render();
  if (fresh.length) $("#live").textContent = t().updated + fresh.map(stepText).join("; ");
}

function refuse(code) {
  refused = code;
  board = null;
  render();
}

/** Read the board as server-sent events over fetch (EventSource cannot send Authorization). */
async function follow() {
  const res = await fetch("/v1/progress", { headers: { Authorization: `Share ${token}`, Accept: "text/event-stream" },
    cache: "no-store", referrerPolicy: "no-referrer" });
  if (res.status === 401) {
    const body = await res.json().catch(() => ({}));
    return refuse(body?.error?.code ?? "share_unknown");
  }
  if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error("stream ended");
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const type = /^event: (.*)$/m.exec(frame)?.[1];
      const data = frame.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
      if (type === "progress") show(JSON.parse(data));
      if (type === "refused") return refuse(JSON.parse(data)?.error?.code ?? "share_unknown");
    }
  }
}

async function run() {
  while (token && !refused) {
    try {
      await follow();
    } catch {
      if (board) $("#live").textContent = t().offline;
    }
    if (!refused) await new Promise((r) => setTimeout(r, 3000));
  }
}

$("#lang").addEventListener("click", () => { prefs.lang = prefs.lang === "zh" ? "en" : "zh"; savePrefs(); render(); });
$("#larger").addEventListener("click", () => { prefs.larger = !prefs.larger; savePrefs(); render(); });
$("#contrast").addEventListener("click", () => { prefs.contrast = !prefs.contrast; savePrefs(); render(); });
render();
run();
