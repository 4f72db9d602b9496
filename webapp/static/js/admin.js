// Flask-Admin's page behaviour without inline event handlers or javascript: URLs, which the
// Content-Security-Policy blocks (templates/admin/ replaces Flask-Admin's onclick attributes with
// data attributes). Loaded on every /admin page (webapp/admin/views.py, AdminOnly.extra_js).
//   form[data-confirm]     submits only once the user confirmed the message (row delete)
//   [data-admin-action]    runs that "With selected" action on the checked rows (Flask-Admin's
//                          actions.js: its own confirmation, then the hidden action form)
//   a[href^="javascript:"] Flask-Admin's no-op links (tabs, menus, pager): never followed
(function () {
  "use strict";

  document.addEventListener(
    "submit",
    function (event) {
      var form = event.target;
      var message = form.getAttribute && form.getAttribute("data-confirm");
      if (message && !window.confirm(message)) {
        event.preventDefault();
        event.stopImmediatePropagation();
      }
    },
    true
  );

  document.addEventListener(
    "click",
    function (event) {
      if (!(event.target instanceof Element)) {
        return;
      }
      var item = event.target.closest("[data-admin-action]");
      if (item) {
        event.preventDefault();
        if (window.modelActions) {
          window.modelActions.execute(item.getAttribute("data-admin-action"));
        }
        return;
      }
      var link = event.target.closest("a[href]");
      if (link && /^\s*javascript:/i.test(link.getAttribute("href"))) {
        event.preventDefault();
      }
    },
    true
  );
})();
