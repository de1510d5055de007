// Progressive enhancement for the developer portal: "Copy" buttons next to keys.
// Without this script the keys stay visible and selectable; the buttons stay hidden.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var status = document.getElementById("copy-status");
  var announce = function (text) {
    if (status) {
      status.textContent = "";
      // A fresh text node so that screen readers announce a repeated message.
      window.setTimeout(function () { status.textContent = text; }, 50);
    }
  };
  document.querySelectorAll("button.copy[data-copy]").forEach(function (button) {
    if (!navigator.clipboard) {
      return;
    }
    button.hidden = false;
    button.addEventListener("click", function () {
      var source = document.getElementById(button.getAttribute("data-copy"));
      if (!source) {
        return;
      }
      navigator.clipboard.writeText(source.textContent.trim()).then(
        function () {
          button.dataset.copied = "true";
          announce("Copied");
        },
        function () {
          announce("Could not copy: select the key and copy it by hand");
        }
      );
    });
  });
});
