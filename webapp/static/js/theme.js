// Theme: follows the OS preference until the user picks one; the choice is remembered.
(function () {
  var KEY = "pacer-theme";
  var root = document.documentElement;
  var saved = null;
  try { saved = localStorage.getItem(KEY); } catch (e) { /* storage disabled */ }
  if (saved === "light" || saved === "dark") root.setAttribute("data-theme", saved);
  // Pages whose <html> has no theme (Flask-Admin's) follow the OS preference like the others.
  else if (!root.hasAttribute("data-theme")) root.setAttribute("data-theme", "auto");
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-theme-toggle]").forEach(function (button) {
      button.addEventListener("click", function () {
        var current = root.getAttribute("data-theme");
        if (current === "auto") {
          current = window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
        }
        var next = current === "dark" ? "light" : "dark";
        root.setAttribute("data-theme", next);
        try { localStorage.setItem(KEY, next); } catch (e) { /* ignore */ }
      });
    });
  });
})();
