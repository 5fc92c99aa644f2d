// Saved replies in the agent's reply box: "/" and a shortcut prefix, or the "Saved replies" button,
// open a list (up/down to move, Enter or Tab to insert, Esc to close). The chosen reply is filled
// on the server from the chat's CRM rows and put in the box to edit. A marker for a missing value
// ("[order number?]") must be replaced before the reply can be sent.
"use strict";

const AgentReplies = (() => {
  const { api, el, flash } = Kefu;
  const $ = (id) => document.getElementById(id);
  const SHOWN = 8;
  let conversationId = null;
  let replies = [];
  let loading = null;
  let matches = [];
  let selected = 0;
  let mode = null; // "slash" (typed in the box) or "search" (the button's search field)
  let slashStart = 0;
  const markers = new Set(); // markers inserted into this box, as the server named them

  function setConversation(id, canReply) {
    if (id !== conversationId) {
      conversationId = id;
      replies = [];
      loading = null;
      markers.clear();
      close();
    }
    if (canReply && !loading) loading = load(id);
    showGaps();
  }

  async function load(id) {
    try {
      const data = await api("GET", `/api/console/conversations/${id}/saved-replies`);
      if (id === conversationId) replies = data.replies;
    } catch (e) {
      loading = null;
      flash(e.message);
    }
  }

  // The chat's replies, fetched once per chat (again after a failure) before the list opens.
  async function ready() {
    if (conversationId === null) return;
    if (!loading) loading = load(conversationId);
    await loading;
  }

  function find(query) {
    const q = query.toLowerCase();
    if (!q) return replies.slice(0, 50);
    const starts = replies.filter((r) => r.shortcut.startsWith(q));
    const rest = replies.filter((r) => !r.shortcut.startsWith(q)
      && (r.shortcut.includes(q) || r.title.toLowerCase().includes(q) || (mode === "search" && r.body.toLowerCase().includes(q))));
    return [...starts, ...rest];
  }

  function render() {
    const list = $("picker-list");
    list.replaceChildren(...(matches.length
      ? matches.slice(0, mode === "slash" ? SHOWN : 50).map((r, i) => el("li", {
        role: "option", id: `picker-${r.id}`, class: "picker__item", "aria-selected": String(i === selected), "data-shortcut": r.shortcut,
        onmousedown: (event) => { event.preventDefault(); choose(r); },
      }, el("strong", { text: `/${r.shortcut}` }), el("span", { text: ` ${r.title}` }), el("span", { class: "muted", text: r.body })))
      : [el("li", { class: "muted", text: replies.length ? "No saved reply matches." : "No saved replies yet: a lead adds them in the lead console." })]));
    const active = list.querySelector('[aria-selected="true"]');
    if (active) active.scrollIntoView({ block: "nearest" });
  }

  function openList(how, query) {
    mode = how;
    matches = find(query);
    selected = Math.min(selected, Math.max(matches.length - 1, 0));
    $("reply-picker").hidden = false;
    $("picker-search").hidden = how !== "search";
    render();
  }

  function close() {
    mode = null;
    selected = 0;
    $("reply-picker").hidden = true;
    $("picker-search").hidden = true;
  }

  // The "/prefix" just before the cursor, if the agent is typing one.
  function slashQuery() {
    const box = $("reply");
    const before = box.value.slice(0, box.selectionStart);
    const match = /(^|\s)\/([a-z0-9-]*)$/.exec(before);
    if (!match) return null;
    return { start: before.length - match[2].length - 1, query: match[2] };
  }

  async function onInput() {
    showGaps();
    if (mode === "search") return;
    const typed = slashQuery();
    if (!typed) {
      if (mode === "slash") close();
      return;
    }
    await ready();
    slashStart = typed.start;
    if (mode !== "slash") selected = 0;
    openList("slash", typed.query);
  }

  // Keys while the list is open; true when the key was the list's.
  function handleKey(event) {
    if (!mode) return false;
    const shown = Math.min(matches.length, mode === "slash" ? SHOWN : 50);
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      if (shown) selected = (selected + (event.key === "ArrowDown" ? 1 : shown - 1)) % shown;
      render();
    } else if (event.key === "Enter" || event.key === "Tab") {
      if (!shown) return false;
      choose(matches[selected]);
    } else if (event.key === "Escape") {
      close();
      $("reply").focus();
    } else {
      return false;
    }
    event.preventDefault();
    event.stopPropagation();
    return true;
  }

  async function choose(reply) {
    const how = mode;
    const box = $("reply");
    const id = conversationId;
    close();
    let data;
    try {
      data = await api("POST", `/api/console/conversations/${id}/saved-replies/${reply.id}/render`, {});
    } catch (e) {
      flash(e.message);
      return;
    }
    if (id !== conversationId) return;
    let start = box.selectionStart;
    let end = box.selectionEnd;
    if (how === "slash") {
      start = slashStart;
      end = Math.max(box.selectionStart, slashStart);
    }
    box.value = box.value.slice(0, start) + data.text + box.value.slice(end);
    for (const gap of data.missing) markers.add(gap.marker);
    box.focus();
    const first = data.missing.length ? box.value.indexOf(data.missing[0].marker, start) : -1;
    if (first >= 0) box.setSelectionRange(first, first + data.missing[0].marker.length);
    else box.setSelectionRange(start + data.text.length, start + data.text.length);
    showGaps();
  }

  function gaps() {
    const text = $("reply").value;
    return [...markers].filter((m) => text.includes(m));
  }

  function showGaps() {
    const left = gaps();
    const note = $("reply-gaps");
    note.hidden = left.length === 0;
    note.textContent = left.length ? `Fill in before sending: ${left.join(", ")}` : "";
    $("reply").classList.toggle("has-gaps", left.length > 0);
  }

  // Called before sending: true (and the first gap selected) while a marker is still in the text.
  function blockSend() {
    const left = gaps();
    if (!left.length) return false;
    const box = $("reply");
    const at = box.value.indexOf(left[0]);
    box.focus();
    box.setSelectionRange(at, at + left[0].length);
    flash(`The reply still has gaps: replace ${left.join(", ")} before sending.`);
    return true;
  }

  function sent() {
    markers.clear();
    showGaps();
  }

  $("reply").addEventListener("input", onInput);
  $("reply").addEventListener("blur", () => { if (mode === "slash") setTimeout(close, 150); });
  $("saved-replies-button").addEventListener("click", async () => {
    if (mode === "search") {
      close();
      return;
    }
    await ready();
    selected = 0;
    $("picker-search").value = "";
    openList("search", "");
    $("picker-search").focus();
  });
  $("picker-search").addEventListener("input", () => {
    selected = 0;
    openList("search", $("picker-search").value.trim());
  });
  $("picker-search").addEventListener("keydown", (event) => {
    // Enter in the search field must never send the reply form.
    if (!handleKey(event) && event.key === "Enter") event.preventDefault();
  });

  return { setConversation, handleKey, blockSend, sent };
})();
