(function () {
  "use strict";
  // State in the address: #task=broader&view=languages&base=<slug>&sort=params&dir=asc (defaults omitted).
  function all(selector, root) { return Array.prototype.slice.call((root || document).querySelectorAll(selector)); }
  var tabs = all("nav.tabs button");
  var baseSelect = document.getElementById("base-filter");
  var viewButtons = all(".views button");
  var state = {task: tabs.length ? tabs[0].getAttribute("data-tab") : null, view: "sets", base: "all",
               sort: null, dir: null};

  function value(body, index, type) {
    var cell = body.rows[0].cells[index];
    var v = cell ? cell.getAttribute("data-v") : "";
    if (type === "num") { return v === "" || v === null ? null : parseFloat(v); }
    return (v || "").toLowerCase();
  }
  function sortTable(table, key, dir) {
    var ths = Array.prototype.slice.call(table.tHead.rows[0].cells);
    var index = -1, type = "num";
    ths.forEach(function (th, i) {
      if (th.getAttribute("data-key") === key) { index = i; type = th.getAttribute("data-type"); }
    });
    if (index < 0) { return false; }
    ths.forEach(function (th) { th.removeAttribute("aria-sort"); });
    ths[index].setAttribute("aria-sort", dir === "asc" ? "ascending" : "descending");
    var bodies = Array.prototype.slice.call(table.tBodies);
    var sign = dir === "asc" ? 1 : -1;
    bodies.sort(function (a, b) {
      var x = value(a, index, type), y = value(b, index, type);
      if (x === y) { return value(a, 0, "num") - value(b, 0, "num"); }
      if (x === null) { return 1; }
      if (y === null) { return -1; }
      return (x < y ? -1 : 1) * sign;
    });
    bodies.forEach(function (b) { table.appendChild(b); });
    table.setAttribute("data-sorted", key + ":" + dir);
    return true;
  }
  function baseOf(wanted) {
    // A slug, or a base's full name as the entries record it; anything else: all bases.
    var found = "all";
    if (baseSelect && wanted) {
      Array.prototype.slice.call(baseSelect.options).forEach(function (o) {
        var name = (o.getAttribute("data-name") || "").toLowerCase();
        if (o.value === wanted || name === wanted.toLowerCase()) { found = o.value; }
      });
    }
    return found;
  }
  function filterPanel(panel) {
    var on = function (el) { return state.base === "all" || el.getAttribute("data-base") === state.base; };
    all("div.view", panel).forEach(function (v) { v.hidden = v.getAttribute("data-view") !== state.view; });
    all("tbody[data-base], svg .pt, svg .lbl", panel).forEach(function (el) {
      el.classList.toggle("off", !on(el));
    });
    all("section.board", panel).forEach(function (s) {
      s.classList.toggle("off", !s.querySelector("tbody:not(.off)"));
    });
    var shown = all('div.view[data-view="sets"] tbody:not(.off)', panel).length;
    var empty = panel.querySelector(".none-shown");
    if (empty) { empty.hidden = shown > 0; }
    return shown;
  }
  function apply() {
    tabs.forEach(function (b) {
      var task = b.getAttribute("data-tab"), panel = document.getElementById("tab-" + task);
      b.setAttribute("aria-selected", task === state.task ? "true" : "false");
      panel.hidden = task !== state.task;
      var count = b.querySelector(".count");
      var shown = filterPanel(panel);
      if (count) { count.textContent = shown; }
    });
    if (baseSelect) { baseSelect.value = state.base; }
    viewButtons.forEach(function (b) {
      b.setAttribute("aria-pressed", b.getAttribute("data-view") === state.view ? "true" : "false");
    });
    ["task", "view", "base"].forEach(function (k) { document.body.setAttribute("data-" + k, state[k] || ""); });
    var panel = state.task ? document.getElementById("tab-" + state.task) : null;
    var rows = panel ? all('div.view[data-view="' + state.view + '"] tbody:not(.off)', panel).length : 0;
    var status = document.getElementById("status");
    if (status) { status.textContent = rows + " rows shown" + (state.sort ? ", sorted by " + state.sort : ""); }
  }
  function sync() {
    var parts = [];
    var first = tabs.length ? tabs[0].getAttribute("data-tab") : null;
    if (state.task && state.task !== first) { parts.push("task=" + state.task); }
    if (state.view !== "sets") { parts.push("view=" + state.view); }
    if (state.base !== "all") { parts.push("base=" + encodeURIComponent(state.base)); }
    if (state.sort) { parts.push("sort=" + encodeURIComponent(state.sort), "dir=" + state.dir); }
    try {
      history.replaceState(null, "", parts.length ? "#" + parts.join("&") : location.pathname);
    } catch (e) { /* some browsers refuse it for file: pages; the page works without */ }
  }
  function load() {
    var params = {};
    location.hash.replace(/^#/, "").split("&").forEach(function (part) {
      var kv = part.split("=");
      if (kv[0]) { params[decodeURIComponent(kv[0])] = decodeURIComponent(kv[1] || ""); }
    });
    if (params.task && document.getElementById("tab-" + params.task)) { state.task = params.task; }
    state.view = params.view === "languages" ? "languages" : "sets";
    state.base = baseOf(params.base);
    if (params.sort) {
      state.sort = params.sort;
      state.dir = params.dir === "asc" ? "asc" : "desc";
      all("table.lb").forEach(function (table) { sortTable(table, state.sort, state.dir); });
    }
    apply();
  }

  tabs.forEach(function (b) {
    b.addEventListener("click", function () { state.task = b.getAttribute("data-tab"); apply(); sync(); });
  });
  viewButtons.forEach(function (b) {
    b.addEventListener("click", function () { state.view = b.getAttribute("data-view"); apply(); sync(); });
  });
  if (baseSelect) {
    baseSelect.addEventListener("change", function () { state.base = baseOf(baseSelect.value); apply(); sync(); });
  }
  all("table.lb").forEach(function (table) {
    Array.prototype.slice.call(table.tHead.rows[0].cells).forEach(function (th) {
      function click() {
        var now = th.getAttribute("aria-sort");
        var dir = now ? (now === "ascending" ? "desc" : "asc") : th.getAttribute("data-first");
        if (sortTable(table, th.getAttribute("data-key"), dir)) {
          state.sort = th.getAttribute("data-key");
          state.dir = dir;
          apply();
          sync();
        }
      }
      th.addEventListener("click", click);
      th.addEventListener("keydown", function (e) { if (e.key === "Enter") { click(); } });
    });
  });
  window.addEventListener("hashchange", load);
  load();
  document.body.setAttribute("data-ready", "1");
})();
