// The triplegain dashboard: plain JavaScript, no build step, no third-party code. It reads the REST API with the
// bearer token the operator typed (kept in this tab only) and follows the live status over server-sent events.
"use strict";

const state = { offset: 0, limit: 25, total: 0, equity: [], filters: new URLSearchParams() };
const $ = (selector) => document.querySelector(selector);

function token() { return sessionStorage.getItem("triplegain-token"); }

function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (token()) h.Authorization = "Bearer " + token();
  return h;
}

async function api(path, options) {
  const response = await fetch(path, Object.assign({}, options || {}, { headers: headers((options || {}).headers) }));
  if (response.status === 401) {
    const given = window.prompt("Bearer token (TRIPLEGAIN_HTTP_TOKEN) for this daemon:");
    if (given) { sessionStorage.setItem("triplegain-token", given.trim()); return api(path, options); }
    throw new Error("unauthorized");
  }
  const body = await response.json();
  if (!response.ok && response.status !== 409) throw new Error(JSON.stringify(body.detail));
  return body;
}

function text(value) { return value === null || value === undefined ? "-" : String(value); }

function cell(row, value, className) {
  const td = document.createElement("td");
  td.textContent = text(value);
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function say(message) { $("#message").textContent = message; }

// ---- live status ---------------------------------------------------------------------------------------------

function showStatus(status) {
  $("#account").textContent = status.account;
  $("#state").textContent = status.state;
  $("#level").textContent = status.level;
  $("#equity").textContent = status.equity.toFixed(2);
  $("#drawdown").textContent = (status.drawdown * 100).toFixed(2) + " %";
  $("#progress").textContent = status.progress;
  const last = status.last_decision;
  $("#last-decision").textContent = last ? `last decision: ${last.symbol} ${last.action} — ${last.reason}` : "no decision yet";
  $("#causes").textContent = [...status.level_causes, ...status.breaker_trips_active].join("; ") || "no active cause or trip";
  const body = $("#positions tbody");
  body.replaceChildren();
  for (const [asset, qty] of Object.entries(status.positions)) {
    const row = document.createElement("tr");
    cell(row, asset);
    cell(row, qty);
    body.appendChild(row);
  }
  const at = status.last_candle_close || new Date().toISOString();
  const points = state.equity;
  if (!points.length || points[points.length - 1][0] < at) points.push([at, status.equity]);
  if (points.length > 5000) points.splice(0, points.length - 5000);
  drawEquity();
}

function drawEquity() {
  const canvas = $("#equity-chart");
  const context = canvas.getContext("2d");
  context.clearRect(0, 0, canvas.width, canvas.height);
  const values = state.equity.map((point) => point[1]);
  if (values.length < 2) return;
  const low = Math.min(...values), high = Math.max(...values), span = high - low || 1;
  context.strokeStyle = "#5b7bd5";
  context.lineWidth = 2;
  context.beginPath();
  values.forEach((value, i) => {
    const x = (i / (values.length - 1)) * (canvas.width - 10) + 5;
    const y = canvas.height - 15 - ((value - low) / span) * (canvas.height - 30);
    if (i === 0) context.moveTo(x, y); else context.lineTo(x, y);
  });
  context.stroke();
  context.fillStyle = "#667";
  context.fillText(high.toFixed(2), 5, 12);
  context.fillText(low.toFixed(2), 5, canvas.height - 3);
}

async function follow() {
  // EventSource cannot send a header: the stream is read through fetch, one "event/data" block at a time.
  for (;;) {
    try {
      const response = await fetch("/api/stream", { headers: headers() });
      if (response.status === 401) { await api("/api/status"); continue; }
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = block.split("\n").filter((line) => line.startsWith("data: ")).map((line) => line.slice(6)).join("\n");
          if (data) showStatus(JSON.parse(data));
        }
      }
    } catch (error) {
      say("live status interrupted: " + error.message);
    }
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

// ---- timeline and decisions ----------------------------------------------------------------------------------

async function loadTimeline() {
  const timeline = await api("/api/timeline");
  const items = timeline.map((e) => [e.ts, `${e.kind}: ${e.what}${e.cause ? " (" + e.cause + ")" : ""}`]).reverse();
  const list = $("#timeline");
  list.replaceChildren();
  for (const [at, what] of items.slice(0, 50)) {
    const item = document.createElement("li");
    item.textContent = `${text(at).replace("T", " ").slice(0, 19)} ${what}`;
    list.appendChild(item);
  }
  if (!items.length) list.textContent = "nothing yet";
}

async function loadDecisions() {
  const query = new URLSearchParams(state.filters);
  query.set("limit", state.limit);
  query.set("offset", state.offset);
  const page = await api("/api/decisions?" + query);
  state.total = page.total;
  const body = $("#decisions tbody");
  body.replaceChildren();
  for (const decision of page.items) {
    const row = document.createElement("tr");
    row.dataset.id = decision.id;
    cell(row, decision.ts.replace("T", " ").slice(0, 19));
    cell(row, decision.symbol);
    cell(row, decision.action, decision.action);
    cell(row, decision.confidence.toFixed(2));
    cell(row, decision.degradation_level);
    cell(row, decision.conflict_rules.join(", "));
    cell(row, decision.llm_calls);
    cell(row, decision.reason);
    row.addEventListener("click", () => { location.hash = "#/decision/" + decision.id; });
    body.appendChild(row);
  }
  $("#page-info").textContent = page.total ? `${page.offset + 1}–${page.offset + page.items.length} of ${page.total}` : "no decision";
  $("#newer").disabled = page.offset === 0;
  $("#older").disabled = page.next_offset === null;
}

function readFilters(form) {
  const filters = new URLSearchParams();
  for (const [name, value] of new FormData(form)) {
    if (!value) continue;
    if (name === "since" || name === "until") filters.set(name, new Date(value).toISOString());
    else if (name === "conflicts_only") filters.set(name, "true");
    else filters.set(name, value);
  }
  return filters;
}

// ---- one decision --------------------------------------------------------------------------------------------

function block(parent, title, value) {
  const heading = document.createElement("h3");
  heading.textContent = title;
  const pre = document.createElement("pre");
  pre.textContent = typeof value === "string" ? value : JSON.stringify(value, null, 2);
  parent.append(heading, pre);
  return pre;
}

async function showDecision(id) {
  const record = await api("/api/decisions/" + encodeURIComponent(id));
  const d = record.decision;
  const root = $("#decision-body");
  root.replaceChildren();
  const title = document.createElement("h2");
  title.textContent = `${d.symbol} ${d.action} at ${d.ts} (confidence ${d.confidence.toFixed(2)})`;
  const reason = document.createElement("p");
  reason.textContent = `${d.reason} — state ${d.coordinator_state}, level ${d.degradation_level}, run ${text(d.run_id)}`;
  root.append(title, reason);
  block(root, "Intent", d.intent);
  for (const view of record.views) block(root, `View: ${view.agent} (${text(view.symbol)}, ${view.ts})`, view.body);
  block(root, "Consensus inputs", d.consensus_inputs);
  block(root, "Consensus arithmetic (terms)", d.consensus_terms);
  block(root, "Consensus result", d.consensus_result);
  block(root, "Conflicts", record.conflicts.length ? record.conflicts : "none");
  if (d.resolution) block(root, "Resolution", d.resolution);
  block(root, "Risk verdicts", d.risk_checks);
  block(root, "Level effects", d.effects);
  const calls = document.createElement("section");
  calls.id = "llm-calls";
  const heading = document.createElement("h3");
  heading.textContent = `LLM calls (${record.llm_calls.length})`;
  calls.appendChild(heading);
  for (const call of record.llm_calls) {
    const box = document.createElement("div");
    box.className = "llm-call";
    const summary = document.createElement("p");
    summary.textContent = `step ${call.step}: ${call.provider} ${call.model} (${call.purpose}), ${call.latency_ms.toFixed(0)} ms, $${call.cost_usd.toFixed(4)}${call.error_class ? ", error " + call.error_class + ": " + text(call.error_message) : ""}`;
    box.appendChild(summary);
    block(box, "System prompt", call.system_prompt).className = "llm-prompt";
    block(box, "User prompt", call.user_prompt).className = "llm-prompt";
    block(box, "Response", text(call.raw_response));
    if (call.parsed !== null) block(box, "Parsed", call.parsed);
    calls.appendChild(box);
  }
  root.appendChild(calls);
  block(root, "Orders and fills", record.orders.length ? record.orders : "none");
}

// ---- commands and routing ------------------------------------------------------------------------------------

async function command(action) {
  const flatten = action === "halt" && window.confirm("Also close every position (flatten)?");
  if (!window.confirm(`${action} the daemon?`)) return;
  const body = { action, flatten, idempotency_key: crypto.randomUUID(), reason: "from the dashboard" };
  const answer = await api("/api/commands", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  say(answer.lines.join(" — "));
  loadTimeline().catch((error) => say(error.message));
}

function route() {
  const match = location.hash.match(/^#\/decision\/(.+)$/);
  $("#overview").hidden = Boolean(match);
  $("#decision-page").hidden = !match;
  if (match) showDecision(decodeURIComponent(match[1])).catch((error) => say(error.message));
  else loadDecisions().catch((error) => say(error.message));
}

function start() {
  for (const button of document.querySelectorAll("button[data-action]")) {
    button.addEventListener("click", () => command(button.dataset.action).catch((error) => say(error.message)));
  }
  $("#filters").addEventListener("submit", (event) => {
    event.preventDefault();
    state.filters = readFilters(event.target);
    state.offset = 0;
    loadDecisions().catch((error) => say(error.message));
  });
  $("#newer").addEventListener("click", () => { state.offset = Math.max(0, state.offset - state.limit); loadDecisions(); });
  $("#older").addEventListener("click", () => { state.offset += state.limit; loadDecisions(); });
  window.addEventListener("hashchange", route);
  api("/api/equity").then((points) => {
    state.equity = points.map((p) => [p.ts, p.equity]).concat(state.equity);
    drawEquity();
  }).catch((error) => say(error.message));
  route();
  loadTimeline().catch((error) => say(error.message));
  setInterval(() => {
    if ($("#decision-page").hidden) loadDecisions().catch((error) => say(error.message));
    loadTimeline().catch((error) => say(error.message));
  }, 5000);
  follow();
}

start();
