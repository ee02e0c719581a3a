/* Puppet Engine dashboard: the review inbox (#/review) and the count in the header.
 *
 * Items held for approval (GET /review) with the context the agent had beside each one.
 * Keys: j / k move, a approves, e edits (Ctrl+Enter approves the edited text, Escape cancels),
 * r rejects (type the reason, Enter). "Approve all" approves every waiting item of the agent
 * chosen in the filter. Untrusted text (posts, mentions) only ever goes through textContent.
 */
"use strict";

window.PuppetReview = (() => {
  const { h, $, fmtTime, ago, num, toast } = window.PuppetLib;
  const inbox = { selected: 0, items: [] };

  async function refreshCount(api) {
    try {
      const page = await api("GET", "/review?limit=1");
      const badge = $("#review-count");
      badge.textContent = String(page.total);
      badge.classList.toggle("hidden", page.total === 0);
    } catch (err) { /* the header count is best effort; the inbox shows errors */ }
  }

  function context(item) {
    const c = item.context || {};
    const parts = [];
    if (c.mention) {
      parts.push(h("div", { class: "small muted", text: `mention from @${c.mention.author_username || "someone"}` }),
                 h("blockquote", { class: "review-quote", text: c.mention.text || "" }));
    }
    if (Array.isArray(c.thread) && c.thread.length > 1) {
      parts.push(h("div", { class: "small muted", text: "thread" }),
                 h("ol", { class: "review-thread small" },
                   ...c.thread.map((t) => h("li", { text: `@${t.author_username || "someone"}: ${t.text || ""}` }))));
    }
    if (c.flags && c.flags.length) parts.push(h("div", { class: "small error", text: `flagged: ${c.flags.join(", ")}` }));
    if (c.amount_sol !== undefined) parts.push(h("div", { class: "small", text: `worth ${c.amount_sol === null ? "?" : num(c.amount_sol, 4)} SOL` }));
    if (c.market) parts.push(h("div", { class: "small muted", text: "market" }), h("pre", { class: "review-market small", text: c.market }));
    if (Array.isArray(c.risk_checks) && c.risk_checks.length) {
      parts.push(h("ul", { class: "review-checks small" }, ...c.risk_checks.map((r) =>
        h("li", { class: r.passed ? "" : "error", text: `${r.passed ? "✓" : "✗"} ${r.rule}: ${r.detail}` }))));
    }
    if (!parts.length) parts.push(h("div", { class: "small muted", text: "no conversation: the agent's own post" }));
    return h("aside", { class: "review-context" }, ...parts);
  }

  function itemCard(item, index, actions) {
    const editor = h("textarea", { class: "review-edit hidden", rows: "4", "aria-label": "edited text", maxlength: "5000" });
    editor.value = item.text;
    const reason = h("input", { class: "review-reason hidden", type: "text", maxlength: "500",
                                placeholder: "why? (Enter rejects)", "aria-label": "rejection reason" });
    const card = h("article", { class: "card review-item", "data-id": String(item.id), "data-agent": item.agent_id, tabindex: "-1" },
      h("div", { class: "review-main" },
        h("div", { class: "item-head" },
          h("span", { class: `tag tag-${item.kind}`, text: item.kind }),
          h("a", { href: `#/agents/${encodeURIComponent(item.agent_id)}`, text: item.agent_id }),
          h("time", { class: "muted small", text: fmtTime(item.created_at) }),
          item.expires_at ? h("span", { class: "muted small", text: `expires ${ago(item.expires_at)} → ${item.on_expire}` }) : null),
        h("p", { class: "review-text", text: item.text || `${item.payload.amount} ${item.payload.input} → ${item.payload.output}` }),
        editor, reason,
        h("div", { class: "small muted", text: item.reasons.join("; ") }),
        h("div", { class: "actions" },
          h("button", { class: "btn review-approve", type: "button", onclick: () => actions.approve(index) }, "Approve (a)"),
          item.action_kind === "trade" ? null
            : h("button", { class: "btn btn-ghost review-edit-btn", type: "button", onclick: () => actions.edit(index) }, "Edit (e)"),
          h("button", { class: "btn btn-ghost review-reject", type: "button", onclick: () => actions.reject(index) }, "Reject (r)"))),
      context(item));
    editor.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); actions.approve(index, editor.value); }
      if (e.key === "Escape") { editor.classList.add("hidden"); card.focus(); }
    });
    reason.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && reason.value.trim()) { e.preventDefault(); actions.reject(index, reason.value.trim()); }
      if (e.key === "Escape") { reason.classList.add("hidden"); card.focus(); }
    });
    return card;
  }

  function view(root, { api, every, failed, stale, id, agents }) {
    const list = h("div", { class: "review-list", id: "review-list" });
    const summary = h("span", { class: "muted", id: "review-summary" });
    const filters = { agent: "", kind: "" };
    const agentSelect = h("select", { "aria-label": "agent", id: "review-agent" }, h("option", { value: "", text: "all agents" }),
      ...agents.map((a) => h("option", { value: a, text: a })));
    const kindSelect = h("select", { "aria-label": "kind", id: "review-kind" },
      ...["", "posts", "replies", "quotes", "trade_announcements", "trades"].map((k) => h("option", { value: k, text: k || "all kinds" })));
    const bulk = h("button", { class: "btn btn-ghost", type: "button", id: "review-bulk", disabled: true, onclick: async () => {
      try {
        const r = await api("POST", "/review/bulk-approve", { agent: filters.agent });
        toast(`approved ${r.approved.length} item(s) of ${filters.agent}`, "ok");
        load();
      } catch (err) { failed(err); }
    } }, "Approve all for this agent");
    agentSelect.addEventListener("change", () => { filters.agent = agentSelect.value; bulk.disabled = !filters.agent; load(); });
    kindSelect.addEventListener("change", () => { filters.kind = kindSelect.value; load(); });

    const decide = async (index, path, body, done) => {
      const item = inbox.items[index];
      if (!item) return;
      try {
        await api("POST", `/review/${item.id}/${path}`, body);
        toast(`${item.kind} of ${item.agent_id} ${done}`, "ok");
        if (list.contains(document.activeElement)) document.activeElement.blur();  // the editor is done with
        load();
      } catch (err) { failed(err); }
    };
    const cardAt = (index) => list.children[index];
    const actions = {
      approve: (index, text) => decide(index, "approve", text === undefined ? undefined : { text }, text === undefined ? "approved" : "approved as edited"),
      edit: (index) => {
        if (!inbox.items[index] || inbox.items[index].action_kind === "trade") return;
        select(index);
        const ed = cardAt(index).querySelector(".review-edit");
        ed.classList.remove("hidden");
        ed.focus();
      },
      reject: (index, why) => {
        if (why) return decide(index, "reject", { reason: why }, "rejected");
        select(index);
        const input = cardAt(index).querySelector(".review-reason");
        input.classList.remove("hidden");
        input.focus();
        return undefined;
      },
    };
    function select(index) {
      inbox.selected = Math.max(0, Math.min(index, inbox.items.length - 1));
      [...list.children].forEach((c, i) => c.classList.toggle("selected", i === inbox.selected));
      const card = cardAt(inbox.selected);
      if (card && !card.contains(document.activeElement)) card.focus();
    }
    async function load() {
      const query = new URLSearchParams({ limit: "100" });
      if (filters.agent) query.set("agent", filters.agent);
      if (filters.kind) query.set("kind", filters.kind);
      try {
        const page = await api("GET", `/review?${query}`);
        if (stale(id)) return;
        if (list.contains(document.activeElement) && document.activeElement.matches("textarea, input")) return;  // mid-edit
        inbox.items = page.items;
        list.replaceChildren(...page.items.map((item, i) => itemCard(item, i, actions)));
        summary.textContent = page.total ? `${page.total} waiting` : "nothing waits for review";
        if (page.items.length) select(inbox.selected);
        refreshCount(api);
      } catch (err) { if (err.status !== 401) failed(err); }
    }
    root.append(h("div", { class: "view-head" }, h("h1", { text: "Review" }), summary),
      h("div", { class: "card filters" }, agentSelect, kindSelect, bulk,
        h("span", { class: "muted small", text: "keys: j/k move · a approve · e edit · r reject" })),
      list);
    load();
    every(5000, load);
    return (event) => {  // the view's key handler
      if (event.target.matches && event.target.matches("input, textarea, select")) return;
      if (event.ctrlKey || event.metaKey || event.altKey || !inbox.items.length) return;
      const keys = { j: () => select(inbox.selected + 1), k: () => select(inbox.selected - 1),
                     a: () => actions.approve(inbox.selected), e: () => actions.edit(inbox.selected),
                     r: () => actions.reject(inbox.selected) };
      if (keys[event.key]) { event.preventDefault(); keys[event.key](); }
    };
  }

  return { view, refreshCount };
})();
