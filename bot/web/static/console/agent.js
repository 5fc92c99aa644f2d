// The agent console: the queue, one chat with its customer, live over a WebSocket.
// Everything a customer wrote is inserted with textContent (Kefu.el), never as HTML.
"use strict";

(() => {
  const { api, el, flash } = Kefu;
  const $ = (id) => document.getElementById(id);
  let current = null; // the open conversation, as the API returned it
  let shownIds = new Set();
  let shown = []; // the messages on screen, so a re-render keeps any that arrived while it loaded
  let opening = 0; // only the newest request to open a chat renders: an older answer is stale
  let socket = null;
  let retry = 1000;
  let queueTimer = null;

  // --- what a customer's button press means ----------------------------------------------------

  // A customer message that is a button's payload ("/request_human", "/track_order{...}") is an
  // action, not words: the console says which button was pressed.
  // The widget's "Talk to a person" button and the Telegram commands the gateway knows.
  const COMMANDS = { "/request_human": "Talk to a person", "/agent": "Talk to a person", "/start": "Start" };

  function isAction(message) {
    return message.author === "customer" && typeof message.text === "string" && message.text.trim().startsWith("/");
  }

  function buttonTitle(payload, before) {
    for (let i = before.length - 1; i >= 0; i--) {
      const earlier = before[i];
      if (earlier.author === "customer") break;
      const offered = (earlier.buttons || []).find((b) => b.payload === payload);
      if (offered) return offered.title;
    }
    if (COMMANDS[payload]) return COMMANDS[payload];
    const intent = payload.slice(1).split("{")[0].replace(/_/g, " ").trim();
    return intent || payload;
  }

  function actionText(payload, before) {
    return `Customer pressed “${buttonTitle(payload.trim(), before || [])}”`;
  }

  // --- queue -----------------------------------------------------------------------------------

  async function loadQueue() {
    try {
      const data = await api("GET", "/api/console/queue");
      renderQueue(data);
    } catch (e) {
      flash(e.message);
    }
  }

  function scheduleQueue() {
    clearTimeout(queueTimer);
    queueTimer = setTimeout(loadQueue, 150);
  }

  function renderQueue(data) {
    const list = $("queue");
    list.replaceChildren();
    const waiting = data.queue.filter((c) => c.mode === "pending_agent").length;
    $("queue-count").textContent = `(${waiting} waiting)`;
    $("online").textContent = `${data.agents_online} of the team online`;
    $("queue-empty").hidden = data.queue.length > 0;
    for (const chat of data.queue) {
      const who = chat.customer ? chat.customer.name : `Visitor on ${chat.channel}`;
      const status = chat.mode === "pending_agent"
        ? `waiting ${Kefu.minutes(chat.waiting_seconds)}`
        : (chat.mine ? "yours" : `with ${chat.agent_name || "an agent"}`);
      const item = el(
        "li",
        { class: `queue__item priority-${chat.priority}${current && current.id === chat.conversation_id ? " is-open" : ""}` },
        el(
          "button",
          { type: "button", class: "queue__open", "data-conversation": chat.conversation_id,
            onclick: () => openConversation(chat.conversation_id) },
          el("strong", { text: who }),
          el("span", { class: `tier tier-${chat.tier || "unknown"}`, text: chat.tier ? chat.tier.toUpperCase() : "UNVERIFIED" }),
          el("span", { class: "badge", text: chat.priority }),
          el("span", { class: "muted", text: ` ${status} · ${chat.reason_text}` }),
          el("span", { class: "queue__preview", text: previewOf(chat.last_message) }),
        ),
      );
      list.append(item);
    }
  }

  function previewOf(text) {
    if (!text) return "";
    return text.trim().startsWith("/") ? actionText(text) : text;
  }

  // --- one conversation ----------------------------------------------------------------------

  async function openConversation(id) {
    const request = ++opening;
    let loaded;
    try {
      loaded = await api("GET", `/api/console/conversations/${id}`);
    } catch (e) {
      if (request === opening) flash(e.message);
      return;
    }
    if (request !== opening) return;
    const sameChat = current && current.id === loaded.id;
    const newest = Math.max(0, ...loaded.messages.map((m) => m.id));
    const later = sameChat ? shown.filter((m) => m.id > newest) : [];
    current = loaded;
    shownIds = new Set();
    shown = [];
    $("messages").replaceChildren();
    for (const message of [...current.messages, ...later]) addMessage(message);
    renderChatHeader();
    renderTicket();
    renderCustomer();
    loadSuggestions();
    loadQueue();
  }

  function renderChatHeader() {
    const c = current;
    const who = c.customer ? c.customer.name : `Visitor on ${c.channel}`;
    $("chat-title").textContent = who;
    const reason = c.handoff ? ` · ${c.handoff.reason_text}` : "";
    const withWhom = c.mode === "agent" ? ` · with ${c.mine ? "you" : (c.agent_name || "a colleague")}` : "";
    const contact = c.handoff && c.handoff.contact ? ` · e-mail given: ${c.handoff.contact}` : "";
    $("chat-meta").textContent = `${c.channel} · ${c.mode.replace("_", " ")}${withWhom}${reason}${contact}`;
    $("chat-actions").hidden = false;
    $("claim").hidden = c.mode !== "pending_agent";
    const mine = c.mode === "agent" && c.mine;
    for (const id of ["transfer", "transfer-to", "handback", "close"]) $(id).hidden = !mine;
    $("reply-form").hidden = !mine;
    // Someone else's chat is read-only here: only its owner answers, hands back, closes or transfers.
    const theirs = c.mode === "agent" && !c.mine;
    const owner = c.agent_name || "a colleague";
    $("chat-readonly").hidden = !theirs;
    $("chat-readonly").textContent = theirs
      ? `${owner} has this chat; you can read along. Ask ${owner} to transfer it to you if you should take over.`
      : "";
    AgentReplies.setConversation(c.id, mine);
    if (mine) loadAgents();
  }

  function addMessage(message) {
    if (shownIds.has(message.id)) return;
    shownIds.add(message.id);
    const before = shown.filter((m) => m.id < message.id);
    shown.push(message);
    const author = message.author === "agent" ? (message.agent_name || "Agent") : message.author;
    const action = isAction(message);
    const item = el(
      "li",
      { class: `message message--${message.author}${action ? " message--action" : ""}`, "data-id": message.id },
      el("span", { class: "message__author", text: author }),
      el("span", { class: "message__time", text: new Date(message.created_at).toLocaleTimeString() }),
      el("p", { class: "message__text", text: action ? actionText(message.text, before) : message.text }),
    );
    if (message.status === "failed") {
      // An inbound message the bot could not handle, or an outbound one the channel refused for good.
      const why = message.author === "customer" ? "not answered: a part was down" : `not delivered: ${message.error || "the channel refused it"}`;
      item.append(el("span", { class: "badge danger", text: why }));
    }
    if (message.status === "queued" && message.error) item.append(el("span", { class: "badge", text: `delivery retrying: ${message.error}` }));
    if (message.buttons && message.buttons.length) {
      item.append(el("p", { class: "muted", text: `Buttons: ${message.buttons.map((b) => b.title).join(" · ")}` }));
    }
    // Keep the id order even when a live event overtakes a slower page load.
    const list = $("messages");
    const later = [...list.children].find((node) => Number(node.dataset.id) > message.id);
    list.insertBefore(item, later || null);
    list.scrollTop = list.scrollHeight;
  }

  function renderTicket() {
    const box = $("ticket");
    const t = current.ticket;
    $("ticket-form").hidden = !t;
    $("note-form").hidden = !t;
    $("notes").replaceChildren();
    if (!t) {
      box.textContent = "No ticket.";
      return;
    }
    box.replaceChildren(
      el("strong", { text: t.reference }),
      el("span", { text: ` ${t.status} · ${t.priority} · ${t.kind}` }),
      el("p", { text: t.subject }),
    );
    $("ticket-status").value = ["open", "pending_customer", "resolved", "closed"].includes(t.status) ? t.status : "open";
    loadNotes(t.reference);
  }

  async function loadNotes(reference) {
    try {
      const detail = await api("GET", `/api/tickets/${reference}`);
      const notes = (detail.events || []).filter((e) => e.kind === "note");
      $("notes").replaceChildren(...notes.map((n) => el("li", {}, el("span", { class: "muted", text: `${Kefu.when(n.at)} ` }), el("span", { text: (n.data && n.data.text) || "" }))));
    } catch (e) {
      flash(e.message);
    }
  }

  function lifetimeValue(c) {
    const v = c.lifetime_value || {};
    if (v.to_date === null || v.to_date === undefined) return null;
    const euros = (n) => `EUR ${Math.round(n).toLocaleString()}`;
    return el("p", { id: "lifetime-value", text: `Lifetime value: ${euros(v.to_date)} margin so far · ${euros(v.future ?? 0)} expected ahead` });
  }

  function renderCustomer() {
    const box = $("customer");
    const c = current.customer;
    if (!c) {
      box.textContent = "Not identified yet: the customer has not proven an order in this chat.";
      return;
    }
    // A value we do not have is left out, or shown as "—" where its label stays: never "null".
    const known = (value) => (value === null || value === undefined || value === "" ? "—" : String(value));
    const rfm = c.rfm || {};
    const contacts = [c.email, c.phone].filter((v) => v !== null && v !== undefined && v !== "");
    const atRisk = (c.churn_reasons || []).join(", ");
    // replaceChildren would write a null child out as the text "null": leave the missing ones out.
    const parts = [
      el("p", {}, el("strong", { text: known(c.name) }), " ", c.tier ? el("span", { class: `tier tier-${c.tier}`, text: c.tier.toUpperCase() }) : null),
      contacts.length ? el("p", { text: contacts.join(" · ") }) : null,
      el("p", { text: `Stage: ${known(c.stage)} · RFM ${known(rfm.recency)}/${known(rfm.frequency)}/${known(rfm.monetary)} · customer since ${known(c.customer_since)}` }),
      c.churn_risk ? el("p", { class: "badge danger", text: atRisk ? `At risk: ${atRisk}` : "At risk" }) : null,
      lifetimeValue(c),
      c.defection && c.defection.reasons.length ? el("p", { class: "muted", id: "defection", text: `Could drive them away: ${c.defection.details}` }) : null,
      el("h4", { text: "Orders" }),
      el("ul", { class: "compact" }, ...c.orders.map((o) => el("li", {},
        el("strong", { text: known(o.number) }), ` ${known(o.status)} · ${known(o.placed_at)} · ${known(o.total)}`,
        ...o.shipments.map((s) => el("div", { class: "muted", text: `${known(s.carrier)} ${s.tracking_number || ""}: ${known(s.status)}${s.promised_date ? `, promised ${s.promised_date}` : ""}${s.latest ? ` — ${s.latest}` : ""}` })),
      ))),
      el("h4", { text: "Tickets" }),
      el("ul", { class: "compact" }, ...c.tickets.map((t) => el("li", { text: `${known(t.reference)} ${known(t.status)} · ${known(t.subject)}` }))),
      el("h4", { text: "Past conversations" }),
      el("ul", { class: "compact" }, ...c.past_conversations.map((p) => el("li", {},
        el("button", { type: "button", class: "link", onclick: () => openConversation(p.id), text: `${known(p.channel)}, ${p.messages} messages${p.last_message_at ? `, ${Kefu.when(p.last_message_at)}` : ""}` }),
      ))),
    ];
    box.replaceChildren(...parts.filter((part) => part !== null && part !== undefined));
  }

  let suggestionsAsked = 0;
  async function loadSuggestions() {
    const list = $("suggestions");
    if (!current) return;
    // Only the newest request may fill the list: a slower, older one would duplicate it.
    const ticket = ++suggestionsAsked;
    let items;
    try {
      const data = await api("GET", `/api/console/conversations/${current.id}/suggestions`);
      items = data.results.length
        ? data.results.map((s) => el("li", {},
          el("strong", { text: s.title }),
          el("span", { class: "muted", text: ` (${s.score})` }),
          s.why ? el("p", { class: "suggestion__why muted", text: s.why }) : null,
          el("p", { class: "suggestion__text", text: s.solution }),
          el("button", { type: "button", class: "insert", onclick: () => insert(s.solution), text: "Insert" })))
        : [el("li", { class: "muted", text: "No article matches what the customer asked." })];
    } catch (e) {
      items = [el("li", { class: "muted", text: e.message })];
    }
    if (ticket === suggestionsAsked) list.replaceChildren(...items);
  }

  function insert(text) {
    const box = $("reply");
    box.value = box.value ? `${box.value}\n${text}` : text;
    box.focus();
  }

  async function loadAgents() {
    const data = await api("GET", "/api/console/agents");
    const select = $("transfer-to");
    select.replaceChildren(...data.agents
      .filter((a) => a.id !== Kefu.me.id)
      .map((a) => el("option", { value: a.id, text: `${a.name}${a.online ? " (online)" : ""}` })));
  }

  async function act(path, body, done) {
    if (!current) return;
    try {
      const result = await api("POST", `/api/console/conversations/${current.id}/${path}`, body ?? {});
      if (done) done(result);
      await openConversation(current.id);
    } catch (e) {
      flash(e.message);
      if (e.status === 409 || e.status === 403) openConversation(current.id);
    }
  }

  // --- live events ---------------------------------------------------------------------------

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${location.host}/api/console/live`);
    socket.addEventListener("open", () => {
      retry = 1000;
      $("live-state").textContent = "Live";
      loadQueue();
      if (current) openConversation(current.id);
    });
    socket.addEventListener("message", (event) => {
      const data = JSON.parse(event.data);
      if (data.type === "message" && current && data.conversation_id === current.id) {
        addMessage(data.message);
        if (data.message.author === "customer") loadSuggestions();
      }
      if (data.type === "message" || data.type === "queue") scheduleQueue();
      if (data.type === "queue" && current && data.conversation_id === current.id) openConversation(current.id);
    });
    socket.addEventListener("close", (event) => {
      $("live-state").textContent = "Reconnecting…";
      if (event.code === 4401) {
        Kefu.toLogin();
        return;
      }
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 15000);
    });
  }

  // --- wiring --------------------------------------------------------------------------------

  $("claim").addEventListener("click", () => act("claim"));
  $("handback").addEventListener("click", () => act("handback"));
  $("close").addEventListener("click", () => {
    if (confirm("Close this chat? The customer's next message starts a new one with the bot.")) act("close");
  });
  $("transfer").addEventListener("click", () => {
    const to = Number($("transfer-to").value);
    if (to) act("transfer", { agent_id: to }, () => { flash("Transferred.", "ok"); });
  });
  $("reply-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = $("reply").value.trim();
    if (!text || !current) return;
    if (AgentReplies.blockSend()) return;
    try {
      const data = await api("POST", `/api/console/conversations/${current.id}/messages`, { text });
      addMessage(data.message);
      $("reply").value = "";
      AgentReplies.sent();
    } catch (e) {
      flash(e.message);
    }
  });
  $("reply").addEventListener("keydown", (event) => {
    if (AgentReplies.handleKey(event)) return; // the saved-replies list is open and took the key
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      $("reply-form").requestSubmit();
    }
  });
  $("ticket-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const t = current && current.ticket;
    if (!t) return;
    const status = $("ticket-status").value;
    const resolution = $("ticket-resolution").value.trim() || null;
    try {
      await api("POST", `/api/tickets/${t.reference}/status`, { status, resolution });
      flash(`${t.reference} is now ${status}.`, "ok");
      await openConversation(current.id);
    } catch (e) {
      flash(e.message);
    }
  });
  $("note-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const t = current && current.ticket;
    const text = $("note").value.trim();
    if (!t || !text) return;
    try {
      await api("POST", `/api/tickets/${t.reference}/notes`, { text });
      $("note").value = "";
      loadNotes(t.reference);
    } catch (e) {
      flash(e.message);
    }
  });

  Kefu.whoAmI().then((me) => {
    $("lead-link").hidden = !(me.role === "lead" || me.role === "admin");
    connect();
    setInterval(loadQueue, 30000); // waits change even when nothing happens
  }).catch((e) => flash(e.message));
})();
