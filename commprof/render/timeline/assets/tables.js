/* commprof's tables: click a header to sort (again: the other way), type in the box above to filter rows.
   Numbers with units (12.5 ms, 1.2 MB, 37%) sort by value, a cell's data-sort (its figure, where the cell also
   shows its spread) before its text; "-" and empty cells sort last.
   SPDX-License-Identifier: MIT (commprof). */
(function () {
  "use strict";
  const UNIT = { B: 1, kB: 1e3, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12, KiB: 1024, MiB: 1048576, GiB: 1073741824 };
  function value(td) {
    const sort = td ? td.getAttribute("data-sort") : null;  // the figure itself, where the cell shows more
    if (sort !== null) return sort === "" ? [1, "-"] : [0, parseFloat(sort)];
    const t = (td ? td.textContent : "").trim();
    const m = t.match(/^([-+]?\d[\d,]*\.?\d*(?:e[-+]?\d+)?)\s*([A-Za-z]+)?/);
    if (!m) return [1, t.toLowerCase()];
    return [0, parseFloat(m[1].replace(/,/g, "")) * (UNIT[m[2]] || 1)];
  }
  function cmp(a, b) {
    if (a[0] !== b[0]) return a[0] - b[0];
    return a[1] < b[1] ? -1 : (a[1] > b[1] ? 1 : 0);
  }
  function setup(table) {
    const head = table.tHead ? table.tHead.rows[0] : table.rows[0];
    const body = table.tBodies[0];
    if (!head || !body || table.getAttribute("data-sortable") === "done") return;
    table.setAttribute("data-sortable", "done");
    Array.prototype.forEach.call(head.cells, function (th, col) {
      th.title = "click to sort"; th.style.cursor = "pointer";
      th.addEventListener("click", function () {
        const dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
        Array.prototype.forEach.call(head.cells, function (c) { c.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", dir > 0 ? "ascending" : "descending");
        const rows = Array.prototype.filter.call(body.rows, function (r) { return r !== head; });
        const keyed = rows.map(function (r, i) { return [value(r.cells[col]), i, r]; });
        keyed.sort(function (a, b) {
          const missing = (a[0][0] === 1 && a[0][1] === "-") - (b[0][0] === 1 && b[0][1] === "-");
          return missing || dir * cmp(a[0], b[0]) || a[1] - b[1];
        });
        keyed.forEach(function (k) { body.appendChild(k[2]); });
      });
    });
    if (body.rows.length < 4) return;
    const box = document.createElement("input");
    box.type = "search"; box.placeholder = "filter rows"; box.className = "tbl-filter";
    box.setAttribute("data-commprof", "filter-" + (table.getAttribute("data-commprof") || "table"));
    box.addEventListener("input", function () {
      const q = box.value.trim().toLowerCase();
      Array.prototype.forEach.call(body.rows, function (r) {
        if (r === head) return;
        r.hidden = q !== "" && r.textContent.toLowerCase().indexOf(q) < 0;
      });
    });
    table.parentNode.insertBefore(box, table);
  }
  Array.prototype.forEach.call(document.querySelectorAll("main table"), setup);
})();
