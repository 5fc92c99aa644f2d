// Shared by the console pages: the API helper (login cookie + CSRF header), who is logged in,
// log out, messages to the user, and building elements. Text is only ever set as text.
"use strict";

const Kefu = (() => {
  let csrf = null;
  let me = null;

  function toLogin() {
    const next = encodeURIComponent(location.pathname);
    location.assign(`/console/login?next=${next}`);
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET" && csrf) headers["X-CSRF-Token"] = csrf;
    const response = await fetch(path, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 401 && !path.startsWith("/api/auth/login")) {
      toLogin();
      throw new Error("Your login has expired.");
    }
    const data = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
    if (!response.ok) {
      const error = new Error((data && (data.detail || data.error)) || `HTTP ${response.status}`);
      error.status = response.status;
      throw error;
    }
    return data;
  }

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  let flashTimer = null;
  function flash(message, kind = "error") {
    const box = document.getElementById("flash");
    box.textContent = message;
    box.className = `flash flash--${kind}`;
    box.hidden = false;
    clearTimeout(flashTimer);
    flashTimer = setTimeout(() => { box.hidden = true; }, 6000);
  }

  async function whoAmI() {
    const data = await api("GET", "/api/auth/me");
    csrf = data.csrf_token;
    me = data.agent;
    document.getElementById("who").textContent = `${me.name} (${me.role})`;
    const logout = document.getElementById("logout");
    logout.hidden = false;
    logout.addEventListener("click", async () => {
      try { await api("POST", "/api/auth/logout", {}); } finally { location.assign("/console/login"); }
    });
    return me;
  }

  function minutes(seconds) {
    if (seconds < 60) return `${seconds} s`;
    const m = Math.floor(seconds / 60);
    return m < 60 ? `${m} min` : `${Math.floor(m / 60)} h ${m % 60} min`;
  }

  function when(iso) {
    return iso ? new Date(iso).toLocaleString() : "";
  }

  return { api, el, flash, whoAmI, minutes, when, toLogin, get me() { return me; } };
})();
