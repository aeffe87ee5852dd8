/* Per-step variation: a steps x ranks heat map (step time, or exposed communication), drawn on a canvas from the
   timeline's embedded data ("grid").  Hover: the value.  Past MAX_ROWS ranks a row is a group of consecutive
   ranks showing its highest (a slow rank stays dark in its group); the tooltip names it and the group's median.
   SPDX-License-Identifier: MIT (commprof). */
(function () {
  "use strict";
  const root = document.querySelector('[data-commprof="stepgrid"]');
  const src = document.getElementById("commprof-timeline-data");
  if (!root || !src) return;
  const G = JSON.parse(src.textContent).grid;
  if (!G.steps.length || !G.ranks.length) { root.hidden = true; return; }
  const cv = root.querySelector("canvas"), ctx = cv.getContext("2d");
  const tip = root.querySelector('[data-commprof="stepgrid-tooltip"]'), pick = document.querySelector('[data-commprof="stepgrid-field"]');
  const GUT = 90, TOP = 18, MAX_ROWS = 128, ns = G.steps.length, nranks = G.ranks.length;
  const per = Math.ceil(nranks / MAX_ROWS), nr = Math.ceil(nranks / per);  // ranks per row, rows
  const H = Math.min(Math.max(nr * 14, 60), 420) + TOP + 30;
  root.setAttribute("data-rows", String(nr)); root.setAttribute("data-ranks-per-row", String(per));
  let W = 0, field = "step_us", cells = null;
  function color(f) {  // white (fastest) -> dark red (slowest)
    const r = Math.round(255 - f * 80), g = Math.round(245 - f * 200), b = Math.round(240 - f * 200);
    return "rgb(" + r + "," + g + "," + b + ")";
  }
  function label(i) {
    const a = G.ranks[i * per], b = G.ranks[Math.min((i + 1) * per, nranks) - 1];
    return a === b ? "rank " + a : "ranks " + a + "-" + b;
  }
  function group() {  // per row and step: [highest value, its rank, the group's median, values]
    const rows = [];
    for (let i = 0; i < nr; i++) {
      const row = [];
      for (let j = 0; j < ns; j++) {
        let top = null, who = null; const vals = [];
        for (let k = i * per; k < Math.min((i + 1) * per, nranks); k++) {
          const v = G[field][k][j];
          if (v === null) continue;
          vals.push(v);
          if (top === null || v > top) { top = v; who = G.ranks[k]; }
        }
        vals.sort(function (a, b) { return a - b; });
        row.push([top, who, vals.length ? vals[(vals.length - 1) >> 1] : null, vals.length]);
      }
      rows.push(row);
    }
    return rows;
  }
  function range() {
    let lo = Infinity, hi = -Infinity;
    cells.forEach(function (row) { row.forEach(function (c) { if (c[0] !== null) { lo = Math.min(lo, c[0]); hi = Math.max(hi, c[0]); } }); });
    return [lo, hi];
  }
  function draw() {
    cells = group();
    W = Math.max(root.clientWidth - 12, 300);
    const dpr = window.devicePixelRatio || 1;
    cv.width = W * dpr; cv.height = H * dpr; cv.style.width = W + "px"; cv.style.height = H + "px";
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, W, H);
    const lr = range(), cw = (W - GUT - 10) / ns, rh = (H - TOP - 30) / nr;
    for (let i = 0; i < nr; i++) for (let j = 0; j < ns; j++) {
      const v = cells[i][j][0];
      ctx.fillStyle = v === null ? "#eee" : color(lr[1] > lr[0] ? (v - lr[0]) / (lr[1] - lr[0]) : 0);
      ctx.fillRect(GUT + j * cw, TOP + i * rh, Math.ceil(cw), Math.ceil(rh));
    }
    ctx.fillStyle = "#333"; ctx.font = "10px sans-serif"; ctx.textBaseline = "middle";
    const every = Math.max(1, Math.ceil(nr / ((H - TOP - 30) / 12)));
    for (let i = 0; i < nr; i += every) ctx.fillText(label(i), 4, TOP + (i + 0.5) * rh);
    const severy = Math.max(1, Math.ceil(ns / ((W - GUT) / 40)));
    for (let j = 0; j < ns; j += severy) ctx.fillText(String(G.steps[j]), GUT + (j + 0.3) * cw, TOP - 8);
    ctx.fillText("step →", GUT - 40, TOP - 8);
    ctx.fillText("white " + (lr[0] / 1e3).toFixed(2) + " ms → dark red " + (lr[1] / 1e3).toFixed(2) + " ms; grey: no such step"
                 + (per > 1 ? "; each row " + per + " ranks, its highest" : ""), GUT, H - 12);
  }
  cv.addEventListener("mousemove", function (e) {
    const b = cv.getBoundingClientRect(), x = e.clientX - b.left, y = e.clientY - b.top;
    const j = Math.floor((x - GUT) / ((W - GUT - 10) / ns)), i = Math.floor((y - TOP) / ((H - TOP - 30) / nr));
    if (i < 0 || j < 0 || i >= nr || j >= ns) { tip.hidden = true; return; }
    const c = cells[i][j], ms = function (v) { return (v / 1e3).toFixed(3) + " ms"; };
    let text;
    if (c[0] === null) text = label(i) + ", step " + G.steps[j] + ": not recorded";
    else if (per === 1) text = label(i) + ", step " + G.steps[j] + ": " + ms(c[0]);
    else text = label(i) + ", step " + G.steps[j] + ": highest rank " + c[1] + ", " + ms(c[0]) + "; median of the " + c[3] + ": " + ms(c[2]);
    tip.textContent = text;
    tip.hidden = false; tip.style.left = Math.min(x + 12, W - 220) + "px"; tip.style.top = (y + 12) + "px";
  });
  cv.addEventListener("mouseleave", function () { tip.hidden = true; });
  if (pick) pick.addEventListener("change", function () { field = pick.value; draw(); });
  window.addEventListener("resize", draw);
  draw();
})();
