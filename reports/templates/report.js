// The report's behaviour: heatmaps from the embedded data, hover details, filters. Text only
// ever enters the page through textContent, never as HTML.
"use strict";
(function () {
  performance.mark("report-script");
  const DATA = JSON.parse(document.getElementById("data").textContent);
  const STEPS = 21, DECADES = 6, PASS_MAX = 1 + DECADES * STEPS, INF = 255;
  const DIMS = ["framework", "dtype", "device"];
  const tip = document.getElementById("tip");

  function mix(a, b, t) {
    return [0, 1, 2].map((i) => Math.round(a[i] + (b[i] - a[i]) * t));
  }

  // 0 exact, 1…127 inside the bound (pale to deep blue-green), 128…254 outside (orange to
  // dark red), 255 inf/NaN (black-purple).
  function colour(code) {
    if (code === 0) return [236, 236, 236];
    if (code === INF) return [40, 0, 60];
    if (code <= PASS_MAX) {
      const t = (code - 1) / (PASS_MAX - 1);
      return t < 0.5 ? mix([247, 252, 240], [123, 204, 196], t * 2)
        : mix([123, 204, 196], [8, 64, 129], (t - 0.5) * 2);
    }
    const t = (code - PASS_MAX - 1) / (INF - PASS_MAX - 2);
    return t < 0.5 ? mix([253, 174, 97], [215, 48, 39], t * 2)
      : mix([215, 48, 39], [103, 0, 13], (t - 0.5) * 2);
  }

  const PALETTE = Array.from({ length: 256 }, (_, c) => colour(c));

  function bytes(b64) {
    const s = atob(b64), out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out;
  }

  function floats(b64) {
    const b = bytes(b64), view = new DataView(b.buffer), out = new Float64Array(b.length / 8);
    for (let i = 0; i < out.length; i++) out[i] = view.getFloat64(8 * i, true);
    return out;
  }

  function num(x, digits) {
    if (typeof x === "string") return x;
    if (x === null || x === undefined) return "–";
    return digits ? Number(x).toPrecision(digits).replace(/\.?0+(e|$)/, "$1") : String(x);
  }

  function ratioText(code) {
    if (code === 0) return "ratio 0 (exact)";
    if (code === INF) return "ratio inf or NaN";
    const hi = Math.pow(10, (code - 1) / STEPS - DECADES);
    const lo = Math.pow(10, (code - 2) / STEPS - DECADES);
    if (code === 1) return "ratio ≤ 1e-6";
    if (code === INF - 1) return "ratio > 1e6";
    return "ratio in (" + num(lo, 3) + ", " + num(hi, 3) + "]";
  }

  function decoded(k) {
    const h = DATA.items[k];
    if (!h._codes) {
      h._codes = bytes(h.heatmap.codes);
      if (h.values) h._v = { got: floats(h.values.got), ref: floats(h.values.ref),
                             bound: floats(h.values.bound) };
    }
    return h;
  }

  // Draw one pixel per cell, scaled up to whole pixels per cell; ring the cells outside their
  // bound where they are too small to see (a single failing entry of 3 million must show),
  // never two rings on top of each other; mark the worst cell; put axes and a key beside it.
  function drawHeat(canvas) {
    const h = decoded(canvas.dataset.k), m = h.heatmap;
    const sx = Math.max(1, Math.min(24, Math.floor(800 / m.cols)));
    const sy = Math.max(1, Math.min(24, Math.floor(240 / m.rows)));
    const small = document.createElement("canvas");
    small.width = m.cols;
    small.height = m.rows;
    const img = small.getContext("2d").createImageData(m.cols, m.rows), bad = [];
    let worst = 0;
    for (let c = 0; c < m.cells; c++) {
      const code = h._codes[c], rgb = PALETTE[code];
      img.data[4 * c] = rgb[0]; img.data[4 * c + 1] = rgb[1]; img.data[4 * c + 2] = rgb[2];
      img.data[4 * c + 3] = 255;
      if (code > h._codes[worst]) worst = c;
      if (code > PASS_MAX) bad.push([((c % m.cols) + 0.5) * sx, (Math.floor(c / m.cols) + 0.5) * sy]);
    }
    small.getContext("2d").putImageData(img, 0, 0);
    canvas.width = m.cols * sx;
    canvas.height = m.rows * sy;
    const ctx = canvas.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(small, 0, 0, canvas.width, canvas.height);
    // a few failing cells too small to see are ringed; many show by their colour
    const rings = (sx < 6 || sy < 6) && bad.length <= MAX_RINGS ? apart(bad, RING_GAP) : [];
    ring(ctx, rings);
    worst = worstCell(h, worst);
    if (h._codes[worst] > 0) mark(ctx, ((worst % m.cols) + 0.5) * sx, (Math.floor(worst / m.cols) + 0.5) * sy, sx, sy);
    canvas.dataset.rings = JSON.stringify(rings.map((p) => p.map(Math.round)));
    canvas.dataset.worst = String(worst);
    axes(canvas, h, bad.length, rings.length);
    canvas.addEventListener("mousemove", (ev) => hover(canvas, ev));
    canvas.addEventListener("mouseleave", () => { tip.hidden = true; });
  }

  // Draw heatmaps as they come near the screen: a page of thousands of tensors opens at once.
  function drawLazily(canvases) {
    if (!("IntersectionObserver" in window)) { canvases.forEach(drawHeat); return; }
    const seen = new IntersectionObserver((entries) => {
      for (const e of entries) {
        if (e.isIntersecting) { seen.unobserve(e.target); drawHeat(e.target); }
      }
    }, { rootMargin: "600px" });
    canvases.forEach((c) => seen.observe(c));
  }

  const RING = 6, RING_GAP = 2 * RING + 2, MAX_RINGS = 32;

  // Return the points each at least `gap` pixels from every one kept before
  // (a run of failing cells would otherwise draw one thick red bar of rings).
  function apart(points, gap) {
    const kept = [];
    for (const p of points) {
      if (kept.every((q) => Math.hypot(p[0] - q[0], p[1] - q[1]) >= gap)) kept.push(p);
    }
    return kept;
  }

  // Return the cell of the tensor's worst entry (the first of its listed worst), else the
  // first cell of the greatest code.
  function worstCell(h, fallback) {
    const m = h.heatmap, w = h.worst && h.worst[0];
    if (!w || h.entry || !w.index || !w.index.length) return fallback;
    const shape = h.shape.length ? h.shape : [1];
    if (m.layout === "1d") {
      const flat = w.index.reduce((a, x, d) => a * shape[d] + x, 0);
      return Math.min(m.cells - 1, Math.floor(flat / m.block[0]));
    }
    const C = shape.slice(1).reduce((a, x) => a * x, 1);
    const j = w.index.slice(1).reduce((a, x, d) => a * shape[d + 1] + x, 0);
    return Math.floor(w.index[0] / m.block[0]) * m.cols + Math.floor(j / m.block[1]);
  }

  // Mark the worst cell with a black square around it (white inside, seen on any colour).
  function mark(ctx, x, y, sx, sy) {
    const r = Math.min(sx, sy) >= 12 ? Math.min(sx, sy) / 2 - 1.5 : 5;
    ctx.lineWidth = 3; ctx.strokeStyle = "#fff";
    ctx.strokeRect(x - r, y - r, 2 * r, 2 * r);
    ctx.lineWidth = 1.5; ctx.strokeStyle = "#000";
    ctx.strokeRect(x - r, y - r, 2 * r, 2 * r);
  }

  // Put the heatmap between its axes (first and last row and column, what a cell pools) and
  // a key of its colours beside it; built when the heatmap is drawn, so a page of thousands
  // carries none of it until it is scrolled to.
  function axes(canvas, h, nBad, nRings) {
    const wrap = canvas.parentElement, m = h.heatmap, shape = h.shape.length ? h.shape : [1];
    if (wrap.classList.contains("framed")) return;
    wrap.classList.add("framed");
    const two = m.layout !== "1d" && shape.length > 1;
    const rows = two ? shape[0] : 1, cols = two ? shape.slice(1).reduce((a, x) => a * x, 1) :
      shape.reduce((a, x) => a * x, 1);
    const y = make("div", "ax-y", ""), x = make("div", "ax-x", ""), key = make("div", "key", "");
    if (two) {
      y.append(make("span", "", "0"), make("span", "ax-name", "row"), make("span", "", String(rows - 1)));
    }
    x.append(make("span", "", "0"), make("span", "ax-name", (two ? "column" : "entry") +
      (m.block && m.block.some((b) => b > 1) ? " · a cell pools " + m.block.join("×") +
        " entries, shows their worst" : "")), make("span", "", String(cols - 1)));
    const bar = document.createElement("canvas");
    bar.width = 10; bar.height = 256;
    const bctx = bar.getContext("2d");
    for (let c = 0; c < 256; c++) {
      bctx.fillStyle = "rgb(" + PALETTE[255 - c].join(",") + ")";
      bctx.fillRect(0, c, 10, 1);
    }
    const labels = make("div", "key-labels", "");
    labels.append(make("span", "", "≥1e6"), make("span", "", "1 = bound"), make("span", "", "exact"));
    key.append(bar, labels);
    key.style.height = Math.max(canvas.height, 48) + "px";
    const note = make("div", "ax-note", "□ the worst entry" + (nRings ? " · ○ failing cells" +
      " too small to see" : ""));
    wrap.replaceChildren(y, canvas, key, x, note);
  }

  function make(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text) e.textContent = text;
    return e;
  }

  function ring(ctx, points) {
    ctx.strokeStyle = "rgb(200, 0, 0)";
    ctx.lineWidth = 1.5;
    for (const [x, y] of points) {
      ctx.beginPath();
      ctx.arc(x, y, RING, 0, 2 * Math.PI);
      ctx.stroke();
    }
  }

  // Return the flat entries a cell covers and how to name them.
  function cellEntries(h, row, col) {
    const m = h.heatmap, shape = h.shape.length ? h.shape : [1];
    if (m.layout === "1d") {
      const c = row * m.cols + col, b = m.block[0], n = shape.reduce((a, x) => a * x, 1);
      if (c >= m.cells) return null;
      const first = c * b, last = Math.min(n, first + b) - 1;
      return { code: h._codes[c], flats: range(first, last), shape: [n] };
    }
    const R = shape[0], C = shape.slice(1).reduce((a, x) => a * x, 1);
    const [br, bc] = m.block, flats = [];
    for (let i = row * br; i < Math.min(R, (row + 1) * br); i++)
      for (let j = col * bc; j < Math.min(C, (col + 1) * bc); j++) flats.push(i * C + j);
    return { code: h._codes[row * m.cols + col], flats: flats, shape: [R, C] };
  }

  function range(a, b) {
    return Array.from({ length: b - a + 1 }, (_, i) => a + i);
  }

  function indexOf(flat, shape) {
    return shape.length === 1 ? [flat] : [Math.floor(flat / shape[1]), flat % shape[1]];
  }

  function name(h, idx) {
    return h.tensor + "[" + (h.entry || idx).join(", ") + "]";
  }

  function exactEntry(h, flat) {
    const v = h._v, got = v.got[flat], ref = v.ref[flat], bound = v.bound[flat];
    const diff = Math.abs(got - ref);
    const ratio = diff === 0 ? 0 : diff / bound;
    return { got: got, ref: ref, bound: bound, ratio: ratio };
  }

  function describe(h, e) {
    return "got " + num(e.got) + "\nref " + num(e.ref) + "\nbound " + num(e.bound, 3) +
      "\nratio " + num(e.ratio, 3) + (e.bits !== undefined ? "\nbits " + num(e.bits, 3) : "") +
      (e.case ? "\ncase " + e.case : "");
  }

  function tipText(h, cell) {
    const first = indexOf(cell.flats[0], cell.shape);
    const last = indexOf(cell.flats[cell.flats.length - 1], cell.shape);
    const inside = cell.code <= PASS_MAX ? "inside its bound" : "OUTSIDE its bound";
    if (cell.flats.length === 1) {
      const lines = [name(h, first), ratioText(cell.code) + " — " + inside];
      const kept = h.worst.find((w) => w.index.join() === (h.entry || first).join());
      if (h._v) lines.push(describe(h, exactEntry(h, cell.flats[0])));
      else if (kept) lines.push(describe(h, kept));
      return lines.join("\n");
    }
    const lines = [h.tensor + "[" + first.join(", ") + "] … [" + last.join(", ") + "] (" +
      cell.flats.length + " entries pooled)", "greatest " + ratioText(cell.code) + " — " + inside];
    const inBlock = h.worst.filter((w) => cell.flats.includes(flatOf(w.index, cell.shape)));
    if (h._v) {
      let best = cell.flats[0];
      for (const f of cell.flats) if (exactEntry(h, f).ratio > exactEntry(h, best).ratio) best = f;
      lines.push("worst: " + name(h, indexOf(best, cell.shape)), describe(h, exactEntry(h, best)));
    } else if (inBlock.length) {
      lines.push("worst: " + name(h, inBlock[0].index), describe(h, inBlock[0]));
    }
    return lines.join("\n");
  }

  function flatOf(index, shape) {
    return shape.length === 1 ? index[0] : index[0] * shape[1] + index[1];
  }

  function hover(canvas, ev) {
    const h = decoded(canvas.dataset.k), r = canvas.getBoundingClientRect(), m = h.heatmap;
    const col = Math.min(m.cols - 1, Math.floor((ev.clientX - r.left) / r.width * m.cols));
    const row = Math.min(m.rows - 1, Math.floor((ev.clientY - r.top) / r.height * m.rows));
    const cell = cellEntries(h, row, col);
    if (!cell || !cell.flats.length) { tip.hidden = true; return; }
    tip.textContent = tipText(h, cell);
    tip.hidden = false;
    tip.style.left = Math.min(ev.clientX + 14, window.innerWidth - tip.offsetWidth - 4) + "px";
    tip.style.top = (ev.clientY + 14) + "px";
  }

  function drawLegend() {
    const canvas = document.getElementById("legend"), ctx = canvas.getContext("2d");
    for (let x = 0; x < canvas.width; x++) {
      const rgb = PALETTE[Math.floor(x / canvas.width * 256)];
      ctx.fillStyle = "rgb(" + rgb.join(",") + ")";
      ctx.fillRect(x, 0, 1, canvas.height);
    }
  }

  const HEAD = ["entry", "got", "ref", "|diff|", "bound", "ratio", "bits"];

  function cellRow(tag, texts) {
    const tr = document.createElement("tr");
    for (const t of texts) {
      const td = document.createElement(tag);
      td.textContent = t;
      tr.appendChild(td);
    }
    return tr;
  }

  // Build a passing tensor's worst-entries table when its <details> first opens.
  function fillWorst(details) {
    if (details.querySelector("table")) return;
    const h = DATA.items[details.dataset.k], table = document.createElement("table");
    table.className = "worst";
    table.createTHead().appendChild(cellRow("th", HEAD));
    const body = table.createTBody();
    for (const e of h.worst) {
      const diff = typeof e.got === "number" && typeof e.ref === "number" ? Math.abs(e.got - e.ref) : "–";
      const tr = cellRow("td", [name(h, e.index) + (e.case ? " · " + e.case : ""), num(e.got), num(e.ref),
                                num(diff, 3), num(e.bound, 3), num(e.ratio, 3), num(e.bits, 3)]);
      if (typeof e.ratio === "string" || e.ratio > 1) tr.className = "failing";
      body.appendChild(tr);
    }
    details.appendChild(table);
  }

  const CALLS_HEAD = ["case", "run", "tensor", "passed", "greatest ratio", "bits min"];

  // Build a config's table of adapter calls (case by case) when it is first opened.
  function fillCalls(details) {
    if (details.querySelector("table")) return;
    const table = document.createElement("table"), runs = DATA.runs;
    table.className = "calls";
    table.createTHead().appendChild(cellRow("th", CALLS_HEAD));
    const body = table.createTBody();
    for (const [c, r, tensors] of DATA.calls[details.dataset.row]) {
      for (const [t, passed, of, ratio, bits] of tensors) {
        const tr = cellRow("td", [DATA.cases[c], runs[r], t, passed + "/" + of, num(ratio, 3), num(bits, 3)]);
        if (passed < of) tr.className = "failing";
        body.appendChild(tr);
      }
    }
    details.appendChild(table);
  }

  function chosen() {
    const sets = {};
    for (const box of document.querySelectorAll("#filters input[type=checkbox]")) {
      const d = box.dataset.dim;
      sets[d] = sets[d] || new Set();
      if (box.checked) sets[d].add(box.value);
    }
    sets.text = document.getElementById("config-filter").value.trim().toLowerCase();
    return sets;
  }

  function dimsOk(el, sets) {
    return DIMS.every((d) => !sets[d] || el.dataset[d] === undefined || sets[d].has(el.dataset[d])) &&
      (!sets.text || el.dataset.config === undefined || el.dataset.config.toLowerCase().includes(sets.text));
  }

  function runOk(el, sets) {
    return !sets.run || sets.run.has(el.dataset.run);
  }

  function statusOk(el, sets) {
    if (!sets.status) return true;
    if (el.dataset.statuses) return el.dataset.statuses.split(" ").some((s) => sets.status.has(s));
    return sets.status.has(el.dataset.status);
  }

  function applyFilters() {
    const sets = chosen();
    for (const g of document.querySelectorAll("article.group")) {
      let any = false;
      const dims = dimsOk(g, sets);
      for (const col of g.querySelectorAll(".run-col")) col.hidden = !runOk(col, sets);
      for (const it of g.querySelectorAll(".item")) {
        const ok = dims && runOk(it, sets) && statusOk(it, sets);
        it.hidden = !ok;
        any = any || ok;
      }
      g.hidden = !any;
    }
    for (const li of document.querySelectorAll("li.item-link")) {
      li.hidden = !(dimsOk(li, sets) && runOk(li, sets) && statusOk(li, sets));
    }
    let shown = 0, total = 0;
    const rowShown = {};
    for (const row of document.querySelectorAll("tr.mrow")) {
      let any = false;
      for (const cell of row.querySelectorAll("td.cell")) {
        const st = cell.dataset.statuses ? cell.dataset.statuses.split(" ") : [];
        const ok = runOk(cell, sets) && st.some((s) => !sets.status || sets.status.has(s));
        cell.classList.toggle("dim", !ok);
        any = any || ok;
      }
      row.hidden = !(dimsOk(row, sets) && any);
      rowShown[row.dataset.config] = !row.hidden;
      total++;
      if (!row.hidden) shown++;
    }
    for (const d of document.querySelectorAll("details.config")) {
      d.hidden = !rowShown[d.dataset.config];
      for (const col of d.querySelectorAll(".run-col")) col.hidden = !runOk(col, sets);
    }
    document.getElementById("shown").textContent = "showing " + shown + " of " + total + " configs";
  }

  // Keep a link's target clear of the sticky filter bar (its height depends on the filters).
  function clearOfBar() {
    const bar = document.getElementById("filters");
    document.documentElement.style.setProperty("--bar", bar.offsetHeight + "px");
  }

  // A link to a config's summary opens it.
  function openTarget() {
    const el = location.hash && document.getElementById(location.hash.slice(1));
    if (el && el.tagName === "DETAILS") el.open = true;
  }

  for (const d of document.querySelectorAll("details.lazy")) d.addEventListener("toggle", () => fillWorst(d));
  for (const d of document.querySelectorAll("details.calls")) d.addEventListener("toggle", () => fillCalls(d));
  drawLegend();
  drawLazily(Array.from(document.querySelectorAll("canvas.heat")));
  for (const box of document.querySelectorAll("#filters input")) {
    box.addEventListener(box.type === "search" ? "input" : "change", applyFilters);
  }
  clearOfBar();
  window.addEventListener("resize", clearOfBar);
  window.addEventListener("hashchange", openTarget);
  openTarget();
  // Everything is shown as the page opens; a reload that kept ticks or text applies them.
  performance.mark("report-ready");
  const filtered = document.querySelector("#filters input[type=checkbox]:not(:checked)") ||
    document.getElementById("config-filter").value;
  if (filtered) applyFilters();
  else document.getElementById("shown").textContent = "showing all " +
    document.querySelectorAll("tr.mrow").length + " configs";
})();
