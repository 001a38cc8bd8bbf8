// txregistry web pages: conveniences only; every page works without this.
(function () {
  "use strict";
  function copyButtons() {
    if (!navigator.clipboard) { return; }
    document.querySelectorAll("button.copy[data-copy]").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () {
        navigator.clipboard.writeText(button.getAttribute("data-copy")).then(function () {
          var was = button.textContent;
          button.textContent = "Copied";
          setTimeout(function () { button.textContent = was; }, 1500);
        });
      });
    });
  }
  function suggestions() {
    var input = document.getElementById("q");
    var list = document.getElementById("suggestions");
    if (!input || !list || !window.fetch) { return; }
    var timer = null, asked = "";
    function clear() { list.hidden = true; while (list.firstChild) { list.removeChild(list.firstChild); } }
    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        var term = input.value.trim();
        if (!term) { clear(); return; }
        asked = term;
        fetch(input.getAttribute("data-suggest") + "?q=" + encodeURIComponent(term), {credentials: "same-origin"})
          .then(function (r) { return r.ok ? r.json() : []; })
          .then(function (found) {
            if (asked !== term) { return; }
            clear();
            found.forEach(function (item) {
              var li = document.createElement("li"), a = document.createElement("a");
              a.href = item.url; a.textContent = item.name;  // text, never markup
              li.appendChild(a); list.appendChild(li);
            });
            list.hidden = found.length === 0;
          })
          .catch(clear);
      }, 150);
    });
    input.addEventListener("keydown", function (e) { if (e.key === "Escape") { clear(); } });
  }
  document.addEventListener("DOMContentLoaded", function () { copyButtons(); suggestions(); });
})();
