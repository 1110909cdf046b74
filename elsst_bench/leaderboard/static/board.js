(function () {
  "use strict";
  var tabs = Array.prototype.slice.call(document.querySelectorAll("nav.tabs button"));
  function show(task) {
    tabs.forEach(function (b) {
      var on = b.getAttribute("data-tab") === task;
      b.setAttribute("aria-selected", on ? "true" : "false");
      document.getElementById("tab-" + b.getAttribute("data-tab")).hidden = !on;
    });
  }
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
      th.removeAttribute("aria-sort");
    });
    if (index < 0) { return false; }
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
  tabs.forEach(function (b) {
    b.addEventListener("click", function () { show(b.getAttribute("data-tab")); });
  });
  Array.prototype.slice.call(document.querySelectorAll("table.lb")).forEach(function (table) {
    Array.prototype.slice.call(table.tHead.rows[0].cells).forEach(function (th) {
      function click() {
        var now = th.getAttribute("aria-sort");
        var dir = now ? (now === "ascending" ? "desc" : "asc") : th.getAttribute("data-first");
        sortTable(table, th.getAttribute("data-key"), dir);
      }
      th.addEventListener("click", click);
      th.addEventListener("keydown", function (e) { if (e.key === "Enter") { click(); } });
    });
  });
  var params = {};
  location.hash.replace(/^#/, "").split("&").forEach(function (part) {
    var kv = part.split("=");
    if (kv[0]) { params[decodeURIComponent(kv[0])] = decodeURIComponent(kv[1] || ""); }
  });
  var task = params.task && document.getElementById("tab-" + params.task) ? params.task
    : (tabs.length ? tabs[0].getAttribute("data-tab") : null);
  if (task) { show(task); }
  if (params.sort) {
    Array.prototype.slice.call(document.querySelectorAll("table.lb")).forEach(function (table) {
      sortTable(table, params.sort, params.dir === "asc" ? "asc" : "desc");
    });
  }
  var rows = document.querySelectorAll("table.lb tbody").length;
  var status = document.getElementById("status");
  if (status) { status.textContent = rows + " rows shown" + (params.sort ? ", sorted by " + params.sort : ""); }
  document.body.setAttribute("data-ready", "1");
})();
