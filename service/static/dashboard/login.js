// The login form: POST /v1/session with the token as a Bearer credential sets the session cookie
// (HttpOnly: this page never sees it); the token itself is not kept anywhere.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("login-form");
  const error = document.getElementById("login-error");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const token = document.getElementById("token").value.trim();
    let response;
    try {
      response = await fetch("/v1/session", {method: "POST", credentials: "same-origin",
                                             headers: {"Authorization": `Bearer ${token}`}});
    } catch (e) {
      error.textContent = "The server cannot be reached.";
      error.hidden = false;
      return;
    }
    if (response.status === 201) {
      window.location.assign(form.dataset.next || "/");
      return;
    }
    let body = null;
    try { body = await response.json(); } catch (e) { /* not JSON */ }
    error.textContent = response.status === 401
      ? "This token is not valid: unknown, revoked or expired."
      : (body && body.message) || `The server answered ${response.status}.`;
    error.hidden = false;
  });
});
