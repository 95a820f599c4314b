// The Nightjar console: reads the JSON API with the session cookie and renders every value
// with textContent (never as HTML), so an alert's arguments are shown as the text they are.
"use strict";

let csrf = null;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === "class") e.className = v;
    // CSSOM, not a style attribute: the Content-Security-Policy allows no inline styles.
    else if (k === "style") for (const decl of v.split(";")) {
      const [prop, val] = decl.split(":");
      if (prop && val) e.style.setProperty(prop.trim(), val.trim());
    }
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

async function api(path) {
  const r = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (r.status === 401) {
    showSignIn();
    throw new Error("signed out");
  }
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error || ("HTTP " + r.status));
  return body;
}

function q(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") u.set(k, v);
  const s = u.toString();
  return s ? "?" + s : "";
}

function showSignIn() {
  document.getElementById("top").hidden = true;
  document.getElementById("app").hidden = true;
  document.getElementById("signin-page").hidden = false;
  const refused = new URLSearchParams(location.search).get("signin") === "refused";
  document.getElementById("signin-error").hidden = !refused;
  document.getElementById("token").focus();
}

function statusBadge(s) {
  return el("span", { class: "status status-" + s }, s);
}

function sev(s) {
  return el("span", { class: "sev sev-" + s }, s);
}

function card(title, ...children) {
  return el("section", { class: "card" }, title ? el("h2", {}, title) : null, ...children);
}

function table(headers, rows) {
  return el("table", {}, el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))), el("tbody", {}, rows));
}

function bars(items, label, value) {
  const max = Math.max(1, ...items.map(value));
  return el("div", {}, items.map((it) =>
    el("div", { class: "bar" },
      el("span", { class: "label", title: label(it) }, label(it)),
      el("span", { class: "fill", style: "width:" + Math.round((value(it) / max) * 300) + "px" }),
      el("span", { class: "muted" }, value(it)))));
}

const pages = {
  async hosts(app) {
    const [hosts, stats] = await Promise.all([api("/v1/hosts?limit=1000"), api("/v1/stats")]);
    const rows = hosts.hosts.map((h) => {
      const broken = h.status !== "ok" && h.status !== "pending";
      return el("tr", { class: "clickable" + (broken ? " broken" : ""), "data-host": h.host_id,
        onclick: () => { location.hash = "#/alerts" + q({ host: h.host_id }); } },
        el("td", {}, h.host_id), el("td", {}, h.hostname), el("td", {}, statusBadge(h.status)),
        el("td", {}, h.last_seen || "never"), el("td", {}, h.chain_head_seq),
        el("td", {}, h.events_dropped ?? "-"), el("td", {}, h.policy_version ?? "-"),
        el("td", {}, h.os), el("td", { class: "muted" }, (h.key_id || "").slice(0, 16)));
    });
    app.append(
      el("div", { class: "grid" },
        card("Hosts by status", bars(stats.hosts_by_status, (s) => s.status, (s) => s.count)),
        card("Alerts per day and severity", dayChart(stats.alerts_per_day)),
        card("Top rules", bars(stats.top_rules, (r) => r.key, (r) => r.count))),
      card("Fleet (" + hosts.hosts.length + " hosts)",
        table(["Host", "Hostname", "Status", "Last seen", "Chain head", "Events dropped", "Policy", "OS", "Key"], rows)));
  },

  async alerts(app, params) {
    const form = el("form", { class: "filters", id: "alert-filters" },
      ["host", "rule", "severity", "since", "q"].map((name) => {
        const input = name === "severity"
          ? el("select", { name }, ["", "low", "medium", "high", "critical"].map((s) => el("option", { value: s }, s || "any")))
          : el("input", { name, placeholder: { host: "host id", rule: "rule id", since: "24h or RFC 3339", q: "text in the alert" }[name] });
        input.value = params.get(name) || "";
        return el("label", {}, { q: "text", since: "since" }[name] || name, input);
      }),
      el("button", { type: "submit" }, "Filter"));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const p = {};
      for (const [k, v] of new FormData(form)) if (v) p[k] = v;
      location.hash = "#/alerts" + q(p);
    });
    const filter = {};
    for (const k of ["host", "rule", "severity", "since", "q"]) if (params.get(k)) filter[k] = params.get(k);
    const [page, byRule, byHost] = await Promise.all([
      api("/v1/alerts" + q({ ...filter, cursor: params.get("cursor"), limit: 50 })),
      api("/v1/alerts/counts" + q({ ...filter, by: "rule_id", limit: 10 })),
      api("/v1/alerts/counts" + q({ ...filter, by: "host_id", limit: 10 })),
    ]);
    const rows = page.alerts.map((a) => el("tr", { class: "clickable alert-row",
      onclick: () => { location.hash = "#/alert/" + encodeURIComponent(a.host_id) + "/" + a.seq + q({ epoch: a.epoch }); } },
      el("td", {}, a.alert_time), el("td", {}, a.host_id), el("td", {}, a.seq), el("td", {}, sev(a.severity)),
      el("td", {}, a.rule_name), el("td", { class: "muted" }, a.rule_id)));
    const pager = el("div", { class: "pager" },
      params.get("cursor") ? el("button", { class: "secondary", type: "button", onclick: () => history.back() }, "Newer") : null,
      page.next ? el("button", { type: "button", id: "older",
        onclick: () => { location.hash = "#/alerts" + q({ ...filter, cursor: page.next }); } }, "Older") : null,
      el("span", { class: "muted" }, page.alerts.length + " shown, newest first"));
    app.append(
      card("Alerts", form),
      el("div", { class: "grid" },
        card("Alerts per rule", bars(byRule.counts, (c) => c.key, (c) => c.count)),
        card("Alerts per host", bars(byHost.counts, (c) => c.key, (c) => c.count))),
      card(null, table(["Time", "Host", "Seq", "Severity", "Rule", "Rule id"], rows), pager));
  },

  async alert(app, params, hostId, seq) {
    const a = await api("/v1/alerts/" + encodeURIComponent(hostId) + "/" + seq + q({ epoch: params.get("epoch") }));
    const p = a.payload || {};
    const proc = p.process || {};
    const rule = ((p.kibana || {}).alert || {}).rule || {};
    const v = a.verification || {};
    const procList = (title, pr) => card(title,
      el("dl", {},
        ["pid", "name", "executable", "command_line", "working_directory"].flatMap((k) =>
          pr[k] === undefined ? [] : [el("dt", {}, k), el("dd", {}, pr[k])]),
        pr.args ? [el("dt", {}, "args"), el("dd", {}, el("ul", { class: "args" }, pr.args.map((x) => el("li", {}, x))))] : [],
        pr.code_signature ? [el("dt", {}, "code signature"), el("dd", {}, JSON.stringify(pr.code_signature))] : []));
    const ancestry = [];
    if (proc.parent) ancestry.push(procList("Parent", proc.parent));
    const eff = (proc.Ext || {}).effective_parent;
    if (eff) ancestry.push(procList("Effective parent (responsible process)", eff));
    const threats = (rule.threat || []).map((t) => el("li", {},
      (t.tactic ? t.tactic.id + " " + t.tactic.name : ""),
      (t.technique || []).map((te) => el("div", { class: "muted" },
        te.id + " " + te.name, (te.subtechnique || []).map((st) => " / " + st.id + " " + st.name)))));
    const nb = a.neighbours || {};
    const link = (s, label) => s === null || s === undefined ? el("span", { class: "muted" }, label + ": none")
      : el("a", { href: "#/alert/" + encodeURIComponent(hostId) + "/" + s + q({ epoch: a.epoch }) }, label + ": seq " + s);
    app.append(
      card("Alert " + a.uuid,
        el("dl", {},
          el("dt", {}, "rule"), el("dd", {}, rule.name || a.rule_name, " ", el("span", { class: "muted" }, a.rule_id)),
          el("dt", {}, "severity"), el("dd", {}, sev(a.severity)),
          el("dt", {}, "time"), el("dd", {}, a.alert_time),
          el("dt", {}, "host"), el("dd", {}, a.host_id, " (epoch " + a.epoch + ", seq " + a.seq + ")"),
          el("dt", {}, "user"), el("dd", {}, JSON.stringify(p.user || {})),
          el("dt", {}, "reason"), el("dd", {}, ((p.kibana || {}).alert || {}).reason || ""),
          el("dt", {}, "MITRE ATT&CK"), el("dd", {}, el("ul", {}, threats)),
          el("dt", {}, "verification"), el("dd", { id: "verification" },
            v.verified ? el("span", { class: "verified" }, "verified: signature ok, " + v.chain + " (key " + v.key_id + ")")
              : el("span", { class: "unverified" }, "NOT verified: " + (v.reason || "unknown"))),
          el("dt", {}, "chain"), el("dd", {}, link(nb.previous, "previous"), " · ", link(nb.next, "next")))),
      procList("Process", proc),
      ...ancestry,
      card("Signed envelope (as received)", el("pre", { id: "envelope" }, a.envelope)),
      card("Payload", el("pre", {}, JSON.stringify(p, null, 2))));
  },

  async integrity(app, params) {
    const ev = await api("/v1/integrity" + q({ host: params.get("host"), before: params.get("before"), limit: 200 }));
    const rows = ev.events.map((e) => el("tr", {},
      el("td", {}, e.at), el("td", {}, e.host_id), el("td", {}, statusBadge(e.kind)),
      el("td", {}, e.seq_from === null ? "-" : (e.seq_from === e.seq_to ? e.seq_from : e.seq_from + "–" + e.seq_to)),
      el("td", {}, e.detail), el("td", {}, e.closed_at ? "closed " + e.closed_at : "")));
    app.append(card("Integrity events", table(["At", "Host", "Kind", "Seqs", "Detail", ""], rows),
      ev.next ? el("div", { class: "pager" }, el("button", { type: "button",
        onclick: () => { location.hash = "#/integrity" + q({ host: params.get("host"), before: ev.next }); } }, "Older")) : null));
  },

  async policies(app) {
    const p = await api("/v1/policies");
    const rows = p.policies.map((x) => el("tr", {}, el("td", {}, x.version), el("td", {}, x.published_at),
      el("td", {}, x.rules), el("td", {}, x.exceptions)));
    app.append(card("Policy versions", rows.length ? table(["Version", "Published", "Rules", "Exception lists"], rows)
      : el("p", { class: "muted" }, "No policy published yet.")));
  },
};

function dayChart(days) {
  const byDay = new Map();
  for (const d of days) {
    if (!byDay.has(d.day)) byDay.set(d.day, {});
    byDay.get(d.day)[d.severity] = d.count;
  }
  const totals = [...byDay.values()].map((s) => Object.values(s).reduce((a, b) => a + b, 0));
  const max = Math.max(1, ...totals);
  const chart = el("div", { class: "chart" }, [...byDay.entries()].map(([day, s]) =>
    el("div", { class: "day", title: day + ": " + JSON.stringify(s) },
      ["low", "medium", "high", "critical"].map((k) => s[k]
        ? el("div", { class: "seg-" + k, style: "height:" + Math.max(1, Math.round((s[k] / max) * 130)) + "px" }) : null))));
  return el("div", {}, chart, el("div", { class: "legend" },
    ["low", "medium", "high", "critical"].map((k) => el("span", { class: "sev sev-" + k }, "■ " + k))),
    byDay.size ? null : el("p", { class: "muted" }, "No alerts yet."));
}

async function route() {
  const app = document.getElementById("app");
  const [path, query] = (location.hash.slice(1) || "/hosts").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const name = parts[0] || "hosts";
  for (const a of document.querySelectorAll("header nav a")) a.classList.toggle("active", a.dataset.page === name || (name === "alert" && a.dataset.page === "alerts"));
  app.replaceChildren(el("p", { class: "muted" }, "Loading…"));
  const fresh = el("div", {});
  try {
    await (pages[name] || pages.hosts)(fresh, new URLSearchParams(query || ""), ...parts.slice(1));
    app.replaceChildren(...fresh.childNodes);
  } catch (e) {
    if (e.message !== "signed out") app.replaceChildren(card("Error", el("p", { class: "error" }, e.message)));
  }
}

async function start() {
  document.getElementById("signout").addEventListener("click", async () => {
    await fetch("/console/signout", { method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": csrf || "" } });
    csrf = null;
    location.replace("/console/");
  });
  let session;
  try {
    const r = await fetch("/v1/session", { credentials: "same-origin" });
    if (!r.ok) return showSignIn();
    session = await r.json();
    if (!session.auth) return showSignIn();
  } catch (e) {
    return showSignIn();
  }
  csrf = session.csrf;
  document.getElementById("signin-page").hidden = true;
  document.getElementById("top").hidden = false;
  document.getElementById("app").hidden = false;
  document.getElementById("session").textContent = session.expires_at ? "session until " + session.expires_at : "";
  if (location.search) history.replaceState(null, "", "/console/" + location.hash);
  window.addEventListener("hashchange", route);
  route();
}

document.addEventListener("DOMContentLoaded", start);
