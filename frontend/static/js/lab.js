/* The study page's metric lab: follows the latest lab (polling while it is queued or running)
   and draws its curves (one small plot per perturbation, one line per metric) and its summary
   beside the readers' aligned Spearman. */
(function () {
  "use strict";
  const root = document.getElementById("metric-lab");
  if (!root) return;
  const api = root.dataset.api;
  const POLL_MS = 2000;
  const COLOURS = ["#4ea1ff", "#ff9f43", "#5ccf8a", "#e66bff", "#ff6b6b", "#ffd93d", "#6bdcff",
    "#b0b7bf", "#c49a6c", "#8fd14f", "#f78fb3", "#9aa5ff"];
  const DASHES = ["solid", "dash", "dot", "dashdot"];
  const plotConfig = { displaylogo: false, responsive: true,
    toImageButtonOptions: { format: "png", scale: 2 } };
  const $ = (id) => document.getElementById(id);
  const fmt = (v, digits = 2) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits));
  let drawn = null;
  // A lab's kinds in their order (results stored before `kinds` existed: the object's keys).
  const kindsOf = (result) => result.kinds || Object.keys(result.perturbations);

  const el = window.el;  // js/dom.js

  function setBusy(busy) {
    for (const input of $("lab-form").querySelectorAll("input, button")) {
      if (input.type !== "hidden") input.disabled = busy;
    }
  }

  function statusLine(lab) {
    const status = $("lab-status");
    status.className = lab.state === "failed" ? "error" : "muted";
    if (lab.state === "queued") {
      status.textContent = "Queued: waiting for a metrics worker.";
    } else if (lab.state === "running") {
      status.replaceChildren(
        el("progress", { max: String(lab.references_total || 1), value: String(lab.references_done) }),
        ` Running: ${lab.references_done} of ${lab.references_total} references done.`);
    } else if (lab.state === "failed") {
      status.textContent = `The last lab failed: ${lab.problem}`;
    } else {
      status.textContent = "";
    }
  }

  function resultLine(shown) {
    const line = $("lab-result-line");
    if (!shown) { line.textContent = ""; return; }
    const r = shown.result;
    line.textContent = `Curves of the lab of ${new Date(shown.finished_at).toLocaleString()}: ${r.references} reference${r.references === 1 ? "" : "s"} ` +
        `(${(r.cases || []).join(", ")}) x ${kindsOf(r).length} perturbations x ` +
        `${r.levels} levels, ${r.metrics.length} metrics, ${r.seconds} s.` +
        ((r.skipped || []).length ? ` Left out: ${r.skipped.map((name) => `${name} (${(r.skipped_reasons || {})[name] || "its central slice is constant"})`).join("; ")}.` : "");
  }

  function lineStyle(i) {
    return { colour: COLOURS[i % COLOURS.length], dash: DASHES[Math.floor(i / COLOURS.length) % 4] };
  }

  function drawLegend(result) {
    // One legend for every small plot (a legend in one plot would shrink that plot alone).
    $("lab-legend").replaceChildren(...result.metrics.map((name, i) => {
      const swatch = el("span", { class: `swatch dash-${lineStyle(i).dash}` });
      swatch.style.borderColor = lineStyle(i).colour;
      return el("span", { class: "legend-item", "data-metric": name }, swatch, name);
    }));
  }

  function drawPlots(result) {
    const box = $("lab-plots");
    box.replaceChildren();
    drawLegend(result);
    for (const kind of kindsOf(result)) {
      const scale = result.perturbations[kind];
      const div = el("div", { class: "lab-plot", id: `lab-plot-${kind}`, "data-kind": kind });
      box.append(div);
      const traces = result.metrics.map((name, i) => ({
        x: scale.severities, y: result.curves[name][kind], name, mode: "lines+markers",
        type: "scatter", showlegend: false,
        line: { color: lineStyle(i).colour, dash: lineStyle(i).dash, width: 2 },
        marker: { size: 4 },
        hovertemplate: `${name}<br>${scale.unit} %{x:.3g}<br>badness %{y:.3f}<extra></extra>`,
      }));
      Plotly.react(div, traces, {
        title: { text: kind, font: { size: 13 } },
        paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
        font: { color: "#d9dee3", size: 11 }, margin: { l: 45, r: 10, t: 30, b: 45 },
        xaxis: { title: { text: scale.unit }, type: scale.logarithmic ? "log" : "linear",
          gridcolor: "#262c33", zerolinecolor: "#3a424b" },
        yaxis: { title: { text: "badness" }, gridcolor: "#262c33", zerolinecolor: "#3a424b" },
        height: 280,
      }, plotConfig);
    }
    $("lab-normalisation").textContent = `Badness is normalised so that metrics compare: ${result.normalisation}; ` +
      "larger is worse for every metric.";
  }

  function drawTable(result, agreement, questions) {
    const table = $("lab-table");
    const kinds = kindsOf(result);
    const withNoise = kinds.includes("noise");
    const withShift = withNoise && kinds.includes("translation");
    const questionKeys = Object.keys(agreement || {});
    const head = el("tr", {}, el("th", {}, "Metric"), ...kinds.map((k) => el("th", { class: "num" }, `mono: ${k}`)));
    if (withNoise) head.append(el("th", { class: "num" }, "noise onset"), el("th", { class: "num" }, "saturation"));
    if (withShift) head.append(el("th", { class: "num" }, "shift/noise"));
    for (const key of questionKeys) {
      head.append(el("th", { class: "num", title: `aligned Spearman with the readers: ${questions[key] || key}` }, `readers: ${key}`));
    }
    table.tHead.replaceChildren(head);
    const body = table.tBodies[0];
    body.replaceChildren();
    for (const name of result.metrics) {
      const s = result.summary[name];
      const row = el("tr", { "data-metric": name }, el("td", {}, name));
      if (s.polarity === null) {
        row.append(el("td", { colspan: String(head.children.length - 1), class: "muted" }, s.reason));
        body.append(row);
        continue;
      }
      for (const kind of kinds) {
        const value = s.monotonicity[kind];
        row.append(el("td", { class: `num${value !== null && value < 0.9 ? " warn" : ""}` }, fmt(value)));
      }
      if (withNoise) row.append(el("td", { class: "num" }, fmt(s.noise_onset, 3)), el("td", { class: "num" }, s.noise_saturation_reason ? el("span", { class: "muted", title: s.noise_saturation_reason }, "not reached") : fmt(s.noise_saturation, 3)));
      if (withShift) row.append(el("td", { class: "num" }, fmt(s.shift_to_noise.median)));
      for (const key of questionKeys) {
        const rho = agreement[key][name];
        row.append(el("td", { class: "num" }, fmt(rho === undefined ? null : rho)));
      }
      if (result.errors[name]) row.title = `failed on some copies: ${result.errors[name]}`;
      body.append(row);
    }
    table.hidden = false;
  }

  // The notice at the top of the page said "queued" until a reload, long after the lab
  // had run: it now says what the lab is doing.
  function followNotice(lab) {
    const notice = document.querySelector(".messages .lab-notice");
    if (!notice) return;
    notice.textContent = {
      queued: "The metric lab is queued; this section follows it.",
      running: "The metric lab is running; this section follows it.",
      done: "The metric lab has finished: its results are below.",
      failed: "The metric lab failed; the reason is below.",
    }[lab.state] || notice.textContent;
  }

  async function poll() {
    let body;
    try {
      const url = drawn ? `${api}?shown=${encodeURIComponent(drawn)}` : api;
      const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      body = await response.json();
    } catch (error) {
      $("lab-status").className = "error";
      $("lab-status").textContent = `Cannot follow the lab (${error.message}); retrying.`;
      setTimeout(poll, POLL_MS * 3);
      return;
    }
    const lab = body.lab;
    if (!lab) return;
    statusLine(lab);
    followNotice(lab);
    const running = lab.state === "queued" || lab.state === "running";
    setBusy(running);
    root.dataset.state = lab.state;
    const shown = body.last_result;
    if (shown && drawn !== shown.finished_at) {
      resultLine(shown);
      drawPlots(shown.result);
      drawTable(shown.result, shown.reader_agreement, shown.questions || {});
      drawn = shown.finished_at;
    }
    if (running) setTimeout(poll, POLL_MS);
  }

  poll();
})();
