// The auditor's page: read a receipt, run every check in the browser, show one row per check
// and the verdict (VALID, INVALID, UNCHECKED). It talks to the JSON-RPC node only.
import { connect, Unreachable } from "./chain.js";
import { CHECKS } from "./checks.js";
import { hex, sha256, utf8 } from "./bytes.js";
import { parseReceipt, Unreadable } from "./receipt.js";

const $ = (sel) => document.querySelector(sel);
const ROWS = ["receipt readable", "chain node and log", ...CHECKS.map(([name]) => name)];

function row(name, state, detail) {
  const li = document.createElement("li");
  li.dataset.check = name;
  li.dataset.ok = state;
  const mark = { true: "PASS", false: "FAIL", skipped: "NOT RUN", unchecked: "COULD NOT CHECK" }[state];
  li.innerHTML = `<span class="mark"></span><strong class="name"></strong><span class="detail"></span>`;
  li.querySelector(".mark").textContent = mark;
  li.querySelector(".name").textContent = name;
  li.querySelector(".detail").textContent = detail;
  $("#checks").append(li);
}

async function receiptText() {
  const file = $("#receipt").files[0];
  if (file) return file.text();
  return $("#receipt-text").value;
}

/** Run every check; returns VALID, INVALID or UNCHECKED after writing one row per check. */
async function run() {
  const done = new Set();
  const rest = (why) => ROWS.filter((n) => !done.has(n)).forEach((n) => row(n, "skipped", why));
  const mark = (name, state, detail) => { done.add(name); row(name, state, detail); };
  let receipt;
  try {
    receipt = parseReceipt(await receiptText());
    mark("receipt readable", "true", `claimx.receipt/1 for digest ${receipt.digest.slice(0, 16)}…, leaf ${receipt.leaf_index}`);
  } catch (err) {
    if (!(err instanceof Unreadable)) throw err;
    mark("receipt readable", "unchecked", err.message);
    rest("the receipt could not be read");
    return "UNCHECKED";
  }
  let chain;
  try {
    chain = await connect($("#rpc-url").value, $("#log-address").value);
    const named = receipt.chain?.evidence_log?.toLowerCase() === chain.log.toLowerCase() ? "" :
      ` (the receipt names ${receipt.chain?.evidence_log}; the address you gave is used)`;
    mark("chain node and log", "true", `chain ${chain.chainId}, EvidenceLog ${chain.log}, registry ${chain.registry}${named}`);
  } catch (err) {
    if (!(err instanceof Unreachable)) throw err;
    mark("chain node and log", "unchecked", err.message);
    rest("the chain could not be read");
    return "UNCHECKED";
  }
  const ctx = { receipt, chain };
  for (const [name, check] of CHECKS) {
    try {
      mark(name, "true", await check(ctx));
    } catch (err) {
      const state = err instanceof Unreachable ? "unchecked" : "false";
      mark(name, state, err.message);
      rest("an earlier check did not pass");
      return state === "false" ? "INVALID" : "UNCHECKED";
    }
  }
  return "VALID";
}

async function verify(event) {
  event?.preventDefault();
  const button = $("#verify");
  button.disabled = true;
  $("#checks").replaceChildren();
  $("#verdict").textContent = "";
  $("#verdict").dataset.verdict = "";
  $("#status").textContent = "Checking…";
  let verdict;
  try {
    verdict = await run();
  } catch (err) {
    row("unexpected error", "unchecked", String(err?.message ?? err));
    verdict = "UNCHECKED";
  }
  $("#verdict").dataset.verdict = verdict;
  $("#verdict").textContent = verdict;
  $("#status").textContent = { VALID: "Every check passed.", INVALID: "A check failed: the receipt is not genuine.",
    UNCHECKED: "The receipt could not be checked." }[verdict];
  button.disabled = false;
}

function wireDrop() {
  const zone = $("#drop");
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    if (e.dataTransfer.files.length) $("#receipt").files = e.dataTransfer.files;
  });
}

/** Show the SHA-256 of this page's code as it runs, next to the one written at build time. */
async function selfHash() {
  const code = document.querySelector("script[type=module]")?.textContent ?? "";
  const now = hex(await sha256(utf8(code)));
  const built = $("#bundle-sha256").textContent.trim();
  $("#running-sha256").textContent = now === built ? "matches" : `differs: ${now}`;
}

const params = new URLSearchParams(location.search);
if (params.get("rpc")) $("#rpc-url").value = params.get("rpc");
if (params.get("log")) $("#log-address").value = params.get("log");
$("#form").addEventListener("submit", verify);
wireDrop();
selfHash();
if (!window.isSecureContext) {
  $("#status").textContent = "This page is not in a secure context (https, localhost or a file): the browser withholds WebCrypto.";
}
