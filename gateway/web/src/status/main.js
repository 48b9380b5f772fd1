// The operator's view: /v1/status with an operator credential, refreshed every 5 s. The
// credential stays in this tab's memory only.
const $ = (sel) => document.querySelector(sel);
let credential = "";
let timer = null;

const rows = (s) => {
  const c = s.checks ?? {};
  const a = c.anchor ?? {}, push = c.push ?? {}, chain = c.chain ?? {}, head = s.latest_anchor;
  return [
    ["readiness", s.status === "ready" ? "ready" : `not ready: ${(s.failing ?? []).join(", ")}`],
    ["database", c.database?.ok ? "answers" : `down (${c.database?.error ?? "?"})`],
    ["chain", chain.ok ? `answers (chain ${chain.chain_id}, breaker ${chain.breaker})` : `down (${chain.error ?? "?"}, breaker ${chain.breaker ?? "?"})`],
    ["anchor worker", c.worker?.lease_holder ? `${c.worker.lease_holder}${c.worker.this_process ? " (this gateway)" : ""}` : "no lease holder"],
    ["log size", a.log_size ?? "?"],
    ["anchored size", a.anchored_size ?? "?"],
    ["anchor lag", a.lag === undefined ? "?" : `${a.lag} records${a.oldest_unanchored_age_seconds != null ? `, oldest waiting ${a.oldest_unanchored_age_seconds} s` : ""}`],
    ["latest anchored head", !head ? "none yet" : head.error ? `unreadable (${head.error})` : `#${head.head_index}: size ${head.size}, root ${head.root}`],
    ["its transaction", head && !head.error ? `${head.tx_hash} (block ${head.block_number}, time ${head.block_time})` : "-"],
    ["webhook backlog", `${push.pending ?? "?"} pending`],
    ["parked deliveries", `${push.parked ?? "?"} parked`],
  ];
};

function render(s) {
  const dl = $("#status-list");
  dl.replaceChildren();
  for (const [name, value] of rows(s)) {
    const dt = document.createElement("dt");
    dt.textContent = name;
    const dd = document.createElement("dd");
    dd.textContent = String(value);
    dd.dataset.field = name;
    dl.append(dt, dd);
  }
  $("#ready").textContent = s.status === "ready" ? "READY" : "NOT READY";
  $("#ready").dataset.ready = String(s.status === "ready");
  $("#updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
}

async function load() {
  let res;
  try {
    res = await fetch("/v1/status", { headers: { Authorization: `Bearer ${credential}` }, cache: "no-store" });
  } catch (err) {
    $("#error").textContent = `the gateway did not answer (${err.message})`;
    return;
  }
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    $("#error").textContent = `${res.status}: ${body?.error?.message ?? "refused"}`;
    $("#error").dataset.code = body?.error?.code ?? "";
    clearInterval(timer);
    return;
  }
  $("#error").textContent = "";
  render(body);
}

$("#form").addEventListener("submit", (e) => {
  e.preventDefault();
  credential = $("#credential").value.trim();
  $("#credential").value = "";
  clearInterval(timer);
  load();
  timer = setInterval(load, 5000);
});
