// Re-ingest editor: well-formedness checked as you type (JSON / XML, message next to the editor;
// the server checks again), and a form is submitted once (its buttons disabled on submit).
(function () {
  "use strict";

  function xmlProblem(text) {
    var doc = new DOMParser().parseFromString(text, "application/xml");
    var error = doc.getElementsByTagName("parsererror")[0];
    if (!error) return null;
    var lines = (error.textContent || "").split("\n").filter(function (l) { return l.trim(); });
    return lines.length > 1 ? lines[1].trim() : (lines[0] || "parse error");
  }

  function check(format, text) {
    if (format === "json") {
      try { JSON.parse(text); return null; } catch (e) { return e.message; }
    }
    if (format === "xml") return xmlProblem(text);
    return undefined; // other formats: no check
  }

  function setUpEditor(form) {
    var editor = form.querySelector("textarea[name=payload]");
    var status = document.getElementById("payload-validity");
    var review = form.querySelector("[data-action=reingest-review]");
    var format = editor.getAttribute("data-format");
    var timer = null;

    function validate() {
      var problem = check(format, editor.value);
      if (problem === undefined) return;
      var label = format.toUpperCase();
      if (problem === null) {
        status.textContent = "Well-formed " + label;
        status.setAttribute("data-state", "valid");
        editor.removeAttribute("aria-invalid");
        if (review) review.disabled = false;
      } else {
        status.textContent = "Not well-formed " + label + ": " + problem;
        status.setAttribute("data-state", "invalid");
        editor.setAttribute("aria-invalid", "true");
        if (review) review.disabled = true;
      }
    }

    editor.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(validate, 150);
    });
    validate();
  }

  function submitOnce(form) {
    form.addEventListener("submit", function (event) {
      if (form.getAttribute("data-submitted")) {
        event.preventDefault();
        return;
      }
      form.setAttribute("data-submitted", "true");
      // The clicked button's name/value must still be sent: carry it in a hidden field.
      var clicked = event.submitter;
      if (clicked && clicked.name) {
        var carry = document.createElement("input");
        carry.type = "hidden";
        carry.name = clicked.name;
        carry.value = clicked.value;
        form.appendChild(carry);
      }
      form.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-reingest-editor]").forEach(function (form) {
      setUpEditor(form);
      submitOnce(form);
    });
    document.querySelectorAll("form[data-once]").forEach(submitOnce);
  });
})();
