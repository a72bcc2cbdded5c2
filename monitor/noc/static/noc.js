// NOC page: polls /api/noc/state and redraws; acknowledge and silence through the API.
// No framework and nothing loaded from outside: it must work on an isolated NOC network.
"use strict";

const T = {
  fr: {
    outbox: "Notifications en attente : {0}, abandonnées : {1}",
    title: "Réseau national de santé", region: "Région", kind: "Type", state: "État", all: "Toutes",
    operator: "Opérateur", active_alerts: "Alertes actives", severity: "Gravité", alert: "Alerte",
    facility: "Établissement", since: "Depuis", value: "Valeur", status: "Statut", no_alerts: "Aucune alerte active.",
    stale: "Données anciennes : le moniteur ne répond pas", silence_title: "Mettre en silence", scope: "Portée",
    scope_fr: "Cette alerte sur cet établissement", scope_f: "Tout l'établissement", scope_r: "Toute la région",
    duration: "Durée", reason: "Motif", cancel: "Annuler", confirm: "Confirmer", ack: "Acquitter",
    silence: "Silence", acked_by: "acquittée par", silenced: "en silence", suppressed_by: "suspendue (site {0} coupé)",
    firing: "active", pending: "en attente", need_operator: "Indiquez votre nom (Opérateur) d'abord.",
    done_ack: "Alerte acquittée.", done_silence: "Silence créé.", up: "en service", down: "coupé",
    unreachable: "injoignable", unknown: "inconnu", "admin-down": "désactivé",
    st_problem: "Problèmes", st_up: "En service", st_down: "Coupé", st_unreachable: "Injoignable",
    st_alerting: "En alerte", st_suppressed: "Suspendu (site régional)",
    n_up: "en service", n_down: "coupés", n_unreach: "injoignables", n_alerts: "alertes", runbook: "procédure",
    critical: "critique", warning: "avertissement", info: "info",
    aggregation_site: "Site d'agrégation", university_hospital: "CHU", regional_hospital: "Hôpital régional",
    district_hospital: "Hôpital de circonscription", specialised_centre: "Centre spécialisé",
    primary_care_centre: "Centre de santé de base", administration: "Administration",
  },
  ar: {
    outbox: "إشعارات في الانتظار: {0}، متروكة: {1}",
    title: "الشبكة الوطنية للصحة", region: "الجهة", kind: "النوع", state: "الحالة", all: "الكل",
    operator: "المشغّل", active_alerts: "التنبيهات النشطة", severity: "الخطورة", alert: "التنبيه",
    facility: "المؤسسة", since: "منذ", value: "القيمة", status: "الوضع", no_alerts: "لا توجد تنبيهات نشطة.",
    stale: "بيانات قديمة: نظام المراقبة لا يستجيب", silence_title: "كتم التنبيه", scope: "النطاق",
    scope_fr: "هذا التنبيه لهذه المؤسسة", scope_f: "المؤسسة بأكملها", scope_r: "الجهة بأكملها",
    duration: "المدة", reason: "السبب", cancel: "إلغاء", confirm: "تأكيد", ack: "إقرار",
    silence: "كتم", acked_by: "أقرّه", silenced: "مكتوم", suppressed_by: "معلّق (نقطة التجميع {0} منقطعة)",
    firing: "نشط", pending: "قيد الانتظار", need_operator: "أدخل اسمك (المشغّل) أولاً.",
    done_ack: "تم الإقرار بالتنبيه.", done_silence: "تم إنشاء الكتم.", up: "يعمل", down: "منقطع",
    unreachable: "غير قابل للوصول", unknown: "غير معروف", "admin-down": "معطّل",
    st_problem: "مشاكل", st_up: "يعمل", st_down: "منقطع", st_unreachable: "غير قابل للوصول",
    st_alerting: "في حالة تنبيه", st_suppressed: "معلّق (نقطة تجميع)",
    n_up: "تعمل", n_down: "منقطعة", n_unreach: "غير قابلة للوصول", n_alerts: "تنبيهات", runbook: "الإجراء",
    critical: "حرج", warning: "تحذير", info: "معلومة",
    aggregation_site: "نقطة تجميع", university_hospital: "مستشفى جامعي", regional_hospital: "مستشفى جهوي",
    district_hospital: "مستشفى محلي", specialised_centre: "مركز مختص",
    primary_care_centre: "مركز صحة أساسية", administration: "إدارة",
  },
  en: {
    outbox: "Notifications waiting: {0}, given up: {1}",
    title: "National health network", region: "Region", kind: "Kind", state: "State", all: "All",
    operator: "Operator", active_alerts: "Active alerts", severity: "Severity", alert: "Alert",
    facility: "Facility", since: "Since", value: "Value", status: "Status", no_alerts: "No active alerts.",
    stale: "Stale data: the monitor is not answering", silence_title: "Silence", scope: "Scope",
    scope_fr: "This alert on this facility", scope_f: "The whole facility", scope_r: "The whole region",
    duration: "Duration", reason: "Reason", cancel: "Cancel", confirm: "Confirm", ack: "Acknowledge",
    silence: "Silence", acked_by: "acknowledged by", silenced: "silenced", suppressed_by: "suppressed (site {0} down)",
    firing: "firing", pending: "pending", need_operator: "Enter your name (Operator) first.",
    done_ack: "Alert acknowledged.", done_silence: "Silence created.", up: "up", down: "down",
    unreachable: "unreachable", unknown: "unknown", "admin-down": "disabled",
    st_problem: "Problems", st_up: "Up", st_down: "Down", st_unreachable: "Unreachable",
    st_alerting: "Alerting", st_suppressed: "Suppressed (regional site)",
    n_up: "up", n_down: "down", n_unreach: "unreachable", n_alerts: "alerts", runbook: "runbook",
    critical: "critical", warning: "warning", info: "info",
    aggregation_site: "Aggregation site", university_hospital: "University hospital", regional_hospital: "Regional hospital",
    district_hospital: "District hospital", specialised_centre: "Specialised centre",
    primary_care_centre: "Primary-care centre", administration: "Administration",
  },
};

const params = new URLSearchParams(location.search);
let lang = params.get("lang") || localStorage.getItem("hdc-noc-lang") || "fr";
if (!T[lang]) lang = "fr";
let data = null;
let dialogAlert = null;
const refreshMs = parseInt(document.body.dataset.refreshMs, 10) || 2000;
const $ = (sel) => document.querySelector(sel);
const t = (key, ...args) => (T[lang][key] ?? T.en[key] ?? key).replace(/\{(\d)\}/g, (_, i) => args[i]);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
// the operator's circuit (for the ticket) and whom to call at the facility, under its name
const reach = (a) => {
  const circuit = [a.provider, a.circuit_id].filter(Boolean).join(" ");
  const call = a.contact_phone ? `<a href="tel:${esc(a.contact_phone)}">${esc(a.contact_phone)}</a>` : "";
  const parts = [circuit ? `<span class="circuit">${esc(circuit)}</span>` : "",
    call ? `<span class="contact">${esc(a.contact_name || "")} ${call}</span>` : ""].filter(Boolean);
  return parts.length ? `<div class="reach" dir="ltr">${parts.join(" · ")}</div>` : "";
};
const fname = (o) => (lang === "ar" ? o.name_ar || o.facility_name_ar : o.name || o.facility_name);
const time = (ts) => (ts ? new Date(ts * 1000).toLocaleString(lang === "ar" ? "ar-TN" : lang === "fr" ? "fr-FR" : "en-GB",
  { day: "2-digit", month: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" }) : "—");

function setLang(next) {
  lang = T[next] ? next : "fr";
  localStorage.setItem("hdc-noc-lang", lang);
  document.documentElement.lang = lang;
  document.documentElement.dir = lang === "ar" ? "rtl" : "ltr";
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  document.querySelectorAll("[data-lang]").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.lang === lang)));
  fillFilters();
  render();
}

function fillFilters() {
  if (!data) return;
  const keep = (sel, opts) => {
    const el = $(sel);
    const v = el.value;
    el.innerHTML = `<option value="">${esc(t("all"))}</option>` + opts.map(([k, label]) => `<option value="${esc(k)}">${esc(label)}</option>`).join("");
    el.value = v;
  };
  keep("#f-region", data.regions.map((r) => [r.id, lang === "ar" ? r.name_ar : r.name]));
  const kinds = [...new Set(data.facilities.map((f) => f.kind))];
  keep("#f-kind", kinds.map((k) => [k, t(k)]));
}

function facilityClass(f) {
  const open = f.alerts.filter((a) => a.state !== "pending");
  return {
    alerting: open.some((a) => a.state === "firing"),
    suppressed: open.some((a) => a.state === "suppressed"),
  };
}

function visible(f) {
  const r = $("#f-region").value, k = $("#f-kind").value, s = $("#f-state").value;
  if (r && f.region !== r) return false;
  if (k && f.kind !== k) return false;
  const c = facilityClass(f);
  switch (s) {
    case "": return true;
    case "problem": return f.state !== "up" || c.alerting || c.suppressed;
    case "alerting": return c.alerting;
    case "suppressed": return c.suppressed;
    default: return f.state === s;
  }
}

function render() {
  if (!data) return;
  const facs = data.facilities.filter(visible);
  const shown = new Set(facs.map((f) => f.id));
  // summary over what the filters show
  const n = (st) => facs.filter((f) => f.state === st).length;
  const alerts = data.alerts.filter((a) => a.state !== "pending" && shown.has(a.facility));
  $("#summary").innerHTML =
    `<span class="n-up">${n("up")} ${esc(t("n_up"))}</span><span class="n-down">${n("down")} ${esc(t("n_down"))}</span>` +
    `<span class="n-unreach">${n("unreachable")} ${esc(t("n_unreach"))}</span><span class="n-alerts">${alerts.length} ${esc(t("n_alerts"))}</span>`;
  // alerts table: critical first, then newest
  const rank = { critical: 0, warning: 1, info: 2 };
  alerts.sort((a, b) => (rank[a.severity] - rank[b.severity]) || (b.active_since - a.active_since));
  $("#alerts tbody").innerHTML = alerts.map((a) => {
    let status = t(a.state);
    if (a.state === "suppressed") status = t("suppressed_by", a.suppressed_by);
    if (a.silenced_by || silenced(a)) status += ` · ${t("silenced")}`;
    if (a.ack_by) status += ` · ${t("acked_by")} ${a.ack_by}`;
    const cls = [a.severity, a.state, a.ack_by ? "acked" : ""].join(" ");
    return `<tr class="${cls}" data-alert-id="${a.id}" data-facility="${esc(a.facility)}" data-rule="${esc(a.rule)}">` +
      `<td class="sev ${a.severity}">${esc(t(a.severity))}</td>` +
      `<td>${esc(a.title[lang] || a.rule)} <a href="${esc(a.runbook)}" target="_blank" rel="noopener">${esc(t("runbook"))}</a></td>` +
      `<td>${esc(fname(a))}${a.children ? ` (+${a.children})` : ""}${reach(a)}</td>` +
      `<td>${esc(regionName(a.region))}</td><td>${esc(time(a.active_since))}</td>` +
      `<td dir="auto">${esc(a.value_text)}</td><td class="status">${esc(status)}</td>` +
      `<td>${a.ack_by ? "" : `<button type="button" class="ack">${esc(t("ack"))}</button>`} ` +
      `<button type="button" class="silence">${esc(t("silence"))}</button></td></tr>`;
  }).join("");
  $("#no-alerts").hidden = alerts.length > 0;
  // regions and tiles
  // catalog regions first, then any region a facility names that the catalog does not list
  const known = new Set(data.regions.map((r) => r.id));
  const extra = [...new Set(facs.map((f) => f.region).filter((id) => !known.has(id)))].map((id) => ({ id, name: id, name_ar: id }));
  const regions = [...data.regions, ...extra].filter((r) => facs.some((f) => f.region === r.id));
  $("#regions").innerHTML = regions.map((r) => {
    const rf = facs.filter((f) => f.region === r.id);
    rf.sort((a, b) => (a.kind === "aggregation_site" ? -1 : 0) - (b.kind === "aggregation_site" ? -1 : 0) || fname(a).localeCompare(fname(b)));
    const bad = rf.filter((f) => f.state !== "up").length;
    return `<section class="region" data-region="${esc(r.id)}"><h2><span>${esc(regionName(r.id))}</span>` +
      `<span class="counts">${rf.length - bad}/${rf.length} ${esc(t("n_up"))}</span></h2><div class="tiles">` +
      rf.map(tile).join("") + `</div></section>`;
  }).join("");
}

function silenced(a) {
  const now = Date.now() / 1000;
  return data.silences.some((s) => s.starts_at <= now && now < s.ends_at &&
    (!s.facility || s.facility === a.facility) && (!s.region || s.region === a.region) && (!s.rule || s.rule === a.rule));
}

function regionName(id) {
  const r = data.regions.find((x) => x.id === id);
  return r ? (lang === "ar" ? r.name_ar : r.name) : id;
}

function tile(f) {
  const c = facilityClass(f);
  const u = f.utilisation == null ? null : Math.round(f.utilisation * 100);
  const cls = ["tile", c.alerting ? "alerting" : "", c.suppressed ? "suppressed" : ""].join(" ");
  const bar = u == null ? "" : `<div class="bar"><i class="${u >= 95 ? "full" : u >= 80 ? "hot" : ""}" style="width:${Math.min(u, 100)}%"></i></div>`;
  const tip = `${fname(f)} — ${t(f.kind)} — ${f.id}${f.error ? " — " + f.error : ""}`;
  return `<div class="${cls}" data-facility="${esc(f.id)}" data-kind="${esc(f.kind)}" data-state="${esc(f.state)}" title="${esc(tip)}">` +
    `<div class="name">${esc(fname(f))}</div><div class="meta"><span class="st">${esc(t(f.state))}</span>` +
    `<span class="util">${u == null ? "—" : u + " %"}</span></div>${bar}</div>`;
}

async function refresh() {
  try {
    const r = await fetch("/api/noc/state", { cache: "no-cache" });  // revalidates with If-None-Match
    if (r.status === 304 && data) { $("#stale").hidden = true; return; }
    if (!r.ok) throw new Error(r.status);
    const first = !data;
    data = await r.json();
    $("#stale").hidden = true;
    const ob = data.outbox || {};
    $("#outbox").textContent = ob.pending || ob.dead ? t("outbox", ob.pending || 0, ob.dead || 0) : "";
    if (first) fillFilters();
    if (data.user) {  // signed in (HTTP Basic): actions are recorded under that name
      $("#operator").value = data.user;
      $("#operator").readOnly = true;
    }
    render();
  } catch (e) {
    $("#stale").hidden = false;
  }
}

function say(msg) { $("#message").textContent = msg; }

function operator() {
  const name = $("#operator").value.trim();
  if (!name) { say(t("need_operator")); $("#operator").focus(); }
  return name;
}

async function post(url, body, method = "POST") {
  const r = await fetch(url, { method, headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  if (!r.ok) {
    const detail = await r.json().catch(() => ({}));
    throw new Error(typeof detail.detail === "string" ? detail.detail : JSON.stringify(detail.detail || r.status));
  }
  return r.json();
}

document.addEventListener("click", async (ev) => {
  const btn = ev.target.closest("button");
  if (!btn) return;
  if (btn.dataset.lang) { setLang(btn.dataset.lang); return; }
  const row = btn.closest("tr[data-alert-id]");
  if (!row) return;
  const alert = data.alerts.find((a) => String(a.id) === row.dataset.alertId);
  if (!alert) return;
  if (btn.classList.contains("ack")) {
    const by = operator();
    if (!by) return;
    try { await post(`/api/alerts/${alert.id}/ack`, { by }); say(t("done_ack")); } catch (e) { say(e.message); }
    refresh();
  } else if (btn.classList.contains("silence")) {
    if (!operator()) return;
    dialogAlert = alert;
    $("#silence-target").textContent = `${alert.title[lang] || alert.rule} — ${fname(alert)} (${regionName(alert.region)})`;
    $("#silence-form").reset();
    $("#silence-dialog").showModal();
  }
});

$("#silence-dialog").addEventListener("close", async () => {
  if ($("#silence-dialog").returnValue !== "ok" || !dialogAlert) return;
  const f = $("#silence-form");
  const scope = f.scope.value;
  const body = {
    reason: f.reason.value, created_by: operator(), duration_s: parseInt(f.duration.value, 10),
    facility: scope === "region" ? null : dialogAlert.facility,
    region: scope === "region" ? dialogAlert.region : null,
    rule: scope === "facility-rule" ? dialogAlert.rule : null,
  };
  try { await post("/api/silences", body); say(t("done_silence")); } catch (e) { say(e.message); }
  dialogAlert = null;
  refresh();
});

["#f-region", "#f-kind", "#f-state"].forEach((s) => $(s).addEventListener("change", render));
$("#operator").value = localStorage.getItem("hdc-noc-operator") || "";
$("#operator").addEventListener("change", () => localStorage.setItem("hdc-noc-operator", $("#operator").value.trim()));
setInterval(() => { $("#clock").textContent = new Date().toLocaleTimeString(lang === "ar" ? "ar-TN" : "fr-FR"); }, 1000);
setLang(lang);
refresh();
setInterval(refresh, refreshMs);
