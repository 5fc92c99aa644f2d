// Kefu demo chat page: talks to /api/web/messages and /api/web/history.
// Every piece of text goes into the page with textContent, never parsed as HTML.
"use strict";

(() => {
  const STORAGE_KEY = "kefu.visitor";
  const POLL_MS = 5000; // while a person is involved
  const IDLE_POLL_MS = 20000; // otherwise: the bot may still write first (a survey after a resolved ticket)
  const VISITOR_PATTERN = /^[A-Za-z0-9_-]{40}$/; // the shape of the ids the gateway issues
  const AUTHOR_LABELS = {
    customer: "You",
    bot: "Assistant",
    agent: "Support agent",
    system: "Notice",
  };
  const OFFLINE_MESSAGE = "We couldn't reach the chat service. Check your connection and try again.";
  const SERVER_MESSAGE = "Something went wrong on our side. Please try again in a minute.";

  const list = document.getElementById("messages");
  const statusLine = document.getElementById("status");
  const form = document.getElementById("composer");
  const textBox = document.getElementById("text");
  const sendButton = document.getElementById("send");
  const maxChars = Number.parseInt(form.dataset.maxChars, 10) || 2000;

  const rendered = new Set(); // ids of stored messages already on the page
  const buttonTitles = new Map(); // button payload -> title, so a clicked button reads well after reload
  let sending = false;
  let pollTimer = null;
  let pollEvery = 0;

  class ChatError extends Error {
    constructor(message, retryable, status = 0) {
      super(message);
      this.retryable = retryable;
      this.status = status;
    }
  }

  function randomId() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function storedVisitorId() {
    try {
      const id = window.localStorage.getItem(STORAGE_KEY);
      return id && VISITOR_PATTERN.test(id) ? id : null; // an older page's own id is never sent
    } catch {
      return null; // storage blocked (private mode): the chat lasts for this page view
    }
  }

  let visitor = storedVisitorId();

  /** The visitor id the gateway issued us, asked for when we have none (or it refused ours). */
  async function visitorId() {
    if (visitor) return visitor;
    const data = await api("/api/web/visitors", { method: "POST" });
    if (!data || typeof data.session !== "string" || !VISITOR_PATTERN.test(data.session)) {
      throw new ChatError(SERVER_MESSAGE, true);
    }
    visitor = data.session;
    try {
      window.localStorage.setItem(STORAGE_KEY, visitor);
    } catch {
      /* storage blocked: nothing to do */
    }
    return visitor;
  }

  async function fetchHistory() {
    const id = await visitorId();
    try {
      return await api("/api/web/history", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ session: id }),
      });
    } catch (error) {
      if (error instanceof ChatError && error.status === 401) visitor = null;
      throw error;
    }
  }

  function showStatus(text) {
    statusLine.textContent = text;
    statusLine.hidden = false;
  }

  function clearStatus() {
    statusLine.textContent = "";
    statusLine.hidden = true;
  }

  function scrollToEnd() {
    list.scrollTop = list.scrollHeight;
  }

  function safeImageUrl(value) {
    if (typeof value !== "string") return null;
    try {
      const url = new URL(value, window.location.href);
      return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
    } catch {
      return null;
    }
  }

  function addBubble(author, text, buttons = [], metadata = {}) {
    const item = document.createElement("li");
    item.className = `msg msg--${AUTHOR_LABELS[author] ? author : "system"}`;

    const who = document.createElement("span");
    who.className = "msg__author";
    who.textContent = AUTHOR_LABELS[author] || AUTHOR_LABELS.system;
    item.appendChild(who);

    if (text) {
      const body = document.createElement("p");
      body.className = "msg__text";
      body.textContent = text;
      item.appendChild(body);
    }

    const image = safeImageUrl(metadata && metadata.image);
    if (image) {
      const img = document.createElement("img");
      img.className = "msg__image";
      img.src = image;
      img.alt = "";
      img.loading = "lazy";
      item.appendChild(img);
    }

    if (Array.isArray(buttons) && buttons.length > 0) {
      const group = document.createElement("div");
      group.className = "msg__buttons";
      group.setAttribute("role", "group");
      group.setAttribute("aria-label", "Suggested replies");
      for (const button of buttons) {
        if (!button || typeof button.title !== "string") continue;
        const element = document.createElement("button");
        element.type = "button";
        element.className = "msg__button";
        element.textContent = button.title;
        element.addEventListener("click", () => {
          if (sending) return;
          for (const sibling of group.querySelectorAll("button")) sibling.disabled = true;
          send(String(button.payload || button.title), button.title);
        });
        group.appendChild(element);
      }
      item.appendChild(group);
    }

    list.appendChild(item);
    scrollToEnd();
    return item;
  }

  function renderMessage(message) {
    if (rendered.has(message.id)) return;
    rendered.add(message.id);
    let text = message.text;
    if (message.author === "customer" && buttonTitles.has(text)) text = buttonTitles.get(text);
    for (const button of message.buttons || []) {
      if (button && typeof button.payload === "string") buttonTitles.set(button.payload, button.title);
    }
    addBubble(message.author, text, message.buttons, message.metadata);
  }

  async function api(path, options = {}) {
    let response;
    try {
      response = await fetch(path, { credentials: "same-origin", ...options });
    } catch {
      throw new ChatError(OFFLINE_MESSAGE, true);
    }
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    if (!response.ok) {
      const message = data && typeof data.error === "string" ? data.error : SERVER_MESSAGE;
      // 401: the gateway does not know our visitor id; a retry asks for a new one.
      const retryable = response.status >= 500 || response.status === 429 || response.status === 401;
      throw new ChatError(message, retryable, response.status);
    }
    return data;
  }

  function setMode(mode) {
    // Until the widget's WebSocket exists, poll: often while a person is involved, rarely otherwise.
    const withPerson = mode === "pending_agent" || mode === "agent";
    const every = withPerson ? POLL_MS : IDLE_POLL_MS;
    if (every === pollEvery) return;
    if (pollTimer !== null) window.clearInterval(pollTimer);
    pollTimer = window.setInterval(refreshHistory, every);
    pollEvery = every;
  }

  async function refreshHistory() {
    if (sending || document.hidden) return;
    try {
      if (!visitor) return; // no chat yet
      const data = await fetchHistory();
      if (sending) return; // a send started meanwhile; its answer will bring these messages
      data.messages.forEach(renderMessage);
      setMode(data.mode);
    } catch (error) {
      showStatus(error instanceof ChatError ? error.message : OFFLINE_MESSAGE);
    }
  }

  function showTyping() {
    const item = document.createElement("li");
    item.className = "msg msg--bot msg--typing";
    item.setAttribute("aria-hidden", "true");
    item.textContent = "…";
    list.appendChild(item);
    scrollToEnd();
    return item;
  }

  function offerRetry(bubble, deliver) {
    bubble.classList.add("msg--failed");
    const retry = document.createElement("button");
    retry.type = "button";
    retry.className = "msg__retry";
    retry.textContent = "Not sent — retry";
    retry.addEventListener("click", () => {
      if (sending) return;
      retry.remove();
      bubble.classList.remove("msg--failed");
      deliver();
    });
    bubble.appendChild(retry);
  }

  function send(text, shownText) {
    const clientMessageId = randomId(); // the same id on retry, so the server answers and never repeats
    const bubble = addBubble("customer", shownText || text);
    bubble.classList.add("msg--pending");

    const deliver = async () => {
      sending = true;
      sendButton.disabled = true;
      const typing = showTyping();
      try {
        const id = await visitorId();
        let data;
        try {
          data = await api("/api/web/messages", {
            method: "POST",
            headers: { "Content-Type": "application/json" },
            body: JSON.stringify({ session: id, text, client_message_id: clientMessageId }),
          });
        } catch (error) {
          if (error instanceof ChatError && error.status === 401) visitor = null;
          throw error;
        }
        bubble.classList.remove("msg--pending");
        rendered.add(data.message_id);
        if (shownText) buttonTitles.set(text, shownText);
        typing.remove();
        data.messages.forEach(renderMessage);
        setMode(data.mode);
        clearStatus();
      } catch (error) {
        typing.remove();
        const chatError = error instanceof ChatError ? error : new ChatError(SERVER_MESSAGE, true);
        showStatus(chatError.message);
        if (chatError.retryable) {
          offerRetry(bubble, deliver);
        } else {
          // The server refused this text (too long, empty ...): give it back to edit.
          bubble.remove();
          if (!shownText) textBox.value = text;
        }
      } finally {
        bubble.classList.remove("msg--pending");
        sending = false;
        sendButton.disabled = false;
      }
    };
    return deliver();
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (sending) return;
    const text = textBox.value.trim();
    if (!text) {
      showStatus("Type a message first.");
      return;
    }
    if (text.length > maxChars) {
      showStatus(`Your message is ${text.length} characters; the limit is ${maxChars}.`);
      return;
    }
    textBox.value = "";
    send(text);
    textBox.focus();
  });

  textBox.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  async function start() {
    try {
      if (!visitor) {
        setMode("bot"); // no chat yet: nothing to show until the visitor writes
        return;
      }
      const data = await fetchHistory();
      data.messages.forEach(renderMessage);
      setMode(data.mode);
    } catch (error) {
      showStatus(error instanceof ChatError ? error.message : OFFLINE_MESSAGE);
    }
  }

  start();
})();
