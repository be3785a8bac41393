// reviewlstm's page: one renderer for the live page (POST /explain) and for `reviewlstm explain --html`,
// which inlines this file with the explanation as window.REVIEWLSTM_EXPLANATION. No network, no build step.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  const GATES = [
    ["learn", "learn gate: what each word adds to long-term memory (N⊙i)"],
    ["forget_gate", "forget gate f: how much long-term memory is kept (1 = all)"],
    ["remember", "remember: the long-term memory after the word (LTM)"],
    ["use", "use gate: the short-term memory it passes on (STM = U⊙V)"],
    ["stm", "the RNN's state"],
  ];

  function color(v, max) {
    const a = (Math.min(Math.abs(v) / (max || 1), 1) * 0.75).toFixed(3);
    return v < 0 ? `rgba(214, 40, 40, ${a})` : `rgba(33, 140, 70, ${a})`;
  }

  function stars(rating, ratings) {
    const n = ratings[ratings.length - 1] - ratings[0] + 1, k = rating - ratings[0] + 1;
    return "★".repeat(k) + `<span class="off">${"★".repeat(n - k)}</span>`;
  }

  function heat(canvas, rows, cols, value, lo, hi) {
    const cw = Math.max(4, Math.min(22, Math.floor(900 / cols))), ch = rows > 40 ? 2 : 8;
    canvas.width = cols * cw; canvas.height = rows * ch;
    const ctx = canvas.getContext("2d");
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) {
      const t = (value(r, c) - lo) / ((hi - lo) || 1);
      const x = Math.max(0, Math.min(1, t));
      // diverging: blue (low) - white - red (high)
      const R = x < 0.5 ? Math.round(255 * x * 2) : 255, B = x > 0.5 ? Math.round(255 * (1 - x) * 2) : 255;
      const G = Math.round(255 * (1 - Math.abs(x - 0.5) * 2));
      ctx.fillStyle = `rgb(${R},${G},${B})`;
      ctx.fillRect(c * cw, r * ch, cw, ch);
    }
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
    exp.forEach((v, t) => {
      s += `<circle cx="${x(t)}" cy="${y(v)}" r="3" fill="#2563eb"><title>${esc(e.tokens[t])}: expected ${v.toFixed(2)}</title></circle>`;
      s += `<text transform="translate(${x(t)},${H - P + 14}) rotate(40)">${esc(e.tokens[t].slice(0, 12))}</text>`;
    });
    return s + "</svg>";
  }

  function render(e, root) {
    const max = Math.max(...e.contributions.map(Math.abs), 1e-9);
    let h = `<div class="card"><div class="verdict"><span class="stars" id="stars">${stars(e.rating, e.ratings)}</span>`;
    h += `<span class="num">rating <b id="rating">${e.rating}</b> · expected ${e.expected_rating.toFixed(2)}</span></div><div class="bars">`;
    e.probabilities.forEach((p, k) => {
      h += `<div class="bar"><span>${e.ratings[k]} ★</span><span class="track"><span class="fill" style="display:block;width:${(100 * p).toFixed(1)}%"></span></span><span>${(100 * p).toFixed(1)}%</span></div>`;
    });
    h += `</div>`;
    if (e.truncated) h += `<p class="note">Only the first ${e.max_length} of ${e.total_tokens} tokens were read in one pass (the same rule as prediction).</p>`;
    h += `</div><h2>Words</h2><div class="card"><div class="words" id="heatmap">`;
    e.tokens.forEach((t, i) => {
      const c = e.contributions[i];
      h += `<span style="background:${color(c, max)}" title="${c >= 0 ? "+" : ""}${c.toFixed(3)} stars">${esc(t)}</span> `;
    });
    h += `</div><p class="legend">Green words pushed the expected rating up, red ones down (${e.method.replace("_", " ")}).</p></div>`;
    if (e.trajectory && e.trajectory.length) h += `<h2>The prediction as the review is read</h2><div class="card">${chart(e)}<p class="legend">Expected rating after each word.</p></div>`;
    const gates = GATES.filter(([n]) => e.gates && e.gates[n]);
    if (gates.length) {
      h += `<h2>Gates, word by word</h2><div class="card">`;
      gates.forEach(([n, what]) => { h += `<div class="gate"><span class="name">${n}</span> <span class="what">— ${what}</span><canvas data-gate="${n}"></canvas></div>`; });
      h += `<p class="legend">Columns are words, rows are units (last layer, reading forwards); blue low, red high.</p></div>`;
    }
    root.innerHTML = h;
    root.querySelectorAll("canvas[data-gate]").forEach((cv) => {
      const units = e.gates[cv.dataset.gate].units, T = units.length, H = units[0].length;
      let lo = Infinity, hi = -Infinity;
      units.forEach((row) => row.forEach((v) => { lo = Math.min(lo, v); hi = Math.max(hi, v); }));
      if (cv.dataset.gate === "forget_gate") { lo = 0; hi = 1; }
      const m = Math.max(Math.abs(lo), Math.abs(hi));
      if (cv.dataset.gate !== "forget_gate") { lo = -m; hi = m; }
      heat(cv, H, T, (r, c) => units[c][r], lo, hi);
    });
  }

  async function submit(ev) {
    ev.preventDefault();
    const text = $("text").value, err = $("error"), out = $("result"), btn = $("go");
    err.textContent = "";
    if (!text.trim()) { err.textContent = "Type or paste a review first."; return; }
    btn.disabled = true;
    try {
      const r = await fetch("explain", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ text, method: $("method").value }) });
      const body = await r.json().catch(() => ({}));
      if (!r.ok) {
        const d = body.detail;
        err.textContent = typeof d === "string" ? d : Array.isArray(d) ? d.map((x) => x.msg).join("; ") : `error ${r.status}`;
        out.innerHTML = "";
        return;
      }
      render(body, out);
    } catch (e) {
      err.textContent = "The service did not answer: " + e.message;
    } finally { btn.disabled = false; }
  }

  window.reviewlstm = { render };
  document.addEventListener("DOMContentLoaded", () => {
    if (window.REVIEWLSTM_EXPLANATION) render(window.REVIEWLSTM_EXPLANATION, $("result"));
    if ($("form")) $("form").addEventListener("submit", submit);
  });
})();
