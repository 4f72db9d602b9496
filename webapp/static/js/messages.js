// Message pages: copy buttons, payload view toggle, clean filter URLs and live updates.
// No data is ever turned into code: rows arrive as server-rendered (escaped) HTML fragments,
// configuration comes from <script type="application/json">.
(function () {
  "use strict";

  var LIVE_KEY = "pacer-live";

  // ---- copy ------------------------------------------------------------------------------------
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Plain-http deployments: the clipboard API is unavailable, fall back to a hidden textarea.
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "offscreen";
      document.body.appendChild(area);
      area.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      document.body.removeChild(area);
      if (ok) { resolve(); } else { reject(new Error("copy refused")); }
    });
  }

  function flash(button, text) {
    var original = button.getAttribute("data-label") || button.textContent;
    button.setAttribute("data-label", original);
    button.textContent = text;
    button.classList.add("copied");
    window.setTimeout(function () {
      button.textContent = original;
      button.classList.remove("copied");
    }, 1200);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy], [data-copy-target]");
    if (!button) { return; }
    var text = button.getAttribute("data-copy");
    if (text === null) {
      var target = document.getElementById(button.getAttribute("data-copy-target"));
      text = target ? target.textContent : "";
    }
    copyText(text).then(
      function () { flash(button, "Copied"); announce("Copied to the clipboard"); },
      function () { flash(button, "Copy failed"); }
    );
  });

  function announce(text) {
    var region = document.getElementById("copy-status");
    if (!region) {
      region = document.createElement("div");
      region.id = "copy-status";
      region.className = "visually-hidden";
      region.setAttribute("role", "status");
      document.body.appendChild(region);
    }
    region.textContent = text;
  }

  // ---- payload: reformatted / as received ------------------------------------------------------
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-payload-view]");
    if (!button) { return; }
    var pretty = document.getElementById("payload-pretty");
    var raw = document.getElementById("payload-raw");
    if (!pretty || !raw) { return; }
    var showRaw = raw.hidden;
    raw.hidden = !showRaw;
    pretty.hidden = showRaw;
    button.setAttribute("aria-pressed", showRaw ? "true" : "false");
    button.textContent = showRaw ? "Show reformatted" : "Show as received";
  });

  // ---- filters: leave empty fields out of the URL ----------------------------------------------
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches("form.filters")) { return; }
    Array.prototype.forEach.call(form.elements, function (el) {
      if (el.name && !el.disabled && el.value === "" && el.tagName !== "BUTTON") {
        el.disabled = true;
      }
    });
    window.setTimeout(function () {
      Array.prototype.forEach.call(form.elements, function (el) { el.disabled = false; });
    }, 0);
  });

  // ---- type picker: checkboxes in a <details> dropdown ----------------------------------------
  function typeSummary(picker) {
    var checked = Array.prototype.map.call(
      picker.querySelectorAll("input[name=type]:checked"), function (box) { return box.value; });
    var label = picker.querySelector(".type-picker-summary");
    if (label) { label.textContent = checked.length ? checked.join(", ") : "any type"; }
  }

  document.addEventListener("change", function (event) {
    var picker = event.target.closest("[data-type-picker]");
    if (picker) { typeSummary(picker); }
  });

  // Close an open picker on a click elsewhere or on Escape (focus back on its summary).
  document.addEventListener("click", function (event) {
    Array.prototype.forEach.call(document.querySelectorAll("[data-type-picker][open]"), function (picker) {
      if (!picker.contains(event.target)) { picker.open = false; }
    });
  });
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") { return; }
    var picker = event.target.closest && event.target.closest("[data-type-picker][open]");
    if (picker) {
      picker.open = false;
      picker.querySelector("summary").focus();
    }
  });

  // ---- selection: tick rows, then acknowledge / re-ingest them (preview and confirm) -----------
  // At most this many rows at once (the server's MAX_SELECTED_IDS, on the form); the selection
  // is posted, so no URL grows with it. "Everything matching this filter" has no such bound.
  function maxSelected() {
    var form = document.getElementById("selection-form");
    return (form && parseInt(form.getAttribute("data-max-selected"), 10)) || 1000;
  }

  function selectedIds() {
    return Array.prototype.map.call(
      document.querySelectorAll("#message-rows input.select-row:checked"), function (box) { return box.value; });
  }

  function updateSelection() {
    var form = document.getElementById("selection-form");
    if (!form) { return; }
    var ids = selectedIds();
    var status = document.getElementById("selection-count");
    var max = maxSelected();
    var tooMany = ids.length > max;
    if (status) {
      status.textContent = !ids.length ? "Select rows to act on them"
        : tooMany ? ids.length + " rows selected: at most " + max + " at once (or act on everything matching)"
        : ids.length + (ids.length === 1 ? " row selected" : " rows selected");
    }
    Array.prototype.forEach.call(form.querySelectorAll("[data-needs-selection]"), function (button) {
      button.disabled = !ids.length || tooMany;
    });
    var all = document.getElementById("select-page");
    if (all) {
      var boxes = document.querySelectorAll("#message-rows input.select-row");
      all.checked = boxes.length > 0 && ids.length === boxes.length;
      all.indeterminate = ids.length > 0 && ids.length < boxes.length;
    }
  }

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.id === "select-page") {
      Array.prototype.forEach.call(document.querySelectorAll("#message-rows input.select-row"), function (box) {
        box.checked = target.checked;
      });
      updateSelection();
    } else if (target.classList && target.classList.contains("select-row")) {
      updateSelection();
    }
  });

  // One compact `ids=1,2,3` instead of a repeated argument per row.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.id !== "selection-form") { return; }
    var ids = selectedIds();
    if (!ids.length || ids.length > maxSelected()) { event.preventDefault(); updateSelection(); return; }
    var boxes = document.querySelectorAll("input.select-row");
    Array.prototype.forEach.call(boxes, function (box) { box.disabled = true; });
    var field = document.createElement("input");
    field.type = "hidden";
    field.name = "ids";
    field.value = ids.join(",");
    form.appendChild(field);
    window.setTimeout(function () {
      Array.prototype.forEach.call(boxes, function (box) { box.disabled = false; });
      form.removeChild(field);
    }, 0);
  });

  document.addEventListener("DOMContentLoaded", updateSelection);
  // Rows added by infinite scroll keep the header box and the count honest.
  document.addEventListener("htmx:afterSwap", updateSelection);

  // ---- live updates ----------------------------------------------------------------------------
  function readConfig() {
    var node = document.getElementById("live-config");
    if (!node) { return null; }
    try { return JSON.parse(node.textContent); } catch (e) { return null; }
  }

  function Live(config) {
    this.config = config;
    this.toggle = document.getElementById("live-toggle");
    this.status = document.getElementById("live-status");
    this.tbody = document.getElementById("message-rows");
    this.counter = document.getElementById("message-count");
    this.socket = null;
    this.retry = 0;
    this.timer = null;
    this.wanted = false;
  }

  Live.prototype.setStatus = function (text, state) {
    if (this.status) {
      this.status.textContent = text;
      this.status.setAttribute("data-state", state);
    }
  };

  Live.prototype.start = function () {
    var self = this;
    var saved = null;
    try { saved = localStorage.getItem(LIVE_KEY); } catch (e) { saved = null; }
    this.toggle.checked = saved !== "off";
    this.toggle.addEventListener("change", function () {
      try { localStorage.setItem(LIVE_KEY, self.toggle.checked ? "on" : "off"); } catch (e) { /* ignore */ }
      if (self.toggle.checked) { self.connect(); } else { self.disconnect("off"); }
    });
    if (this.toggle.checked) { this.connect(); } else { this.setStatus("off", "off"); }
  };

  Live.prototype.url = function () {
    // Flask builds an absolute ws:// URL; behind a TLS proxy the page's own origin is what counts.
    var target = new URL(this.config.url, window.location.href);
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    return scheme + window.location.host + target.pathname + target.search;
  };

  Live.prototype.connect = function () {
    var self = this;
    this.wanted = true;
    window.clearTimeout(this.timer);
    if (this.socket) { return; }
    this.setStatus(this.retry ? "reconnecting…" : "connecting…", "connecting");
    var socket;
    try { socket = new WebSocket(this.url()); } catch (e) { this.schedule(); return; }
    this.socket = socket;
    socket.addEventListener("message", function (event) { self.onMessage(event.data); });
    socket.addEventListener("close", function () {
      if (self.socket === socket) { self.socket = null; }
      if (self.wanted) { self.schedule(); }
    });
  };

  Live.prototype.schedule = function () {
    var self = this;
    // Exponential backoff with jitter, capped at 30 s.
    var delay = Math.min(30000, 1000 * Math.pow(2, this.retry)) * (0.75 + Math.random() * 0.5);
    this.retry = Math.min(this.retry + 1, 5);
    this.setStatus("disconnected, retrying in " + Math.round(delay / 1000) + " s", "retrying");
    this.timer = window.setTimeout(function () { self.connect(); }, delay);
  };

  Live.prototype.disconnect = function (state) {
    this.wanted = false;
    window.clearTimeout(this.timer);
    if (this.socket) { this.socket.close(); this.socket = null; }
    this.setStatus(state, state);
  };

  Live.prototype.onMessage = function (data) {
    var message;
    try { message = JSON.parse(data); } catch (e) { return; }
    if (message.type === "hello") {
      this.retry = 0;
      this.setStatus("live", "live");
    } else if (message.type === "messages") {
      this.insert(message);
    } else if (message.type === "gap") {
      this.setStatus("live (some updates were missed: reload to see everything)", "gap");
    } else if (message.type === "error") {
      this.disconnect("error");
      this.setStatus("live updates stopped: " + message.message, "error");
    }
  };

  Live.prototype.insert = function (message) {
    var template = document.createElement("template");
    template.innerHTML = message.html;
    var fresh = [];
    var tbody = this.tbody;
    Array.prototype.forEach.call(template.content.querySelectorAll("tr[data-id]"), function (row) {
      if (!tbody.querySelector('tr[data-id="' + row.getAttribute("data-id") + '"]')) {
        row.classList.add("fresh");
        fresh.push(row);
      }
    });
    if (!fresh.length) { return; }
    var empty = tbody.querySelector("tr.empty");
    if (empty) { empty.remove(); }
    for (var i = fresh.length - 1; i >= 0; i--) { tbody.insertBefore(fresh[i], tbody.firstChild); }
    var added = message.truncated ? message.total : fresh.length;
    this.bump(added);
    this.trim();
    updateSelection();
    if (message.truncated) {
      this.setStatus("live: " + message.total + " new messages, the newest " + fresh.length + " shown", "live");
    }
    window.setTimeout(function () {
      fresh.forEach(function (row) { row.classList.remove("fresh"); });
    }, 4000);
  };

  Live.prototype.bump = function (added) { addToCount(this.counter, added); };

  // The table keeps at most config.max_rows rows while live updates add rows above: the oldest
  // go, but only rows below the window (never one being read) and never while rows are selected
  // (the selection is the operator's). The way down then starts below the last row kept: a new
  // "load older" row and the pager's Older link, with that row's cursor.
  Live.prototype.trim = function () {
    var limit = this.config.max_rows;
    var rows = this.tbody.querySelectorAll("tr[data-id]");
    if (!limit || rows.length <= limit || this.tbody.querySelector("input.select-row:checked")) { return; }
    // Measure first, then remove (one layout): a row goes when the row above it, the new last
    // one, still reaches below the window, so the new "load older" row is out of sight (it loads
    // when scrolled to).
    var bottom = window.innerHeight || document.documentElement.clientHeight;
    var kept = rows.length;
    while (kept > limit && rows[kept - 2].getBoundingClientRect().bottom >= bottom) { kept--; }
    if (kept === rows.length) { return; }
    for (var i = rows.length - 1; i >= kept; i--) { rows[i].remove(); }
    this.continueFrom(rows[kept - 1].getAttribute("data-cursor"));
  };

  Live.prototype.continueFrom = function (cursor) {
    var withCursor = function (url) {
      var target = new URL(url, window.location.href);
      target.searchParams.set("cursor", cursor);
      return target.pathname + target.search;
    };
    var sentinel = this.tbody.querySelector("tr.load-more");
    if (sentinel) { sentinel.remove(); }
    var row = document.createElement("tr");
    row.className = "load-more";
    var cell = document.createElement("td");
    cell.colSpan = 8;
    var link = document.createElement("a");
    link.href = withCursor(this.config.older);
    link.setAttribute("hx-get", withCursor(this.config.older_rows));
    link.setAttribute("hx-trigger", "click, revealed");
    link.setAttribute("hx-target", "closest tr");
    link.setAttribute("hx-swap", "outerHTML");
    link.textContent = "Load older messages";
    cell.appendChild(link);
    row.appendChild(cell);
    this.tbody.appendChild(row);
    if (window.htmx) { window.htmx.process(row); }
    var pager = document.querySelector("nav.pager");
    if (pager) {
      var older = pager.querySelector('a[rel="next"]');
      if (!older) {
        older = document.createElement("a");
        older.rel = "next";
        older.textContent = "Older ›";
        pager.appendChild(older);
      }
      older.href = withCursor(this.config.older);
    }
  };

  // ---- the count -------------------------------------------------------------------------------
  // The page counts up to 1,000 before it answers; beyond, it shows "1,000+" (data-exact
  // "pending") and fetches the count up to 10,000, as of its newest row, once the rows are shown.
  // Rows live updates add meanwhile are kept in data-added and added to that count.
  var COUNT_CAP = 10000;

  function showCount(counter, value, exact) {
    if (exact && value > COUNT_CAP) { value = COUNT_CAP; exact = false; }
    counter.setAttribute("data-count", String(value));
    counter.setAttribute("data-exact", exact ? "true" : "false");
    counter.textContent = value.toLocaleString("en-US") + (exact ? "" : "+");
  }

  function addToCount(counter, added) {
    if (!counter) { return; }
    var state = counter.getAttribute("data-exact");
    if (state === "pending") {
      var before = parseInt(counter.getAttribute("data-added") || "0", 10);
      counter.setAttribute("data-added", String(before + added));
    } else if (state === "true") {
      showCount(counter, parseInt(counter.getAttribute("data-count"), 10) + added, true);
    }
  }

  function fetchCount(counter) {
    var url = counter.getAttribute("data-count-url");
    var settle = function (data) {
      var added = parseInt(counter.getAttribute("data-added") || "0", 10);
      counter.removeAttribute("data-added");
      counter.removeAttribute("title");
      if (data && typeof data.count === "number") {
        showCount(counter, data.count + (data.count_exact ? added : 0), data.count_exact);
      } else {
        counter.setAttribute("data-exact", "false");  // keep the quick count ("1,000+")
      }
    };
    window.fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(settle, function () { settle(null); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var counter = document.getElementById("message-count");
    if (counter && counter.getAttribute("data-exact") === "pending" && window.fetch) {
      fetchCount(counter);
    }
    var config = readConfig();
    if (config && config.enabled && document.getElementById("live-toggle") && window.WebSocket) {
      var live = new Live(config);
      live.start();
      window.pacerLive = live;
    }
  });
})();
