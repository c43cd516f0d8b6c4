// clusvc web console: live refresh, live form validation, plan preview.
// Plain JavaScript, no dependencies; served from the daemon (Apache-2.0,
// part of clusvc). Every page works without it (forms post normally).
"use strict";

(function () {
  const csrf = () => {
    const m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.content : "";
  };

  // Live parts: elements with an id and `data-live` are replaced by the
  // same elements of a fresh copy of the page when the cluster changes
  // (an event on /ui/stream), at most every 500 ms, and every 10 s.
  const live = document.querySelectorAll("[data-live][id]");
  if (live.length > 0) {
    let pending = false;
    let last = 0;
    const refresh = async () => {
      pending = false;
      last = Date.now();
      try {
        const r = await fetch(location.href, { credentials: "same-origin" });
        if (!r.ok) return;
        const doc = new DOMParser().parseFromString(await r.text(), "text/html");
        for (const el of document.querySelectorAll("[data-live][id]")) {
          const fresh = doc.getElementById(el.id);
          if (fresh && fresh.innerHTML !== el.innerHTML) {
            el.innerHTML = fresh.innerHTML;
          }
        }
        document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
      } catch (e) {
        // The daemon restarts: the stream reconnects and refreshes again.
      }
    };
    const soon = () => {
      if (pending) return;
      pending = true;
      setTimeout(refresh, Math.max(0, 500 - (Date.now() - last)));
    };
    // One stream per visible tab: a browser keeps at most six connections
    // to a server, so hidden tabs give theirs back (and catch up when
    // shown again).
    let es = null;
    const connect = () => {
      if (es || document.hidden) return;
      es = new EventSource("/ui/stream");
      es.addEventListener("change", soon);
      // Whatever changed before the stream was open is caught up at once.
      es.addEventListener("open", () => { document.body.dataset.live = "on"; soon(); });
    };
    document.addEventListener("visibilitychange", () => {
      if (document.hidden) {
        if (es) { es.close(); es = null; }
      } else {
        connect();
        soon();
      }
    });
    connect();
    setInterval(() => { if (!document.hidden) soon(); }, 10000);
  }

  // The service form.
  const form = document.getElementById("service-form");
  if (!form) return;
  const body = () => new URLSearchParams(new FormData(form));
  const show = (problems) => {
    const general = document.getElementById("form-errors");
    for (const p of form.querySelectorAll(".field-error")) p.textContent = "";
    for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
    general.textContent = "";
    for (const pr of problems) {
      const slot = pr.path ? form.querySelector('.field-error[data-for="' + CSS.escape(pr.path) + '"]') : null;
      if (slot) {
        slot.textContent = slot.textContent ? slot.textContent + "; " + pr.message : pr.message;
        const input = document.getElementById(pr.path);
        if (input) input.setAttribute("aria-invalid", "true");
      } else {
        const p = document.createElement("p");
        p.className = "error";
        p.textContent = (pr.path ? pr.path + ": " : "") + pr.message;
        general.appendChild(p);
      }
    }
  };
  let timer = null;
  let seq = 0;
  const validate = async () => {
    const mine = ++seq;
    const r = await fetch("/ui/form/check", {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRF-Token": csrf(), "Content-Type": "application/x-www-form-urlencoded" },
      body: body(),
    });
    if (!r.ok || mine !== seq) return;
    const c = await r.json();
    document.getElementById("yaml").textContent = c.yaml;
    show(c.problems);
    form.dataset.checked = String(mine);
  };
  form.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(validate, 250);
  });
  form.addEventListener("change", () => {
    clearTimeout(timer);
    timer = setTimeout(validate, 50);
  });
  const preview = document.getElementById("preview");
  if (preview) {
    preview.addEventListener("click", async () => {
      const out = document.getElementById("plan-preview");
      out.textContent = "Planning...";
      const r = await fetch("/ui/form/preview", {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRF-Token": csrf(), "Content-Type": "application/x-www-form-urlencoded" },
        body: body(),
      });
      out.textContent = await r.text();
      out.dataset.done = String(Number(out.dataset.done || 0) + 1);
    });
  }
  for (const add of form.querySelectorAll("button.add-row")) {
    add.addEventListener("click", () => {
      const set = add.closest("fieldset");
      const rows = set.querySelectorAll(":scope > .row");
      const tpl = set.querySelector(":scope > template");
      const html = tpl.innerHTML.split("__i__").join(String(rows.length));
      add.insertAdjacentHTML("beforebegin", html);
      const first = add.previousElementSibling.querySelector("input");
      if (first) first.focus();
    });
  }
})();
