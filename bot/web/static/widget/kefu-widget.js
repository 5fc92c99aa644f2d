/*
 * Kefu chat widget. A shop embeds it on any page with one tag:
 *
 *   <script src="https://kefu.example.com/widget/kefu-widget.js" data-title="Help"
 *           data-color="#0b5fff" data-greeting="Hi! Ask me anything." defer></script>
 *
 * Optional: data-max-chars (defaults to 2000, the gateway's limit).
 *
 * Everything lives in a shadow root, styled from here, so the host page's CSS cannot reach it.
 * The gateway is found from this script's own address, so the page may be on any origin.
 * Messages go out over HTTP (kept in an outbox until the gateway answers) and come in over a
 * WebSocket, with HTTP polling while the socket is down. Every piece of text is inserted with
 * textContent: nothing a customer, an agent or the bot writes is ever parsed as HTML.
 */
(function () {
  "use strict";

  const script = document.currentScript;
  if (!script || !script.src || window.__kefuWidget) return;
  window.__kefuWidget = true;

  // --- configuration ------------------------------------------------------------------------------

  const GATEWAY = new URL("../", script.src); // the widget is served from <gateway>/widget/
  const KEYS = {
    visitor: "kefu.widget.visitor",
    open: "kefu.widget.open",
    outbox: "kefu.widget.outbox",
  };
  const HEX_COLOR = /^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$/;
  // Issued by the gateway (POST api/web/visitors); an id of another shape (an older widget's) is
  // never sent: the visitor gets a new one.
  const VISITOR_ID = /^[A-Za-z0-9_-]{40}$/;
  const LIVE_PROTOCOL = "kefu.live";
  const VISITOR_PROTOCOL = "kefu.visitor."; // the id travels as a subprotocol, never in a URL
  const POLL_MS = 5000; // history polling while the socket is down
  const PING_MS = 25000;
  const PONG_WAIT_MS = 10000;
  const POST_TIMEOUT_MS = 45000; // Rasa may take a while; a retry is answered, never duplicated
  const MAX_BACKOFF_MS = 30000;
  const HUMAN_PAYLOAD = "/request_human";
  const HUMAN_TITLE = "Talk to a person";
  const AUTHORS = { customer: "You", bot: "Assistant", agent: "Support agent", system: "Notice" };
  const TEXT = {
    offline: "You're offline. Your message is saved and will be sent when the connection is back.",
    retrying: "We couldn't reach the chat service. Trying again…",
    reconnecting: "Connection lost. Reconnecting…",
    serverError: "Something went wrong on our side. Please try again in a minute.",
    empty: "Type a message first.",
    personComing: "A person from our team is already on the way. Write here and they'll see it.",
    slowDown: (seconds) =>
      `You're sending messages faster than we can take them. Yours will go out in about ${seconds} s.`,
  };

  function cleanText(value, limit) {
    return typeof value === "string" ? value.trim().slice(0, limit) : "";
  }

  function positiveInt(value, fallback) {
    const n = Number.parseInt(value || "", 10);
    return Number.isFinite(n) && n > 0 && n <= 100000 ? n : fallback;
  }

  const config = {
    title: cleanText(script.dataset.title, 80) || "Customer service",
    greeting:
      cleanText(script.dataset.greeting, 500) ||
      "Hi! Ask me about an order, a return or anything else. You can talk to a person at any time.",
    color: HEX_COLOR.test(script.dataset.color || "") ? script.dataset.color : "#0b5fff",
    maxChars: positiveInt(script.dataset.maxChars, 2000),
  };

  // --- storage (may be blocked: the chat then lasts for this page view) ---------------------------------

  function load(key) {
    try {
      return window.localStorage.getItem(key);
    } catch {
      return null;
    }
  }

  function save(key, value) {
    try {
      window.localStorage.setItem(key, value);
    } catch {
      /* storage full or blocked: nothing to do */
    }
  }

  function randomHex(bytes) {
    const buffer = new Uint8Array(bytes);
    crypto.getRandomValues(buffer);
    return Array.from(buffer, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function storedVisitor() {
    const stored = load(KEYS.visitor);
    return stored && VISITOR_ID.test(stored) ? stored : null;
  }

  function loadOutbox() {
    try {
      const items = JSON.parse(load(KEYS.outbox) || "[]");
      return Array.isArray(items)
        ? items.filter((i) => i && typeof i.cid === "string" && typeof i.text === "string")
        : [];
    } catch {
      return [];
    }
  }

  let visitor = storedVisitor(); // the key to this visitor's chat; null until the gateway issues one
  let issuing = null; // the request for a new visitor id, while one is under way
  const outbox = loadOutbox(); // [{cid, text, shown}], oldest first; sent one at a time, in order

  function saveOutbox() {
    save(KEYS.outbox, JSON.stringify(outbox.map(({ cid, text, shown }) => ({ cid, text, shown }))));
  }

  // --- colours --------------------------------------------------------------------------------------

  function expandHex(hex) {
    const digits = hex.slice(1);
    return digits.length === 3 ? digits.replace(/./g, "$&$&") : digits;
  }

  function luminance(hex) {
    const digits = expandHex(hex);
    const channel = (i) => {
      const c = Number.parseInt(digits.slice(i, i + 2), 16) / 255;
      return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    };
    return 0.2126 * channel(0) + 0.7152 * channel(2) + 0.0722 * channel(4);
  }

  const accentLuminance = luminance(config.color);
  // White text when it reads well on the accent (WCAG AA contrast of 4.5), else near-black.
  const onAccent = 1.05 / (accentLuminance + 0.05) >= 4.5 ? "#ffffff" : "#111111";
  // A pale accent would make an invisible focus ring on white.
  const ring = accentLuminance > 0.4 ? "#111111" : config.color;

  // --- styles ---------------------------------------------------------------------------------------

  const CSS = `
:host {
  all: initial !important;
  display: block !important;
  position: fixed !important;
  right: 0 !important; bottom: 0 !important; left: auto !important; top: auto !important;
  width: 0 !important; height: 0 !important;
  margin: 0 !important; padding: 0 !important; border: 0 !important;
  z-index: 2147483647 !important;
  visibility: visible !important; opacity: 1 !important;
  transform: none !important; filter: none !important; clip-path: none !important;
  contain: none !important; overflow: visible !important; pointer-events: auto !important;
}
[hidden] { display: none !important; }
.kefu, .kefu * { box-sizing: border-box; }
.kefu {
  --accent: ${config.color}; --on-accent: ${onAccent}; --ring: ${ring};
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  color: #1d2330; text-align: left; direction: ltr; letter-spacing: normal; word-spacing: normal;
  text-transform: none; text-shadow: none; -webkit-text-size-adjust: 100%;
}
.kefu button, .kefu textarea { font: inherit; color: inherit; letter-spacing: inherit; margin: 0; }
.kefu button { cursor: pointer; }
.kefu :focus { outline: none; }
.kefu :focus-visible { outline: 3px solid var(--ring); outline-offset: 2px; }
.sr { position: absolute; width: 1px; height: 1px; margin: -1px; padding: 0; overflow: hidden;
      clip: rect(0 0 0 0); white-space: nowrap; border: 0; }
.kefu .launcher {
  position: fixed; right: calc(20px + var(--kefu-dx, 0px)); bottom: calc(20px + var(--kefu-dy, 0px));
  width: 60px; height: 60px; border-radius: 50%;
  border: 0; padding: 0; display: flex; align-items: center; justify-content: center;
  background: var(--accent); color: var(--on-accent); box-shadow: 0 4px 16px rgba(0, 0, 0, .28);
}
.launcher svg { width: 28px; height: 28px; fill: none; stroke: currentColor; stroke-width: 2;
                stroke-linecap: round; stroke-linejoin: round; }
.badge {
  position: absolute; top: -2px; right: -2px; min-width: 22px; height: 22px; padding: 0 6px;
  border-radius: 11px; background: #c8102e; color: #fff; font-size: 12px; font-weight: 700;
  line-height: 22px; text-align: center; border: 2px solid #fff;
}
.panel {
  position: fixed; right: 20px; bottom: 92px; width: 380px; max-width: calc(100vw - 40px);
  height: 600px; max-height: calc(100vh - 112px); display: flex; flex-direction: column;
  background: #fff; border-radius: 14px; overflow: hidden;
  box-shadow: 0 12px 40px rgba(0, 0, 0, .3), 0 0 0 1px rgba(0, 0, 0, .08);
}
.head {
  display: flex; align-items: center; gap: 8px; padding: 10px 10px 10px 16px;
  background: var(--accent); color: var(--on-accent);
}
.head h2 { flex: 1; min-width: 0; margin: 0; font-size: 16px; font-weight: 700; line-height: 1.3;
           overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.head button {
  border: 1px solid currentColor; background: transparent; color: inherit; border-radius: 8px;
  padding: 6px 10px; font-size: 13px; font-weight: 600; white-space: nowrap; min-height: 36px;
}
.head .close { border-color: transparent; font-size: 22px; line-height: 1; padding: 4px 10px; }
.head :focus-visible { outline-color: var(--on-accent); }
.log { flex: 1; min-height: 0; overflow-y: auto; margin: 0; padding: 14px 12px; list-style: none;
       background: #f5f6f8; overscroll-behavior: contain; }
.msg { display: flex; flex-direction: column; align-items: flex-start; margin: 0 0 12px; }
.msg .who { font-size: 12px; color: #5b6270; margin: 0 4px 2px; }
.msg .bubble { max-width: 85%; padding: 8px 12px; border-radius: 14px; background: #fff;
               border: 1px solid #e1e4ea; white-space: pre-wrap; overflow-wrap: anywhere; margin: 0; }
.msg--customer { align-items: flex-end; }
.msg--customer .bubble { background: var(--accent); color: var(--on-accent); border-color: transparent; }
.msg--agent .bubble { border-left: 4px solid var(--accent); }
.msg--system { align-items: center; }
.msg--system .bubble { background: transparent; border: 0; font-size: 13px; color: #4a5160;
                       text-align: center; max-width: 95%; font-style: italic; }
.msg--pending .bubble { opacity: .7; }
.msg .state { font-size: 12px; color: #5b6270; margin: 2px 4px 0; }
.msg img { max-width: 85%; border-radius: 10px; margin-top: 6px; }
.choices { display: flex; flex-wrap: wrap; gap: 6px; margin-top: 8px; max-width: 95%; }
.choices button {
  border: 1px solid var(--accent); background: #fff; color: #1d2330; border-radius: 16px;
  padding: 6px 12px; font-size: 14px; min-height: 34px;
}
.choices button:hover:not(:disabled) { background: #eef2ff; }
.choices button:disabled { opacity: .55; cursor: default; }
.stars { display: flex; gap: 2px; align-items: center; }
.stars [role="radio"] {
  border: 0; background: transparent; padding: 2px 4px; font-size: 28px; line-height: 1;
  color: #b8bec9; min-height: 40px; min-width: 40px; border-radius: 8px;
}
.stars [role="radio"].lit { color: #e8a100; }
.stars [role="radio"].lit:disabled { opacity: 1; }
.stars .skip { margin-left: 8px; }
.typing { margin: 0; padding: 4px 16px; min-height: 26px; font-size: 13px; color: #4a5160;
          background: #f5f6f8; }
.status, .error { margin: 0; padding: 8px 16px; font-size: 13px; }
.status { background: #fff6d6; color: #4d3b00; }
.error { background: #fde8eb; color: #8a0a1f; }
.composer { display: flex; gap: 8px; align-items: flex-end; padding: 10px 12px;
            border-top: 1px solid #e1e4ea; background: #fff; }
.composer textarea {
  flex: 1; min-width: 0; resize: none; height: 44px; max-height: 120px; padding: 10px 12px;
  border: 1px solid #aab1bd; border-radius: 10px; background: #fff; color: #1d2330; line-height: 1.4;
  display: block;
}
.composer textarea:focus-visible { outline-offset: 0; border-color: var(--ring); }
.composer .send { border: 0; border-radius: 10px; height: 44px; padding: 0 16px; font-weight: 700;
                  background: var(--accent); color: var(--on-accent); flex: none; }
.composer .send:disabled { opacity: .6; }
.count { margin: 0; padding: 0 16px 6px; font-size: 12px; color: #5b6270; background: #fff;
         text-align: right; }
.count.over { color: #8a0a1f; font-weight: 700; }
@media (max-width: 480px) {
  .panel {
    inset: auto; right: var(--kefu-dx, 0px); bottom: var(--kefu-dy, 0px);
    width: var(--kefu-vw, 100%); max-width: none; height: var(--kefu-vh, 100%); max-height: none;
    border-radius: 0;
  }
  .kefu.open .launcher { display: none; }
  .kefu .launcher { right: calc(16px + var(--kefu-dx, 0px)); bottom: calc(16px + var(--kefu-dy, 0px)); }
}
@media (prefers-reduced-motion: no-preference) {
  .typing:not(:empty) { animation: kefu-pulse 1.4s ease-in-out infinite; }
}
@keyframes kefu-pulse { 50% { opacity: .45; } }
`;

  // --- DOM ------------------------------------------------------------------------------------------

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) if (child) node.append(child);
    return node;
  }

  function icon(paths) {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    for (const d of paths) {
      const path = document.createElementNS(ns, "path");
      path.setAttribute("d", d);
      svg.append(path);
    }
    return svg;
  }

  const chatIcon = icon(["M21 12a8 8 0 0 1-11.6 7.1L4 20.5l1.4-4.9A8 8 0 1 1 21 12z"]);
  const closeIcon = icon(["M6 6l12 12", "M18 6L6 18"]);
  closeIcon.style.display = "none";

  const host = document.createElement("kefu-chat");
  // Inline !important styles beat the host page's !important rules on the host element itself.
  for (const [name, value] of [["display", "block"], ["position", "fixed"], ["z-index", "2147483647"],
    ["visibility", "visible"], ["opacity", "1"]]) {
    host.style.setProperty(name, value, "important");
  }
  const shadow = host.attachShadow({ mode: "open" });
  const style = el("style");
  style.textContent = CSS;

  const titleId = "kefu-title";
  const hintId = "kefu-hint";
  const humanButton = el("button", { type: "button", class: "human", text: HUMAN_TITLE });
  const closeButton = el("button", { type: "button", class: "close", "aria-label": "Close chat", text: "×" });
  const log = el("ol", { class: "log", role: "log", "aria-live": "polite", "aria-label": "Conversation" });
  const typing = el("p", { class: "typing", "aria-live": "polite" });
  const status = el("p", { class: "status", role: "status", hidden: true });
  const error = el("p", { class: "error", role: "alert", hidden: true });
  const textBox = el("textarea", {
    id: "kefu-text",
    rows: 1,
    placeholder: "Type your message…",
    autocomplete: "off",
    "aria-describedby": hintId,
  });
  const sendButton = el("button", { type: "submit", class: "send", text: "Send" });
  const counter = el("p", { class: "count", "aria-live": "polite", hidden: true });
  const form = el(
    "form",
    { class: "composer", novalidate: true },
    el("label", { class: "sr", for: "kefu-text", text: "Your message" }),
    textBox,
    sendButton,
  );
  const panel = el(
    "section",
    { class: "panel", id: "kefu-panel", role: "dialog", "aria-labelledby": titleId, hidden: true },
    el("header", { class: "head" }, el("h2", { id: titleId, text: config.title }), humanButton, closeButton),
    status,
    log,
    typing,
    error,
    form,
    counter,
    el("p", { class: "sr", id: hintId, text: "Enter sends. Shift and Enter starts a new line." }),
  );
  const badge = el("span", { class: "badge", hidden: true });
  const launcher = el(
    "button",
    { type: "button", class: "launcher", "aria-expanded": "false", "aria-controls": "kefu-panel" },
    chatIcon,
    closeIcon,
    el("span", { class: "sr", text: "Chat with us" }),
    badge,
  );
  const root = el("div", { class: "kefu" }, panel, launcher);
  shadow.append(style, root);

  /** Keep the launcher and the phone panel on what the screen shows. A shop page wider than the
   * phone makes position: fixed use a layout viewport wider than the screen (on a 360 px phone,
   * right: 20px was past the right edge); the host, pinned to that viewport's bottom-right corner,
   * tells how far its edges lie beyond the visual viewport's. */
  function fitToScreen() {
    const screen = window.visualViewport;
    if (!screen) return;
    const corner = host.getBoundingClientRect();
    const dx = Math.max(0, corner.left - (screen.offsetLeft + screen.width));
    const dy = Math.max(0, corner.top - (screen.offsetTop + screen.height));
    root.style.setProperty("--kefu-dx", `${Math.round(dx)}px`);
    root.style.setProperty("--kefu-dy", `${Math.round(dy)}px`);
    root.style.setProperty("--kefu-vw", `${Math.round(screen.width)}px`);
    root.style.setProperty("--kefu-vh", `${Math.round(screen.height)}px`);
  }
  if (window.visualViewport) {
    window.visualViewport.addEventListener("resize", fitToScreen);
    window.visualViewport.addEventListener("scroll", fitToScreen);
  }
  window.addEventListener("resize", fitToScreen);
  window.addEventListener("load", fitToScreen);

  // --- state --------------------------------------------------------------------------------------

  const shownIds = new Map(); // stored message id -> its list item
  const buttonsOf = new WeakMap(); // list item -> the buttons its message offered
  let mode = "bot";
  let conversationId = null;
  let isOpen = false;
  let unread = 0;
  let ready = false;
  let inFlight = 0;

  function lastId() {
    let max = 0;
    for (const id of shownIds.keys()) if (id > max) max = id;
    return max;
  }

  function setConnection(state) {
    host.dataset.connection = state; // for support staff inspecting a page (and for the tests)
  }

  function showStatus(text) {
    status.textContent = text || "";
    status.hidden = !text;
  }

  function showError(text) {
    error.textContent = text || "";
    error.hidden = !text;
  }

  function setTyping(on) {
    typing.textContent = on ? "Assistant is typing…" : "";
  }

  // --- rendering ----------------------------------------------------------------------------------

  function nearBottom() {
    return log.scrollHeight - log.scrollTop - log.clientHeight < 80;
  }

  function scrollToEnd() {
    log.scrollTop = log.scrollHeight;
  }

  function safeImage(value) {
    if (typeof value !== "string") return null;
    try {
      const url = new URL(value, GATEWAY);
      return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
    } catch {
      return null;
    }
  }

  function timeLabel(iso) {
    const when = new Date(iso);
    if (Number.isNaN(when.getTime())) return null;
    return el("time", {
      datetime: when.toISOString(),
      text: when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }),
    });
  }

  function bubbleItem(author, text, createdAt) {
    const kind = AUTHORS[author] ? author : "system";
    const who = el("span", { class: "who" }, AUTHORS[kind]);
    const time = createdAt ? timeLabel(createdAt) : null;
    if (time) who.append(" · ", time);
    return el("li", { class: `msg msg--${kind}` }, who, el("p", { class: "bubble", text }));
  }

  /** Put a stored message in id order; messages still being sent (no id yet) stay at the end. */
  function place(item, id) {
    for (const other of log.children) {
      const otherId = other.dataset.id;
      if (other !== item && (otherId === undefined || Number(otherId) > id)) {
        log.insertBefore(item, other);
        return;
      }
    }
    log.append(item);
  }

  function isRating(buttons) {
    const payloads = new Set(buttons.map((b) => b.payload));
    const allowed = ["1", "2", "3", "4", "5", "skip"];
    return (
      ["1", "2", "3", "4", "5"].every((p) => payloads.has(p)) &&
      [...payloads].every((p) => allowed.includes(p))
    );
  }

  function choose(group, payload, title) {
    for (const button of group.querySelectorAll("button")) button.disabled = true;
    enqueue(payload, title);
  }

  function choiceButtons(buttons) {
    const group = el("div", { class: "choices", role: "group", "aria-label": "Suggested replies" });
    for (const button of buttons) {
      group.append(
        el("button", {
          type: "button",
          text: button.title,
          onclick: () => choose(group, button.payload, button.title),
        }),
      );
    }
    return group;
  }

  const settleRating = new WeakMap(); // a rating's star group -> lights the stars given

  /** Light the stars of the rating `item` asked for, when `payload` (a customer's reply) is one. */
  function settleRatingOf(item, payload) {
    const group = item.querySelector(".choices");
    const settle = group && settleRating.get(group);
    if (settle && /^[1-5]$/.test(payload || "")) settle(Number(payload));
  }

  function ratingStars(buttons) {
    const group = el("div", { class: "choices" });
    const stars = el("div", { class: "stars", role: "radiogroup", "aria-label": "Rate the help you got" });
    const radios = [];
    // Once rated, the chosen stars stay lit: hovering and leaving no longer change them.
    let chosen = 0;
    const light = (upTo) => radios.forEach((r, i) => r.classList.toggle("lit", i < (chosen || upTo)));
    const settle = (n) => {
      chosen = n;
      radios.forEach((r, i) => r.setAttribute("aria-checked", String(i === n - 1)));
      light(n);
    };
    settleRating.set(group, settle);
    for (let n = 1; n <= 5; n += 1) {
      const button = buttons.find((b) => b.payload === String(n));
      const radio = el("button", {
        type: "button",
        role: "radio",
        "aria-checked": "false",
        "aria-label": `Rate ${n} out of 5`,
        tabindex: n === 1 ? "0" : "-1",
        text: "★",
        onclick: () => {
          settle(n);
          choose(group, String(n), button.title);
        },
        onmouseenter: () => light(n),
        onfocus: () => light(n),
      });
      radios.push(radio);
      stars.append(radio);
    }
    stars.addEventListener("mouseleave", () => light(0));
    stars.addEventListener("keydown", (event) => {
      const index = radios.indexOf(shadow.activeElement);
      if (index < 0) return;
      const step = { ArrowRight: 1, ArrowUp: 1, ArrowLeft: -1, ArrowDown: -1 }[event.key];
      if (!step) return;
      event.preventDefault();
      const next = radios[(index + step + radios.length) % radios.length];
      radios.forEach((r) => r.setAttribute("tabindex", r === next ? "0" : "-1"));
      next.focus();
    });
    group.append(stars);
    const skip = buttons.find((b) => b.payload === "skip");
    if (skip) {
      group.append(
        el("button", {
          type: "button",
          class: "skip",
          text: skip.title || "Skip",
          onclick: () => choose(group, "skip", skip.title || "Skip"),
        }),
      );
    }
    return group;
  }

  /** A customer message of a button's payload reads as the button's title ("/request_human" ...). */
  function customerText(text, item) {
    for (let other = item.previousElementSibling; other; other = other.previousElementSibling) {
      if (other.classList.contains("msg--customer")) break;
      const offered = (buttonsOf.get(other) || []).find((b) => b.payload === text);
      if (offered) return offered.title;
    }
    return text === HUMAN_PAYLOAD ? HUMAN_TITLE : text;
  }

  /** Once the customer has written, earlier suggestions can no longer be chosen. */
  function retireChoicesBefore(item) {
    for (const group of log.querySelectorAll(".choices")) {
      if (group.compareDocumentPosition(item) & Node.DOCUMENT_POSITION_FOLLOWING) {
        for (const button of group.querySelectorAll("button")) button.disabled = true;
      }
    }
  }

  /** The customer's first reply after `item`, if there is one yet. */
  function answeredLater(item) {
    for (let other = item.nextElementSibling; other; other = other.nextElementSibling) {
      if (other.classList.contains("msg--customer")) return other;
    }
    return null;
  }

  function followMode(message) {
    const notice = message.metadata && message.metadata.notice;
    if (message.author === "agent" || notice === "agent_joined") mode = "agent";
    else if (notice === "waiting_for_agent") mode = "pending_agent";
    else if (notice === "handed_back" || notice === "closed") mode = "bot";
  }

  function render(message) {
    if (!message || typeof message.id !== "number" || shownIds.has(message.id)) return;
    const stick = nearBottom();
    if (message.author === "customer") {
      // Our own message, delivered by the socket before the gateway answered the POST.
      const pending = outbox.find((item) => item.bubble && !item.bubble.dataset.id && item.text === message.text);
      if (pending) {
        acknowledgeBubble(pending, message.id);
        return;
      }
    }
    const buttons = Array.isArray(message.buttons)
      ? message.buttons.filter((b) => b && typeof b.title === "string" && typeof b.payload === "string")
      : [];
    const item = bubbleItem(message.author, message.text || "", message.created_at);
    item.dataset.id = String(message.id);
    shownIds.set(message.id, item);
    place(item, message.id);
    if (message.author === "customer") {
      item.dataset.payload = message.text || "";
      item.querySelector(".bubble").textContent = customerText(message.text || "", item);
      retireChoicesBefore(item);
      for (let other = item.previousElementSibling; other; other = other.previousElementSibling) {
        if (other.classList.contains("msg--customer")) break;
        settleRatingOf(other, item.dataset.payload);
      }
    }
    const image = safeImage(message.metadata && message.metadata.image);
    if (image) item.append(el("img", { src: image, alt: "", loading: "lazy" }));
    if (buttons.length > 0) {
      buttonsOf.set(item, buttons);
      item.append(isRating(buttons) ? ratingStars(buttons) : choiceButtons(buttons));
      const reply = answeredLater(item);
      if (reply) {
        for (const button of item.querySelectorAll(".choices button")) button.disabled = true;
        settleRatingOf(item, reply.dataset.payload);
      }
    }
    followMode(message);
    if (ready && message.author !== "customer" && !isOpen) {
      unread += 1;
      badge.textContent = String(unread);
      badge.append(el("span", { class: "sr", text: unread === 1 ? " new message" : " new messages" }));
      badge.hidden = false;
    }
    if (stick || message.author === "customer") scrollToEnd();
  }

  function renderAll(messages) {
    if (Array.isArray(messages)) [...messages].sort((a, b) => a.id - b.id).forEach(render);
  }

  function acknowledgeBubble(item, id) {
    const bubble = item.bubble;
    if (!bubble || bubble.dataset.id) return;
    bubble.dataset.id = String(id);
    bubble.classList.remove("msg--pending");
    const state = bubble.querySelector(".state");
    if (state) state.remove();
    shownIds.set(id, bubble);
    place(bubble, id);
  }

  // --- HTTP -----------------------------------------------------------------------------------------

  class ChatError extends Error {
    constructor(message, retryable, retryAfter = 0, unknownVisitor = false) {
      super(message);
      this.retryable = retryable;
      this.retryAfter = retryAfter; // seconds the gateway asked us to wait (429), 0 if it did not say
      this.unknownVisitor = unknownVisitor; // 401: the gateway does not know our visitor id
    }
  }

  async function request(path, options) {
    const controller = new AbortController();
    const timer = window.setTimeout(() => controller.abort(), POST_TIMEOUT_MS);
    let response;
    try {
      response = await fetch(new URL(path, GATEWAY).href, {
        mode: "cors",
        credentials: "omit",
        cache: "no-store",
        signal: controller.signal,
        ...options,
      });
    } catch {
      throw new ChatError(navigator.onLine === false ? TEXT.offline : TEXT.retrying, true);
    } finally {
      window.clearTimeout(timer);
    }
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    if (response.status === 429) {
      // Too many messages in a minute: nothing was stored; the body says when to send again
      // (a page on another site cannot read the Retry-After header).
      const wait = positiveInt(data && String(data.retry_after), 5);
      throw new ChatError(TEXT.slowDown(wait), true, wait);
    }
    if (response.status === 401) throw new ChatError(TEXT.retrying, true, 0, true);
    if (!response.ok) {
      const retryable = response.status >= 500 || response.status === 408;
      const message = data && typeof data.error === "string" ? data.error : TEXT.serverError;
      throw new ChatError(retryable ? TEXT.retrying : message, retryable);
    }
    return data || {};
  }

  /** The visitor id, asking the gateway for one first when we have none. */
  async function ensureVisitor() {
    if (visitor) return visitor;
    if (!issuing) {
      issuing = request("api/web/visitors", { method: "POST" })
        .then((data) => {
          if (typeof data.session !== "string" || !VISITOR_ID.test(data.session)) {
            throw new ChatError(TEXT.serverError, true);
          }
          visitor = data.session;
          save(KEYS.visitor, visitor);
          return visitor;
        })
        .finally(() => {
          issuing = null;
        });
    }
    return issuing;
  }

  /** The gateway refused this id (a new SECRET_KEY, say): the next request gets a new one. */
  function forgetVisitor(refused) {
    if (refused && visitor === refused) visitor = null;
  }

  async function loadHistory() {
    const id = await ensureVisitor();
    try {
      return await request("api/web/history", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ session: id }),
      });
    } catch (failure) {
      if (failure instanceof ChatError && failure.unknownVisitor) forgetVisitor(id);
      throw failure;
    }
  }

  function takeHistory(data) {
    if (data.conversation_id !== undefined) conversationId = data.conversation_id;
    renderAll(data.messages);
    if (typeof data.mode === "string") mode = data.mode; // the gateway's word beats our guess
  }

  // --- sending: an outbox kept in localStorage, retried with backoff ------------------------------------

  let flushing = false;
  let retryTimer = null;
  let retries = 0;
  let retryNotice = null; // the status shown while the outbox waits, cleared once it is through
  let holdUntil = 0; // after a 429, nothing is sent before this time (ms)

  function pendingBubble(item) {
    const bubble = bubbleItem("customer", item.shown || item.text, null);
    bubble.classList.add("msg--pending");
    bubble.append(el("span", { class: "state", text: "Sending…" }));
    log.append(bubble);
    retireChoicesBefore(bubble);
    scrollToEnd();
    item.bubble = bubble;
  }

  function enqueue(text, shown) {
    showError("");
    const item = { cid: randomHex(16), text, shown: shown || null };
    outbox.push(item);
    saveOutbox();
    pendingBubble(item);
    connectLive();
    if (Date.now() >= holdUntil) flush(); // else it waits in the outbox for the timer already set
  }

  function refuse(item, message) {
    if (item.bubble) item.bubble.remove();
    showError(`Not sent: ${message}`);
    // Give the typed text back to edit, unless the customer has started something new.
    if (!item.shown && !textBox.value) textBox.value = item.text;
    updateCounter();
  }

  async function flush() {
    if (flushing) return;
    flushing = true;
    window.clearTimeout(retryTimer);
    retryTimer = null;
    try {
      while (outbox.length > 0) {
        const item = outbox[0];
        inFlight += 1;
        setTyping(true);
        let data;
        let sentAs = null;
        try {
          sentAs = await ensureVisitor();
          data = await request("api/web/messages", {
            method: "POST",
            headers: { "Content-Type": "application/json" },
            body: JSON.stringify({ session: sentAs, text: item.text, client_message_id: item.cid }),
          });
        } catch (failure) {
          const chatError = failure instanceof ChatError ? failure : new ChatError(TEXT.serverError, true);
          if (chatError.unknownVisitor) forgetVisitor(sentAs); // resent under a new id
          if (!chatError.retryable) {
            outbox.shift();
            saveOutbox();
            refuse(item, chatError.message);
            continue;
          }
          const backoff = Math.min(1000 * 2 ** retries, MAX_BACKOFF_MS);
          const delay = chatError.retryAfter > 0 ? chatError.retryAfter * 1000 : backoff;
          holdUntil = chatError.retryAfter > 0 ? Date.now() + delay : 0;
          retries += 1;
          showStatus(chatError.message);
          retryNotice = chatError.message;
          const state = item.bubble && item.bubble.querySelector(".state");
          if (state) state.textContent = chatError.retryAfter > 0 ? "Waiting to send…" : "Not sent yet — retrying";
          retryTimer = window.setTimeout(flush, delay);
          return;
        } finally {
          inFlight -= 1;
          if (inFlight === 0) setTyping(false);
        }
        outbox.shift();
        saveOutbox();
        retries = 0;
        if (status.textContent === retryNotice) showStatus("");
        retryNotice = null;
        acknowledgeBubble(item, data.message_id);
        takeHistory(data);
      }
    } finally {
      flushing = false;
    }
  }

  function sendNow() {
    if (Date.now() < holdUntil) return; // the gateway said when: sooner would only be refused again
    if (outbox.length > 0 && !flushing) {
      retries = 0;
      flush();
    }
  }

  // --- receiving: a WebSocket, HTTP polling while it is down ------------------------------------------

  let socket = null;
  let liveWanted = false;
  let liveAttempts = 0;
  let reconnectTimer = null;
  let pingTimer = null;
  let pongTimer = null;
  let pollTimer = null;
  let polling = false;
  let gettingVisitor = false;

  function liveUrl() {
    const url = new URL("api/web/live", GATEWAY);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("after", String(lastId()));
    return url.href;
  }

  function connectLive() {
    liveWanted = true;
    if (socket || reconnectTimer || gettingVisitor) return;
    if (!visitor) {
      gettingVisitor = true;
      ensureVisitor().then(
        () => {
          gettingVisitor = false;
          connectLive();
        },
        () => {
          gettingVisitor = false;
          startPolling();
          scheduleReconnect();
        },
      );
      return;
    }
    const connectedAs = visitor;
    let ws;
    try {
      ws = new WebSocket(liveUrl(), [LIVE_PROTOCOL, VISITOR_PROTOCOL + connectedAs]);
    } catch {
      startPolling();
      scheduleReconnect();
      return;
    }
    socket = ws;
    setConnection("connecting");
    ws.addEventListener("open", () => {
      liveAttempts = 0;
      setConnection("live");
      stopPolling();
      if (status.textContent === TEXT.reconnecting) showStatus("");
      startPinging(ws);
      sendNow(); // the gateway is back: do not wait for the outbox's backoff
    });
    ws.addEventListener("message", (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (frame && frame.type === "message") render(frame.message);
      else if (frame && frame.type === "pong") window.clearTimeout(pongTimer);
    });
    ws.addEventListener("close", (event) => {
      if (socket !== ws) return;
      socket = null;
      stopPinging();
      startPolling();
      if (event.code === 4401) forgetVisitor(connectedAs); // the next attempt asks for a new id
      if (event.code === 4400) {
        setConnection("refused"); // the gateway refused this visitor id; polling still shows replies
        return;
      }
      // Too many new sockets in a minute: poll for a while before trying again.
      if (event.code === 4429) liveAttempts = Math.max(liveAttempts, 5);
      setConnection("reconnecting");
      scheduleReconnect();
    });
  }

  function scheduleReconnect() {
    if (reconnectTimer) return;
    const ceiling = Math.min(1000 * 2 ** liveAttempts, MAX_BACKOFF_MS);
    liveAttempts += 1;
    const delay = ceiling / 2 + Math.random() * (ceiling / 2); // jitter: not every widget at once
    reconnectTimer = window.setTimeout(() => {
      reconnectTimer = null;
      connectLive();
    }, delay);
  }

  function startPinging(ws) {
    stopPinging();
    pingTimer = window.setInterval(() => {
      if (ws.readyState !== WebSocket.OPEN) return;
      ws.send(JSON.stringify({ type: "ping" }));
      window.clearTimeout(pongTimer);
      pongTimer = window.setTimeout(() => ws.close(4000, "no pong"), PONG_WAIT_MS);
    }, PING_MS);
  }

  function stopPinging() {
    window.clearInterval(pingTimer);
    window.clearTimeout(pongTimer);
    pingTimer = null;
  }

  function startPolling() {
    if (pollTimer) return;
    pollTimer = window.setInterval(poll, POLL_MS);
  }

  function stopPolling() {
    window.clearInterval(pollTimer);
    pollTimer = null;
  }

  async function poll() {
    if (polling) return;
    polling = true;
    try {
      takeHistory(await loadHistory());
      if (status.textContent === TEXT.reconnecting) showStatus("");
      sendNow();
    } catch {
      if (!status.textContent) showStatus(TEXT.reconnecting);
    } finally {
      polling = false;
    }
  }

  // --- opening and closing --------------------------------------------------------------------------

  function setOpen(open, { focus = true } = {}) {
    isOpen = open;
    panel.hidden = !open;
    root.classList.toggle("open", open);
    launcher.setAttribute("aria-expanded", String(open));
    chatIcon.style.display = open ? "none" : "";
    closeIcon.style.display = open ? "" : "none";
    save(KEYS.open, open ? "1" : "0");
    if (open) {
      unread = 0;
      badge.hidden = true;
      if (ready) connectLive(); // before that, the start-up connects once the history is in
      scrollToEnd();
      if (focus) textBox.focus();
    } else if (focus) {
      launcher.focus();
    }
  }

  launcher.addEventListener("click", () => setOpen(!isOpen));
  closeButton.addEventListener("click", () => setOpen(false));
  root.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && isOpen && !event.isComposing) {
      event.preventDefault();
      setOpen(false);
    }
  });

  humanButton.addEventListener("click", () => {
    if (mode === "pending_agent" || mode === "agent") {
      showStatus(TEXT.personComing);
      return;
    }
    enqueue(HUMAN_PAYLOAD, HUMAN_TITLE);
  });

  // --- composing ------------------------------------------------------------------------------------

  function charCount(text) {
    return [...text].length; // the gateway counts characters, not UTF-16 units
  }

  function updateCounter() {
    const used = charCount(textBox.value.trim());
    const show = used > config.maxChars * 0.8;
    counter.hidden = !show;
    counter.textContent = show ? `${used} / ${config.maxChars} characters` : "";
    counter.classList.toggle("over", used > config.maxChars);
  }

  textBox.addEventListener("input", updateCounter);
  textBox.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit(sendButton);
    }
  });

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = textBox.value.trim();
    if (!text) {
      showError(TEXT.empty);
      return;
    }
    const used = charCount(text);
    if (used > config.maxChars) {
      showError(`Your message is ${used} characters; the limit is ${config.maxChars}. Please shorten it.`);
      return;
    }
    textBox.value = "";
    updateCounter();
    enqueue(text);
    textBox.focus();
  });

  window.addEventListener("online", () => {
    sendNow();
    if (liveWanted && !socket) {
      window.clearTimeout(reconnectTimer);
      reconnectTimer = null;
      liveAttempts = 0;
      connectLive();
    }
  });

  // --- start --------------------------------------------------------------------------------------

  log.append(el("li", { class: "msg msg--bot", "data-id": "0" },
    el("span", { class: "who", text: AUTHORS.bot }), el("p", { class: "bubble", text: config.greeting })));
  outbox.forEach(pendingBubble); // what could not be sent before the last page load
  document.documentElement.append(host); // not <body>: its transforms would trap position: fixed
  fitToScreen();
  setOpen(load(KEYS.open) === "1", { focus: false });

  (async () => {
    log.setAttribute("aria-busy", "true"); // do not read the whole history aloud
    try {
      // A visitor without an id has no chat yet: the id is asked for once they open or write.
      if (visitor) takeHistory(await loadHistory());
    } catch {
      liveWanted = true;
      startPolling();
    } finally {
      log.removeAttribute("aria-busy");
      ready = true;
      host.dataset.ready = "true";
      try {
        performance.mark("kefu-widget-ready");
      } catch {
        /* old browsers */
      }
      scrollToEnd();
    }
    // A visitor who never wrote gets no socket until they open the chat.
    if (liveWanted || conversationId !== null || outbox.length > 0 || isOpen) connectLive();
    sendNow();
  })();
})();
