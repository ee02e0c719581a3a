/* Puppet Engine dashboard: the engagement card of an agent's page (GET /agents/{id}/engagement).
 *
 * A bar chart of the engagement rate by hour of day (the agent's timezone; its peak hours
 * highlighted), the totals, and its best and worst settled posts. Loaded after lib.js and
 * before app.js, which calls PuppetEngagement.card(). Post text goes in with textContent only.
 */
"use strict";

window.PuppetEngagement = (() => {
  const { h, fmtTime, num, stat, canvas2d } = window.PuppetLib;

  function pct(value) {
    return value === null || value === undefined ? "—" : `${num(value * 100, 2)}%`;
  }

  // Bars for hours 0–23: height is the mean value of that hour's settled posts.
  function drawHours(canvas, byHour, peakHours, useRate) {
    const height = 200;
    const { g, width } = canvas2d(canvas, height);
    if (!byHour.length) { g.fillText("no settled posts yet (posts settle 24 h after posting)", 12, height / 2); return; }
    const pad = { left: 52, right: 8, top: 10, bottom: 22 };
    const max = Math.max(...byHour.map((b) => b.value)) || 1;
    const slot = (width - pad.left - pad.right) / 24;
    const peaks = new Set(peakHours);
    const label = (v) => (useRate ? pct(v) : num(v, 1));
    g.fillText(label(max), 4, pad.top + 8);
    g.fillText(label(0), 4, height - pad.bottom);
    for (let hour = 0; hour < 24; hour += 1) {
      const x = pad.left + hour * slot;
      if (peaks.has(hour)) {
        g.fillStyle = "rgba(245, 158, 11, 0.15)";
        g.fillRect(x, pad.top, slot, height - pad.top - pad.bottom);
      }
      const bar = byHour.find((b) => b.hour === hour);
      if (bar) {
        const top = pad.top + (1 - bar.value / max) * (height - pad.top - pad.bottom);
        g.fillStyle = "#4f6bed";
        g.fillRect(x + 2, top, Math.max(1, slot - 4), height - pad.bottom - top);
      }
      if (hour % 3 === 0) {
        g.fillStyle = "#6b7280";
        g.fillText(String(hour).padStart(2, "0"), x, height - 6);
      }
    }
  }

  function short(text) {
    return text.length > 140 ? `${text.slice(0, 139)}…` : text;
  }

  function postRows(posts) {
    return posts.map((p) => h("tr", { class: "engagement-post" },
      h("td", { class: "small", text: fmtTime(p.posted_at) }),
      h("td", { class: "item-text", text: short(p.text || p.post_id), title: p.text || null }),
      h("td", { class: "num", text: String(p.likes) }), h("td", { class: "num", text: String(p.replies + p.quotes) }),
      h("td", { class: "num", text: String(p.reposts) }),
      h("td", { class: "num", text: p.impressions === null ? "—" : String(p.impressions) }),
      h("td", { class: "num", text: p.rate === null ? String(p.interactions) : pct(p.rate) })));
  }

  function table(title, id, rows) {
    const head = ["posted", "post", "likes", "replies", "reposts", "impressions", "rate"];
    return h("div", {}, h("h3", { text: title }),
      rows.length ? h("table", { class: "table", id },
        h("thead", {}, h("tr", {}, ...head.map((t) => h("th", { text: t })))), h("tbody", {}, rows))
        : h("p", { class: "muted", text: "No settled posts yet." }));
  }

  /* The card; ``deps``: { api, stale, every, failed } from app.js. */
  function card(agentId, deps) {
    const path = encodeURIComponent(agentId);
    const stats = h("div", { class: "stats", id: "engagement-stats" });
    const canvas = h("canvas", { class: "chart", id: "engagement-chart", height: 200 });
    const lists = h("div", {});
    const load = async () => {
      try {
        const e = await deps.api("GET", `/agents/${path}/engagement?top=5`);
        if (deps.stale()) return;
        const useRate = e.rate !== null;
        stats.replaceChildren(
          stat("engagement rate", pct(e.rate)), stat("interactions / post", num(e.interactions_per_post, 1)),
          stat("posts sampled", String(e.posts)), stat("settled", String(e.settled_posts)),
          stat(e.learned_peak_hours && e.learn_peak_hours ? "peak hours (learnt)" : "peak hours",
               e.peak_hours.length ? e.peak_hours.join(", ") : "any"));
        drawHours(canvas, e.by_hour, e.peak_hours, useRate);
        lists.replaceChildren(table("Best posts", "engagement-best", postRows(e.best)),
                              table("Worst posts", "engagement-worst", postRows(e.worst)));
      } catch (err) { deps.failed(err); }
    };
    load();
    deps.every(30000, load);
    return h("section", { class: "card", id: "engagement-card" },
      h("div", { class: "card-head" }, h("h2", { text: "Engagement" }),
        h("span", { class: "muted small", text: "rate by hour of day, best and worst posts" })),
      stats, canvas, lists);
  }

  return { card, drawHours };
})();
