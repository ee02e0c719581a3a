/* Puppet Engine dashboard: helpers shared by app.js (DOM building, formatting, toasts, the chart).
 *
 * Plain JavaScript, no dependencies. Untrusted text only ever goes through textContent.
 */
"use strict";

window.PuppetLib = (() => {
  // ------------------------------------------------------------------ DOM helpers

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") el.className = value;
      else if (name === "text") el.textContent = value;
      else if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
      else el.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  const $ = (sel, root = document) => root.querySelector(sel);

  function fmtTime(epoch) {
    if (!epoch) return "—";
    const d = new Date(epoch * 1000);
    const sameDay = d.toDateString() === new Date().toDateString();
    return sameDay ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" })
                   : d.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  }

  function ago(epoch) {
    if (!epoch) return "—";
    const diff = epoch - Date.now() / 1000;
    const abs = Math.abs(diff);
    const unit = abs < 60 ? [abs, "s"] : abs < 3600 ? [abs / 60, "m"] : abs < 86400 ? [abs / 3600, "h"] : [abs / 86400, "d"];
    const text = `${Math.round(unit[0])}${unit[1]}`;
    return diff >= 0 ? `in ${text}` : `${text} ago`;
  }

  function num(value, digits = 2) {
    if (value === null || value === undefined) return "—";
    return Number(value).toLocaleString([], { maximumFractionDigits: digits });
  }

  let toastTimer = null;
  function toast(message, kind = "info") {
    const el = $("#toast");
    el.textContent = message;
    el.className = `toast toast-${kind}`;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => el.classList.add("hidden"), 4000);
  }


  class ApiError extends Error {
    constructor(status, message, code) { super(message); this.status = status; this.code = code; }
  }

  function stat(label, value, cls) {
    return h("div", { class: "stat" }, h("span", { class: "stat-label", text: label }),
             h("span", { class: `stat-value ${cls || ""}`, text: value }));
  }

  // An agent's status (starting | running | stopped | failed); a failed start shows its reason on hover.
  function badge(agent) {
    const status = agent.status || (agent.running ? "running" : "stopped");
    const title = status === "failed" && agent.status_reason ? agent.status_reason : null;
    return h("span", { class: `badge badge-${status}`, text: status, title });
  }

  // A canvas sized for the screen's pixel ratio, cleared, with the charts' label font and colour.
  function canvas2d(canvas, height) {
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || 480;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    const g = canvas.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, width, height);
    g.font = "12px system-ui, sans-serif";
    g.fillStyle = "#6b7280";
    return { g, width };
  }

  function drawChart(canvas, series) {
    const useUsd = series.some((p) => p.value_usd !== null && p.value_usd > 0);
    const points = series.map((p) => ({ t: p.at, v: useUsd ? p.value_usd : p.value_sol })).filter((p) => p.v !== null);
    const height = 220;
    const { g, width } = canvas2d(canvas, height);
    if (points.length < 2) { g.fillText("no value history yet", 12, height / 2); return; }
    const pad = { left: 58, right: 12, top: 12, bottom: 26 };
    let min = Math.min(...points.map((p) => p.v));
    let max = Math.max(...points.map((p) => p.v));
    if (max - min < 1e-9) { min -= 1; max += 1; }
    const t0 = points[0].t;
    const t1 = points[points.length - 1].t;
    const x = (t) => pad.left + ((t - t0) / (t1 - t0 || 1)) * (width - pad.left - pad.right);
    const y = (v) => pad.top + (1 - (v - min) / (max - min)) * (height - pad.top - pad.bottom);
    g.strokeStyle = "#e5e7eb";
    g.lineWidth = 1;
    for (let i = 0; i <= 4; i += 1) {
      const v = min + ((max - min) * i) / 4;
      g.beginPath(); g.moveTo(pad.left, y(v)); g.lineTo(width - pad.right, y(v)); g.stroke();
      g.fillText((useUsd ? "$" : "") + num(v, 2), 4, y(v) + 4);
    }
    g.fillText(fmtTime(t0), pad.left, height - 6);
    const endLabel = fmtTime(t1);
    g.fillText(endLabel, width - pad.right - g.measureText(endLabel).width, height - 6);
    g.beginPath();
    points.forEach((p, i) => (i ? g.lineTo(x(p.t), y(p.v)) : g.moveTo(x(p.t), y(p.v))));
    g.strokeStyle = "#4f6bed";
    g.lineWidth = 2;
    g.stroke();
    g.lineTo(x(t1), height - pad.bottom);
    g.lineTo(x(t0), height - pad.bottom);
    g.closePath();
    g.fillStyle = "rgba(79, 107, 237, 0.12)";
    g.fill();
  }

  return { h, $, fmtTime, ago, num, toast, ApiError, stat, badge, drawChart, canvas2d };
})();
