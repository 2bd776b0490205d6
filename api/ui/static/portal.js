// Custody portal: a little progressive enhancement. Every page works without it.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  // Copy buttons: shown only when the Clipboard API is there to use.
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    if (!navigator.clipboard) { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      var source = document.getElementById(button.dataset.copy);
      var status = button.parentElement.querySelector(".copied");
      if (!source) { return; }
      navigator.clipboard.writeText(source.textContent).then(function () {
        if (status) { status.textContent = "Copied."; }
      }, function () {
        if (status) { status.textContent = "Copy failed: select the text instead."; }
      });
    });
  });
  // A revealed value hides itself: the text is removed from the page, not just styled away.
  document.querySelectorAll("[data-autohide]").forEach(function (element) {
    var seconds = parseInt(element.dataset.autohide, 10) || 30;
    window.setTimeout(function () {
      element.textContent = "(hidden)";
      element.dataset.hidden = "true";
      var copy = document.querySelector('button[data-copy="' + element.id + '"]');
      if (copy) { copy.hidden = true; }
    }, seconds * 1000);
  });
});
