"use strict";
(() => {
  const form = document.getElementById("login-form");
  const error = document.getElementById("login-error");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    try {
      await Kefu.api("POST", "/api/auth/login", {
        email: document.getElementById("email").value,
        password: document.getElementById("password").value,
      });
      const next = new URLSearchParams(location.search).get("next") || "/console";
      // Only our own console pages: never an address someone put in the link.
      location.assign(/^\/console(\/[a-z]*)?$/.test(next) ? next : "/console");
    } catch (e) {
      error.textContent = e.message;
      error.hidden = false;
    }
  });
})();
