/* Puppet Engine dashboard: plain JavaScript, no build step, no third-party code.
 *
 * Helpers (DOM building, formatting, the chart) live in lib.js, loaded first.
 * Talks to the API with the key kept in localStorage (Authorization: Bearer …).
 * The live feed is read from GET /feed as Server-Sent Events over fetch, so the key
 * travels in a header rather than in the URL. Untrusted text (posts, mentions) is
 * only ever put into the page with textContent.
 */
"use strict";

(() => {
  const { h, $, fmtTime, ago, num, toast, ApiError, stat, badge, drawChart } = window.PuppetLib;
  const KEY_STORE = "puppet.apiKey";
  const FEED_LIMIT = 120;
  const state = { key: localStorage.getItem(KEY_STORE) || "", timers: [], feedAbort: null, feedRetry: 1000,
                  feedSeen: new Set(), agents: new Map(), renderId: 0 };

  // ------------------------------------------------------------------ API


  async function api(method, path, body) {
    const headers = { Authorization: `Bearer ${state.key}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const data = res.status === 204 ? null : await res.json().catch(() => null);
    if (res.status === 401) {
      showLogin("That key was not accepted; paste a valid one.");
    }
    if (!res.ok) {
      const err = (data && data.error) || {};
      throw new ApiError(res.status, err.message || res.statusText, err.code);
    }
    return data;
  }

  function failed(err) {
    toast(err instanceof ApiError ? `${err.status}: ${err.message}` : String(err.message || err), "error");
  }

  // ------------------------------------------------------------------ login

  function showLogin(message) {
    stopFeed();
    state.timers.forEach(clearInterval);  // a rejected key must not keep failing (and get rate-limited)
    state.timers = [];
    $("#login-cancel").classList.toggle("hidden", !state.key || Boolean(message));
    $("#login").classList.remove("hidden");
    $("#app").classList.add("hidden");
    const error = $("#login-error");
    error.textContent = message || "";
    error.classList.toggle("hidden", !message);
    $("#login-key").focus();
  }

  async function login(event) {
    event.preventDefault();
    const key = $("#login-key").value.trim();
    if (!key) return;
    state.key = key;
    try {
      await api("GET", "/status");
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 401) showLogin(`Could not connect: ${err.message}`);
      return;
    }
    localStorage.setItem(KEY_STORE, key);
    $("#login-key").value = "";
    $("#login").classList.add("hidden");
    $("#app").classList.remove("hidden");
    startFeed();
    route();
  }

  // ------------------------------------------------------------------ routing

  function every(ms, fn) { state.timers.push(setInterval(fn, ms)); }

  function route() {
    state.timers.forEach(clearInterval);
    state.timers = [];
    state.renderId += 1;
    state.reviewKeys = null;
    const hash = location.hash || "#/";
    const view = $("#view");
    view.replaceChildren();
    let match;
    let section = "overview";
    if ((match = hash.match(/^#\/agents\/([^/?]+)$/))) viewAgent(view, decodeURIComponent(match[1]));
    else if (hash === "#/events") { section = "events"; viewEvents(view); }
    else if (hash === "#/system") { section = "system"; viewSystem(view); }
    else if (hash === "#/review") {
      section = "review";
      state.reviewKeys = window.PuppetReview.view(view, { api, every, failed, stale, id: state.renderId,
                                                          agents: [...state.agents.keys()].sort() });
    }
    else viewOverview(view);
    document.querySelectorAll("[data-nav]").forEach((a) => a.classList.toggle("active", a.dataset.nav === section));
  }

  function stale(id) { return id !== state.renderId; }

  // ------------------------------------------------------------------ overview

  function viewOverview(view) {
    const grid = h("div", { class: "agent-grid", id: "agents" });
    view.append(h("div", { class: "view-head" }, h("h1", { text: "Agents" }),
                  h("span", { class: "muted", id: "agents-summary" })), grid);
    const id = state.renderId;
    const load = async () => {
      try {
        const page = await api("GET", "/agents?limit=500");
        if (stale(id)) return;
        page.items.forEach((a) => state.agents.set(a.id, a));
        grid.replaceChildren(...page.items.map(agentCard));
        const count = (status) => page.items.filter((a) => a.status === status).length;
        const extra = ["starting", "failed"].filter((s) => count(s)).map((s) => `, ${count(s)} ${s}`).join("");
        $("#agents-summary").textContent = `${count("running")} of ${page.total} running${extra}`;
      } catch (err) { if (err.status !== 401) failed(err); }
    };
    const balances = async () => {
      for (const agent of state.agents.values()) {
        if (!agent.trading_enabled) continue;
        try { await api("GET", `/trading/${encodeURIComponent(agent.id)}/balance`); } catch (err) { /* shown on its page */ }
      }
    };
    load().then(balances).then(load);
    every(5000, load);
    every(30000, balances);
  }


  function agentCard(a) {
    return h("article", { class: "card agent-card", "data-agent-id": a.id },
      h("div", { class: "card-head" },
        h("div", {}, h("a", { class: "agent-name", href: `#/agents/${encodeURIComponent(a.id)}`, text: a.name }),
          h("div", { class: "muted small", text: `@${a.username || a.id} · ${a.llm_provider}` })),
        badge(a)),
      h("p", { class: "agent-desc", text: a.description || "" }),
      a.status === "failed" ? h("p", { class: "agent-failure small", text: startFailure(a) }) : null,
      warningsFlag(a),
      window.PuppetDefinitions.flag(a),
      h("div", { class: "stats" },
        stat("mood", a.mood || "—"),
        stat("last post", ago(a.last_post_at)),
        stat("next post", a.running ? ago(a.next_post_at) : "paused"),
        stat("posts", num(a.posts, 0)),
        window.PuppetNodes.ownerStat(a),
        a.trading_enabled ? stat("balance", a.balance_sol === null ? "—" : `${num(a.balance_sol, 4)} SOL`) : null),
      h("div", { class: "actions" },
        h("button", { class: "btn", type: "button", disabled: a.status === "stopped", onclick: () => postNow(a.id) }, "Post now"),
        h("button", { class: "btn btn-ghost", type: "button", onclick: () => toggle(a) }, a.status === "stopped" ? "Start" : "Stop"),
        h("a", { class: "btn btn-ghost", href: `#/agents/${encodeURIComponent(a.id)}` }, "Open")));
  }

  function startFailure(agent) {
    const retry = agent.retry_at ? ` (trying again ${ago(agent.retry_at)})` : "";
    return `Start failed: ${agent.status_reason || "unknown error"}${retry}`;
  }

  // What the operator should look at (e.g. most recent posts skipped, and why); nothing when all is well.
  function warningsFlag(agent) {
    const warnings = agent.warnings || [];
    if (!warnings.length) return null;
    return h("div", { class: "agent-warning", role: "status", title: warnings.join("\n") },
      ...warnings.map((w) => h("p", { text: `⚠ ${w}` })));
  }

  async function postNow(agentId, body) {
    try {
      const accepted = await api("POST", `/agents/${encodeURIComponent(agentId)}/post`, body || {});
      toast(`Post scheduled for ${agentId} (event ${accepted.event_id})`, "ok");
    } catch (err) { failed(err); }
  }

  // Starting and failed agents can be stopped (a failed one is retrying); stopped ones started.
  async function toggle(agent) {
    const stopping = agent.status !== "stopped";
    try {
      await api("POST", `/agents/${encodeURIComponent(agent.id)}/${stopping ? "stop" : "start"}`);
      toast(`${agent.name} ${stopping ? "stopped" : "started"}`, "ok");
      route();
    } catch (err) { failed(err); }
  }

  // ------------------------------------------------------------------ agent page

  async function viewAgent(view, agentId) {
    const id = state.renderId;
    const path = encodeURIComponent(agentId);
    let agent;
    try { agent = await api("GET", `/agents/${path}`); } catch (err) {
      view.append(h("div", { class: "card" }, h("h1", { text: "Agent not found" }), h("p", { text: err.message })));
      return;
    }
    if (stale(id)) return;
    const topic = h("input", { type: "text", placeholder: "topic (optional)", "aria-label": "topic", maxlength: 200 });
    const text = h("input", { type: "text", placeholder: "or exact text to post", "aria-label": "text", maxlength: 4000 });
    view.append(
      h("div", { class: "view-head" },
        h("div", {}, h("h1", { text: agent.name }), h("div", { class: "muted", text: agent.description || "" }),
          agent.status === "failed" ? h("p", { class: "agent-failure small", text: startFailure(agent) }) : null),
        h("div", { class: "actions" }, badge(agent),
          h("button", { class: "btn btn-ghost", type: "button", onclick: () => toggle(agent) }, agent.status === "stopped" ? "Start" : "Stop"),
          h("button", { class: "btn btn-ghost", type: "button", onclick: () => restart(agentId) }, "Restart"))),
      warningsFlag(agent) || "",
      window.PuppetDefinitions.flag(agent) || "",
      h("div", { class: "stats card" },
        stat("mood", agent.mood || "—"), stat("last post", ago(agent.last_post_at)),
        stat("next post", agent.running ? ago(agent.next_post_at) : "paused"), stat("posts", num(agent.posts, 0)),
        stat("pending events", String(agent.pending_events.length))),
      h("form", { class: "card inline-form", onsubmit: (e) => {
          e.preventDefault();
          const body = text.value.trim() ? { text: text.value.trim() } : topic.value.trim() ? { topic: topic.value.trim() } : {};
          postNow(agentId, body); text.value = ""; topic.value = "";
        } }, h("strong", { text: "Post now" }), topic, text,
        h("button", { class: "btn", type: "submit", disabled: agent.status === "stopped" }, "Post")));

    const columns = h("div", { class: "columns" });
    const left = h("div", { class: "column" });
    const right = h("div", { class: "column" });
    columns.append(left, right);
    view.append(columns);
    left.append(timelineCard(agentId, id));
    right.append(memoryCard(agentId), relationshipsCard(agent));
    if (window.PuppetHistory) right.append(window.PuppetHistory.card(agentId, { api, failed }));  // history.js
    if (agent.trading_enabled) view.append(tradingCard(agentId, id));
    view.append(window.PuppetEngagement.card(agentId, { api, stale: () => stale(id), every, failed }));
    if (window.PuppetReplay) view.append(window.PuppetReplay.card(agentId, { api, failed, stale: () => stale(id) }));
    view.append(h("details", { class: "card" }, h("summary", { text: "Configuration (secrets hidden)" }),
                  h("pre", { class: "code", text: JSON.stringify(agent.config, null, 2) })));
  }

  async function restart(agentId) {
    try { await api("POST", `/agents/${encodeURIComponent(agentId)}/restart`); toast("restarted", "ok"); route(); }
    catch (err) { failed(err); }
  }

  function timelineCard(agentId, id) {
    const list = h("ol", { class: "timeline", id: "timeline" });
    const card = h("section", { class: "card" }, h("div", { class: "card-head" }, h("h2", { text: "Timeline" })), list);
    const load = async () => {
      try {
        const page = await api("GET", `/agents/${encodeURIComponent(agentId)}/timeline?limit=30`);
        if (stale(id)) return;
        list.replaceChildren(...(page.items.length ? page.items.map(timelineItem)
                                                    : [h("li", { class: "muted", text: "Nothing yet." })]));
      } catch (err) { failed(err); }
    };
    load();
    every(5000, load);
    return card;
  }

  function timelineItem(a) {
    const p = a.payload || {};
    const body = p.parts ? p.parts.join(" / ") : p.text || (a.kind === "like" ? `liked ${p.tweet_id || ""}` : JSON.stringify(p));
    return h("li", { class: `timeline-item status-${a.status}` },
      h("div", { class: "item-head" }, h("span", { class: `tag tag-${a.kind}`, text: a.kind }),
        h("span", { class: "muted small", text: `${a.status} · ${fmtTime(a.updated_at)}` })),
      h("div", { class: "item-text", text: body }),
      a.error ? h("div", { class: "error small", text: a.error }) : null);
  }

  function memoryCard(agentId) {
    const input = h("input", { type: "search", placeholder: "search memories by meaning", "aria-label": "memory query",
                               id: "memory-query", maxlength: 2000 });
    const results = h("ol", { class: "memories", id: "memory-results" });
    const search = async (event) => {
      event.preventDefault();
      const query = input.value.trim();
      if (!query) return;
      try {
        const hits = await api("POST", `/memory/${encodeURIComponent(agentId)}/search`, { query, limit: 8 });
        results.replaceChildren(...(hits.length ? hits.map((hit) => h("li", { class: "memory-hit" },
          h("div", { class: "item-head" }, h("span", { class: `tag tag-${hit.memory.kind}`, text: hit.memory.kind }),
            h("span", { class: "muted small", text: `score ${num(hit.score, 3)}` })),
          h("div", { class: "item-text", text: hit.memory.content })))
          : [h("li", { class: "muted", text: "No memories match." })]));
      } catch (err) { failed(err); }
    };
    return h("section", { class: "card" }, h("div", { class: "card-head" }, h("h2", { text: "Memory" })),
      h("form", { class: "search", onsubmit: search }, input, h("button", { class: "btn", type: "submit" }, "Search")),
      results);
  }

  function relationshipsCard(agent) {
    const rows = agent.relationships.map((r) => h("tr", {},
      h("td", { text: r.other }), h("td", { class: "num", text: num(r.sentiment) }),
      h("td", { class: "num", text: num(r.familiarity) }), h("td", { class: "num", text: num(r.trust) }),
      h("td", { class: "num", text: String(r.interactions) })));
    return h("section", { class: "card" }, h("div", { class: "card-head" }, h("h2", { text: "Relationships" })),
      rows.length ? h("table", { class: "table" },
        h("thead", {}, h("tr", {}, ...["who", "sentiment", "familiarity", "trust", "interactions"].map((t) => h("th", { text: t })))),
        h("tbody", {}, rows)) : h("p", { class: "muted", text: "No relationships yet." }));
  }

  // ------------------------------------------------------------------ trading

  function tradingCard(agentId, id) {
    const path = encodeURIComponent(agentId);
    const balance = h("div", { class: "stats" });
    const positions = h("tbody", {});
    const canvas = h("canvas", { class: "chart", id: "portfolio-chart", height: 220 });
    const trades = h("tbody", {});
    const form = h("form", { class: "inline-form", onsubmit: async (e) => {
        e.preventDefault();
        const data = new FormData(form);
        try {
          const accepted = await api("POST", `/agents/${path}/trade`, { input: data.get("input"), output: data.get("output"),
                                                                        amount_sol: Number(data.get("amount")) });
          toast(`Trade scheduled (event ${accepted.event_id}); risk limits apply`, "ok");
        } catch (err) { failed(err); }
      } },
      h("strong", { text: "Trade" }),
      h("input", { name: "input", value: "SOL", "aria-label": "sell", required: true, maxlength: 64 }),
      h("span", { text: "→" }),
      h("input", { name: "output", value: "USDC", "aria-label": "buy", required: true, maxlength: 64 }),
      h("input", { name: "amount", type: "number", step: "0.001", min: "0.001", value: "0.01", "aria-label": "amount in SOL" }),
      h("button", { class: "btn", type: "submit" }, "Swap"));
    const load = async () => {
      try {
        const [stats, txs] = await Promise.all([api("GET", `/trading/${path}/stats`), api("GET", `/trading/${path}/transactions?limit=15`)]);
        if (stale(id)) return;
        trades.replaceChildren(...txs.items.map((t) => h("tr", {},
          h("td", { text: fmtTime(t.created_at) }), h("td", { text: `${t.input_mint.slice(0, 6)}… → ${t.output_mint.slice(0, 6)}…` }),
          h("td", { class: "num", text: num(t.amount_sol, 4) }), h("td", {}, h("span", { class: `tag tag-${t.status}`, text: t.status })),
          h("td", { class: "small", text: t.rule || t.error || (t.signature ? `${t.signature.slice(0, 10)}…` : "") }))));
        balance.replaceChildren(stat("trades", String(stats.total)), stat("confirmed", String(stats.confirmed)),
          stat("rejected", String(stats.rejected)), stat("volume", `${num(stats.volume_sol, 4)} SOL`));
        const [bal, series] = await Promise.all([api("GET", `/trading/${path}/balance`), api("GET", `/trading/${path}/portfolio?hours=24&points=60`)]);
        if (stale(id)) return;
        balance.append(stat("SOL", num(bal.sol, 4)), stat("value", bal.total_value_usd === null ? "—" : `$${num(bal.total_value_usd)}`));
        positions.replaceChildren(...bal.tokens.map((t) => h("tr", {}, h("td", { text: t.symbol || t.mint.slice(0, 8) }),
          h("td", { class: "num", text: num(t.amount, 4) }), h("td", { class: "num", text: t.value_usd === null ? "—" : `$${num(t.value_usd)}` }))));
        drawChart(canvas, series);
      } catch (err) {
        if (err.status === 409) balance.append(h("p", { class: "muted", text: err.message }));
        else failed(err);
      }
    };
    load();
    every(15000, load);
    return h("section", { class: "card" }, h("div", { class: "card-head" }, h("h2", { text: "Trading" })),
      balance, form,
      h("div", { class: "columns" },
        h("div", { class: "column" }, h("h3", { text: "Portfolio value, last 24 h" }), canvas),
        h("div", { class: "column" }, h("h3", { text: "Positions" }),
          h("table", { class: "table" }, h("thead", {}, h("tr", {}, h("th", { text: "token" }), h("th", { text: "amount" }), h("th", { text: "value" }))), positions))),
      h("h3", { text: "Recent trades" }),
      h("table", { class: "table" }, h("thead", {}, h("tr", {}, ...["when", "swap", "SOL", "status", "detail"].map((t) => h("th", { text: t })))), trades));
  }


  // ------------------------------------------------------------------ events

  function viewEvents(view) {
    const id = state.renderId;
    const filters = { type: "", agent: "", status: "", offset: 0, limit: 50 };
    const tbody = h("tbody", {});
    const pager = h("span", { class: "muted small" });
    const field = (name, el) => { el.addEventListener("change", () => { filters[name] = el.value.trim(); filters.offset = 0; load(); }); return el; };
    const agentSelect = h("select", { "aria-label": "agent" }, h("option", { value: "", text: "all agents" }),
      ...[...state.agents.keys()].sort().map((a) => h("option", { value: a, text: a })));
    const statusSelect = h("select", { "aria-label": "status" }, ...["", "pending", "running", "done", "failed", "cancelled"]
      .map((s) => h("option", { value: s, text: s || "any status" })));
    const newer = h("button", { class: "btn btn-ghost", type: "button", disabled: true,
                                onclick: () => { filters.offset = Math.max(0, filters.offset - filters.limit); load(); } }, "Newer");
    const older = h("button", { class: "btn btn-ghost", type: "button",
                                onclick: () => { filters.offset += filters.limit; load(); } }, "Older");
    const load = async () => {
      const query = new URLSearchParams({ limit: filters.limit, offset: filters.offset });
      for (const name of ["type", "agent", "status"]) if (filters[name]) query.set(name, filters[name]);
      try {
        const page = await api("GET", `/events?${query}`);
        if (stale(id)) return;
        tbody.replaceChildren(...page.items.map((e) => h("tr", { class: `status-${e.status}` },
          h("td", { class: "num", text: String(e.id) }), h("td", { text: e.type }), h("td", { text: e.agent_id || "—" }),
          h("td", {}, h("span", { class: `tag tag-${e.status}`, text: e.status })), h("td", { text: fmtTime(e.due_at) }),
          h("td", { class: "num", text: String(e.attempts) }),
          h("td", { class: "small detail", text: e.error || (e.result ? JSON.stringify(e.result) : "") }))));
        const last = Math.min(page.offset + page.items.length, page.total);
        pager.textContent = page.total ? `${page.offset + 1}–${last} of ${page.total}` : "no events";
        newer.disabled = page.offset === 0;
        older.disabled = last >= page.total;
      } catch (err) { failed(err); }
    };
    view.append(h("div", { class: "view-head" }, h("h1", { text: "Events" })),
      h("div", { class: "card filters" },
        field("type", h("input", { type: "text", placeholder: "type, e.g. post.* ", "aria-label": "type", maxlength: 64 })),
        field("agent", agentSelect), field("status", statusSelect),
        newer, older, pager),
      h("div", { class: "card" }, h("table", { class: "table", id: "events-table" },
        h("thead", {}, h("tr", {}, ...["#", "type", "agent", "status", "due", "tries", "result"].map((t) => h("th", { text: t })))), tbody)));
    load();
    every(5000, load);
  }

  // ------------------------------------------------------------------ system

  function viewSystem(view) {
    const id = state.renderId;
    const components = h("tbody", {});
    const status = h("div", { class: "stats" });
    const level = h("select", { name: "log_level", "aria-label": "log level" },
      ...["", "DEBUG", "INFO", "WARNING", "ERROR"].map((l) => h("option", { value: l, text: l || "log level" })));
    const poll = h("input", { name: "mention_poll_seconds", type: "number", min: "1", step: "1", placeholder: "mention poll s", "aria-label": "mention poll seconds" });
    const concurrency = h("input", { name: "engine_concurrency", type: "number", min: "1", step: "1", placeholder: "concurrency", "aria-label": "engine concurrency" });
    const settings = h("form", { class: "inline-form", onsubmit: async (e) => {
        e.preventDefault();
        const body = {};
        if (level.value) body.log_level = level.value;
        if (poll.value) body.mention_poll_seconds = Number(poll.value);
        if (concurrency.value) body.engine_concurrency = Number(concurrency.value);
        try { await api("PUT", "/config", body); toast("settings applied", "ok"); } catch (err) { failed(err); }
      } }, h("strong", { text: "Runtime settings" }), level, poll, concurrency, h("button", { class: "btn", type: "submit" }, "Apply"),
      h("button", { class: "btn btn-ghost", type: "button", onclick: async () => {
        try { const r = await api("POST", "/system/restart"); toast(`restarted ${r.restarted.length} agents`, "ok"); } catch (err) { failed(err); }
      } }, "Restart all agents"));
    const load = async () => {
      try {
        const [health, st] = await Promise.all([api("GET", "/health/details").catch((err) => {
          if (err.status === 503) return { status: "down", components: {} };
          throw err;
        }), api("GET", "/status")]);
        if (stale(id)) return;
        components.replaceChildren(...Object.entries(health.components).map(([name, c]) => h("tr", {},
          h("td", { text: name }), h("td", {}, h("span", { class: `dot dot-${c.status}` }), ` ${c.status}`),
          h("td", { class: "small", text: c.detail || "" }), h("td", { class: "num", text: c.latency_ms === null ? "—" : `${num(c.latency_ms, 1)} ms` }),
          h("td", { text: c.critical ? "yes" : "no" }))));
        status.replaceChildren(stat("version", st.version), stat("agents", `${st.agents.running}/${st.agents.total} running`),
          stat("in flight", String(st.engine.in_flight)), stat("processed", num(st.engine.processed, 0)),
          stat("pending events", num(st.events.pending || 0, 0)), stat("failed events", num(st.events.failed || 0, 0)),
          stat("database", st.database), stat("sandbox", st.sandbox ? "yes" : "no"), stat("uptime", `${num(st.uptime_seconds / 60, 1)} min`));
      } catch (err) { failed(err); }
    };
    view.append(h("div", { class: "view-head" }, h("h1", { text: "System" })),
      h("section", { class: "card" }, h("h2", { text: "Status" }), status),
      h("section", { class: "card", id: "health-panel" }, h("h2", { text: "Health" }), h("table", { class: "table" },
        h("thead", {}, h("tr", {}, ...["component", "status", "detail", "latency", "critical"].map((t) => h("th", { text: t })))), components)),
      window.PuppetNodes.panel({ api, every, stale, id, failed }),
      h("section", { class: "card" }, settings));
    load();
    every(5000, load);
  }

  // ------------------------------------------------------------------ live feed

  function stopFeed() {
    if (state.feedAbort) state.feedAbort.abort();
    state.feedAbort = null;
    $("#feed-state").textContent = "feed: off";
  }

  async function startFeed() {
    stopFeed();
    const controller = new AbortController();
    state.feedAbort = controller;
    try {
      const res = await fetch("/feed?backlog=40", { headers: { Authorization: `Bearer ${state.key}`, Accept: "text/event-stream" },
                                                    signal: controller.signal, cache: "no-store" });
      if (res.status === 401) { showLogin("That key was not accepted; paste a valid one."); return; }
      if (!res.ok || !res.body) throw new Error(`feed: HTTP ${res.status}`);
      $("#feed-state").textContent = "feed: live";
      state.feedRetry = 1000;
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        const frames = buffer.split(/\r?\n\r?\n/);
        buffer = frames.pop();
        for (const frame of frames) {
          const data = frame.split(/\r?\n/).filter((l) => l.startsWith("data:")).map((l) => l.slice(5).replace(/^ /, "")).join("\n");
          if (data) addFeedItem(JSON.parse(data));
        }
      }
    } catch (err) {
      if (controller.signal.aborted) return;
    }
    if (state.feedAbort !== controller) return;
    $("#feed-state").textContent = "feed: reconnecting";
    setTimeout(() => { if (state.feedAbort === controller) startFeed(); }, state.feedRetry);
    state.feedRetry = Math.min(state.feedRetry * 2, 30000);
  }

  function addFeedItem(item) {
    if (state.feedSeen.has(item.id)) return;
    state.feedSeen.add(item.id);
    const feed = $("#feed");
    const agentName = (state.agents.get(item.agent_id) || {}).name || item.agent_id || "system";
    const li = h("li", { class: `feed-item feed-${item.type}`, "data-type": item.type, "data-agent": item.agent_id || "" },
      h("div", { class: "item-head" },
        h("span", { class: `tag tag-${item.type}`, text: item.type }),
        item.agent_id ? h("a", { href: `#/agents/${encodeURIComponent(item.agent_id)}`, text: agentName }) : h("span", { text: agentName }),
        h("time", { class: "muted small", text: fmtTime(item.at) })),
      item.author ? h("div", { class: "muted small", text: `from @${item.author}` }) : null,
      h("div", { class: "item-text", text: item.text || "" }));
    feed.prepend(li);
    if (item.type === "review") window.PuppetReview.refreshCount(api);
    while (feed.children.length > FEED_LIMIT) feed.lastElementChild.remove();
    const n = feed.children.length;
    $("#feed-count").textContent = `${n} item${n === 1 ? "" : "s"}`;
  }

  // ------------------------------------------------------------------ health dot

  async function pollHealth() {
    const dot = $("#health-dot");
    try {
      const res = await fetch("/health", { cache: "no-store" });
      const body = await res.json();
      dot.className = `dot dot-${body.status}`;
      dot.title = `health: ${body.status}`;
    } catch (err) {
      dot.className = "dot dot-down";
      dot.title = "engine unreachable";
    }
  }

  // ------------------------------------------------------------------ start

  $("#login-form").addEventListener("submit", login);
  $("#key-button").addEventListener("click", () => showLogin(""));
  $("#login-cancel").addEventListener("click", () => {
    $("#login").classList.add("hidden");
    $("#app").classList.remove("hidden");
    startFeed();
    route();
  });
  window.addEventListener("hashchange", route);
  document.addEventListener("keydown", (e) => { if (state.reviewKeys) state.reviewKeys(e); });
  setInterval(() => { if (state.key && $("#login").classList.contains("hidden")) window.PuppetReview.refreshCount(api); }, 5000);
  pollHealth();
  setInterval(pollHealth, 10000);
  if (!state.key) {
    showLogin("");
  } else {
    startFeed();
    route();
    window.PuppetReview.refreshCount(api);
  }
})();
