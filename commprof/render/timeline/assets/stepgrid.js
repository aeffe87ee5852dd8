/* Per-step variation: a steps x ranks heat map (step time, or exposed communication), drawn on a canvas from the
   timeline's embedded data ("grid").  Hover: the value.  SPDX-License-Identifier: MIT (commprof). */
(function () {
  "use strict";
  const root = document.querySelector('[data-commprof="stepgrid"]');
  const src = document.getElementById("commprof-timeline-data");
  if (!root || !src) return;
  const G = JSON.parse(src.textContent).grid;
  if (!G.steps.length || !G.ranks.length) { root.hidden = true; return; }
  const cv = root.querySelector("canvas"), ctx = cv.getContext("2d");
  const tip = root.querySelector('[data-commprof="stepgrid-tooltip"]'), pick = document.querySelector('[data-commprof="stepgrid-field"]');
  const GUT = 70, TOP = 18, ns = G.steps.length, nr = G.ranks.length;
  const H = Math.min(Math.max(nr * 14, 60), 420) + TOP + 30;
  let W = 0, field = "step_us";
  function color(f) {  // white (fastest) -> dark red (slowest)
    const r = Math.round(255 - f * 80), g = Math.round(245 - f * 200), b = Math.round(240 - f * 200);
    return "rgb(" + r + "," + g + "," + b + ")";
  }
  function range() {
    let lo = Infinity, hi = -Infinity;
    G[field].forEach(function (row) { row.forEach(function (v) { if (v !== null) { lo = Math.min(lo, v); hi = Math.max(hi, v); } }); });
    return [lo, hi];
  }
  function draw() {
    W = Math.max(root.clientWidth - 12, 300);
    const dpr = window.devicePixelRatio || 1;
    cv.width = W * dpr; cv.height = H * dpr; cv.style.width = W + "px"; cv.style.height = H + "px";
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, W, H);
    const lr = range(), cw = (W - GUT - 10) / ns, rh = (H - TOP - 30) / nr;
    for (let i = 0; i < nr; i++) for (let j = 0; j < ns; j++) {
      const v = G[field][i][j];
      ctx.fillStyle = v === null ? "#eee" : color(lr[1] > lr[0] ? (v - lr[0]) / (lr[1] - lr[0]) : 0);
      ctx.fillRect(GUT + j * cw, TOP + i * rh, Math.ceil(cw), Math.ceil(rh));
    }
    ctx.fillStyle = "#333"; ctx.font = "10px sans-serif"; ctx.textBaseline = "middle";
    const every = Math.max(1, Math.ceil(nr / ((H - TOP - 30) / 12)));
    for (let i = 0; i < nr; i += every) ctx.fillText("rank " + G.ranks[i], 4, TOP + (i + 0.5) * rh);
    const severy = Math.max(1, Math.ceil(ns / ((W - GUT) / 40)));
    for (let j = 0; j < ns; j += severy) ctx.fillText(String(G.steps[j]), GUT + (j + 0.3) * cw, TOP - 8);
    ctx.fillText("step →", GUT - 40, TOP - 8);
    ctx.fillText("white " + (lr[0] / 1e3).toFixed(2) + " ms → dark red " + (lr[1] / 1e3).toFixed(2) + " ms; grey: no such step",
                 GUT, H - 12);
  }
  cv.addEventListener("mousemove", function (e) {
    const b = cv.getBoundingClientRect(), x = e.clientX - b.left, y = e.clientY - b.top;
    const j = Math.floor((x - GUT) / ((W - GUT - 10) / ns)), i = Math.floor((y - TOP) / ((H - TOP - 30) / nr));
    if (i < 0 || j < 0 || i >= nr || j >= ns) { tip.hidden = true; return; }
    const v = G[field][i][j];
    tip.innerHTML = "rank " + G.ranks[i] + ", step " + G.steps[j] + ": " + (v === null ? "not recorded" : (v / 1e3).toFixed(3) + " ms");
    tip.hidden = false; tip.style.left = Math.min(x + 12, W - 220) + "px"; tip.style.top = (y + 12) + "px";
  });
  cv.addEventListener("mouseleave", function () { tip.hidden = true; });
  if (pick) pick.addEventListener("change", function () { field = pick.value; draw(); });
  window.addEventListener("resize", draw);
  draw();
})();
