// /api/v1/docs: Swagger UI (vendored, static/vendor/swagger-ui) on this API's openapi.json.
// An external file: the Content-Security-Policy allows no inline script.
(function () {
  "use strict";

  function init() {
    var node = document.getElementById("swagger-ui");
    if (!node || !window.SwaggerUIBundle) {
      return;
    }
    var meta = document.querySelector('meta[name="csrf-token"]');
    window.SwaggerUIBundle({
      url: node.dataset.specUrl,
      domNode: node,
      deepLinking: false,
      presets: [window.SwaggerUIBundle.presets.apis],
      layout: "BaseLayout",
      // No call to the public validator service: nothing leaves this site.
      validatorUrl: null,
      // "Try it out" from the page goes with the session cookie: its POSTs carry the CSRF token
      // (a bearer token, once authorized, needs none).
      requestInterceptor: function (request) {
        var headers = request.headers || (request.headers = {});
        var method = (request.method || "GET").toUpperCase();
        if (meta && !headers.Authorization && method !== "GET" && method !== "HEAD") {
          headers["X-CSRFToken"] = meta.getAttribute("content");
        }
        return request;
      },
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
