/* commprof's interactive timeline: every rank on one clock, drawn on a canvas from the data embedded in
   <script id="commprof-timeline-data"> (format: commprof/render/timeline/data.py).  No library, nothing fetched.
   Wheel: zoom time at the cursor; drag: pan; shift+wheel: scroll ranks; wheel over the rank labels: zoom ranks
   (overview); click a collective: that call on every rank; click a rank label: unfold its lanes; double click:
   the whole run.  Past MAXH pixels of rows the view is an overview (ranks x time, coloured by what each rank
   was doing); click it to zoom into a group of ranks.  SPDX-License-Identifier: MIT (commprof). */
(function () {
  "use strict";
  const root = document.querySelector('[data-commprof="timeline"]');
  const src = document.getElementById("commprof-timeline-data");
  if (!root || !src) return;
  const D = JSON.parse(src.textContent), C = D.colors, NM = D.names, Q = D.q_ns;
  const cv = root.querySelector("canvas"), ctx = cv.getContext("2d");
  const tip = root.querySelector('[data-commprof="tooltip"]');
  const GUT = 92, AX = 22, ROW = 22, LANE = 14, MAXH = 640, GROUP = 24;

  function dec(a, w) {  // delta-encoded rows of width w
    const n = (a.length / w) | 0, s = new Float64Array(n), d = new Float64Array(n), x = [];
    for (let k = 2; k < w; k++) x.push(new Float64Array(n));
    let t = 0, m = 0;
    for (let i = 0; i < n; i++) {
      t += a[i * w]; s[i] = t; d[i] = a[i * w + 1]; if (d[i] > m) m = d[i];
      for (let k = 2; k < w; k++) x[k - 2][i] = a[i * w + k];
    }
    return { s: s, d: d, x: x, n: n, maxd: m };
  }
  let t0 = Infinity, t1 = -Infinity;
  const R = D.ranks.map(function (r) {
    const o = { r: r.r, st: r.st, cp: dec(r.cp || [], 2), ex: dec(r.ex || [], 2), mc: dec(r.mc || [], 2),
                wt: dec(r.wt || [], 3), cm: dec(r.cm || [], 5), open: false, lanes: [] };
    [o.cp, o.ex, o.mc, o.wt, o.cm].forEach(function (L) {
      if (L.n) { t0 = Math.min(t0, L.s[0]); for (let i = 0; i < L.n; i++) t1 = Math.max(t1, L.s[i] + L.d[i]); }
    });
    for (let i = 0; i < r.st.length; i += 3) { t0 = Math.min(t0, r.st[i + 1]); t1 = Math.max(t1, r.st[i + 2]); }
    const names = {};  // comm lanes (streams / threads) of this rank, for the unfolded view
    for (let i = 0; i < o.cm.n; i++) names[D.kinds[o.cm.x[0][i]][4]] = 1;
    o.lanes = [["compute", o.cp, C.compute]].concat(Object.keys(names).map(function (k) {
      return ["comm: " + NM[k], o.cm, C.comm, +k];
    })).concat([["exposed comm", o.ex, C.exposed], ["wait", o.wt, C.wait], ["memcpy", o.mc, C.memcpy]])
      .filter(function (l) { return l[1].n > 0 || l[0] === "compute"; });
    return o;
  });
  if (!isFinite(t0)) { t0 = 0; t1 = 1; }
  const S = { v0: t0, v1: t1, mode: "detail", g0: 0, g1: R.length, rk0: 0, sel: -1, selEv: null,
              path: D.path.length > 0, drag: null, W: 0, H: 0 };
  S.mode = R.length * ROW > MAXH ? "overview" : "detail";
  const path = [];
  for (let i = 0; i < D.path.length; i += 4) path.push(D.path.slice(i, i + 4));
  const rankIdx = {};
  R.forEach(function (o, i) { rankIdx[o.r] = i; });

  function lower(a, v, n) { let lo = 0, hi = n; while (lo < hi) { const m = (lo + hi) >> 1; if (a[m] < v) lo = m + 1; else hi = m; } return lo; }
  function X(t) { return GUT + (t - S.v0) / (S.v1 - S.v0) * (S.W - GUT); }
  function T(x) { return S.v0 + (x - GUT) / (S.W - GUT) * (S.v1 - S.v0); }
  function rowH(o) { return o.open ? LANE * (o.lanes.length + 1) + 6 : ROW; }
  function ms(q) { return (q * Q / 1e6).toFixed(3) + " ms"; }
  function dur(q) { const ns = q * Q; return ns >= 1e6 ? (ns / 1e6).toFixed(3) + " ms" : (ns / 1e3).toFixed(0) + " µs"; }
  function bytes(b) {
    const u = [["GB", 1e9], ["MB", 1e6], ["kB", 1e3]];
    for (let i = 0; i < u.length; i++) if (b >= u[i][1]) return (b / u[i][1]).toFixed(1) + " " + u[i][0];
    return b + " B";
  }
  function stepAt(o, t) {
    for (let i = 0; i < o.st.length; i += 3) if (t >= o.st[i + 1] && t < o.st[i + 2]) return o.st[i];
    return null;
  }

  function layout() {  // the ranks drawn in detail mode and their rows
    const rows = [];
    let y = AX;
    for (let i = S.rk0; i < R.length && y < S.H; i++) { rows.push([i, y, rowH(R[i])]); y += rowH(R[i]); }
    return rows;
  }
  function size() {
    const w = Math.max(root.clientWidth, 400);
    let h = MAXH;
    if (S.mode === "detail") {
      let tot = AX; R.forEach(function (o) { tot += rowH(o); });
      h = Math.max(Math.min(tot + 4, MAXH), 60);
    }
    const dpr = window.devicePixelRatio || 1;
    if (w !== S.W || h !== S.H) {
      S.W = w; S.H = h; cv.width = w * dpr; cv.height = h * dpr;
      cv.style.width = w + "px"; cv.style.height = h + "px"; ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    }
  }

  function bars(L, y, h, color, pick) {  // a lane's intervals in view, adjacent ones on one pixel merged
    if (!L.n) return;
    ctx.fillStyle = color;
    let i = lower(L.s, S.v0 - L.maxd, L.n), a = -1, b = -1;
    for (; i < L.n && L.s[i] < S.v1; i++) {
      if (pick && !pick(i)) continue;
      const x0 = Math.max(X(L.s[i]), GUT), x1 = Math.max(X(L.s[i] + L.d[i]), x0 + 1);
      if (x1 <= GUT) continue;
      if (x0 <= b + 0.5) { b = Math.max(b, x1); continue; }
      if (b > a) ctx.fillRect(a, y, b - a, h);
      a = x0; b = x1;
    }
    if (b > a) ctx.fillRect(a, y, b - a, h);
  }
  function steps(o, y, h) {
    ctx.font = "10px sans-serif";
    for (let i = 0; i < o.st.length; i += 3) {
      const x0 = Math.max(X(o.st[i + 1]), GUT), x1 = Math.min(X(o.st[i + 2]), S.W);
      if (x1 <= x0) continue;
      ctx.fillStyle = (o.st[i] % 2) ? "#eef0f4" : "#f7f7f7"; ctx.fillRect(x0, y, x1 - x0, h);
      ctx.fillStyle = "#c4c4c4"; ctx.fillRect(x0, y, 1, h);
    }
  }
  function detailRow(o, y, h) {
    steps(o, y, h - 1);
    if (!o.open) {
      bars(o.cp, y + 2, h * 0.42, C.compute);
      bars(o.mc, y + 2 + h * 0.42, h * 0.06, C.memcpy);
      bars(o.cm, y + h * 0.5, h * 0.34, C.comm);
      bars(o.ex, y + h * 0.5, h * 0.34, C.exposed);
      bars(o.wt, y + h * 0.84, h * 0.14, C.wait);
    } else {
      o.lanes.forEach(function (l, k) {
        const pick = l.length > 3 ? function (i) { return D.kinds[o.cm.x[0][i]][4] === l[3]; } : null;
        bars(l[1], y + 3 + (k + 1) * LANE, LANE - 3, l[2], pick);
        if (l.length > 3) bars(o.ex, y + 3 + (k + 1) * LANE + LANE - 6, 3, C.exposed);
      });
    }
    highlight(o, y, h);
    ctx.fillStyle = "#333"; ctx.font = "11px sans-serif"; ctx.textBaseline = "middle";
    ctx.clearRect(0, y, GUT - 2, h);
    ctx.fillText((o.open ? "▾ " : "▸ ") + "rank " + o.r, 4, y + (o.open ? 3 + LANE / 2 : h / 2));
    if (o.open) {
      ctx.font = "9px sans-serif"; ctx.fillStyle = "#777";
      o.lanes.forEach(function (l, k) { ctx.fillText(l[0].slice(0, 16), 14, y + 3 + (k + 1) * LANE + LANE / 2); });
    }
    ctx.fillStyle = "#e4e4e4"; ctx.fillRect(0, y + h - 1, S.W, 1);
  }
  function highlight(o, y, h) {
    const L = o.cm;
    ctx.strokeStyle = C.selected; ctx.lineWidth = 2.5;
    for (let i = lower(L.s, S.v0 - L.maxd, L.n); i < L.n && L.s[i] < S.v1; i++) {
      const hit = (S.sel >= 0 && L.x[1][i] === S.sel) || (S.selEv && S.selEv[0] === o && S.selEv[1] === i);
      if (hit) {
        const x0 = X(L.s[i]), x1 = Math.max(X(L.s[i] + L.d[i]), x0 + 2);
        ctx.strokeRect(x0 - 1, y + 1, x1 - x0 + 2, h - 3);
      }
    }
  }

  function overview() {  // ranks x time: what each pixel's ranks were doing (compute > wait > exposed > hidden comm)
    const w = Math.max(Math.floor(S.W - GUT), 1), nr = S.g1 - S.g0, rows = Math.min(nr, S.H - AX);
    const cls = new Uint8Array(w * rows), k = (S.v1 - S.v0) / w;
    function paint(L, r, p) {
      for (let i = lower(L.s, S.v0 - L.maxd, L.n); i < L.n && L.s[i] < S.v1; i++) {
        const a = Math.max(Math.floor((L.s[i] - S.v0) / k), 0), b = Math.min(Math.ceil((L.s[i] + L.d[i] - S.v0) / k), w);
        for (let x = a; x < Math.max(b, a + 1) && x < w; x++) if (cls[r * w + x] < p) cls[r * w + x] = p;
      }
    }
    for (let i = S.g0; i < S.g1; i++) {
      const o = R[i], r = Math.floor((i - S.g0) * rows / nr);
      paint(o.cm, r, 1); paint(o.ex, r, 2); paint(o.wt, r, 3); paint(o.mc, r, 4); paint(o.cp, r, 4);
    }
    const img = ctx.createImageData(w, rows), pal = [[250, 250, 250]];
    [C.comm, C.exposed, C.wait, C.compute].forEach(function (c) {
      pal.push([parseInt(c.slice(1, 3), 16), parseInt(c.slice(3, 5), 16), parseInt(c.slice(5, 7), 16)]);
    });
    for (let j = 0; j < cls.length; j++) {
      const c = pal[cls[j]]; img.data[4 * j] = c[0]; img.data[4 * j + 1] = c[1]; img.data[4 * j + 2] = c[2]; img.data[4 * j + 3] = 255;
    }
    const off = document.createElement("canvas"); off.width = w; off.height = rows;
    off.getContext("2d").putImageData(img, 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(off, GUT, AX, w, S.H - AX);
    ctx.fillStyle = "#333"; ctx.font = "11px sans-serif"; ctx.textBaseline = "middle";
    const every = Math.max(1, Math.ceil(nr / ((S.H - AX) / 16)));
    const rh = (S.H - AX) / nr;
    // each label names the middle rank of its band of `every` ranks (clamping the first to the top overlapped
    // the second)
    for (let i = S.g0 + (every >> 1); i < S.g1 && rankY(i) + rh / 2 <= S.H - 6; i += every) {
      ctx.fillText("rank " + R[i].r, 4, rankY(i) + rh / 2);
    }
  }
  function rankY(i) {  // top of rank index i's row in the current view (null: not drawn)
    if (S.mode === "overview") return AX + (i - S.g0) * (S.H - AX) / (S.g1 - S.g0);
    const rows = layout();
    for (let k = 0; k < rows.length; k++) if (rows[k][0] === i) return rows[k][1];
    return null;
  }
  function drawPath() {
    if (!S.path || !path.length) return;
    ctx.strokeStyle = C.path; ctx.lineWidth = 3; ctx.beginPath();
    let last = null;
    path.forEach(function (p) {
      const i = rankIdx[p[0]]; if (i === undefined) return;
      const y0 = rankY(i); if (y0 === null) { last = null; return; }
      const y = y0 + (S.mode === "overview" ? (S.H - AX) / (S.g1 - S.g0) / 2 : ROW / 2);
      const x0 = X(p[1]), x1 = X(p[1] + p[2]);
      if (last) ctx.lineTo(x0, y); else ctx.moveTo(x0, y);
      ctx.lineTo(x1, y); last = [x1, y];
    });
    ctx.stroke();
  }
  function axis() {
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, S.W, AX);
    const span = (S.v1 - S.v0) * Q / 1e6, raw = span / 8, p = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map(function (m) { return m * p; }).find(function (v) { return v >= raw; });
    ctx.fillStyle = "#555"; ctx.font = "10px sans-serif"; ctx.textBaseline = "middle";
    const dec = Math.max(0, -Math.floor(Math.log10(step)));
    for (let t = Math.ceil(S.v0 * Q / 1e6 / step) * step; t <= S.v1 * Q / 1e6; t += step) {
      const x = X(t * 1e6 / Q);
      ctx.fillRect(x, AX - 5, 1, 5); ctx.fillText(t.toFixed(dec) + " ms", x + 2, AX / 2);
    }
    ctx.fillText(S.mode === "overview" ? "ranks " + R[S.g0].r + "–" + R[S.g1 - 1].r : "ms since first event", 4, AX / 2);
  }
  function draw() {
    size();
    ctx.clearRect(0, 0, S.W, S.H);
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, S.W, S.H);
    if (S.mode === "overview") overview();
    else layout().forEach(function (row) { detailRow(R[row[0]], row[1], row[2]); });
    drawPath();
    axis();
    root.setAttribute("data-view-start-ns", String(Math.round(S.v0 * Q)));
    root.setAttribute("data-view-end-ns", String(Math.round(S.v1 * Q)));
    root.setAttribute("data-mode", S.mode);
    root.setAttribute("data-selected", String(S.sel));
    let nsel = 0;
    if (S.sel >= 0) R.forEach(function (o) { for (let i = 0; i < o.cm.n; i++) if (o.cm.x[1][i] === S.sel) { nsel++; break; } });
    root.setAttribute("data-selected-ranks", String(nsel));
    const vis = S.mode === "overview" ? [S.g0, S.g1 - 1] : [S.rk0, layout().slice(-1)[0][0]];
    root.setAttribute("data-view-ranks", R[vis[0]].r + "-" + R[vis[1]].r);
  }

  function find(L, t, tol, pick) {  // the interval of L under time t (within tol), the nearest one
    let best = -1, bd = Infinity;
    for (let i = lower(L.s, t - tol - L.maxd, L.n); i < L.n && L.s[i] <= t + tol; i++) {
      if (pick && !pick(i)) continue;
      const d = t < L.s[i] ? L.s[i] - t : (t > L.s[i] + L.d[i] ? t - L.s[i] - L.d[i] : 0);
      if (d <= tol && d < bd) { bd = d; best = i; }
    }
    return best;
  }
  function hit(x, y) {  // what is under the pointer: {o, kind, i} or {gutter: rank index} or null
    if (S.mode === "overview") {
      if (y < AX) return null;
      const i = S.g0 + Math.floor((y - AX) / (S.H - AX) * (S.g1 - S.g0));
      return { o: R[Math.min(i, S.g1 - 1)], kind: "overview", idx: Math.min(i, S.g1 - 1) };
    }
    const row = layout().find(function (r) { return y >= r[1] && y < r[1] + r[2]; });
    if (!row) return null;
    const o = R[row[0]], f = (y - row[1]) / row[2];
    if (x < GUT) return { gutter: row[0] };
    const t = T(x), tol = 3 * (S.v1 - S.v0) / (S.W - GUT);
    let order;
    if (o.open) {
      const l = o.lanes[Math.min(Math.max(Math.floor((y - row[1] - 3) / LANE) - 1, 0), o.lanes.length - 1)];
      const pick = l.length > 3 ? function (i) { return D.kinds[o.cm.x[0][i]][4] === l[3]; } : null;
      const kind = { "compute": "cp", "exposed comm": "ex", "wait": "wt", "memcpy": "mc" }[l[0]] || "cm";
      const i = find(o[kind], t, tol, kind === "cm" ? pick : null);
      return i < 0 ? null : { o: o, kind: kind, i: i, t: t };
    }
    order = f < 0.44 ? ["cp", "mc"] : (f < 0.84 ? ["cm", "ex"] : ["wt", "cm"]);
    for (let k = 0; k < order.length; k++) {
      const i = find(o[order[k]], t, tol);
      if (i >= 0) return { o: o, kind: order[k], i: i, t: t };
    }
    return null;
  }
  function describe(h) {
    const o = h.o, L = o[h.kind], s = L.s[h.i], d = L.d[h.i];
    const head = { cp: "compute (kernels / operators, all streams)", ex: "exposed communication (nothing hides it)",
                   mc: "memcpy / memset", wt: "wait for the last rank", cm: "" }[h.kind];
    const lines = [];
    let step = stepAt(o, s);
    if (h.kind === "cm") {
      const k = D.kinds[L.x[0][h.i]], inst = L.x[1][h.i];
      step = L.x[2][h.i];
      lines.push("<b>" + esc(NM[k[0]]) + "</b> " + bytes(k[3]) + " " + esc(NM[k[2]]));
      lines.push("process group " + esc(NM[k[1]]) + " · via " + esc(NM[k[5]]));
      lines.push("stream/lane: " + esc(NM[k[4]]));
      if (inst >= 0) lines.push("last to arrive: rank " + D.insts[inst][1] + " · click: this call on every rank");
    } else if (h.kind === "wt") {
      const inst = L.x[0][h.i];
      lines.push("<b>" + head + "</b>");
      if (inst >= 0 && D.insts[inst]) lines.push("at " + esc(NM[D.insts[inst][0]]) + ", waiting for rank " + D.insts[inst][1]);
    } else lines.push("<b>" + head + "</b>");
    lines.push("rank " + o.r + (step === null || step < 0 ? "" : " · step " + step));
    lines.push("start " + ms(s) + " · duration " + dur(d));
    return lines.join("<br>");
  }
  function esc(s) { return String(s).replace(/[&<>"']/g, function (c) { return "&#" + c.charCodeAt(0) + ";"; }); }
  function showTip(html, x, y) {
    tip.innerHTML = html; tip.hidden = false;
    tip.style.left = Math.min(x + 14, S.W - 300) + "px"; tip.style.top = (y + 14) + "px";
  }
  function pos(e) { const b = cv.getBoundingClientRect(); return [e.clientX - b.left, e.clientY - b.top]; }
  function clampView() {
    const pad = (t1 - t0) * 0.05, span = Math.max(Math.min(S.v1 - S.v0, t1 - t0 + 2 * pad), 5);
    S.v0 = Math.min(Math.max(S.v0, t0 - pad), t1 + pad - span); S.v1 = S.v0 + span;
  }
  function zoomRanks(c, f) {  // overview: rank window around index c scaled by f; small enough -> detail
    const n = Math.max(Math.round((S.g1 - S.g0) * f), 1);
    S.g0 = Math.max(0, Math.min(Math.round(c - (c - S.g0) * f), R.length - n)); S.g1 = Math.min(S.g0 + n, R.length);
    if (n * ROW <= MAXH - AX) { S.mode = "detail"; S.rk0 = S.g0; }
  }

  cv.addEventListener("wheel", function (e) {
    e.preventDefault();
    const p = pos(e), f = Math.exp(Math.max(Math.min(e.deltaY, 300), -300) * 0.002);
    if (e.shiftKey && S.mode === "detail") S.rk0 = Math.max(0, Math.min(S.rk0 + Math.sign(e.deltaY) * 3, R.length - 1));
    else if (p[0] < GUT && S.mode === "overview") zoomRanks(S.g0 + (p[1] - AX) / (S.H - AX) * (S.g1 - S.g0), f);
    else { const t = T(Math.max(p[0], GUT)); S.v0 = t - (t - S.v0) * f; S.v1 = t + (S.v1 - t) * f; clampView(); }
    draw();
  }, { passive: false });
  cv.addEventListener("mousedown", function (e) {
    const p = pos(e); S.drag = { x: p[0], y: p[1], v0: S.v0, v1: S.v1, rk0: S.rk0, moved: false };
  });
  window.addEventListener("mousemove", function (e) {
    const p = pos(e);
    if (S.drag) {
      const dx = p[0] - S.drag.x, dy = p[1] - S.drag.y;
      if (Math.abs(dx) + Math.abs(dy) > 3) S.drag.moved = true;
      if (!S.drag.moved) return;
      const k = (S.drag.v1 - S.drag.v0) / (S.W - GUT);
      S.v0 = S.drag.v0 - dx * k; S.v1 = S.drag.v1 - dx * k; clampView();
      if (S.mode === "detail") S.rk0 = Math.max(0, Math.min(S.drag.rk0 - Math.round(dy / ROW), R.length - 1));
      tip.hidden = true; draw(); return;
    }
    if (e.target !== cv) { tip.hidden = true; return; }
    const h = hit(p[0], p[1]);
    if (!h || h.gutter !== undefined) { tip.hidden = true; return; }
    if (h.kind === "overview") {
      showTip("rank " + h.o.r + " at " + ms(T(p[0])) + "<br>click: zoom into ranks around it; " +
              "wheel over the labels: zoom ranks", p[0], p[1]);
    } else showTip(describe(h), p[0], p[1]);
  });
  window.addEventListener("mouseup", function (e) {
    const d = S.drag; S.drag = null;
    if (!d || d.moved || e.target !== cv) return;
    const p = pos(e), h = hit(p[0], p[1]);
    if (h && h.gutter !== undefined) { R[h.gutter].open = !R[h.gutter].open; draw(); return; }
    if (h && h.kind === "overview") { tip.hidden = true; zoomRanks(h.idx, GROUP / (S.g1 - S.g0)); draw(); return; }
    if (h && h.kind === "cm" && h.o.cm.x[1][h.i] >= 0) {
      const inst = h.o.cm.x[1][h.i]; S.sel = S.sel === inst ? -1 : inst; S.selEv = null;
    } else if (h && h.kind === "cm") { S.sel = -1; S.selEv = [h.o, h.i]; } else { S.sel = -1; S.selEv = null; }
    draw();
  });
  cv.addEventListener("mouseleave", function () { tip.hidden = true; });
  cv.addEventListener("dblclick", function () { S.v0 = t0; S.v1 = t1; draw(); });
  const bar = document.querySelector('[data-commprof="timeline-bar"]');
  if (bar) {
    bar.addEventListener("click", function (e) {
      const act = e.target.getAttribute && e.target.getAttribute("data-act");
      if (act === "reset") { S.v0 = t0; S.v1 = t1; S.sel = -1; S.selEv = null; }
      if (act === "all") { S.mode = R.length * ROW > MAXH ? "overview" : "detail"; S.g0 = 0; S.g1 = R.length; S.rk0 = 0; }
      if (act === "unfold") { const open = e.target.checked; R.forEach(function (o) { o.open = open; }); }
      if (act === "path") S.path = e.target.checked;
      if (act) draw();
    });
    const pc = bar.querySelector('[data-act="path"]');
    if (pc) { pc.checked = S.path; pc.disabled = !path.length; }
  }
  window.addEventListener("resize", draw);
  // for scripts and tests: where (canvas pixels) the i-th interval of a lane ("cp", "cm", "ex", "wt", "mc") of the
  // rank at index k is drawn in the current view, or null when it is not on screen
  root.locate = function (kind, k, i) {
    const o = R[k], L = o && o[kind];
    if (!L || i >= L.n || S.mode !== "detail") return null;
    const y = rankY(k); if (y === null) return null;
    const f = { cp: 0.25, mc: 0.45, cm: 0.67, ex: 0.67, wt: 0.92 }[kind];
    const x0 = Math.max(X(L.s[i]), GUT), x1 = Math.min(X(L.s[i] + L.d[i]), S.W);
    return x1 < x0 ? null : { x: (x0 + x1) / 2, y: y + f * ROW, t: L.s[i] * Q, d: L.d[i] * Q };
  };
  draw();
  root.setAttribute("data-ready", "1");
})();
