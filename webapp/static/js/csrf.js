// Adds the CSRF token (from <meta name="csrf-token">) to every state-changing htmx request.
// Plain forms carry it as a hidden `csrf_token` field; this covers hx-post/put/patch/delete.
(function () {
  "use strict";
  function token() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : null;
  }
  document.addEventListener("htmx:configRequest", function (event) {
    var verb = (event.detail.verb || "get").toLowerCase();
    if (verb === "get" || verb === "head" || verb === "options") {
      return;
    }
    var value = token();
    if (value) {
      event.detail.headers["X-CSRFToken"] = value;
    }
  });
})();
