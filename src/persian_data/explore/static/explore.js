// explore: a little behaviour on top of server-rendered pages. One clip plays at a time; Escape
// stops it; a filter form drops its empty fields from the URL.
(function () {
  "use strict";
  document.addEventListener("play", function (event) {
    document.querySelectorAll("audio").forEach(function (other) {
      if (other !== event.target && !other.paused) other.pause();
    });
  }, true);
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") document.querySelectorAll("audio").forEach(function (a) { a.pause(); });
  });
  document.querySelectorAll("form.filters").forEach(function (form) {
    form.addEventListener("submit", function () {
      form.querySelectorAll("input, select").forEach(function (field) {
        if (field.name && field.value === "" && field.type !== "hidden") field.disabled = true;
      });
    });
  });
})();
