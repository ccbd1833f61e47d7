// Shared by every dashboard page: calls to /v1 with the session cookie and the CSRF token
// the page was rendered with, and the log-out button.
"use strict";

const trainrx = (() => {
  const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

  // fetch() a /v1 URL; resolves to {status, body} (body: parsed JSON, or null).
  async function api(method, url, payload) {
    const headers = {"Accept": "application/json"};
    if (!["GET", "HEAD"].includes(method)) headers["X-CSRF-Token"] = csrf();
    const init = {method, headers, credentials: "same-origin"};
    if (payload !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = typeof payload === "string" ? payload : JSON.stringify(payload);
    }
    const response = await fetch(url, init);
    let body = null;
    try { body = await response.json(); } catch (e) { /* 204, or not JSON */ }
    if (response.status === 401) {  // the session ended (revoked token, expired): log in again
      window.location.assign("/login?next=" + encodeURIComponent(window.location.pathname + window.location.search));
    }
    return {status: response.status, body};
  }

  // The server's error body names the problem: show its message.
  function message(result, fallback) {
    return (result.body && result.body.message) || fallback || `The server answered ${result.status}.`;
  }

  // Field errors {"a": {"b": ["msg"]}} flattened to [["a.b", "msg"], ...].
  function fieldErrors(errors, prefix = "") {
    const out = [];
    if (Array.isArray(errors)) {
      for (const item of errors) {
        if (typeof item === "string") out.push([prefix || "(request)", item]);
        else out.push(...fieldErrors(item, prefix));
      }
    } else if (errors && typeof errors === "object") {
      for (const [key, value] of Object.entries(errors)) {
        const path = key === "_schema" ? prefix : (prefix ? `${prefix}.${key}` : key);
        out.push(...fieldErrors(value, path));
      }
    }
    return out;
  }

  function showFieldErrors(list, errors) {
    list.replaceChildren();
    for (const [field, text] of fieldErrors(errors)) {
      const item = document.createElement("li");
      const name = document.createElement("code");
      name.textContent = field;
      item.append(name, " ", text);
      item.dataset.field = field;
      list.append(item);
    }
    list.hidden = list.children.length === 0;
  }

  function text(element, value) { if (element) element.textContent = value; }

  document.addEventListener("DOMContentLoaded", () => {
    const logout = document.getElementById("logout");
    if (logout) logout.addEventListener("click", async () => {
      await api("DELETE", "/v1/session");
      window.location.assign("/login");
    });
  });

  return {api, message, showFieldErrors, text, csrf};
})();
