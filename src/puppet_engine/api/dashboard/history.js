/* Puppet Engine dashboard: the agent page's "state at" picker (history).
 *
 * Pick a moment (UTC) and, optionally, a memory query: the card shows what the agent was
 * then — mood, config version, lifecycle, schedule, balances, relationships, the memories it
 * had (and what the query would have found), its latest skips, the events around — from
 * GET /agents/{id}/state?at=…, and the timeline of the hour around it from
 * GET /agents/{id}/history?from=…&to=…. Untrusted text only ever goes through textContent.
 */
"use strict";

window.PuppetHistory = (() => {
  const { h, num } = window.PuppetLib;
  const HOUR_MS = 3600 * 1000;

  // "2026-12-01T03:12" (a datetime-local value, read as UTC) for a Date.
  function pickerValue(date) { return date.toISOString().slice(0, 16); }

  function line(label, value) {
    return h("div", { class: "history-row" }, h("span", { class: "stat-label", text: label }),
             h("span", { class: "history-value", text: value }));
  }

  function describe(s) {
    if (!s.known) return [h("p", { class: "muted", text: `Nothing recorded for ${s.agent_id} at ${s.at}.` })];
    const rows = [];
    const lc = s.lifecycle;
    if (lc) rows.push(line("lifecycle", `${lc.status}${lc.by ? ` by ${lc.by}` : ""} (${lc.at})`));
    const c = s.config;
    if (c) rows.push(line("config", `version ${c.version} (${c.source}${c.by ? `, by ${c.by}` : ""}, since ${c.at})`));
    const m = s.mood;
    if (m) rows.push(line("mood", `${m.label} (valence ${num(m.valence)}, arousal ${num(m.arousal)}, dominance ${num(m.dominance)})`));
    const planned = Object.entries(s.schedule).filter(([, v]) => v).map(([k, v]) => `${k.replace(/_at$/, "").replace(/_/g, " ")} ${v}`);
    rows.push(line("schedule", planned.join("; ") || "nothing planned"));
    const b = s.balances;
    if (b) rows.push(line("balances", `${num(b.sol, 4)} SOL${Object.entries(b.tokens || {}).map(([mint, v]) => `, ${num(v, 4)} ${mint.slice(0, 6)}…`).join("")} (${b.at})`));
    rows.push(line("relationships", s.relationships.length ? s.relationships.slice(0, 6).map((r) =>
      `${r.other} ${num(r.sentiment)}/${num(r.familiarity)}/${num(r.trust)}`).join("; ") : "none"));
    rows.push(line("memories", String(s.memories.count)));
    const found = (s.memories.found || []).map((hit) => h("li", { class: "memory-hit history-hit" },
      h("div", { class: "item-head" }, h("span", { class: `tag tag-${hit.kind}`, text: hit.kind }),
        h("span", { class: "muted small", text: `score ${num(hit.score, 3)}${hit.forgotten_at ? ` · forgotten ${hit.forgotten_at}` : ""}` })),
      h("div", { class: "item-text", text: hit.content })));
    for (const skip of s.skips) rows.push(line("skipped", `${skip.event}: ${skip.reason} (${skip.at})`));
    const events = (title, list) => h("div", {}, h("strong", { class: "small", text: title }),
      h("ol", { class: "history-events" }, ...(list.length ? list.map((e) => h("li", { class: "small",
        text: `${e.at} ${e.type} ${e.status} ${JSON.stringify(e.result || e.error || {}).slice(0, 120)}` }))
        : [h("li", { class: "muted small", text: "none" })])));
    return [...rows, found.length ? h("ol", { class: "memories", id: "history-found" }, ...found) : null,
            events("events before", s.events_before), events("events after", s.events_after)];
  }

  // The card; ctx = { api, failed } from app.js.
  function card(agentId, ctx) {
    const path = encodeURIComponent(agentId);
    const at = h("input", { type: "datetime-local", id: "history-at", "aria-label": "moment (UTC)", required: true,
                            value: pickerValue(new Date()) });
    const query = h("input", { type: "search", id: "history-query", placeholder: "memory query (optional)",
                               "aria-label": "memory query then", maxlength: 500 });
    const out = h("div", { class: "history-state", id: "history-state" });
    const story = h("pre", { class: "code history-timeline", id: "history-timeline" });
    const show = async (event) => {
      event.preventDefault();
      if (!at.value) return;
      const moment = new Date(`${at.value}:00Z`);
      const params = new URLSearchParams({ at: moment.toISOString() });
      if (query.value.trim()) params.set("query", query.value.trim());
      const span = new URLSearchParams({ from: new Date(moment - HOUR_MS / 2).toISOString(),
                                         to: new Date(moment.getTime() + HOUR_MS / 2).toISOString() });
      try {
        const [state, timeline] = await Promise.all([ctx.api("GET", `/agents/${path}/state?${params}`),
                                                     ctx.api("GET", `/agents/${path}/history?${span}`)]);
        out.replaceChildren(h("p", { class: "muted small", text: `${state.agent_id} at ${state.at}` }), ...describe(state));
        story.textContent = timeline.text || "Nothing happened in the hour around it.";
      } catch (err) { ctx.failed(err); }
    };
    return h("section", { class: "card", id: "history-card" },
      h("div", { class: "card-head" }, h("h2", { text: "State at" }), h("span", { class: "muted small", text: "UTC" })),
      h("form", { class: "search", onsubmit: show }, at, query, h("button", { class: "btn", type: "submit" }, "Show")),
      out, h("details", {}, h("summary", { text: "Timeline of the hour around it" }), story));
  }

  return { card };
})();
