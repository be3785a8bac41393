// reviewlstm's page: one renderer for the live page (POST /predict for the rating, POST /explain for
// why) and for `reviewlstm explain --html`, which inlines this file with the explanation as
// window.REVIEWLSTM_EXPLANATION. No network beyond the service, no build step.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  // the gates as the seed names them, in reading order; the explanation's gate_labels say what each holds
  const GATES = [
    ["learn", "learn"], ["forget", "forget"], ["forget_gate", "forget gate f"],
    ["remember", "remember"], ["use", "use"], ["stm", "state"],
  ];
  const SHOWN_UNITS = 12;  // the units that changed most; "show all" draws every one

  function color(v, max) {
    const a = (Math.min(Math.abs(v) / (max || 1), 1) * 0.75).toFixed(3);
    return v < 0 ? `rgba(214, 40, 40, ${a})` : `rgba(33, 140, 70, ${a})`;
  }

  const COVERAGE = 0.9;  // the rating set the page asks for

  // " (90% sure: 3–5★)" for a prediction carrying a rating set, else nothing
  function within(p) {
    if (!p || !p.rating_set) return "";
    const s = p.rating_set, run = s.length === 1 ? `${s[0]}` : `${s[0]}–${s[s.length - 1]}`;
    return ` <span id="rating-set" title="the run of ratings that holds the true one with this probability (conformal, calibrated on reviews the model never chose on)">(${Math.round(100 * p.coverage)}% sure: ${run}★)</span>`;
  }

  function stars(rating, ratings) {
    const n = ratings[ratings.length - 1] - ratings[0] + 1, k = rating - ratings[0] + 1;
    return "★".repeat(k) + `<span class="off">${"★".repeat(n - k)}</span>`;
  }

  // diverging: blue (low) - white - red (high), t in [0, 1]
  function rgb(t) {
    const x = Math.max(0, Math.min(1, t));
    const R = x < 0.5 ? Math.round(255 * x * 2) : 255, B = x > 0.5 ? Math.round(255 * (1 - x) * 2) : 255;
    const G = Math.round(255 * (1 - Math.abs(x - 0.5) * 2));
    return `rgb(${R},${G},${B})`;
  }

  // rows: unit indices in display order; words along the bottom, units down the left
  function heat(canvas, units, rows, words, lo, hi) {
    const T = units.length, left = 64, bottom = 78;
    const cw = Math.max(6, Math.min(24, Math.floor(880 / T))), ch = Math.max(3, Math.min(14, Math.floor(420 / rows.length)));
    canvas.width = left + T * cw; canvas.height = rows.length * ch + bottom;
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "white"; ctx.fillRect(0, 0, canvas.width, canvas.height);
    rows.forEach((u, r) => {
      for (let c = 0; c < T; c++) {
        ctx.fillStyle = rgb((units[c][u] - lo) / ((hi - lo) || 1));
        ctx.fillRect(left + c * cw, r * ch, cw, ch);
      }
    });
    ctx.fillStyle = "#374151"; ctx.font = "10px system-ui, sans-serif"; ctx.textBaseline = "middle";
    const rowEvery = Math.ceil(11 / ch);  // a label where it fits
    rows.forEach((u, r) => { if (r % rowEvery === 0) ctx.fillText(`unit ${u}`, 4, r * ch + ch / 2); });
    const wordEvery = Math.ceil(11 / cw);
    for (let c = 0; c < T; c += wordEvery) {
      ctx.save();
      ctx.translate(left + c * cw + cw / 2, rows.length * ch + 4);
      ctx.rotate(Math.PI / 3);
      ctx.fillText(String(words[c] || "").slice(0, 12), 0, 0);
      ctx.restore();
    }
    canvas.dataset.cell = JSON.stringify({ left, cw, ch, n: rows.length });
  }

  function scale(lo, hi) {
    const stops = [0, 0.25, 0.5, 0.75, 1].map((t) => `${rgb(t)} ${t * 100}%`).join(", ");
    const mid = (lo + hi) / 2;
    return `<div class="scale"><span>${lo.toFixed(2)}</span><span class="ramp" style="background:linear-gradient(to right, ${stops})"></span>` +
      `<span>${hi.toFixed(2)}</span><span class="mid">(white ${mid.toFixed(2)})</span></div>`;
  }

  // units ordered by how much they moved from word to word (then by their largest value)
  function byChange(units) {
    const H = units[0].length, score = new Array(H).fill(0);
    for (let t = 0; t < units.length; t++) for (let u = 0; u < H; u++) {
      score[u] += Math.abs(units[t][u] - (t ? units[t - 1][u] : 0));
    }
    return [...score.keys()].sort((a, b) => score[b] - score[a]);
  }

  function gateMaps(root, e) {
    root.querySelectorAll(".gate[data-gate]").forEach((div) => {
      const name = div.dataset.gate, units = e.gates[name].units;
      const cv = div.querySelector("canvas"), readout = div.querySelector(".readout"), btn = div.querySelector("button");
      let lo = Infinity, hi = -Infinity;
      units.forEach((row) => row.forEach((v) => { lo = Math.min(lo, v); hi = Math.max(hi, v); }));
      if (name === "forget_gate") { lo = 0; hi = 1; } else { const m = Math.max(Math.abs(lo), Math.abs(hi), 1e-6); lo = -m; hi = m; }
      div.querySelector(".scale-slot").innerHTML = scale(lo, hi);
      const order = byChange(units);
      let all = false;
      const draw = () => {
        const rows = all ? order : order.slice(0, SHOWN_UNITS);
        heat(cv, units, rows, e.tokens, lo, hi);
        cv.dataset.rows = JSON.stringify(rows);
        btn.textContent = all ? `show the ${Math.min(SHOWN_UNITS, order.length)} that changed most` : `show all ${order.length} units`;
      };
      btn.addEventListener("click", () => { all = !all; draw(); });
      cv.addEventListener("mousemove", (ev) => {
        const g = JSON.parse(cv.dataset.cell), rows = JSON.parse(cv.dataset.rows);
        const box = cv.getBoundingClientRect(), sx = cv.width / box.width, sy = cv.height / box.height;
        const c = Math.floor(((ev.clientX - box.left) * sx - g.left) / g.cw), r = Math.floor(((ev.clientY - box.top) * sy) / g.ch);
        if (c < 0 || c >= units.length || r < 0 || r >= g.n) { readout.textContent = "\u00a0"; return; }
        readout.textContent = `unit ${rows[r]} · word ${c + 1} “${e.tokens[c]}” · ${units[c][rows[r]].toFixed(3)}`;
      });
      cv.addEventListener("mouseleave", () => { readout.textContent = "\u00a0"; });
      draw();
    });
  }

  function chart(e) {
    const T = e.trajectory.length, W = Math.max(420, Math.min(940, T * 46)), H = 200, P = 34;
    const lo = e.ratings[0], hi = e.ratings[e.ratings.length - 1];
    const x = (t) => P + (T === 1 ? 0 : (t * (W - 2 * P)) / (T - 1));
    const y = (v) => H - P - ((v - lo) / (hi - lo)) * (H - 2 * P);
    const exp = e.trajectory.map((p) => p.reduce((s, q, k) => s + q * e.ratings[k], 0));
    let s = `<svg id="trajectory" width="${W}" height="${H + 40}" viewBox="0 0 ${W} ${H + 40}">`;
    for (const r of e.ratings) s += `<line x1="${P}" x2="${W - P}" y1="${y(r)}" y2="${y(r)}" stroke="#eee"/><text x="6" y="${y(r) + 4}">${r}★</text>`;
    s += `<polyline fill="none" stroke="#2563eb" stroke-width="2" points="${exp.map((v, t) => `${x(t)},${y(v)}`).join(" ")}"/>`;
    const every = Math.ceil(T / 80);
    exp.forEach((v, t) => {
      s += `<circle cx="${x(t)}" cy="${y(v)}" r="3" fill="#2563eb"><title>${esc(e.tokens[t])}: expected ${v.toFixed(2)}</title></circle>`;
      if (t % every === 0) s += `<text transform="translate(${x(t)},${H - P + 14}) rotate(40)">${esc(e.tokens[t].slice(0, 12))}</text>`;
    });
    return s + "</svg>";
  }

  // e: the explanation; whole (optional): /predict's answer for the whole text, when the page has it
  function render(e, root, whole) {
    const p = whole || e, max = Math.max(...e.contributions.map(Math.abs), 1e-9);
    let h = `<div class="card"><div class="verdict"><span class="stars" id="stars">${stars(p.rating, e.ratings)}</span>`;
    h += `<span class="num">rating <b id="rating">${p.rating}</b>${p.label ? ` <b id="label">${esc(p.label)}</b>` : ""}${within(whole)} · expected ${p.expected_rating.toFixed(2)}</span></div><div class="bars">`;
    p.probabilities.forEach(({ rating, label, probability: q }) => {
      h += `<div class="bar"><span>${label ? esc(label) : rating + " ★"}</span><span class="track"><span class="fill" style="display:block;width:${(100 * q).toFixed(1)}%"></span></span><span>${(100 * q).toFixed(1)}%</span></div>`;
    });
    h += `</div>`;
    if (whole && whole.warning) h += `<p class="note warn" id="warning">${esc(whole.warning)}</p>`;
    if (e.explained_chars && e.explained_chars < e.text_chars) {
      h += `<p class="note" id="explained">The rating is the whole review's (${e.text_chars.toLocaleString()} characters); ` +
        `the explanation below covers its first ${e.explained_chars.toLocaleString()} characters (rated ${e.rating} there), ` +
        `the most the service explains (max_explain_chars).</p>`;
    }
    if (e.truncated) h += `<p class="note">Only the first ${e.max_length} of ${e.total_tokens} tokens were read in one pass (the same rule as prediction).</p>`;
    if (e.ngram_share) h += `<p class="note">${Math.round(e.ngram_share * 100)}% of this rating comes from the model's n-gram path (TF-IDF word 1-2-grams + logistic regression), mixed in at that share with the recurrent path; the word contributions are mixed the same way, the gates are the recurrent path's.</p>`;
    h += `</div><h2>Words</h2><div class="card"><div class="words" id="heatmap">`;
    e.tokens.forEach((t, i) => {
      const c = e.contributions[i];
      h += `<span style="background:${color(c, max)}" title="${c >= 0 ? "+" : ""}${c.toFixed(3)} stars">${esc(t)}</span> `;
    });
    h += `</div><p class="legend">Green words pushed the expected rating up, red ones down (${e.method.replace("_", " ")}).</p></div>`;
    if (e.trajectory && e.trajectory.length) h += `<h2>The prediction as the review is read</h2><div class="card">${chart(e)}<p class="legend">Expected rating after each word.</p></div>`;
    const gates = GATES.filter(([n]) => e.gates && e.gates[n] && e.gates[n].units && e.gates[n].units.length);
    if (gates.length) {
      h += `<h2>Gates, word by word</h2><div class="card">`;
      const shown = e.gates[gates[0][0]].units.length;
      if (shown < e.tokens.length) h += `<p class="note">Unit values for the first ${shown} of ${e.tokens.length} words.</p>`;
      gates.forEach(([n, label]) => {
        const what = (e.gate_labels && e.gate_labels[n]) || label;
        h += `<div class="gate" data-gate="${n}"><span class="name">${esc(label)}</span> <span class="what">— ${esc(what)}</span>` +
          `<div class="scale-slot"></div><canvas></canvas><div class="row"><span class="readout">\u00a0</span><button type="button" class="all"></button></div></div>`;
      });
      h += `<p class="legend">Columns are words, rows are units (last layer, reading forwards), the units that changed most from word to word first. Hover for a value.</p></div>`;
    }
    root.innerHTML = h;
    gateMaps(root, e);
  }

  function detail(r, body) {
    const d = body.detail;
    return typeof d === "string" ? d : Array.isArray(d) ? d.map((x) => x.msg).join("; ") : `error ${r.status}`;
  }

  async function post(path, payload) {
    const r = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(payload) });
    const body = await r.json().catch(() => ({}));
    return { ok: r.ok, body, error: r.ok ? null : detail(r, body) };
  }

  async function submit(ev) {
    ev.preventDefault();
    const text = $("text").value, err = $("error"), out = $("result"), btn = $("go");
    err.textContent = "";
    if (!text.trim()) { err.textContent = "Type or paste a review first."; out.innerHTML = ""; return; }
    btn.disabled = true;
    try {
      // the rating of the whole text first: a review too long to explain whole is still rated
      // with its rating set where the model has one (a model without the calibration says so: asked again without)
      let rated = await post("predict", { text, coverage: COVERAGE });
      if (!rated.ok && /rating-set calibration/.test(rated.error)) rated = await post("predict", { text });
      if (!rated.ok) { err.textContent = rated.error; out.innerHTML = ""; return; }
      const why = await post("explain", { text, method: $("method").value });
      if (!why.ok) {
        const w = rated.body;
        out.innerHTML = `<div class="card"><div class="verdict"><span class="stars" id="stars">${stars(w.rating, w.probabilities.map((o) => o.rating))}</span>` +
          `<span class="num">rating <b id="rating">${w.rating}</b>${within(w)} · expected ${w.expected_rating.toFixed(2)}</span></div></div>`;
        err.textContent = "Rated, but not explained: " + why.error;
        return;
      }
      render(why.body, out, rated.body);
    } catch (e) {
      err.textContent = "The service did not answer: " + e.message;
    } finally { btn.disabled = false; }
  }

  window.reviewlstm = { render };
  document.addEventListener("DOMContentLoaded", () => {
    if (window.REVIEWLSTM_EXPLANATION) render(window.REVIEWLSTM_EXPLANATION, $("result"), window.REVIEWLSTM_PREDICTION);
    if ($("form")) $("form").addEventListener("submit", submit);
  });
})();
