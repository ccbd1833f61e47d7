// The submit form: POST /v1/jobs with the editor's JSON; a 422's field errors are listed
// beside the editor, each naming its field.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const editor = document.getElementById("request");
  const list = document.getElementById("field-errors");
  const message = document.getElementById("errors-message");
  const none = document.getElementById("errors-none");
  const button = document.getElementById("submit");

  const show = (text, errors) => {
    none.hidden = true;
    message.textContent = text;
    message.hidden = false;
    trainrx.showFieldErrors(list, errors || {});
    editor.classList.add("invalid");
  };

  document.getElementById("example").addEventListener("change", (event) => event.target.form.submit());

  button.addEventListener("click", async () => {
    let request;
    try {
      request = JSON.parse(editor.value);
    } catch (e) {
      show(`The request is not valid JSON: ${e.message}`);
      return;
    }
    button.disabled = true;
    try {
      const result = await trainrx.api("POST", "/v1/jobs", request);
      if (result.status === 202 || result.status === 200) {
        window.location.assign(`/jobs/${result.body.id}`);
        return;
      }
      show(trainrx.message(result), result.body && result.body.errors);
    } finally {
      button.disabled = false;
    }
  });
});
