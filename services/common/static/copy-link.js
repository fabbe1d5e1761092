// Copy buttons: <button data-copy="INPUT-ID" data-copy-status="STATUS-ID" hidden>. The button is hidden in
// the markup and shown here, so a page without JavaScript offers only the (selectable) text. Copies the
// input's value to the clipboard; where the clipboard is refused (plain http, an old browser, a denied
// permission) the text is selected instead, for Ctrl+C / Cmd+C. The result is announced in a live region.
(function () {
  "use strict";

  function say(button, text) {
    var status = document.getElementById(button.dataset.copyStatus || "");
    if (status) { status.textContent = text; }
  }

  function selectText(input) {
    input.focus();
    input.select();
    input.setSelectionRange(0, input.value.length);
  }

  function copy(button) {
    var input = document.getElementById(button.dataset.copy);
    if (!input) { return; }
    var fallback = function () {
      selectText(input);
      say(button, "Link selected: press Ctrl+C (Cmd+C on a Mac) to copy it.");
    };
    if (!navigator.clipboard || !window.isSecureContext) { fallback(); return; }
    navigator.clipboard.writeText(input.value).then(function () {
      say(button, "Link copied.");
    }, fallback);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("button[data-copy]").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () { copy(button); });
    });
    // A link's text field selects itself when focused: one click, then copy by hand.
    document.querySelectorAll("input.link-url").forEach(function (input) {
      input.addEventListener("focus", function () { selectText(input); });
    });
  });
}());
