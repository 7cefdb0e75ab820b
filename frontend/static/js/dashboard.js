/* The researcher's live dashboard: polls the study's analysis with its ETag (a 304 when
   nothing changed) and redraws tables and plotly figures when a score or metric arrives. */
(function () {
  "use strict";
  const root = document.getElementById("dashboard");
  const api = root.dataset.api;
  const pollMs = Number(root.dataset.pollMs) || 2000;
  const dark = {
    paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
    font: { color: "#d9dee3", size: 12 }, margin: { l: 60, r: 20, t: 10, b: 50 },
    xaxis: { gridcolor: "#262c33", zerolinecolor: "#3a424b" },
    yaxis: { gridcolor: "#262c33", zerolinecolor: "#3a424b" },
  };
  const plotConfig = { displaylogo: false, responsive: true,
    toImageButtonOptions: { format: "png", scale: 2 } };
  // Marker shapes for accelerations, and the character that shows each in the legend's key.
  const SYMBOLS = ["circle", "square", "diamond", "triangle-up", "x", "cross", "star", "hexagon",
    "triangle-down", "pentagon", "hourglass", "bowtie"];
  const GLYPHS = ["●", "■", "◆", "▲", "✖", "✚", "★", "⬢", "▼", "⬟", "⧗", "⋈"];
  const COLOURS = ["#4ea1ff", "#ff9f43", "#5ccf8a", "#e66bff", "#ff6b6b", "#ffd93d", "#6bdcff", "#b0b7bf"];

  let etag = null;
  let payload = null;
  let question = null;
  let lastChecked = null;

  const $ = (id) => document.getElementById(id);
  // Plotly draws names, ticks, legends and hover text as its own HTML subset (<a href>, <b>, ...):
  // a method, case, reader or metric name is text, so its markup characters go in as entities.
  const plotText = (value) => String(value ?? "").replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  const fmt = (v, digits = 3) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits));
  const fmtCi = (ci, digits = 3) => (ci ? `[${fmt(ci[0], digits)}, ${fmt(ci[1], digits)}]` : "–");
  const fmtP = (p) => (p === null || p === undefined ? "–" : p < 0.001 ? "<0.001" : p.toFixed(3));
  const el = window.el;  // js/dom.js
  function layout(extra) {
    return Object.assign({}, dark, extra, {
      xaxis: Object.assign({}, dark.xaxis, extra.xaxis || {}),
      yaxis: Object.assign({}, dark.yaxis, extra.yaxis || {}),
    });
  }

  async function poll() {
    try {
      const headers = { Accept: "application/json" };
      if (etag) headers["If-None-Match"] = etag;
      const response = await fetch(api, { headers, credentials: "same-origin" });
      if (response.status === 200) {
        etag = response.headers.get("ETag");
        payload = await response.json();
        root.dataset.version = payload.version;
        render();
      } else if (response.status !== 304) {
        throw new Error(response.status === 404 ? "no access to this study" : `HTTP ${response.status}`);
      }
      lastChecked = new Date();
      const status = $("live-status");
      status.className = "live ok";
      root.dataset.updating = payload.updating ? "true" : "false";
      // The analysis runs in a worker: while it computes newer data, the last one stays up.
      const updating = payload.updating ? " · updating with new data…" : "";
      status.textContent = payload.computed_at
        ? `Live · analysis of ${new Date(payload.computed_at).toLocaleTimeString()}${updating} · checked ${lastChecked.toLocaleTimeString()}`
        : `Computing the first analysis… · checked ${lastChecked.toLocaleTimeString()}`;
    } catch (error) {
      const status = $("live-status");
      status.className = "live stale";
      status.textContent = `Not updating (${error.message}); retrying…`;
    } finally {
      setTimeout(poll, pollMs);
    }
  }

  function block() {
    return payload.analysis && payload.analysis.questions[question];
  }

  function kindOf(key) {
    const found = payload.questions.find((q) => q.key === key);
    return found ? found.kind : "likert";
  }

  function render() {
    const keys = payload.questions.map((q) => q.key);
    if (!keys.includes(question)) question = keys[0];
    renderTabs();
    const reason = $("reason");
    const comparing = kindOf(question) !== "likert";
    $("likert-view").hidden = comparing;
    $("preference-view").hidden = !comparing;
    if (comparing) {
      const current = (payload.preferences || {})[question];
      const why = payload.reason || (!current ? "No rankings or choices for this question yet." : null);
      reason.hidden = !why;
      reason.textContent = why || "";
      renderProgress();
      renderFailures();
      renderPreferenceAgreement(current);
      renderPreferences(current);
      renderReliability();
      return;
    }
    const current = block();
    const why = payload.reason || (!current ? "No scores for this question yet." : null);
    reason.hidden = !why;
    reason.textContent = why || "";
    if (payload.analysis) {
      $("resampling").textContent = payload.analysis.resampling === "cases" ? "whole cases" : "single reconstructions";
    }
    renderProgress();
    renderFailures();
    $("holm-family").textContent = current && current.holm_family ? `${current.holm_family.length} metrics (${current.holm_family.join(", ")})` : "the metrics of this question";
    $("n-scored").textContent = current && current.n_scored !== undefined ? current.n_scored : "–";
    renderAgreement(current);
    renderRanked(current);
    renderComparison(current);
    renderScatter();
    renderHeatmap(current);
    renderReaders(current);
    renderSubgroups(current);
    renderReliability();
  }

  // Metrics that could not be computed for some reconstructions: their figures use the rest.
  function renderFailures() {
    const box = $("metric-failures");
    const failures = payload.failures || [];
    box.hidden = failures.length === 0;
    if (!failures.length) { box.replaceChildren(); return; }
    box.replaceChildren(
      el("p", {}, "Some metric values could not be computed; each figure of these metrics uses the reconstructions that have one (see the study page to retry):"),
      el("ul", {}, ...failures.map((f) => el("li", {}, el("strong", {}, f.metric),
        ` failed for ${f.reconstructions} reconstruction${f.reconstructions === 1 ? "" : "s"}: ${f.reason}`))));
  }

  // --- each reader against themselves: repeat reads and drift ------------------------------
  function driftCell(result) {
    if (!result) return el("td", { class: "num" }, "–");
    if (result.slope === null) return el("td", { class: "num muted", title: result.reason || "" }, "–");
    const cell = el("td", { class: "num", title: `p ${fmtP(result.p)} · ${result.n} shared images` },
      `${fmt(result.slope, 2)} ${fmtCi(result.slope_ci, 2)}`);
    if (result.flagged) cell.append(" ", el("span", { class: "flag", title: "drifts: the slope differs from 0 after Bonferroni" }, "⚑"));
    return cell;
  }

  function renderReliability() {
    const table = $("reliability");
    const empty = $("reliability-empty");
    const kind = kindOf(question);
    const repeats = (payload.repeats || {})[question];
    const drift = kind === "likert" ? (payload.drift || {})[question] : null;
    const others = kind === "likert"
      ? (repeats && repeats.inter_reader ? repeats.inter_reader.per_reader : {})
      : (((payload.preferences || {})[question] || {}).inter_reader || {}).per_reader || {};
    const readers = payload.progress.readers.map((r) => r.reader);
    const notes = [];
    if (!repeats) notes.push("No repeat read of this question is answered yet" +
      (kind === "likert" ? "." : ". Drift is measured on Likert questions."));
    empty.hidden = !notes.length;
    empty.textContent = notes.join(" ");
    if (!repeats && !drift) { table.replaceChildren(); return; }
    const self = kind === "likert" ? "Self κw" : "Self concordance";
    const heads = ["Reader", kind === "likert" ? "Repeat reads" : "Pairs in repeats", self, kind === "likert" ? "Others κw" : "Others (majority)"];
    if (drift) heads.push(`Drift ${drift.order.unit}`, `Drift ${drift.session.unit}`);
    const head = el("thead", {}, el("tr", {}, ...heads.map((h, i) => el("th", { class: i ? "num" : "" }, h))));
    const rows = readers.map((reader) => {
      const mine = repeats ? repeats.per_reader[reader] : null;
      const cells = [el("td", {}, reader),
        el("td", { class: "num" }, mine ? mine.n : 0),
        el("td", { class: "num", title: (mine && mine.reason) || (mine && mine.exact !== undefined ? `identical answers ${fmt(mine.exact * 100, 0)}%` : "") },
          mine ? fmt(mine.value) : "–"),
        el("td", { class: "num" }, fmt(others[reader]))];
      if (drift) cells.push(driftCell(drift.order.per_reader[reader]), driftCell(drift.session.per_reader[reader]));
      return el("tr", { "data-reader": reader }, ...cells);
    });
    const foot = repeats ? [el("tfoot", {}, el("tr", {}, el("td", {}, "all readers (mean)"), el("td", { class: "num" }, Object.values(repeats.per_reader).reduce((sum, r) => sum + r.n, 0)),
      el("td", { class: "num" }, fmt(repeats.mean)),
      el("td", { class: "num" }, fmt(kind === "likert" ? (repeats.inter_reader || {}).mean
        : (((payload.preferences || {})[question] || {}).inter_reader || {}).mean))))] : [];
    table.replaceChildren(head, el("tbody", {}, ...rows), ...foot);
  }

  // The questions as ARIA tabs: one Tab stop (the selected question), arrows, Home and End
  // move between them (the WAI-ARIA tabs pattern).
  function renderTabs() {
    const tabs = $("question-tabs");
    const keys = payload.questions.map((q) => q.key);
    const select = (key) => {
      question = key;
      render();
      tabs.querySelector(`[data-question="${CSS.escape(key)}"]`).focus();
    };
    tabs.replaceChildren(...payload.questions.map((q) => {
      const selected = q.key === question;
      const button = el("button", { type: "button", role: "tab", "data-question": q.key,
        "aria-selected": String(selected), tabindex: selected ? "0" : "-1",
        class: selected ? "active" : "" }, q.label);
      button.addEventListener("click", () => { question = q.key; render(); });
      button.addEventListener("keydown", (event) => {
        const at = keys.indexOf(q.key);
        const to = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: keys.length - 1 }[event.key];
        if (to === undefined) { return; }
        event.preventDefault();
        select(keys[(to + keys.length) % keys.length]);
      });
      return button;
    }));
  }

  function renderProgress() {
    const progress = payload.progress;
    const verb = { likert: "scored", rank: "ranked", choice: "compared" }[kindOf(question)];
    $("scored-count").textContent =
      `${progress.scored[question] || 0} of ${progress.reconstructions} reconstructions ${verb} for this question`;
    $("reader-progress").tBodies[0].replaceChildren(...progress.readers.map((r) =>
      el("tr", {}, el("td", {}, r.reader),
        el("td", {}, el("progress", { max: r.total, value: r.done }), el("span", { class: "count" }, `${r.done}/${r.total}`)))));
  }

  function renderAgreement(current) {
    const dl = $("agreement");
    const sample = $("sample-size");
    if (!current) { dl.replaceChildren(); sample.textContent = ""; return; }
    const a = current.agreement;
    const why = current.agreement_reasons || {};
    const figure = (key) => a[key] === null && why[key] ? `– (${why[key]})` : fmt(a[key]);
    const rows = [
      ["ICC(2,1)", figure("icc2_1")], ["ICC(2,k)", figure("icc2_k")],
      ["Krippendorff α (ordinal)", figure("krippendorff_alpha")],
      ["Reader vs rest, mean", `${fmt(current.baseline.mean)}${current.baseline.ci ? " " + fmtCi(current.baseline.ci) : ""}`],
    ];
    dl.replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
    if (current.baseline.reason) dl.append(el("dt", {}, ""), el("dd", { class: "muted" }, current.baseline.reason));
    const hint = current.sample_size;
    sample.textContent = !hint ? "" : hint.additional_reconstructions > 0
      ? `Widest CI: ${hint.widest_metric} (${fmt(hint.widest_ci_width, 2)} wide over ${hint.n}). About ${hint.additional_reconstructions} more scored reconstructions would bring it under ${hint.target_ci_width} (assuming width ∝ 1/√n).`
      : `Every CI is already narrower than ${hint.target_ci_width}.`;
  }

  // Best first by the aligned Spearman (polarity x ρ: the metric in its own direction);
  // metrics whose direction is unknown come last.
  function ranked(current) {
    const key = (m) => (m.aligned_spearman === null ? -Infinity : m.aligned_spearman);
    return Object.entries(current.metrics).sort((a, b) => key(b[1]) - key(a[1]));
  }

  function direction(m) {
    if (m.polarity === null) return "direction unknown";
    return m.polarity > 0 ? "higher is better" : "lower is better";
  }

  // A metric computed on fewer reconstructions (pairs) than the readers scored says so
  // beside its n: its figure and the readers' are not on the same images.
  function coverageFlag(m) {
    return m.coverage ? el("span", { class: "flag coverage", title: m.coverage }, " ⚠ fewer") : "";
  }

  function renderRanked(current) {
    const body = $("ranked").tBodies[0];
    if (!current) { body.replaceChildren(); Plotly.purge("forest"); return; }
    const rows = ranked(current).map(([name, m], index) => {
      const versus = current.versus_readers[name] || {};
      const significant = versus.p_holm !== undefined && versus.p_holm !== null && versus.p_holm < 0.05;
      const against = m.aligned_spearman !== null && m.aligned_spearman < 0;
      const aligned = m.aligned_spearman === null ? (m.reason || m.aligned_spearman_reason || "–") : fmt(m.aligned_spearman);
      return el("tr", { "data-metric": name, class: against ? "against" : "" },
        el("td", {}, index + 1),
        el("td", {}, name, against ? el("span", { class: "flag", title: "ρ has the wrong sign for this metric's direction" }, " runs against the readers") : ""),
        el("td", { class: "muted small" }, direction(m)),
        el("td", { class: "num" }, m.n, coverageFlag(m)),
        el("td", { class: "num", title: m.reason || m.aligned_spearman_reason || "" }, aligned),
        el("td", { class: "num" }, fmtCi(m.aligned_spearman_ci)),
        el("td", { class: "num" }, fmt(m.spearman)), el("td", { class: "num" }, fmt(m.kendall)),
        el("td", { class: "num" }, fmt(m.pearson)),
        el("td", { class: "num" }, versus.difference === undefined ? "–" : `${fmt(versus.difference)} ${fmtCi(versus.ci)}`),
        el("td", { class: "num" + (significant ? " sig" : "") }, fmtP(versus.p_holm)));
    });
    body.replaceChildren(...rows);
    const usable = ranked(current).filter(([, m]) => m.aligned_spearman !== null).reverse();
    const x = usable.map(([, m]) => m.aligned_spearman);
    const intervals = usable.map(([, m]) => m.aligned_spearman_ci || [m.aligned_spearman, m.aligned_spearman]);
    const low = x.map((v, i) => v - intervals[i][0]);
    const high = x.map((v, i) => intervals[i][1] - v);
    const shapes = [];
    const base = current.baseline;
    if (base.mean !== null) {
      if (base.ci) shapes.push({ type: "rect", xref: "x", yref: "paper", x0: base.ci[0], x1: base.ci[1], y0: 0, y1: 1,
        fillcolor: "rgba(92,207,138,0.15)", line: { width: 0 } });
      shapes.push({ type: "line", xref: "x", yref: "paper", x0: base.mean, x1: base.mean, y0: 0, y1: 1,
        line: { color: "#5ccf8a", dash: "dash" } });
    }
    const lowest = Math.min(0, ...intervals.map((ci) => ci[0]));
    Plotly.react("forest", [{
      type: "scatter", mode: "markers", x, y: usable.map(([name]) => plotText(name)),
      error_x: { type: "data", symmetric: false, array: high, arrayminus: low, color: "#4ea1ff" },
      marker: { color: x.map((v) => (v < 0 ? "#ff6b6b" : "#4ea1ff")), size: 9 },
      hovertemplate: "%{y}: aligned ρ %{x:.3f}<extra></extra>",
    }], layout({
      height: Math.max(220, 40 * usable.length + 80), showlegend: false, shapes,
      xaxis: { title: { text: "aligned Spearman ρ with the mean reader score (band: readers among themselves)" },
        range: [lowest < 0 ? Math.max(-1.02, lowest - 0.05) : 0, 1.02] },
      yaxis: { automargin: true },
    }), plotConfig);
  }

  function fillSelect(select, names, preferred) {
    const before = select.value || preferred;
    select.replaceChildren(...names.map((n) => el("option", { value: n }, n)));
    if (names.includes(before)) select.value = before;
  }

  function renderComparison(current) {
    const names = current ? Object.keys(current.metrics) : [];
    const order = current ? ranked(current).map(([n]) => n) : [];
    fillSelect($("compare-a"), names, order[0]);
    fillSelect($("compare-b"), names, order[1]);
    const out = $("comparison");
    if (!current || names.length < 2) { out.textContent = "Needs two metrics with values."; return; }
    const a = $("compare-a").value;
    const b = $("compare-b").value;
    if (a === b) { out.textContent = "Pick two different metrics."; return; }
    const found = current.comparisons.find((c) => (c.a === a && c.b === b) || (c.a === b && c.b === a));
    if (!found) { out.textContent = "Not computable: one of the two has no aligned correlation (see its reason above)."; return; }
    const flip = found.a === a ? 1 : -1;
    const ci = found.ci ? [flip * found.ci[flip === 1 ? 0 : 1], flip * found.ci[flip === 1 ? 1 : 0]] : null;
    const difference = flip * found.difference;
    out.textContent = `aligned ρ(${a}) − aligned ρ(${b}) = ${fmt(difference)}, 95% CI ${fmtCi(ci)}, ` +
      `p = ${fmtP(found.p)}, Holm-adjusted over this question's ${current.comparisons.length} pairs: ${fmtP(found.p_holm)} ` +
      `(paired bootstrap over the same resamples). ` +
      (found.p_holm < 0.05 ? `${difference > 0 ? a : b} agrees better with the readers.` : "No clear difference.");
  }

  // The payload's points are columns (readerstudy/dashboard.py, _points): every scored
  // reconstruction once, and per question the indices of those it has, with their mean scores.
  function scatterPoints(metric) {
    const columns = payload.points || {};
    const mine = (columns.questions || {})[question];
    if (!mine || !columns.reconstructions) return { points: [], infinite: 0 };
    const recons = columns.reconstructions;
    const values = (columns.metrics || {})[metric] || [];
    const infinite = new Set((columns.infinite || {})[metric] || []);
    const points = [];
    let infiniteHere = 0;
    mine.index.forEach((i, k) => {
      if (infinite.has(i)) { infiniteHere += 1; return; }
      if (values[i] === null || values[i] === undefined) return;
      points.push({
        reconstruction: recons.reconstruction[i], case: recons.case[i], method: recons.method[i],
        acceleration: recons.acceleration[i], value: values[i],
        mean_score: mine.mean_score[k], readers: mine.readers[k],
      });
    });
    return { points, infinite: infiniteHere };
  }

  function renderScatter() {
    const names = payload.metrics;
    fillSelect($("scatter-metric"), names, (block() && ranked(block())[0] || [names[0]])[0]);
    const metric = $("scatter-metric").value;
    const { points: withValue, infinite } = scatterPoints(metric);
    $("scatter-note").textContent = infinite
      ? `${infinite} reconstruction${infinite === 1 ? "" : "s"} with an infinite ${metric} (identical to the reference) not drawn; ranked above every finite value.`
      : "";
    const methods = [...new Set(withValue.map((p) => p.method))].sort();
    // 2x, 4x, 16x: by value where the label is a number, not as text (16x before 2x).
    const accelerations = [...new Set(withValue.map((p) => p.acceleration))]
      .sort((a, b) => (parseFloat(a) - parseFloat(b)) || String(a).localeCompare(String(b)));
    const traces = methods.map((method, i) => {
      const mine = withValue.filter((p) => p.method === method);
      return {
        type: "scatter", mode: "markers", name: plotText(method), legendgroup: method, showlegend: false,
        x: mine.map((p) => p.value), y: mine.map((p) => p.mean_score),
        customdata: mine.map((p) => [p.reconstruction, p.case, p.acceleration, p.readers, p.method,
          plotText(p.case), plotText(p.method), plotText(p.acceleration)]),
        marker: { color: COLOURS[i % COLOURS.length], size: 9, opacity: 0.85,
          symbol: mine.map((p) => SYMBOLS[accelerations.indexOf(p.acceleration) % SYMBOLS.length]) },
        hovertemplate: "case %{customdata[5]}<br>%{customdata[6]} · %{customdata[7]}<br>" +
          `${plotText(metric)} %{x:.4g}<br>mean score %{y:.2f} (%{customdata[3]} readers)<extra></extra>`,
      };
    });
    // The legend keys colour and shape apart: a method's own trace would show the shape of
    // its first point, as if it were the method's. Its key is a circle in its colour (in its
    // legend group, so a click still hides the method), and the shapes are spelt out above.
    const keys = methods.map((method, i) => ({
      type: "scatter", mode: "markers", x: [null], y: [null], name: plotText(method), legendgroup: method,
      hoverinfo: "skip", marker: { size: 9, color: COLOURS[i % COLOURS.length], symbol: "circle" },
    }));
    const shapes = accelerations.map((a, k) => `${GLYPHS[k % GLYPHS.length]} ${plotText(a)}`).join("  ");
    const box = $("scatter");
    Plotly.react(box, [...traces, ...keys], layout({
      height: 420, legend: { title: { text: `method<br><span style="font-size:11px">shape: ${shapes}</span>` } },
      xaxis: { title: { text: plotText(metric) } }, yaxis: { title: { text: "mean reader score" } },
    }), plotConfig);
    if (!box.dataset.bound) {
      box.dataset.bound = "1";
      box.on("plotly_click", (event) => openPreview(event.points[0].customdata));
    }
  }

  function openPreview([recon, caseName, acceleration, readers, method]) {
    const url = (which) => root.dataset.preview.replace("RECON", encodeURIComponent(recon)).replace("WHICH", which);
    $("preview").hidden = false;
    $("preview-caption").textContent = `Case ${caseName} · ${method} · ${acceleration} · ${readers} reader${readers === 1 ? "" : "s"}`;
    $("preview-reference").src = url("reference");
    $("preview-reconstruction").src = url("reconstruction");
  }

  function renderHeatmap(current) {
    if (!current) { Plotly.purge("heatmap"); return; }
    const metrics = ranked(current).map(([n]) => n);
    const readers = current.readers;
    const z = readers.map((r) => metrics.map((m) => current.metrics[m].per_reader[r] ?? null));
    Plotly.react("heatmap", [{
      type: "heatmap", x: metrics.map(plotText), y: readers.map(plotText), z, zmin: -1, zmax: 1, colorscale: "RdBu", reversescale: true,
      text: z.map((row) => row.map((v) => (v === null ? "n/a" : v.toFixed(2)))), texttemplate: "%{text}",
      hovertemplate: "%{y} · %{x}: ρ %{z:.3f}<extra></extra>", colorbar: { title: { text: "ρ" } },
    }], layout({ height: Math.max(260, 34 * readers.length + 120), xaxis: { automargin: true }, yaxis: { automargin: true } }), plotConfig);
  }

  function renderReaders(current) {
    if (!current) { Plotly.purge("readers"); return; }
    const vs = current.agreement.reader_vs_rest || {};
    const readers = Object.keys(vs).filter((k) => k !== "mean");
    const shapes = vs.mean === null || vs.mean === undefined ? [] : [{ type: "line", xref: "paper", x0: 0, x1: 1, y0: vs.mean, y1: vs.mean,
      line: { color: "#5ccf8a", dash: "dash" } }];
    Plotly.react("readers", [{
      type: "bar", x: readers.map(plotText), y: readers.map((r) => vs[r]), marker: { color: "#4ea1ff" },
      hovertemplate: "%{x}: ρ %{y:.3f}<extra></extra>",
    }], layout({ height: 300, shapes, yaxis: { title: { text: "Spearman with the rest" }, range: [0, 1] } }), plotConfig);
  }

  function renderSubgroups(current) {
    const table = $("subgroups");
    if (!current) { table.replaceChildren(); return; }
    const metrics = ranked(current).map(([n]) => n);
    const head = el("thead", {}, el("tr", {}, el("th", {}, "Group"), ...metrics.map((m) => el("th", { class: "num" }, m))));
    const rows = [];
    for (const [kind, label] of [["by_method", "method"], ["by_acceleration", "acceleration"]]) {
      for (const [group, byMetric] of Object.entries(current[kind] || {})) {
        rows.push(el("tr", { "data-group": `${label}:${group}` }, el("td", {}, `${label} ${group}`),
          ...metrics.map((m) => {
            const cell = byMetric[m];
            return el("td", { class: "num", title: (cell && cell.reason) || "" },
              !cell || cell.spearman === null ? "–" : `${fmt(cell.spearman, 2)} ${fmtCi(cell.spearman_ci, 2)} (n ${cell.n})`);
          })));
      }
    }
    table.replaceChildren(head, el("tbody", {}, ...rows));
  }

  // --- rank and forced-choice questions ---------------------------------------------------
  function renderPreferenceAgreement(current) {
    const dl = $("agreement");
    $("sample-size").textContent = "";
    if (!current) { dl.replaceChildren(); return; }
    const base = current.inter_reader;
    const rows = [
      ["Readers", current.n_readers], ["Cases", current.n_cases], ["Preference pairs", current.n_pairs],
      ["Reader vs majority of the rest, mean", base.mean === null ? `– (${base.reason})` : fmt(base.mean)],
    ];
    if (current.kind === "rank") {
      rows.push(["Kendall's W within a set, mean",
        current.kendalls_w === null ? `– (${current.reason})` : `${fmt(current.kendalls_w)} over ${current.n_sets} sets`]);
    }
    dl.replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  }

  function preferenceOrder(current) {
    const key = (m) => (m.concordance === null ? -Infinity : m.concordance);
    return Object.entries(current.metrics).sort((a, b) => key(b[1]) - key(a[1]));
  }

  function renderPreferences(current) {
    const body = $("pref-ranked").tBodies[0];
    if (!current) { body.replaceChildren(); Plotly.purge("pref-forest"); Plotly.purge("pref-heatmap"); return; }
    const baseline = current.inter_reader.mean;
    const order = preferenceOrder(current);
    body.replaceChildren(...order.map(([name, m], index) => {
      const against = m.concordance !== null && m.concordance < 0.5;
      return el("tr", { "data-metric": name, class: against ? "against" : "" },
        el("td", {}, index + 1),
        el("td", {}, name, against ? el("span", { class: "flag", title: "orders pairs against the readers more often than with them" }, " runs against the readers") : ""),
        el("td", { class: "muted small" }, direction(m)),
        el("td", { class: "num" }, m.n_pairs ?? "–", coverageFlag(m)),
        el("td", { class: "num", title: m.reason || "" }, m.concordance === null ? (m.reason || "–") : fmt(m.concordance)),
        el("td", { class: "num", title: m.ci_reason || "" }, m.ci_reason ? "– (one case)" : fmtCi(m.concordance_ci)),
        el("td", { class: "num" }, fmt(m.bt_spearman)),
        el("td", { class: "num" }, m.concordance === null || baseline === null ? "–" : fmt(m.concordance - baseline)));
    }));
    const usable = order.filter(([, m]) => m.concordance !== null).reverse();
    const x = usable.map(([, m]) => m.concordance);
    const intervals = usable.map(([, m]) => m.concordance_ci || [m.concordance, m.concordance]);
    const shapes = [{ type: "line", xref: "x", yref: "paper", x0: 0.5, x1: 0.5, y0: 0, y1: 1, line: { color: "#8a949e", dash: "dot" } }];
    const perReader = Object.values(current.inter_reader.per_reader || {});
    if (baseline !== null) {
      if (perReader.length > 1) shapes.push({ type: "rect", xref: "x", yref: "paper", x0: Math.min(...perReader), x1: Math.max(...perReader),
        y0: 0, y1: 1, fillcolor: "rgba(92,207,138,0.15)", line: { width: 0 } });
      shapes.push({ type: "line", xref: "x", yref: "paper", x0: baseline, x1: baseline, y0: 0, y1: 1, line: { color: "#5ccf8a", dash: "dash" } });
    }
    Plotly.react("pref-forest", [{
      type: "scatter", mode: "markers", x, y: usable.map(([name]) => plotText(name)),
      error_x: { type: "data", symmetric: false, array: x.map((v, i) => intervals[i][1] - v), arrayminus: x.map((v, i) => v - intervals[i][0]), color: "#4ea1ff" },
      marker: { color: x.map((v) => (v < 0.5 ? "#ff6b6b" : "#4ea1ff")), size: 9 },
      hovertemplate: "%{y}: concordance %{x:.3f}<extra></extra>",
    }], layout({
      height: Math.max(220, 40 * usable.length + 80), showlegend: false, shapes,
      xaxis: { title: { text: "concordance with the readers' preferences (band: readers against each other)" }, range: [0, 1.02] },
      yaxis: { automargin: true },
    }), plotConfig);
    const metrics = order.map(([n]) => n);
    const readers = [...new Set([...Object.keys(current.inter_reader.per_reader || {}),
      ...metrics.flatMap((m) => Object.keys(current.metrics[m].per_reader || {}))])].sort();
    const rows = [...metrics, "readers' majority"];
    const z = rows.map((m) => readers.map((r) => (m === "readers' majority"
      ? current.inter_reader.per_reader[r] : current.metrics[m].per_reader[r]) ?? null));
    Plotly.react("pref-heatmap", [{
      type: "heatmap", x: readers.map(plotText), y: rows.map(plotText), z, zmin: 0, zmax: 1, colorscale: "RdBu", reversescale: true,
      text: z.map((row) => row.map((v) => (v === null ? "n/a" : v.toFixed(2)))), texttemplate: "%{text}",
      hovertemplate: "%{x} · %{y}: %{z:.3f}<extra></extra>", colorbar: { title: { text: "concordance" } },
    }], layout({ height: Math.max(260, 30 * rows.length + 120), xaxis: { automargin: true }, yaxis: { automargin: true } }), plotConfig);
  }

  function addDownloads() {
    for (const holder of document.querySelectorAll(".plot-downloads")) {
      for (const format of ["png", "svg"]) {
        const button = el("button", { type: "button", "data-format": format }, format.toUpperCase());
        button.addEventListener("click", () => Plotly.downloadImage(holder.dataset.plot,
          { format, filename: `${holder.dataset.plot}-${question}`, width: 1000, height: 600 }));
        holder.append(button);
      }
    }
  }

  for (const id of ["compare-a", "compare-b", "scatter-metric"]) {
    $(id).addEventListener("change", () => render());
  }
  addDownloads();
  poll();
})();
