/* Puppet Engine dashboard: the nodes sharing the database (GET /nodes) and which node runs each agent.
 *
 * Loaded after lib.js and before app.js, which calls two hooks:
 *   PuppetNodes.ownerStat(agent)        — the "node" stat on an agent card (owner and since when)
 *   PuppetNodes.panel({ api, every, stale, id, failed }) — the Nodes card of the System view
 * Plain JavaScript; every value goes through textContent.
 */
"use strict";

window.PuppetNodes = (() => {
  const { h, ago, stat } = window.PuppetLib;

  // A node id is "<host>-<8 hex>": the hex tail tells nodes of one host apart.
  function shortId(id) {
    return id && id.length > 22 ? `…${id.slice(-14)}` : (id || "—");
  }

  function ownerStat(agent) {
    const el = stat("node", agent.owner ? shortId(agent.owner) : "none");
    el.classList.add("agent-owner");
    el.setAttribute("data-owner", agent.owner || "");
    el.title = agent.owner ? `run by ${agent.owner} since ${ago(agent.owner_since)}` : "no node runs it now";
    return el;
  }

  function row(node) {
    const status = node.status === "live" ? "ok" : node.status === "gone" ? "down" : "unknown";
    return h("tr", { "data-node-id": node.id, "data-status": node.status },
      h("td", {}, h("code", { text: node.id }), node.this ? h("span", { class: "muted small", text: " (this node)" }) : null),
      h("td", { text: node.role }),
      h("td", {}, h("span", { class: `dot dot-${status}` }), ` ${node.status}`),
      h("td", { class: "num", text: String(node.agents) }),
      h("td", { class: "small", text: `${node.host} · pid ${node.pid} · v${node.version}` }),
      h("td", { class: "small", text: `started ${ago(node.started_at)}, seen ${ago(node.last_seen)}` }));
  }

  function panel({ api, every, stale, id, failed }) {
    const body = h("tbody", { id: "nodes-body" });
    const summary = h("span", { class: "muted small", id: "nodes-summary" });
    const load = async () => {
      try {
        const nodes = await api("GET", "/nodes");
        if (stale(id)) return;
        body.replaceChildren(...nodes.map(row));
        const live = nodes.filter((n) => n.status === "live");
        const me = nodes.find((n) => n.this);
        summary.textContent = `${live.length} live` + (me ? ` · this node: ${me.role}` : "");
      } catch (err) { if (err.status !== 401) failed(err); }
    };
    load();
    every(5000, load);
    return h("section", { class: "card", id: "nodes-panel" },
      h("div", { class: "card-head" }, h("h2", { text: "Nodes" }), summary),
      h("table", { class: "table" },
        h("thead", {}, h("tr", {}, ...["node", "role", "status", "agents", "where", "heartbeat"].map((t) => h("th", { text: t })))),
        body));
  }

  return { ownerStat, panel, shortId };
})();
