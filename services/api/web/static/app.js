// AutoDM's only script: live regions that refresh themselves, and the template preview.
// Pages work without it (forms post, links navigate); it only adds live updates.
"use strict";

function startPolling(el) {
  const url = el.getAttribute("data-poll");
  const every = Number(el.getAttribute("data-poll-interval") || 2000);
  let timer = null;
  async function tick() {
    if (document.hidden) { timer = setTimeout(tick, every); return; }
    try {
      const answer = await fetch(url, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } });
      if (answer.redirected || !answer.ok) { timer = setTimeout(tick, every * 2); return; }
      const html = await answer.text();
      // Replace only on change: keyboard focus and open <details> survive quiet ticks.
      if (html.trim() !== (el.dataset.lastHtml || "").trim()) {
        el.innerHTML = html;
        el.dataset.lastHtml = html;
        el.dispatchEvent(new CustomEvent("autodm:updated", { bubbles: true }));
      }
      if (el.querySelector("[data-final]")) { return; }
    } catch (err) {
      // network hiccup: try again later
    }
    timer = setTimeout(tick, every);
  }
  timer = setTimeout(tick, every);
  return () => clearTimeout(timer);
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

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-poll]").forEach((el) => {
    el.dataset.lastHtml = el.innerHTML;
    startPolling(el);
  });
  document.querySelectorAll("textarea[data-preview]").forEach(startPreview);
});
