// The lead console's saved replies: list, write, edit, archive and bring back. The server checks
// everything (shortcut, placeholders, length) and its error is shown as it is.
"use strict";

const LeadReplies = (() => {
  const { api, el, flash } = Kefu;
  const $ = (id) => document.getElementById(id);
  let open = null; // the reply in the editor, as the API returned it
  let placeholders = [];
  let languages = ["en"];

  async function load() {
    const params = new URLSearchParams({ archived: String($("sr-archived").checked) });
    const q = $("sr-q").value.trim();
    if (q) params.set("q", q);
    try {
      const data = await api("GET", `/api/saved-replies?${params}`);
      placeholders = data.placeholders;
      languages = data.languages;
      renderHelp();
      $("saved-replies").replaceChildren(...(data.replies.length ? data.replies.map((r) => el("li", { "data-reply": r.id },
        el("button", { type: "button", class: "link", onclick: () => edit(r), text: `/${r.shortcut}` }),
        el("span", { text: ` ${r.title}` }),
        el("span", { class: "badge", text: r.language }),
        r.archived ? el("span", { class: "badge status-archived", text: "archived" }) : null))
        : [el("li", { class: "muted", text: "No saved replies match." })]));
    } catch (e) {
      flash(e.message);
    }
  }

  function renderHelp() {
    $("sr-language").replaceChildren(...languages.map((code) => el("option", { value: code, text: code })));
    if (open) $("sr-language").value = open.language;
    $("sr-placeholders").replaceChildren(...placeholders.map((p) => el("li", {},
      el("button", { type: "button", class: "link", onclick: () => insertToken(p.token), text: p.token }),
      el("span", { class: "muted", text: ` ${p.meaning}; missing: ${p.marker}` }))));
  }

  function insertToken(token) {
    const box = $("sr-body");
    const start = box.selectionStart ?? box.value.length;
    const end = box.selectionEnd ?? start;
    box.value = box.value.slice(0, start) + token + box.value.slice(end);
    box.focus();
    box.setSelectionRange(start + token.length, start + token.length);
  }

  function edit(reply) {
    open = reply;
    $("reply-editor").hidden = false;
    $("sr-shortcut").value = reply ? reply.shortcut : "";
    $("sr-title").value = reply ? reply.title : "";
    $("sr-body").value = reply ? reply.body : "";
    renderHelp();
    $("sr-language").value = reply ? reply.language : "en";
    $("reply-editor-title").textContent = reply ? `/${reply.shortcut}` : "New saved reply";
    $("reply-editor-state").textContent = reply
      ? `${reply.archived ? "Archived: agents don't see it" : "Active"} · last changed by ${reply.updated_by || "someone"}, ${Kefu.when(reply.updated_at)}`
      : "Not saved yet.";
    $("sr-archive").hidden = !reply || reply.archived;
    $("sr-unarchive").hidden = !reply || !reply.archived;
  }

  async function save(event) {
    event.preventDefault();
    const body = {
      shortcut: $("sr-shortcut").value.trim(),
      title: $("sr-title").value.trim(),
      body: $("sr-body").value,
      language: $("sr-language").value,
    };
    try {
      const saved = open
        ? await api("PATCH", `/api/saved-replies/${open.id}`, body)
        : await api("POST", "/api/saved-replies", body);
      flash(`Saved /${saved.shortcut}: agents can insert it now.`, "ok");
      edit(saved);
      load();
    } catch (e) {
      flash(e.message);
    }
  }

  async function setArchived(archived) {
    if (!open) return;
    try {
      const saved = await api("POST", `/api/saved-replies/${open.id}/${archived ? "archive" : "unarchive"}`, {});
      flash(archived ? `Archived /${saved.shortcut}.` : `/${saved.shortcut} is back for agents.`, "ok");
      edit(saved);
      load();
    } catch (e) {
      flash(e.message);
    }
  }

  $("reply-editor").addEventListener("submit", save);
  $("sr-archive").addEventListener("click", () => setArchived(true));
  $("sr-unarchive").addEventListener("click", () => setArchived(false));
  $("new-reply").addEventListener("click", () => { edit(null); $("sr-shortcut").focus(); });
  $("reply-search").addEventListener("submit", (event) => { event.preventDefault(); load(); });
  $("sr-archived").addEventListener("change", load);

  return { load };
})();
