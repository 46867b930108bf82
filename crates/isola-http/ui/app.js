// Isola's web UI: run scripts and watch them, decide approvals, browse the journal, see usage.
// Everything shown comes from the API under /v1 with the token the user signs in with (kept in
// this tab's sessionStorage, sent as `Authorization`). What the API answers is untrusted (scripts,
// logs and tool results): it is put in the page with textContent only, never as HTML.

const TOKEN_KEY = "isola.token";
const main = document.getElementById("main");

// ---- the API ----------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, kind, message) {
    super(message);
    this.status = status;
    this.kind = kind;
  }
}

function headers(extra = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { ...extra, Authorization: `Bearer ${token}` } : extra;
}

async function api(path, { method = "GET", body } = {}) {
  const init = { method, headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const res = await fetch(path, init);
  const text = await res.text();
  let value = null;
  try { value = text ? JSON.parse(text) : null; } catch { value = text; }
  if (!res.ok) {
    const err = value && value.error ? value.error : { kind: "http", message: `${res.status} ${text}` };
    if (res.status === 401) signOut("The server wants a token (or this one is no longer valid).");
    throw new ApiError(res.status, err.kind, err.message);
  }
  return value;
}

// Server-sent events of `path`, read with fetch (EventSource cannot send the token): yields
// {kind, data} until the stream ends or `signal` aborts.
async function* events(path, signal, lastEventId) {
  const extra = { Accept: "text/event-stream" };
  if (lastEventId) extra["Last-Event-ID"] = lastEventId;
  const res = await fetch(path, { headers: headers(extra), signal });
  if (!res.ok) {
    let err = { kind: "http", message: String(res.status) };
    try { err = (await res.json()).error; } catch { /* not JSON */ }
    throw new ApiError(res.status, err.kind, err.message);
  }
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let kind = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) kind = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (data) yield { kind, data: JSON.parse(data) };
    }
  }
}

// ---- building the page ------------------------------------------------------------------

// An element: `h("a", {href: "#/"}, "text", child)`. Strings become text nodes, never HTML.
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function show(...children) {
  main.replaceChildren(...children);
}

function pill(status) {
  return h("span", { class: `pill ${status}` }, status);
}

function pretty(value) {
  return h("pre", { class: "json" }, typeof value === "string" ? value : JSON.stringify(value, null, 2));
}

function when(ms) {
  return ms ? new Date(ms).toLocaleString() : "";
}

function duration(ms) {
  if (ms === null || ms === undefined) return "";
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function errorBox(err) {
  return h("div", { class: "error-box", role: "alert" }, err instanceof ApiError ? `${err.kind}: ${err.message}` : String(err));
}

// TypeScript as lines of highlighted tokens, `marked` (1-based) highlighted.
const KEYWORDS = new Set("await async break case catch class const continue default delete do else export extends false finally for from function if import in instanceof let new null of return switch this throw true try typeof undefined var void while yield interface type as".split(" "));
function source(code, marked) {
  const list = h("ol", {});
  code.split("\n").forEach((line, i) => {
    const li = h("li", { class: i + 1 === marked ? "marked" : undefined, "aria-current": i + 1 === marked ? "true" : undefined });
    highlight(line, li);
    list.append(li);
  });
  return h("div", { class: "source", role: "region", "aria-label": "script" }, list);
}

function highlight(line, into) {
  const re = /(\/\/.*$)|("(?:[^"\\]|\\.)*"?|'(?:[^'\\]|\\.)*'?|`(?:[^`\\]|\\.)*`?)|(\b\d[\d_.]*\b)|([A-Za-z_$][\w$]*)(?=\s*\()|([A-Za-z_$][\w$]*)/g;
  let last = 0;
  for (const m of line.matchAll(re)) {
    if (m.index > last) into.append(line.slice(last, m.index));
    const [text, comment, string, number, call, word] = m;
    const cls = comment ? "tok-com" : string ? "tok-str" : number ? "tok-num" : call ? (KEYWORDS.has(call) ? "tok-kw" : "tok-fn") : KEYWORDS.has(word) ? "tok-kw" : null;
    into.append(cls ? h("span", { class: cls }, text) : text);
    last = m.index + text.length;
  }
  if (last < line.length) into.append(line.slice(last));
  if (!line) into.append(" ");
}

// ---- sign in ------------------------------------------------------------------------------

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  stopWatching();
  document.getElementById("nav").hidden = true;
  document.getElementById("who").replaceChildren();
  loginPage(message);
}

function loginPage(message) {
  const input = h("input", { id: "token", type: "password", autocomplete: "current-password", required: true, size: 40 });
  const problem = h("p", { class: "muted", role: "status" }, message || "");
  const form = h("form", { class: "panel login", "aria-labelledby": "login-title", onsubmit: async (e) => {
    e.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    try {
      await api("/v1/health");
      start();
    } catch (err) {
      sessionStorage.removeItem(TOKEN_KEY);
      problem.textContent = err instanceof ApiError && err.status === 401 ? "That token is not one of this server's." : String(err.message || err);
      loginForm(form);
    }
  } },
    h("h1", { id: "login-title" }, "Sign in to Isola"),
    h("label", { for: "token" }, "API token"),
    input,
    h("p", { class: "hint" }, "A token from the server's configuration (isola.tokens, or --token). It stays in this tab only."),
    h("div", { class: "actions" }, h("button", { class: "primary", type: "submit" }, "Sign in")),
    problem);
  loginForm(form);
  input.focus();
}

function loginForm(form) {
  if (!main.contains(form)) show(form);
}

// ---- the pages ----------------------------------------------------------------------------

const EXAMPLE = `// Each function of the API is a tool of a configured MCP server.
const names = ["a", "b", "c"];
const echoes = await Promise.all(names.map((n) => everything.echo({ message: n })));
console.log("echoed", echoes.length);
return echoes;`;

function runPage() {
  const code = h("textarea", { id: "code", class: "code", spellcheck: "false", "aria-describedby": "code-hint" });
  code.value = sessionStorage.getItem("isola.draft") || EXAMPLE;
  code.addEventListener("input", () => sessionStorage.setItem("isola.draft", code.value));
  const session = h("input", { id: "session", placeholder: "a new one", pattern: "[A-Za-z0-9._-]{1,128}", size: 24 });
  const problem = h("div", {});
  const planOnly = h("input", { id: "plan-only", type: "checkbox" });
  const button = h("button", { class: "primary", type: "submit", id: "run" }, "Run");
  const form = h("form", { class: "panel", "aria-label": "Run a script", onsubmit: async (e) => {
    e.preventDefault();
    button.disabled = true;
    problem.replaceChildren();
    try {
      if (planOnly.checked) {
        const body = { code: code.value };
        if (session.value.trim()) body.session = session.value.trim();
        const made = await api("/v1/plans", { method: "POST", body });
        location.hash = made.plan ? `#/plans/${encodeURIComponent(made.plan.plan)}` : `#/executions/${encodeURIComponent(made.execution)}`;
        return;
      }
      const body = { code: code.value, wait: false };
      if (session.value.trim()) body.session = session.value.trim();
      const started = await api("/v1/executions", { method: "POST", body });
      location.hash = `#/executions/${encodeURIComponent(started.execution)}`;
    } catch (err) {
      problem.replaceChildren(errorBox(err));
      button.disabled = false;
    }
  } },
    h("label", { for: "code" }, "Script (TypeScript)"),
    code,
    h("p", { class: "hint", id: "code-hint" }, "Ctrl+Enter runs it. Calls pass the policy; a call that needs approval waits in Approvals."),
    h("div", { class: "row" },
      h("div", {}, h("label", { for: "session" }, "Session (its state is kept)"), session),
      h("div", { class: "check" }, planOnly, h("label", { for: "plan-only" }, "Plan only: make the reads, change nothing until the plan is approved and applied")),
      button),
    problem);
  code.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); form.requestSubmit(); }
  });
  show(h("h1", {}, "Run a script"), form);
  code.focus();
}

// One execution: the code (the failing line marked), console lines as they come, the timeline
// of its calls, its result. Live from this node's event stream when it has it, else from the
// journal.
async function executionPage(id, signal) {
  const view = new ExecutionView(id);
  show(view.root);
  try {
    for await (const { kind, data } of events(`/v1/executions/${encodeURIComponent(id)}/events`, signal)) {
      view.event(kind, data);
    }
    view.ended();
  } catch (err) {
    if (signal.aborted) return;
    if (!(err instanceof ApiError && err.status === 404)) return view.problem(err);
    try {
      view.fromJournal(await api(`/v1/executions/${encodeURIComponent(id)}`));
    } catch (e) {
      view.problem(e);
    }
  }
  if (!signal.aborted) view.chain();
}

class ExecutionView {
  constructor(id) {
    this.id = id;
    this.code = "";
    this.calls = new Map();
    this.status = h("span", {}, pill("queued"));
    this.meta = h("span", { class: "muted" });
    this.codeBox = h("div", {});
    this.console = h("div", { class: "console", role: "log", "aria-live": "polite", "aria-label": "console output", id: "console" });
    this.timeline = h("div", { class: "timeline", id: "timeline" });
    this.result = h("div", { id: "result" });
    this.chainBox = h("span", { class: "muted" });
    this.root = h("div", {},
      h("h1", {}, "Execution ", h("code", {}, id)),
      h("div", { class: "status-line" }, this.status, this.meta, this.chainBox),
      h("div", { class: "grid" },
        h("section", { class: "panel", "aria-label": "Script" }, h("h2", {}, "Script"), this.codeBox),
        h("section", { class: "panel", "aria-label": "Console" }, h("h2", {}, "Console"), this.console)),
      h("section", { class: "panel", "aria-label": "Tool calls" }, h("h2", {}, "Tool calls"), this.timeline),
      h("section", { class: "panel", "aria-label": "Result" }, h("h2", {}, "Result"), this.result));
  }

  setStatus(status) {
    this.status.replaceChildren(pill(status));
    this.status.dataset.status = status;
  }

  event(kind, data) {
    switch (kind) {
      case "queued":
        this.code = data.code || this.code;
        this.meta.textContent = data.session ? `session ${data.session}` : "";
        this.codeBox.replaceChildren(source(this.code));
        break;
      case "started": this.setStatus("running"); break;
      case "log": this.log(data.level, data.text, data.atMs); break;
      case "call": this.call(data.id).start = data; this.drawCalls(); break;
      case "held": this.call(data.id).held = data.reason; this.setStatus("held"); this.drawCalls(); break;
      case "decided": this.call(data.id).decided = data.outcome; this.setStatus("running"); this.drawCalls(); break;
      case "denied": this.call(data.id).denied = data.message; this.drawCalls(); break;
      case "callEnded": this.call(data.id).end = data; this.drawCalls(); break;
      case "answer": this.call(data.id).answer = data.result; this.drawCalls(); break;
      case "finished": this.finish(data.record); break;
      case "lagged": this.log("warn", `[${data.message}: ${data.dropped} events]`); break;
      default: break;
    }
  }

  call(id) {
    if (!this.calls.has(id)) this.calls.set(id, { id });
    return this.calls.get(id);
  }

  log(level, text, atMs) {
    const line = h("div", { class: level === "log" || level === "info" ? undefined : level },
      atMs !== undefined ? h("span", { class: "at" }, `${Math.round(atMs)}ms`) : null, text);
    this.console.append(line);
    this.console.scrollTop = this.console.scrollHeight;
  }

  drawCalls() {
    const calls = [...this.calls.values()].filter((c) => c.start || c.end);
    if (!calls.length) return this.timeline.replaceChildren(h("p", { class: "muted" }, "No calls yet."));
    const now = Math.max(1, ...calls.map((c) => c.end ? c.end.startedMs + c.end.durationMs : 0), this.totalMs || 0);
    const rows = [];
    for (const c of calls) {
      const name = (c.start || c.end).function;
      const started = c.end ? c.end.startedMs : now;
      const length = c.end ? c.end.durationMs : 0;
      const state = c.end ? (c.end.ok ? "ok" : "failed") : c.held ? "held" : "running";
      const bar = h("div", { class: `bar ${state}`, style: undefined, title: `${name}: ${c.end ? duration(length) : state}` });
      bar.style.left = `${(100 * started / now).toFixed(2)}%`;
      bar.style.width = `${Math.max(0.5, 100 * length / now).toFixed(2)}%`;
      rows.push(h("div", { class: "name", title: name }, name), h("div", { class: "track" }, bar));
      rows.push(h("details", {},
        h("summary", {}, `${state}${c.end ? ` in ${duration(length)}` : ""}${c.held ? ` · held: ${c.held}` : ""}${c.denied ? ` · denied: ${c.denied}` : ""}${c.end && c.end.error ? ` · ${c.end.error}` : ""}`),
        h("div", { class: "kv" }, h("dt", {}, "arguments"), h("dd", {}, pretty(c.start ? c.start.arguments : "(not recorded)")),
          h("dt", {}, "answer"), h("dd", {}, pretty(answerOf(c.answer))))));
    }
    this.timeline.replaceChildren(...rows);
  }

  finish(record) {
    if (!record) return;
    this.totalMs = record.timings ? record.timings.totalMs : undefined;
    const suspended = record.error && record.error.kind === "suspended";
    this.setStatus(record.ok ? "ok" : suspended ? "suspended" : "failed");
    this.meta.textContent = `${this.meta.textContent ? this.meta.textContent + " · " : ""}${duration(this.totalMs)} · ${plural(record.calls ? record.calls.length : 0, "call")}`;
    if (record.ok) {
      this.result.replaceChildren(pretty(record.result));
    } else if (record.error) {
      const e = record.error;
      const where = e.position ? ` (line ${e.position.line}, column ${e.position.column})` : "";
      this.result.replaceChildren(h("div", { class: "error-box", role: "alert" },
        h("strong", {}, `${e.name}: ${e.message}`), where, e.hint ? h("div", {}, `hint: ${e.hint}`) : null,
        e.codeFrame ? h("pre", {}, e.codeFrame) : null));
      if (e.position && this.code) this.codeBox.replaceChildren(source(this.code, e.position.line));
    }
    this.drawCalls();
  }

  ended() {
    if (this.status.dataset.status === "running" || this.status.dataset.status === "queued") this.setStatus("interrupted");
  }

  problem(err) {
    this.result.replaceChildren(errorBox(err));
  }

  // The execution as the journal has it: the same view, from its entries.
  fromJournal(row) {
    this.setStatus(row.status);
    const t0 = row.startedMs;
    const seq = new Map();
    for (const e of row.entries) {
      const b = e.body || {};
      switch (e.kind) {
        case "started":
          this.event("queued", { code: b.code, session: b.session });
          break;
        case "call":
          seq.set(b.id, e.atMs);
          this.event("call", { id: b.id, function: b.function, arguments: b.arguments });
          break;
        case "gate":
          if (b.decision === "held") this.call(b.id).held = b.reason || "held";
          if (b.decision === "denied") this.call(b.id).denied = b.reason || "denied";
          break;
        case "outcome": {
          const fn = this.call(b.id).start ? this.call(b.id).start.function : "";
          this.call(b.id).end = { function: fn, ok: b.ok, error: b.error, durationMs: b.durationMs, startedMs: Math.max(0, e.atMs - t0 - b.durationMs) };
          break;
        }
        case "input":
          if (b.t === "callDone") this.call(b.id).answer = b.result || (b.omitted ? "(too large for the journal)" : null);
          break;
        case "log": this.log(b.level, b.text, b.atMs); break;
        case "finished": this.finish(b.record); break;
        default: break;
      }
    }
    if (row.nextSeq !== null && row.nextSeq !== undefined) this.log("warn", `[more entries from seq ${row.nextSeq}: see GET /v1/executions/${row.id}?fromSeq=${row.nextSeq}]`);
    this.setStatus(row.status);
    this.drawCalls();
    this.chainOf(row);
  }

  async chain() {
    try {
      this.chainOf(await api(`/v1/executions/${encodeURIComponent(this.id)}?limit=1`));
    } catch { /* journal off or not written yet */ }
  }

  chainOf(row) {
    if (!row.chain) return;
    this.chainBox.textContent = row.chain.intact ? "· journal hash chain intact" : `· journal hash chain BROKEN: ${row.chain.problems.map((p) => p.problem).join("; ")}`;
    this.chainBox.className = row.chain.intact ? "muted" : "pill failed";
  }
}

// A call's answer as the engine gives it (`{status: "ok", value: JSON text}`, or an error).
function answerOf(answer) {
  if (answer === undefined || answer === null) return "(none yet)";
  if (answer.status === "ok" && typeof answer.value === "string") {
    try { return JSON.parse(answer.value); } catch { return answer.value; }
  }
  if (answer.status === "err") return `${answer.name}: ${answer.message}`;
  return answer;
}

async function executionsPage(params) {
  const form = h("form", { class: "panel row", "aria-label": "Filter executions" });
  const session = h("input", { id: "f-session", value: params.get("session") || "", size: 20 });
  const status = h("select", { id: "f-status" }, ["", "running", "ok", "failed", "suspended", "interrupted"].map((s) =>
    h("option", { value: s, selected: s === (params.get("status") || "") }, s || "any")));
  const since = h("select", { id: "f-since" }, [["", "any time"], ["3600000", "last hour"], ["86400000", "last day"], ["604800000", "last week"]].map(([v, l]) =>
    h("option", { value: v, selected: v === (params.get("since") || "") }, l)));
  const text = h("input", { id: "f-text", value: params.get("q") || "", size: 20, placeholder: "origin, id, message" });
  form.append(
    h("div", {}, h("label", { for: "f-session" }, "Session"), session),
    h("div", {}, h("label", { for: "f-status" }, "Status"), status),
    h("div", {}, h("label", { for: "f-since" }, "Started"), since),
    h("div", {}, h("label", { for: "f-text" }, "Contains"), text),
    h("button", { type: "submit" }, "Filter"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    if (session.value) q.set("session", session.value);
    if (status.value) q.set("status", status.value);
    if (since.value) q.set("since", since.value);
    if (text.value) q.set("q", text.value);
    location.hash = `#/executions?${q}`;
  });
  const body = h("tbody", {});
  const table = h("table", { "aria-label": "Executions", class: "executions" },
    h("colgroup", {}, ["id", "status", "origin", "session", "started", "took", "message"].map((c) => h("col", { class: `c-${c}` }))),
    h("thead", {}, h("tr", {}, ["Execution", "Status", "Origin", "Session", "Started", "Took", "Message"].map((c) => h("th", { scope: "col" }, c)))),
    body);
  show(h("h1", {}, "Executions"), form, h("div", { class: "panel" }, table));
  const q = new URLSearchParams({ limit: "200" });
  if (params.get("session")) q.set("session", params.get("session"));
  if (params.get("status")) q.set("status", params.get("status"));
  if (params.get("since")) q.set("sinceMs", String(Date.now() - Number(params.get("since"))));
  try {
    const { executions } = await api(`/v1/executions?${q}`);
    const needle = (params.get("q") || "").toLowerCase();
    const rows = executions.filter((x) => !needle || JSON.stringify(x).toLowerCase().includes(needle));
    if (!rows.length) body.append(h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No executions match.")));
    for (const x of rows) {
      const s = x.summary || {};
      body.append(h("tr", {},
        h("td", { title: x.id }, h("a", { href: `#/executions/${encodeURIComponent(x.id)}` }, x.id)),
        h("td", {}, pill(x.status)),
        h("td", { title: x.origin }, x.origin),
        h("td", { title: x.session || "" }, x.session || ""),
        h("td", {}, when(x.startedMs)),
        h("td", {}, duration(s.ms)),
        h("td", { class: "wrap" }, s.message || (s.calls !== undefined ? `${s.calls} call${s.calls === 1 ? "" : "s"}` : ""))));
    }
    // What the rows shown were asked with (for whoever waits for them: tests, scripts).
    table.dataset.loaded = params.get("status") || "any";
  } catch (err) {
    body.append(h("tr", {}, h("td", { colspan: 7 }, errorBox(err))));
  }
}

async function approvalsPage(signal) {
  const list = h("div", { id: "approvals", "aria-live": "polite" });
  show(h("h1", {}, "Approvals"), h("p", { class: "muted" }, "Calls that wait for a person. Deciding here lets the waiting execution go on, on whichever node holds it."), list);
  const draw = async () => {
    let approvals;
    try {
      ({ approvals } = await api("/v1/approvals?status=pending"));
    } catch (err) {
      return list.replaceChildren(errorBox(err));
    }
    updateBadge(approvals.length);
    // Keep what a user is typing in a card that is still pending.
    const typed = new Map([...list.querySelectorAll("textarea")].map((t) => [t.dataset.id, t.value]));
    if (!approvals.length) return list.replaceChildren(h("p", { class: "panel muted" }, "Nothing waits for a decision."));
    list.replaceChildren(...approvals.map((a) => approvalCard(a, typed.get(a.id) || "", draw)));
  };
  await draw();
  watch("approvals", signal, draw);
}

function approvalCard(a, typed, redraw) {
  const s = a.subject || {};
  const comment = h("textarea", { class: "comment", id: `c-${a.id}`, "data-id": a.id });
  comment.value = typed;
  const grant = h("input", { type: "checkbox", id: `g-${a.id}` });
  const problem = h("div", {});
  const decide = async (approve) => {
    try {
      const body = { approve, reason: comment.value || null };
      if (approve && grant.checked) body.session = true;
      await api(`/v1/approvals/${encodeURIComponent(a.id)}`, { method: "POST", body });
      await redraw();
    } catch (err) {
      problem.replaceChildren(errorBox(err));
    }
  };
  const reasons = Array.isArray(a.reasons) ? a.reasons : [];
  if (a.kind === "plan") {
    const steps = Array.isArray(s.steps) ? s.steps : [];
    return h("article", { class: "card", "aria-label": `approval ${a.id}` },
      h("h2", {}, `plan: ${plural(steps.length, "change")}`, pill(a.status)),
      h("p", {}, reasons.join("; ")),
      h("a", { href: `#/plans/${encodeURIComponent(a.id)}` }, "Open the plan to decide"));
  }
  return h("article", { class: "card", "aria-label": `approval ${a.id}` },
    h("h2", {}, s.function || a.kind, s.effect ? pill(typeof s.effect === "string" ? s.effect : s.effect.class || "write") : null, pill(a.status)),
    h("dl", { class: "kv" },
      h("dt", {}, "request"), h("dd", {}, a.id),
      h("dt", {}, "tool"), h("dd", {}, `${s.server || ""} / ${s.tool || ""}`),
      h("dt", {}, "execution"), h("dd", {}, a.execution ? h("a", { href: `#/executions/${encodeURIComponent(a.execution)}` }, a.execution) : ""),
      h("dt", {}, "started by"), h("dd", {}, s.principal || ""),
      h("dt", {}, "why"), h("dd", {}, reasons.length ? reasons.join("; ") : "the policy requires approval"),
      h("dt", {}, "expires"), h("dd", {}, when(a.expiresMs))),
    h("h3", { class: "hint" }, "Arguments"), pretty(s.arguments),
    s.code ? h("details", {}, h("summary", {}, "The script"), source(s.code, callLine(s.code, s.function))) : null,
    h("label", { for: `c-${a.id}` }, "Comment (recorded with the decision)"), comment,
    a.session ? h("div", { class: "check" }, grant, h("label", { for: `g-${a.id}` }, `Approve the later ${s.function} calls of session ${a.session} too`)) : null,
    h("div", { class: "actions" },
      h("button", { class: "approve", type: "button", onclick: () => decide(true) }, "Approve"),
      h("button", { class: "deny", type: "button", onclick: () => decide(false) }, "Deny")),
    problem);
}

// The first line of `code` that calls `fn` (`fs.writeFile`): the calling line, marked.
function callLine(code, fn) {
  if (!fn) return undefined;
  const i = code.split("\n").findIndex((line) => line.includes(`${fn}(`));
  return i >= 0 ? i + 1 : undefined;
}

// A chat with Isola's agent: each turn's answer streams in, each script it writes is shown with
// its outcome. The chat's id stays in this tab, so the next turn goes on from the earlier ones.
function chatPage(signal) {
  const log = h("div", { class: "chat-log", id: "chat-log", role: "log", "aria-live": "polite", "aria-label": "conversation" });
  const prompt = h("textarea", { id: "prompt", class: "comment", required: true, "aria-describedby": "prompt-hint" });
  const model = h("input", { id: "model", placeholder: "the configured one", size: 28, value: sessionStorage.getItem("isola.model") || "" });
  const button = h("button", { class: "primary", type: "submit" }, "Send");
  const fresh = h("button", { type: "button", onclick: () => { sessionStorage.removeItem("isola.chat"); chatPage(signal); } }, "New chat");
  const form = h("form", { class: "panel", "aria-label": "Next turn of the chat", onsubmit: async (e) => {
    e.preventDefault();
    const text = prompt.value.trim();
    if (!text) return;
    button.disabled = true;
    sessionStorage.setItem("isola.model", model.value.trim());
    log.append(h("div", { class: "bubble user" }, text));
    prompt.value = "";
    const answer = h("div", { class: "bubble agent" });
    log.append(answer);
    try {
      const body = { prompt: text, wait: false };
      if (model.value.trim()) body.model = model.value.trim();
      const chat = sessionStorage.getItem("isola.chat");
      if (chat) body.chat = chat;
      const started = await api("/v1/runs", { method: "POST", body });
      sessionStorage.setItem("isola.chat", started.chat);
      let current = h("p", {});
      answer.append(current);
      for await (const { kind, data } of events(started.events, signal)) {
        if (kind === "text") current.append(data.text);
        else if (kind === "discard") current.replaceChildren();
        else if (kind === "execution") {
          answer.append(h("div", { class: "step" }, h("div", { class: "hint" }, `script, attempt ${data.attempt}`), source(data.code)));
          current = h("p", {});
          answer.append(current);
        } else if (kind === "done") {
          answer.insertBefore(h("div", { class: "step" }, pill(data.ok ? "ok" : "failed"), " ", data.summary), current);
        } else if (kind === "toolCall") {
          answer.insertBefore(h("div", { class: "hint" }, `calls ${data.name}`), current);
        } else if (kind === "finished") {
          if (data.error) answer.append(errorBox(new ApiError(400, data.error.kind, data.error.message)));
          else if (data.transcript && data.transcript.stop && data.transcript.stop.reason !== "answered" && !data.transcript.answer)
            answer.append(h("p", { class: "hint" }, `stopped: ${JSON.stringify(data.transcript.stop)}`));
        }
        log.scrollTop = log.scrollHeight;
      }
    } catch (err) {
      if (!signal.aborted) answer.append(errorBox(err));
    }
    button.disabled = false;
    prompt.focus();
  } },
    h("label", { for: "prompt" }, "Your message"),
    prompt,
    h("p", { class: "hint", id: "prompt-hint" }, "Ctrl+Enter sends. The agent writes scripts against the API; they pass the policy and approvals like any other."),
    h("div", { class: "row" }, h("div", {}, h("label", { for: "model" }, "Model (provider:name)"), model), button, fresh));
  prompt.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); form.requestSubmit(); }
  });
  show(h("h1", {}, "Chat"), h("section", { class: "panel" }, log), form);
  if (!log.childElementCount) log.append(h("p", { class: "muted" }, sessionStorage.getItem("isola.chat") ? "Go on with the chat: the agent remembers its earlier turns." : "A new chat."));
  prompt.focus();
}

// One plan: its changes grouped by what they do, each with its arguments and the steps whose
// results it uses; the reads it made; the decision; apply once approved, and how it went.
async function planPage(id) {
  const box = h("div", {});
  show(h("h1", {}, "Plan ", h("code", {}, id)), box);
  const draw = async (outcome) => {
    let plan;
    try {
      plan = await api(`/v1/plans/${encodeURIComponent(id)}`);
    } catch (err) {
      return box.replaceChildren(errorBox(err));
    }
    const steps = Array.isArray(plan.steps) ? plan.steps : [];
    const groups = new Map();
    for (const step of steps) {
      const effect = step.effect || "write";
      if (!groups.has(effect)) groups.set(effect, []);
      groups.get(effect).push(step);
    }
    const stepCard = (step) => h("div", { class: "card" },
      h("h2", {}, `#${(step.seq ?? 0) + 1} ${step.function}`, pill(step.effect || "write")),
      pretty(step.arguments),
      step.uses && step.uses.length ? h("p", { class: "hint" }, `uses the results of ${step.uses.map((u) => `#${u}`).join(", ")}`) : null);
    const reads = Array.isArray(plan.reads) ? plan.reads : [];
    const decision = plan.decision || {};
    const problem = h("div", {});
    const comment = h("textarea", { class: "comment", id: "plan-comment" });
    const actions = h("div", { class: "actions" });
    const decide = async (approve) => {
      try {
        await api(`/v1/approvals/${encodeURIComponent(id)}`, { method: "POST", body: { approve, reason: comment.value || null } });
        await draw();
      } catch (err) { problem.replaceChildren(errorBox(err)); }
    };
    if (plan.status === "pending") {
      actions.append(
        h("button", { class: "approve", type: "button", onclick: () => decide(true) }, "Approve plan"),
        h("button", { class: "deny", type: "button", onclick: () => decide(false) }, "Deny plan"));
    }
    if (plan.status === "approved") {
      actions.append(h("button", { class: "primary", type: "button", onclick: async (e) => {
        e.target.disabled = true;
        try {
          await draw(await api(`/v1/plans/${encodeURIComponent(id)}/apply`, { method: "POST", body: {} }));
        } catch (err) { problem.replaceChildren(errorBox(err)); e.target.disabled = false; }
      } }, "Apply plan"));
    }
    const result = outcome ? h("section", { class: "panel", id: "apply-outcome", "aria-label": "Apply outcome" },
      h("h2", {}, "Applied"),
      h("p", {}, pill(outcome.record.ok ? "ok" : "failed"), ` ${outcome.apply.applied} of ${outcome.apply.planned} changes sent · execution `,
        h("a", { href: `#/executions/${encodeURIComponent(outcome.execution)}` }, outcome.execution)),
      outcome.apply.drift.length ? h("div", { class: "error-box" }, h("strong", {}, "Drift: "), outcome.apply.drift.join("; ")) : h("p", { class: "hint" }, "No drift: every read answered as when planned."),
      outcome.record.ok ? pretty(outcome.record.result) : errorBox(`${outcome.record.error.name}: ${outcome.record.error.message}`)) : null;
    box.replaceChildren(...[
      h("div", { class: "status-line" }, pill(plan.status), h("span", { class: "muted" }, `${plural(steps.length, "change")} · ${plural(reads.length, "read")} made · plan run `),
        plan.execution ? h("a", { href: `#/executions/${encodeURIComponent(plan.execution)}` }, plan.execution) : ""),
      h("section", { class: "panel", "aria-label": "Decision" }, h("h2", {}, "Decision"),
        h("dl", { class: "kv" },
          h("dt", {}, "status"), h("dd", {}, plan.status),
          h("dt", {}, "by"), h("dd", {}, decision.by || ""),
          h("dt", {}, "why"), h("dd", {}, (decision.reasons || []).join("; ") || "—"),
          h("dt", {}, "note"), h("dd", {}, decision.note || ""),
          h("dt", {}, "good until"), h("dd", {}, when(plan.expiresMs))),
        plan.status === "pending" ? [h("label", { for: "plan-comment" }, "Comment (recorded with the decision)"), comment] : null,
        actions, problem),
      result,
      h("section", { class: "panel", "aria-label": "Changes" }, h("h2", {}, "Changes"),
        steps.length ? [...groups.entries()].map(([effect, list]) => h("div", {}, h("h3", { class: "hint" }, `${effect} (${list.length})`), list.map(stepCard))) : h("p", { class: "muted" }, "No changes: applying it changes nothing.")),
      h("section", { class: "panel", "aria-label": "Reads" }, h("h2", {}, "Reads made while planning"),
        reads.length ? h("ul", {}, reads.map((r) => h("li", {}, h("code", {}, r.function), " ", h("span", { class: "muted" }, JSON.stringify(r.arguments))))) : h("p", { class: "muted" }, "None."))].filter(Boolean));
  };
  await draw();
}

async function usagePage() {
  const box = h("div", {});
  show(h("h1", {}, "Usage"), box);
  let usage;
  try {
    usage = await api("/v1/usage?days=14");
  } catch (err) {
    return box.replaceChildren(errorBox(err));
  }
  const max = Math.max(1, ...usage.days.map((d) => d.ok + d.failed));
  const chart = h("div", { class: "bars", role: "img", id: "usage-chart", "aria-label": `executions per day over ${usage.days.length} days` },
    usage.days.map((d) => {
      const col = h("div", { class: "col", title: `${d.day}: ${d.ok} ok, ${d.failed} failed, ${d.calls} calls` });
      const failed = h("div", { class: "fill failed" });
      failed.style.height = `${(100 * d.failed / max).toFixed(1)}%`;
      const ok = h("div", { class: "fill" });
      ok.style.height = `${(100 * d.ok / max).toFixed(1)}%`;
      col.append(failed, ok, h("div", { class: "lbl" }, d.day.slice(5)));
      return col;
    }));
  const byOrigin = h("table", { "aria-label": "Executions by origin" },
    h("thead", {}, h("tr", {}, ["Origin", "Executions", "Failed", "Tool calls", "Median time"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, usage.origins.map((o) => h("tr", {}, h("td", { title: o.origin }, o.origin), h("td", {}, o.executions), h("td", {}, o.failed), h("td", {}, o.calls), h("td", {}, duration(o.p50Ms))))));
  const servers = usage.servers || [];
  const mostCalls = Math.max(1, ...servers.map((x) => x.calls));
  const byServer = h("table", { "aria-label": "Tool calls by server", id: "usage-servers" },
    h("thead", {}, h("tr", {}, ["Server", "Tool calls", "", "Failed", "Error rate"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, servers.length ? servers.map((x) => {
      const bar = h("div", { class: "hbar", title: `${x.calls} calls` });
      bar.style.width = `${(100 * x.calls / mostCalls).toFixed(1)}%`;
      return h("tr", {}, h("td", { title: x.server }, x.server), h("td", {}, x.calls), h("td", { class: "barcell" }, bar), h("td", {}, x.failed),
        h("td", {}, `${(100 * x.errorRate).toFixed(1)}%`));
    }) : h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No tool calls yet."))));
  const models = usage.models || { byModel: [], byDay: [] };
  const tokensOf = (d) => d.inputTokens + d.outputTokens;
  const perDay = usage.days.map((d) => ({ day: d.day, tokens: models.byDay.filter((m) => m.day === d.day).reduce((n, m) => n + tokensOf(m), 0) }));
  const most = Math.max(1, ...perDay.map((d) => d.tokens));
  const tokenChart = h("div", { class: "bars", role: "img", id: "tokens-chart", "aria-label": `model tokens per day over ${perDay.length} days` },
    perDay.map((d) => {
      const col = h("div", { class: "col", title: `${d.day}: ${d.tokens} tokens` });
      const fill = h("div", { class: "fill" });
      fill.style.height = `${(100 * d.tokens / most).toFixed(1)}%`;
      col.append(fill, h("div", { class: "lbl" }, d.day.slice(5)));
      return col;
    }));
  const byModel = h("table", { "aria-label": "Calls to models" },
    h("thead", {}, h("tr", {}, ["Model", "Calls", "Failed", "Tokens in", "Tokens out", "Cost", "Median latency"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, models.byModel.length ? models.byModel.map((m) => h("tr", {}, h("td", { title: m.model }, m.model), h("td", {}, m.calls), h("td", {}, m.failed),
      h("td", {}, m.inputTokens), h("td", {}, m.outputTokens), h("td", {}, `$${m.costUsd.toFixed(4)}`), h("td", {}, duration(m.p50LatencyMs))))
      : h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No calls to models yet (the agent's runs and chats count here)."))));
  box.replaceChildren(
    h("section", { class: "panel" }, h("h2", {}, "Executions per day"), chart, h("p", { class: "hint" }, "Blue: ended ok. Red: failed.")),
    h("section", { class: "panel" }, h("h2", {}, "By origin"), byOrigin),
    h("section", { class: "panel" }, h("h2", {}, "Tool calls by server"), byServer),
    h("section", { class: "panel" }, h("h2", {}, "Model tokens per day"), tokenChart),
    h("section", { class: "panel" }, h("h2", {}, "Calls to models"), byModel));
}

// ---- live updates and routing -----------------------------------------------------------

let watcher = null;

// Call `onChange` when an approval may have changed: on this node's events, and every 5 s for
// the decisions made on other nodes.
function watch(name, signal, onChange) {
  let timer = setInterval(onChange, 5000);
  signal.addEventListener("abort", () => clearInterval(timer));
  (async () => {
    try {
      for await (const { kind } of events("/v1/events", signal)) {
        if (["held", "decided", "finished", "denied"].includes(kind)) onChange();
      }
    } catch { /* aborted, or the server went away: the timer goes on */ }
  })();
}

function stopWatching() {
  if (watcher) watcher.abort();
  watcher = null;
}

function updateBadge(n) {
  const badge = document.getElementById("pending-count");
  badge.hidden = !n;
  badge.textContent = n ? String(n) : "";
}

async function refreshBadge() {
  try {
    const { approvals } = await api("/v1/approvals?status=pending&limit=1000");
    updateBadge(approvals.length);
  } catch { /* shown on its page */ }
}

function route() {
  stopWatching();
  watcher = new AbortController();
  const signal = watcher.signal;
  const [path, query] = (location.hash.slice(1) || "/run").split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/").filter(Boolean);
  const page = parts[0] || "run";
  for (const a of document.querySelectorAll("nav a")) {
    if (a.dataset.page === page) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  refreshBadge();
  if (page === "executions" && parts[1]) return executionPage(decodeURIComponent(parts[1]), signal);
  if (page === "executions") return executionsPage(params);
  if (page === "approvals") return approvalsPage(signal);
  if (page === "usage") return usagePage();
  if (page === "chat") return chatPage(signal);
  if (page === "plans" && parts[1]) return planPage(decodeURIComponent(parts[1]));
  return runPage();
}

async function start() {
  let health;
  try {
    health = await api("/v1/health");
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return;
    return show(errorBox(err));
  }
  document.getElementById("nav").hidden = false;
  const who = document.getElementById("who");
  const out = sessionStorage.getItem(TOKEN_KEY) ? h("button", { type: "button", onclick: () => signOut("Signed out.") }, "Sign out") : null;
  who.replaceChildren(`v${health.version}${health.journal ? "" : " · journal off"}`, out || "");
  window.onhashchange = route;
  route();
}

start();
