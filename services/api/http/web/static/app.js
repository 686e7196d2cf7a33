// AutoDM's only script: live regions that refresh themselves (on the status stream, or by
// polling), and the template preview.
// Pages work without it (forms post, links navigate); it only adds live updates.
"use strict";

// A live region: an element whose `data-poll` URL answers its fresh inner HTML.
// `cause` ("stream", "waiting" or "poll") goes along in a header: the server's logs (and the browser
// tests) tell a refresh the status stream asked for from a poll.
async function refresh(el, cause) {
  const answer = await fetch(el.getAttribute("data-poll"), {
    credentials: "same-origin",
    headers: { "X-Requested-With": "fetch", "X-AutoDM-Live": cause },
  });
  if (answer.redirected || !answer.ok) { return false; }
  const html = await answer.text();
  // Replace only on change: keyboard focus and open <details> survive quiet ticks.
  if (html.trim() !== (el.dataset.lastHtml || "").trim()) {
    el.innerHTML = html;
    el.dataset.lastHtml = html;
    el.dataset.refreshedBy = cause;  // what brought the region's current content
    el.dispatchEvent(new CustomEvent("autodm:updated", { bubbles: true }));
  }
  return true;
}

// Polling: the regions without a stream (the public thanks page, a replay's progress), the
// fallback when the stream cannot be opened, and the overview's slow check of what no DM
// status event announces (circuits, tokens, dead letters). Returns how to stop it.
function startPolling(el, every) {
  every = every || Number(el.getAttribute("data-poll-interval") || 2000);
  let timer = null;
  async function tick() {
    if (document.hidden) { timer = setTimeout(tick, every); return; }
    let wait = every;
    try {
      if (!(await refresh(el, "poll"))) { wait = every * 2; }
      else if (el.querySelector("[data-final]")) { return; }
    } catch (err) {
      // network hiccup: try again later
    }
    timer = setTimeout(tick, wait);
  }
  timer = setTimeout(tick, every);
  return () => clearTimeout(timer);
}

// The signed-in pages' live status: one EventSource on GET /app/events (`data-stream` is its
// URL, with the cursor the page was read at, so nothing between the page and the stream is
// missed). A `dm.status` event refreshes the regions it concerns (`data-stream-lead`: only
// that lead's), at most once per `data-stream-every` ms. EventSource reconnects by itself
// with Last-Event-ID; only when it gives up (an error answer) do the regions poll instead.
// Why a queued or sending DM waits (paused, paced, throttled) is no status event: while a
// region shows one (`data-waiting`), it is rechecked once the stream was quiet for the
// region's polling interval.
function startStream(url, regions) {
  const pending = new Map();
  const waiting = new Map();
  const fallback = new Map();
  const root = document.documentElement;
  let polling = false;
  async function update(el, cause) {
    try { await refresh(el, cause); } catch (err) { /* the next event or check tries again */ }
    recheck(el);
  }
  function schedule(el) {
    clearTimeout(waiting.get(el));  // the stream is about to refresh it: no recheck now
    waiting.delete(el);
    if (pending.has(el)) { return; }
    const every = Number(el.getAttribute("data-stream-every") || 250);
    // Out of `pending` before the fetch: an event during the fetch schedules another one.
    pending.set(el, setTimeout(() => { pending.delete(el); update(el, "stream"); }, every));
  }
  function recheck(el) {
    if (polling || waiting.has(el) || !el.querySelector("[data-waiting]")) { return; }
    const every = Number(el.getAttribute("data-poll-interval") || 2000);
    waiting.set(el, setTimeout(() => {
      waiting.delete(el);
      if (document.hidden) { recheck(el); } else { update(el, "waiting"); }
    }, every));
  }
  function slowPolls() {
    regions.forEach((el) => {
      const every = Number(el.getAttribute("data-stream-poll-interval") || 0);
      if (every && !fallback.has(el)) { fallback.set(el, startPolling(el, every)); }
    });
  }
  let source;
  try { source = new EventSource(url); } catch (err) { source = null; }
  if (!source) { regions.forEach((el) => startPolling(el)); root.dataset.live = "poll"; return; }
  source.addEventListener("open", () => { root.dataset.live = "stream"; });
  source.addEventListener("dm.status", (message) => {
    let change = {};
    try { change = JSON.parse(message.data); } catch (err) { return; }
    regions.forEach((el) => {
      const lead = el.getAttribute("data-stream-lead");
      if (!lead || lead === change.lead_id) { schedule(el); }
    });
  });
  source.addEventListener("error", () => {
    if (source.readyState !== EventSource.CLOSED) { return; }  // reconnecting by itself
    root.dataset.live = "poll";
    polling = true;
    waiting.forEach((timer) => clearTimeout(timer));
    waiting.clear();
    fallback.forEach((stop) => stop());
    fallback.clear();
    regions.forEach((el) => fallback.set(el, startPolling(el)));
  });
  slowPolls();
  regions.forEach(recheck);
}

// The same rule as shared/message_text.py: one pass (a lead's own text is never expanded
// again), and an unknown {placeholder} is named before the form is saved.
function startPreview(source) {
  const target = document.getElementById(source.getAttribute("data-preview"));
  const check = document.getElementById(source.getAttribute("data-check") || "");
  const known = (source.getAttribute("data-placeholders") || "name message").split(" ");
  const sample = { name: source.getAttribute("data-sample-name") || "Jane", message: source.getAttribute("data-sample-message") || "" };
  const pattern = /\{([A-Za-z_][A-Za-z0-9_]*)\}/g;
  function render() {
    const template = source.value || "Hi {name}!";
    target.textContent = template.replace(pattern, (all, name) => (known.includes(name) ? (sample[name] || "") : all));
    if (!check) { return; }
    const unknown = [...new Set([...template.matchAll(pattern)].filter((m) => !known.includes(m[1])).map((m) => m[0]))];
    check.hidden = unknown.length === 0;
    check.textContent = unknown.length ? "Unknown placeholder " + unknown.join(", ") + ": use " + known.map((k) => "{" + k + "}").join(" or ") + "." : "";
  }
  source.addEventListener("input", render);
  render();
}

// Copy buttons (a lead's tracked link): `data-copy` names an input, `data-copy-text` holds
// the text. Delegated, so buttons in refreshed live regions work too.
async function copyFrom(button) {
  const input = document.getElementById(button.getAttribute("data-copy") || "");
  const text = input ? input.value : button.getAttribute("data-copy-text") || "";
  try {
    await navigator.clipboard.writeText(text);
  } catch (err) {
    if (!input) { return; }
    input.select();  // no clipboard access (plain http, an old browser): select it to copy
    document.execCommand("copy");
  }
  button.dataset.copied = "true";
  button.firstChild.textContent = "Copied";
  setTimeout(() => { button.firstChild.textContent = "Copy link"; delete button.dataset.copied; }, 2000);
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy], [data-copy-text]");
  if (button) { event.preventDefault(); copyFrom(button); }
});

document.addEventListener("DOMContentLoaded", () => {
  const streams = new Map();
  document.querySelectorAll("[data-poll]").forEach((el) => {
    el.dataset.lastHtml = el.innerHTML;
    const url = el.getAttribute("data-stream");
    if (url && "EventSource" in window) {
      streams.set(url, [...(streams.get(url) || []), el]);
    } else {
      startPolling(el);
    }
  });
  streams.forEach((regions, url) => startStream(url, regions));
  document.querySelectorAll("textarea[data-preview]").forEach(startPreview);
});
