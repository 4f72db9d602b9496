// Keyboard shortcuts (documented on /help): "/" focuses the page's search box, "?" opens the help,
// Escape leaves the field being typed in. Never while typing, never with Ctrl/Alt/Meta.
(function () {
  "use strict";

  function typing(target) {
    if (!(target instanceof Element)) return false;
    return target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName);
  }

  // The free-text box first, else any search box, else the first field of the filter form.
  var SEARCH_BOXES = [
    "#field-q",
    "form[role=search] input[type=search]",
    "form[role=search] input:not([type=hidden]):not([type=checkbox])"
  ];

  function searchBox() {
    for (var i = 0; i < SEARCH_BOXES.length; i++) {
      var box = document.querySelector(SEARCH_BOXES[i]);
      if (box) return box;
    }
    return null;
  }

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.ctrlKey || event.altKey || event.metaKey) return;
    if (event.key === "Escape" && typing(event.target)) {
      event.target.blur();
      return;
    }
    if (typing(event.target)) return;
    // <body> carries the URLs on the app's pages, a wrapper <div> on Flask-Admin's.
    var body = document.querySelector("[data-help-url]") || document.body;
    if (event.key === "/") {
      var box = searchBox();
      event.preventDefault();
      if (box) {
        box.focus();
        if (typeof box.select === "function" && box.type !== "datetime-local") box.select();
      } else if (body.dataset.searchUrl) {
        window.location.assign(body.dataset.searchUrl);
      }
    } else if (event.key === "?" && body.dataset.helpUrl) {
      event.preventDefault();
      window.location.assign(body.dataset.helpUrl);
    }
  });
})();
