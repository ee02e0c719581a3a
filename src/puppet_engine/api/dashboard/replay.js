/* Puppet Engine dashboard: the agent page's Replay card (POST /agents/{id}/replay, GET /replays/{id}).
 *
 * Replays a stretch of the agent's recorded life, exactly or with a changed agent file
 * (what-if), and shows then and now side by side. Untrusted text goes through textContent only.
 */
"use strict";

window.PuppetReplay = (() => {
  const { h, fmtTime, toast } = window.PuppetLib;
  const POLL_MS = 500;

  function localInput(epoch) {
    const d = new Date(epoch * 1000);
    return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
  }

  function said(side) {
    if (side.actions.length) {
      return side.actions.map((a) => {
        const p = a.payload || {};
        return `${a.kind}: ${p.parts ? p.parts.join(" / ") : p.text || (p.output ? `${p.amount} ${p.input} → ${p.output}` : "")}`;
      }).join("\n");
    }
    return `(nothing${side.verdict ? `: ${side.verdict}` : ""})`;
  }

  function table(report) {
    const rows = report.side_by_side.length ? report.side_by_side : report.differences;
    if (!rows.length) return h("p", { class: "muted", text: "Nothing was (or would now be) sent in this stretch." });
    return h("table", { class: "table replay-table" },
      h("thead", {}, h("tr", {}, h("th", { text: "time" }), h("th", { text: "event" }), h("th", { text: "then" }),
                       h("th", { text: "now" }))),
      h("tbody", {}, rows.map((e) => h("tr", { class: e.difference ? "replay-diff" : "" },
        h("td", { class: "small", text: fmtTime(e.at) }), h("td", { class: "small", text: e.type }),
        h("td", { class: "item-text", text: said(e.then) }),
        h("td", { class: "item-text", text: said(e.now) + (e.now.verdict && e.now.actions.length ? `\n${e.now.verdict}` : "") })))));
  }

  function summary(report) {
    const llm = report.llm;
    return h("p", { class: "small", id: "replay-summary",
      text: `${report.events} events, ${report.differences.length} decision(s) differ · LLM ${llm.mode}: ` +
            `${llm.recorded} recorded answers, ${llm.generated} written now` });
  }

  /** The card; ``ctx`` gives the page's ``api(method, path, body)``, ``failed(err)`` and ``stale()``. */
  function card(agentId, ctx) {
    const now = Date.now() / 1000;
    const from = h("input", { type: "datetime-local", value: localInput(now - 86400), "aria-label": "from" });
    const to = h("input", { type: "datetime-local", value: localInput(now), "aria-label": "to" });
    const llm = h("select", { "aria-label": "llm" }, h("option", { value: "recorded", text: "recorded answers" }),
                  h("option", { value: "sandbox", text: "sandbox (offline)" }));
    const file = h("textarea", { rows: 4, placeholder: "what-if: paste a changed agent file (JSON); empty = exact replay",
                                 "aria-label": "changed agent file", spellcheck: "false" });
    const progress = h("progress", { max: 1, value: 0, class: "hidden", id: "replay-progress" });
    const out = h("div", { id: "replay-result" });
    const run = h("button", { class: "btn", type: "submit" }, "Replay");

    async function poll(job) {
      while (job.state === "running") {
        progress.value = job.progress;
        await new Promise((r) => setTimeout(r, POLL_MS));
        if (ctx.stale()) return;
        job = await ctx.api("GET", `/replays/${encodeURIComponent(job.id)}`);
      }
      progress.classList.add("hidden");
      if (job.state === "failed") { out.replaceChildren(h("p", { class: "error", text: job.error })); return; }
      out.replaceChildren(summary(job.report), table(job.report));
    }

    async function submit(event) {
      event.preventDefault();
      // The inputs have minute precision: "to" means to the end of that minute.
      const body = { from: new Date(from.value).getTime() / 1000, to: new Date(to.value).getTime() / 1000 + 59.999 };
      if (file.value.trim()) {
        try { body.agent = JSON.parse(file.value); } catch (err) { toast(`agent file: ${err.message}`, "error"); return; }
        body.llm = llm.value;
      }
      run.disabled = true;
      out.replaceChildren();
      progress.classList.remove("hidden");
      try { await poll(await ctx.api("POST", `/agents/${encodeURIComponent(agentId)}/replay`, body)); }
      catch (err) { progress.classList.add("hidden"); ctx.failed(err); }
      finally { run.disabled = false; }
    }

    return h("section", { class: "card", id: "replay-card" },
      h("div", { class: "card-head" }, h("h2", { text: "Replay" }),
        h("span", { class: "muted small", text: "re-run a stretch; nothing is sent" })),
      h("form", { class: "inline-form", onsubmit: submit }, from, to, llm, run), file, progress, out);
  }

  return { card };
})();
