// The chatgptd dashboard: plain JavaScript over the JSON API and its event streams. The API
// token lives in an HttpOnly cookie (POST /session); unsafe calls carry the CSRF header the
// server asks of cookie-authenticated requests.
"use strict";

const $ = (id) => document.getElementById(id);
const TOPICS = "agents.messages,workflows.steps,agents.approvals,tickets.enriched,tickets.actions,chatgptd.deadletter";
const state = { agents: [], fleets: [], run: null, runStream: null, events: null, usage: null, decided: new Set(), later: {} };

// --- small helpers -------------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

const pill = (text) => el("span", { class: `pill ${text}` }, text);
const when = (ms) => (ms ? new Date(ms).toLocaleTimeString() : "");
const ago = (ms) => {
  if (!ms) return "never";
  const s = Math.round((Date.now() - ms) / 1000);
  return s < 60 ? `${s}s ago` : s < 3600 ? `${Math.round(s / 60)} min ago` : `${Math.round(s / 3600)} h ago`;
};

async function api(method, path, body, headers) {
  const init = { method, credentials: "same-origin", headers: { "x-chatgptd-csrf": "1", ...(headers || {}) } };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (_) { json = { error: text }; }
  if (!response.ok) {
    const why = json && (json.detail || json.error) || response.statusText;
    const err = new Error(`${method} ${path}: ${response.status} ${why}`);
    err.status = response.status;
    throw err;
  }
  return json;
}

// Runs `work` once `ms` after the last call: a burst of events makes one request.
function soon(name, work, ms = 500) {
  clearTimeout(state.later[name]);
  state.later[name] = setTimeout(() => work().catch(() => {}), ms);
}

const money = (usd) => (usd === null || usd === undefined ? "no price" : `$${usd.toFixed(6)}`);

function showError(err) { $("error").textContent = err ? String(err.message || err) : ""; }

function activity(text) {
  const list = $("activity");
  list.prepend(el("li", {}, el("time", {}, when(Date.now())), text));
  while (list.children.length > 200) list.lastChild.remove();
}

// --- signing in ----------------------------------------------------------------------------

async function signIn(event) {
  event.preventDefault();
  $("signin-error").textContent = "";
  try {
    const token = $("token").value.trim();
    await api("POST", "/session", undefined, { authorization: `Bearer ${token}` });
    $("token").value = "";
    await start();
  } catch (err) {
    $("signin-error").textContent = err.status === 401
      ? "That token is not one of this server's API tokens."
      : `Could not sign in: ${err.message}`;
  }
}

async function signOut() {
  await fetch("/session", { method: "DELETE", credentials: "same-origin" });
  location.reload();
}

async function start() {
  const who = await api("GET", "/session");
  $("status").textContent = `signed in as ${who.token}`;
  $("signin-panel").hidden = true;
  $("app").hidden = false;
  $("signout").hidden = false;
  await Promise.allSettled([loadFleets(), loadWorkflows(), loadRuns(), loadApprovals(), loadDeadLetters()]);
  follow();
}

// --- fleets, agents and usage ---------------------------------------------------------------

async function loadFleets() {
  const [fleets, agents, usage] = await Promise.all([api("GET", "/fleets"), api("GET", "/agents"), api("GET", "/usage")]);
  state.fleets = fleets.fleets;
  state.agents = agents.agents;
  state.usage = usage;
  const select = $("agent-select");
  const chosen = select.value;
  select.replaceChildren(...state.agents.map((a) => el("option", { value: a.id }, `${a.name} (${a.id})`)));
  if (chosen) select.value = chosen;
  renderFleets();
}

async function loadUsage() {
  state.usage = await api("GET", "/usage");
  renderFleets();
}

const tokens = (usage) => usage.models.reduce((n, m) => n + m.input_tokens + m.output_tokens, 0);

// Today's usage is counted by the server (GET /usage): messages, tokens by model, and the
// cost of each model at the configured price.
function renderFleets() {
  const byId = Object.fromEntries(state.agents.map((a) => [a.id, a]));
  const usage = state.usage || { agents: [], totals: { messages: 0, models: [], cost: null, unpriced_models: [] } };
  const byAgent = Object.fromEntries(usage.agents.map((a) => [a.agent, a]));
  $("fleet-list").replaceChildren(...state.fleets.map((fleet) => el("div", { class: "card fleet", "data-fleet": fleet.id },
    el("h3", {}, fleet.name, " ", el("span", { class: "muted" }, `${fleet.enabled} enabled`)),
    el("p", { class: "muted" }, fleet.description || ""),
    el("table", {}, el("tr", {}, ["agent", "status", "last heartbeat", "messages today", "tokens today", "cost today"].map((h) => el("th", {}, h))),
      fleet.agents.map((id) => {
        const agent = byId[id] || { id, status: "unknown" };
        const used = byAgent[id] || { messages: 0, models: [], cost: null };
        return el("tr", { class: "agent", "data-agent": id },
          el("td", {}, agent.name || id), el("td", {}, pill(agent.status)),
          el("td", {}, ago(agent.last_heartbeat_ms)), el("td", {}, used.messages), el("td", {}, tokens(used)),
          el("td", {}, used.models.length ? money(used.cost) : ""));
      })))));
  const totals = usage.totals;
  $("usage").replaceChildren(totals.models.length
    ? el("div", { class: "card" },
      el("p", {}, el("strong", {}, `Today (${usage.day}, UTC): `), `${totals.messages} messages · cost `,
        el("strong", { class: "cost" }, money(totals.cost)),
        totals.unpriced_models.length ? el("span", { class: "muted" }, ` (no price set for ${totals.unpriced_models.join(", ")})`) : ""),
      el("table", { class: "models" }, el("tr", {}, ["model", "input tokens", "output tokens", "cost"].map((h) => el("th", {}, h))),
        totals.models.map((m) => el("tr", { "data-model": m.model },
          el("td", {}, m.model), el("td", {}, m.input_tokens), el("td", {}, m.output_tokens), el("td", {}, money(m.cost))))))
    : el("p", { class: "muted" }, "No replies yet today."));
}

// --- conversation ---------------------------------------------------------------------------

async function loadConversation() {
  const agent = $("agent-select").value;
  if (!agent) return;
  const history = await api("GET", `/agents/${encodeURIComponent(agent)}/messages`);
  $("messages").replaceChildren(...history.messages.map((m) => el("li", { class: `card message ${m.role}` },
    el("div", { class: "muted" }, `${m.role === "user" ? "to" : "from"} ${agent} · ${when(m.at_ms)}`,
      m.attributes && m.attributes.kind ? ` · ${m.attributes.kind}` : "",
      m.attributes && m.attributes.action ? ` · action ${m.attributes.action}` : ""),
    m.text)));
}

async function send(event) {
  event.preventDefault();
  const agent = $("agent-select").value;
  const body = $("message-input").value;
  $("send-status").textContent = `Sent to ${agent}; waiting for the answer...`;
  try {
    const sent = await api("POST", `/agents/${encodeURIComponent(agent)}/messages`, { body, wait: false });
    $("message-input").value = "";
    const id = sent.message.message_id;
    $("messages").prepend(el("li", { class: "card message user pending" }, el("div", { class: "muted" }, `to ${agent}`), body));
    for (let i = 0; i < 120; i++) {
      const answers = await api("GET", `/messages/${encodeURIComponent(id)}`);
      if (answers.answers && answers.answers.length) {
        for (const answer of answers.answers) {
          $("messages").prepend(el("li", { class: "card message assistant answer" },
            el("div", { class: "muted" }, `from ${answer.from} · ${answer.kind}`), answer.body));
        }
        $("send-status").textContent = `${agent} answered.`;
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    $("send-status").textContent = "No answer yet: it may be waiting for an approval.";
  } catch (err) {
    $("send-status").textContent = err.message;
  }
}

// --- workflows ------------------------------------------------------------------------------

async function loadWorkflows() {
  const workflows = (await api("GET", "/workflows")).workflows;
  state.workflows = Object.fromEntries(workflows.map((w) => [w.name, w]));
  $("workflow-select").replaceChildren(...workflows.map((w) => el("option", { value: w.name }, w.name)));
  exampleInput();
}

function exampleInput() {
  const workflow = state.workflows[$("workflow-select").value];
  if (!workflow) return;
  const input = {};
  for (const [name, field] of Object.entries(workflow.input || {})) {
    if (field.required) input[name] = "";
  }
  $("workflow-input").value = JSON.stringify(input);
}

async function startRun(event) {
  event.preventDefault();
  try {
    const input = JSON.parse($("workflow-input").value || "{}");
    const started = await api("POST", `/workflows/${encodeURIComponent($("workflow-select").value)}/runs`, { input });
    await openRun(started.run_id);
    soon("runs", loadRuns);
  } catch (err) {
    showError(err);
  }
}

// The runs, newest first, from the server (GET /runs): those started here, over the API,
// from the command line or by a ticket alike.
async function loadRuns() {
  const page = await api("GET", "/runs?limit=20");
  $("run-list").replaceChildren(el("span", { class: "muted" }, page.runs.length ? "Recent runs: " : "No runs yet."),
    ...page.runs.map((run) => el("button", { class: "secondary run-link", "data-run": run.id, title: `${run.workflow}, started ${when(run.started_at_ms)}`, onclick: () => openRun(run.id) },
      `${run.workflow} ${run.id.slice(0, 8)} `, pill(run.state), ` ${run.steps_done}/${run.steps_total}`)));
}

async function openRun(id) {
  if (state.runStream) state.runStream.close();
  state.run = id;
  // The run's own stream: each step record or result redraws the graph. Opened first, so no
  // change falls between the first drawing and the stream.
  state.runStream = new EventSource(`/runs/${encodeURIComponent(id)}/events?from=1h`);
  for (const name of ["ready", "WorkflowStep", "MemoryRecord", "record"]) {
    state.runStream.addEventListener(name, () => refreshRun().catch(quietUntilKnown));
  }
  await refreshRun().catch(quietUntilKnown);
}

// A run just started may not be readable yet: its first step record makes it so.
function quietUntilKnown(err) { if (err.status !== 404) showError(err); }

async function refreshRun() {
  const id = state.run;
  if (!id) return;
  const run = await api("GET", `/runs/${encodeURIComponent(id)}`);
  if (state.run !== id) return;
  $("run-title").textContent = `Run ${id} · ${run.workflow || ""}`;
  $("run-status").replaceChildren(pill(run.status), ` started ${when(run.started_at_ms)} by ${run.started_by || "?"}`,
    run.finished_at_ms ? ` · finished ${when(run.finished_at_ms)}` : "", run.error ? ` · ${run.error}` : "");
  $("resume-run").hidden = !["failed", "waiting"].includes(run.status);
  $("run-graph").replaceChildren(graph(run.steps || []));
}

// Steps laid out in layers: a step sits one layer right of its latest dependency.
function graph(steps) {
  const depth = {};
  const byId = Object.fromEntries(steps.map((s) => [s.id, s]));
  const layerOf = (step, seen = new Set()) => {
    if (depth[step.id] !== undefined) return depth[step.id];
    if (seen.has(step.id)) return 0;
    seen.add(step.id);
    const deps = (step.depends_on || []).map((d) => byId[d]).filter(Boolean);
    return (depth[step.id] = deps.length ? 1 + Math.max(...deps.map((d) => layerOf(d, seen))) : 0);
  };
  const layers = [];
  for (const step of steps) (layers[layerOf(step)] ||= []).push(step);
  return el("div", { class: "graph" }, layers.map((layer) => el("div", { class: "layer" }, layer.map((step) => {
    const took = step.started_at_ms && step.finished_at_ms ? ` · ${((step.finished_at_ms - step.started_at_ms) / 1000).toFixed(1)} s` : "";
    const node = el("div", { class: "step", "data-step": step.id, "data-state": step.status },
      el("strong", {}, step.id), " ", pill(step.status),
      el("div", {}, step.agent), el("div", { class: "muted" }, `attempts ${step.attempts || 0}${took}`),
      step.depends_on && step.depends_on.length ? el("div", { class: "deps" }, `after ${step.depends_on.join(", ")}`) : null,
      step.error ? el("div", { class: "error" }, step.error) : null);
    if (step.status === "waiting_approval") {
      node.append(el("button", { class: "approve-step", onclick: () => api("POST", `/runs/${encodeURIComponent(state.run)}/steps/${encodeURIComponent(step.id)}/approve`).then(refreshRun).catch(showError) }, "Approve step"));
    }
    return node;
  }))));
}

// --- approvals ------------------------------------------------------------------------------

async function loadApprovals() {
  const list = (await api("GET", "/approvals")).approvals.filter((a) => !state.decided.has(a.id));
  $("approval-count").textContent = list.length ? String(list.length) : "";
  // A card already shown is kept, with the reason being typed into it.
  const shown = (a) => document.querySelector(`.approval[data-approval="${CSS.escape(a.id)}"]`) || approvalCard(a);
  $("approval-list").replaceChildren(...(list.length ? list.map(shown) : [el("p", { class: "muted" }, "Nothing waits for a decision.")]));
}

// Arguments arrive as a JSON text: shown indented.
function pretty(args) {
  try { return JSON.stringify(typeof args === "string" ? JSON.parse(args) : args, null, 2); } catch (_) { return String(args); }
}

function approvalCard(a) {
  const reason = el("input", { class: "reason", placeholder: "reason (told to the agent)" });
  const decide = (how) => api("POST", `/approvals/${encodeURIComponent(a.id)}/${how}`, { reason: reason.value })
    .then(() => {
      // The list may not know yet: the decision is taken, so the card goes now.
      state.decided.add(a.id);
      activity(`You ${how === "approve" ? "approved" : "denied"} ${a.action} of ${a.agent}`);
      return loadApprovals();
    })
    .catch(showError);
  return el("div", { class: "card approval", "data-approval": a.id },
    el("h3", {}, `${a.agent} wants to ${a.action}`),
    el("p", {}, "Risk score ", el("strong", {}, a.risk_score), (a.reasons || []).length ? ` · ${a.reasons.join("; ")}` : ""),
    el("pre", {}, pretty(a.arguments)),
    el("p", { class: "muted" }, `asked ${when(a.requested_at_ms)} · expires ${when(a.expires_at_ms)} · conversation ${a.conversation_id}`),
    el("form", { onsubmit: (e) => e.preventDefault() }, reason,
      el("button", { class: "approve", type: "button", onclick: () => decide("approve") }, "Approve"),
      el("button", { class: "deny secondary", type: "button", onclick: () => decide("deny") }, "Deny")));
}

// --- the live feed: tickets, dead letters, activity ------------------------------------------

function follow() {
  if (state.events) state.events.close();
  const midnight = new Date(); midnight.setHours(0, 0, 0, 0);
  const since = Math.max(60, Math.ceil((Date.now() - midnight) / 1000));
  const events = new EventSource(`/events?topics=${TOPICS}&from=${since}s`);
  state.events = events;
  events.addEventListener("ready", () => activity("Following the event streams."));
  events.addEventListener("AgentMessage", (e) => {
    const m = JSON.parse(e.data).value;
    if (m.kind === "reply") soon("usage", loadUsage, 1000);
    activity(`${m.from} → ${m.to}: ${m.kind} "${String(m.body).slice(0, 80)}"`);
  });
  events.addEventListener("WorkflowStep", (e) => {
    const s = JSON.parse(e.data).value;
    soon("runs", loadRuns);
    activity(`Run ${s.run_id.slice(0, 8)} (${s.workflow}): step ${s.step_id} ${s.kind}, attempt ${s.attempt}`);
  });
  events.addEventListener("ApprovalRequest", (e) => {
    const a = JSON.parse(e.data).value;
    activity(`Approval ${a.state}: ${a.agent} ${a.action} (risk ${a.risk_score})`);
    loadApprovals().catch(showError);
  });
  events.addEventListener("EnrichedTicket", (e) => {
    const t = JSON.parse(e.data).value;
    $("ticket-list").prepend(el("div", { class: "card ticket", "data-ticket": t.ticket_key },
      el("h3", {}, `${t.ticket_key} · ${t.title}`),
      el("p", {}, pill(t.category), " ", pill(t.suggested_priority), ` ${t.sentiment || ""} · confidence ${t.confidence}`),
      el("p", {}, t.summary), el("p", { class: "muted" }, `from ${t.source} · ${when(t.enriched_at_ms)}`),
      el("ul", { class: "writeback" })));
    activity(`Ticket ${t.ticket_key} enriched: ${t.category}, ${t.suggested_priority}`);
  });
  events.addEventListener("TicketAction", (e) => {
    const a = JSON.parse(e.data).value;
    const card = document.querySelector(`.ticket[data-ticket="${CSS.escape(a.ticket || "")}"] .writeback`);
    const line = `${a.agent} ${a.kind}: ${a.body || a.status || a.priority || ""}`;
    if (card) card.append(el("li", {}, line));
    activity(`Written back to ${a.ticket || a.source}: ${line.slice(0, 80)}`);
  });
  events.addEventListener("DeadLetter", (e) => {
    const d = JSON.parse(e.data).value;
    soon("deadletters", loadDeadLetters);
    activity(`Dead letter from ${d.source_topic}: ${d.error_message}`);
  });
  events.onerror = () => activity("Event stream interrupted; the browser reconnects where it stopped.");
}

// The newest dead letters, read by the server (GET /dead-letters).
async function loadDeadLetters() {
  const found = await api("GET", "/dead-letters?limit=50");
  $("deadletter-list").replaceChildren(...(found.dead_letters.length
    ? found.dead_letters.map((d) => el("div", { class: "card deadletter" },
      el("h3", {}, `${d.source_topic}/${d.source_partition}@${d.source_offset}`, d.key ? ` · key ${d.key}` : ""),
      el("p", {}, pill(d.error_class), " ", d.error_message),
      el("p", { class: "muted" }, `worker ${d.worker} · ${d.attempts} attempts · ${when(d.failed_at_ms)} · replayed ${d.replay_count}×`)))
    : [el("p", { class: "muted" }, "No dead letters.")]));
}

async function replay(event) {
  event.preventDefault();
  const dryRun = event.submitter ? event.submitter.value === "1" : true;
  const topic = $("replay-topic").value.trim();
  $("replay-result").textContent = dryRun ? "Reading the dead letters…" : "Replaying…";
  try {
    const r = await api("POST", "/dead-letters/replay", { dry_run: dryRun, source_topic: topic || null });
    const verb = r.dry_run ? "would be replayed" : "replayed";
    $("replay-result").textContent = `${r.matched.length} ${verb}, ${r.filtered_out} filtered out, ` +
      `${r.too_many_replays} replayed too often, ${r.left_in_place + r.without_value} left in place.`;
    if (!r.dry_run) activity(`Replayed ${r.matched.length} dead letter(s)`);
    soon("deadletters", loadDeadLetters);
    showError(null);
  } catch (err) {
    $("replay-result").textContent = "";
    showError(err);
  }
}

// --- search ---------------------------------------------------------------------------------

async function search(event) {
  event.preventDefault();
  try {
    const found = await api("GET", `/search?q=${encodeURIComponent($("search-input").value)}`);
    $("search-results").replaceChildren(...found.hits.map((hit) => {
      // The snippet's only markup is <b>: escape everything, then let <b> through.
      const snippet = el("div", { class: "snippet" });
      snippet.innerHTML = (hit.snippet || hit.text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
        .replace(/&lt;(\/?)b&gt;/g, "<$1b>");
      return el("li", { class: "card hit" }, el("div", { class: "muted" }, `${hit.owner} · ${hit.kind} · ${when(hit.created_at_ms)}`), snippet);
    }));
    if (!found.hits.length) $("search-results").append(el("li", { class: "muted" }, "Nothing found."));
  } catch (err) {
    showError(err);
  }
}

// --- wiring ---------------------------------------------------------------------------------

function showTab(name) {
  for (const button of document.querySelectorAll("#tabs button")) button.classList.toggle("active", button.dataset.tab === name);
  for (const section of document.querySelectorAll(".tab")) section.hidden = section.id !== name;
  showError(null);
  if (name === "conversation") loadConversation().catch(showError);
  if (name === "approvals") loadApprovals().catch(showError);
  if (name === "fleets") loadFleets().catch(showError);
  if (name === "workflows") loadRuns().catch(showError);
  if (name === "deadletters") loadDeadLetters().catch(showError);
}

document.addEventListener("DOMContentLoaded", () => {
  $("signin").addEventListener("submit", signIn);
  $("signout").addEventListener("click", signOut);
  $("send").addEventListener("submit", send);
  $("start").addEventListener("submit", startRun);
  $("search-form").addEventListener("submit", search);
  $("replay").addEventListener("submit", replay);
  $("agent-select").addEventListener("change", () => loadConversation().catch(showError));
  $("workflow-select").addEventListener("change", exampleInput);
  $("resume-run").addEventListener("click", () => api("POST", `/runs/${encodeURIComponent(state.run)}/resume`).then(refreshRun).catch(showError));
  for (const button of document.querySelectorAll("#tabs button")) button.addEventListener("click", () => showTab(button.dataset.tab));
  // Fleets' heartbeats change: refresh them while the page is open.
  setInterval(() => { if (!$("app").hidden) loadFleets().catch(() => {}); }, 15000);
  start().catch(() => { $("signin-panel").hidden = false; });
});
