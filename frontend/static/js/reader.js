// The reading room: shows my next item (reference | reconstruction) in linked cornerstone
// viewports and records Likert scores from the keyboard. Scores go to the reader API; the
// server decides what comes next, so a reload or another machine resumes where I left off.
(function () {
  "use strict";
  const root = document.getElementById("reader");
  const slug = root.dataset.study;
  const csrfToken = document.querySelector("input[name=csrfmiddlewaretoken]").value;
  const form = document.getElementById("questions");
  const message = document.getElementById("message");
  const viewports = Array.from(document.querySelectorAll(".viewport"));
  const state = { item: null, answers: {}, focus: 0, shownAt: 0, slice: 0 };

  // --- viewer ---------------------------------------------------------------------------
  cornerstoneWADOImageLoader.external.cornerstone = cornerstone;
  cornerstoneWADOImageLoader.external.dicomParser = dicomParser;
  cornerstoneWADOImageLoader.configure({
    beforeSend: function (xhr) { xhr.withCredentials = true; },
  });
  cornerstoneTools.external.cornerstone = cornerstone;
  cornerstoneTools.external.cornerstoneMath = cornerstoneMath;
  cornerstoneTools.external.Hammer = Hammer;
  cornerstoneTools.init({ showSVGCursors: false });
  viewports.forEach(function (element) { cornerstone.enable(element); }); // before any tool

  [cornerstoneTools.WwwcTool, cornerstoneTools.ZoomTool, cornerstoneTools.PanTool,
   cornerstoneTools.ZoomMouseWheelTool].forEach(function (tool) { cornerstoneTools.addTool(tool); });
  cornerstoneTools.setToolActive("Wwwc", { mouseButtonMask: 1 });
  cornerstoneTools.setToolActive("Zoom", { mouseButtonMask: 2 });
  cornerstoneTools.setToolActive("Pan", { mouseButtonMask: 4 });
  cornerstoneTools.setToolActive("ZoomMouseWheel", {});

  const panZoom = new cornerstoneTools.Synchronizer("cornerstoneimagerendered", cornerstoneTools.panZoomSynchronizer);
  const windowLevel = new cornerstoneTools.Synchronizer("cornerstoneimagerendered", cornerstoneTools.wwwcSynchronizer);
  viewports.forEach(function (element) { panZoom.add(element); windowLevel.add(element); });

  // Volumes arrive as multi-frame DICOM: one image id per frame, the same slice in both views.
  function imageIds(item, which) {
    const base = "wadouri:" + window.location.origin + item.images[which];
    if (item.slices <= 1) { return [base]; }
    return Array.from({ length: item.slices }, function (_, frame) { return base + "?frame=" + frame; });
  }

  function showSlice(index) {
    state.slice = Math.max(0, Math.min(state.item.slices - 1, index));
    const loads = viewports.map(function (element) {
      const ids = imageIds(state.item, element.id.replace("viewport-", ""));
      return cornerstone.loadAndCacheImage(ids[Math.min(state.slice, ids.length - 1)]).then(function (image) {
        const viewport = cornerstone.getEnabledElement(element).image ? cornerstone.getViewport(element) : null;
        cornerstone.displayImage(element, image, viewport || undefined);
      });
    });
    document.getElementById("slice").textContent =
      state.item.slices > 1 ? "Slice " + (state.slice + 1) + " of " + state.item.slices : "";
    return Promise.all(loads);
  }

  function showImages(item) {
    viewports.forEach(function (element) {
      if (cornerstone.getEnabledElement(element).image) { cornerstone.reset(element); }
    });
    return showSlice(Math.floor((item.slices - 1) / 2)).then(function () {
      viewports.forEach(function (element) { cornerstone.reset(element); });
    });
  }

  function resetView() { viewports.forEach(function (element) { cornerstone.reset(element); }); }

  // --- questions ------------------------------------------------------------------------
  function renderQuestions(item) {
    form.replaceChildren();
    item.questions.forEach(function (question, index) {
      const fieldset = document.createElement("fieldset");
      fieldset.className = "question";
      fieldset.dataset.key = question.key;
      const legend = document.createElement("legend");
      legend.textContent = (index + 1) + ". " + question.label;
      const choices = document.createElement("div");
      choices.className = "choices";
      for (let value = question.scale_min; value <= question.scale_max; value++) {
        const button = document.createElement("button");
        button.type = "button";
        button.textContent = value;
        button.title = question.anchors[String(value)] || "";
        button.dataset.value = value;
        button.addEventListener("click", function () { answer(index, value); });
        choices.appendChild(button);
      }
      const anchor = document.createElement("div");
      anchor.className = "anchor";
      fieldset.append(legend, choices, anchor);
      fieldset.addEventListener("click", function () { focusQuestion(index); });
      form.appendChild(fieldset);
    });
    refreshQuestions();
  }

  function refreshQuestions() {
    Array.from(form.children).forEach(function (fieldset, index) {
      const key = fieldset.dataset.key;
      const question = state.item.questions[index];
      fieldset.classList.toggle("focused", index === state.focus);
      fieldset.querySelectorAll("button").forEach(function (button) {
        button.classList.toggle("chosen", Number(button.dataset.value) === state.answers[key]);
      });
      fieldset.querySelector(".anchor").textContent =
        state.answers[key] !== undefined ? question.anchors[String(state.answers[key])] || "" : "";
    });
  }

  function focusQuestion(index) {
    const count = state.item.questions.length;
    state.focus = (index + count) % count;
    refreshQuestions();
  }

  function answer(index, value) {
    const question = state.item.questions[index];
    if (value < question.scale_min || value > question.scale_max) { return; }
    state.answers[question.key] = value;
    message.textContent = "";
    if (index === state.focus && index < state.item.questions.length - 1) { state.focus = index + 1; }
    refreshQuestions();
  }

  // --- items ----------------------------------------------------------------------------
  function api(url, options) {
    return fetch(url, Object.assign({ credentials: "same-origin", headers: {
      "Content-Type": "application/json", "X-CSRFToken": csrfToken,
    } }, options)).then(function (response) {
      return response.json().then(function (body) {
        if (!response.ok) { throw body; }
        return body;
      });
    });
  }

  function show(item) {
    state.item = item;
    state.answers = Object.assign({}, item.scores);
    state.focus = Math.max(0, item.questions.findIndex(function (q) { return state.answers[q.key] === undefined; }));
    state.shownAt = performance.now();
    document.getElementById("position").textContent = "Item " + item.position + " of " + item.total;
    document.getElementById("previous").disabled = !item.previous;
    renderQuestions(item);
    return showImages(item).then(function () { root.dataset.ready = item.public_id; });
  }

  function next() {
    delete root.dataset.ready;
    return api("/api/studies/" + slug + "/next/").then(function (page) {
      if (!page.item) {
        document.getElementById("end-message").textContent = page.end_message;
        document.getElementById("done").hidden = false;
        document.querySelector(".viewers").hidden = true;
        document.querySelector(".panel").hidden = true;
        root.dataset.ready = "done";
        return;
      }
      return show(page.item);
    });
  }

  function save() {
    const missing = state.item.questions.filter(function (q) { return state.answers[q.key] === undefined; });
    if (missing.length) {
      message.textContent = "Answer every question first: " + missing.map(function (q) { return q.label; }).join(", ");
      focusQuestion(state.item.questions.indexOf(missing[0]));
      return Promise.resolve();
    }
    const seconds = (performance.now() - state.shownAt) / 1000;
    return api("/api/items/" + state.item.public_id + "/scores/", {
      method: "PUT", body: JSON.stringify({ scores: state.answers, seconds_spent: seconds }),
    }).then(next).catch(function (error) {
      message.textContent = "Not saved: " + JSON.stringify(error);
    });
  }

  function previous() {
    if (!state.item || !state.item.previous) { return Promise.resolve(); }
    delete root.dataset.ready;
    return api("/api/items/" + state.item.previous + "/").then(show);
  }

  document.getElementById("save").addEventListener("click", save);
  document.getElementById("previous").addEventListener("click", previous);
  document.getElementById("reset").addEventListener("click", resetView);

  document.addEventListener("keydown", function (event) {
    if (!state.item || event.altKey || event.ctrlKey || event.metaKey) { return; }
    const key = event.key;
    if (/^[0-9]$/.test(key)) { answer(state.focus, Number(key)); }
    else if (key === "Tab") { focusQuestion(state.focus + (event.shiftKey ? -1 : 1)); }
    else if (key === "ArrowDown") { focusQuestion(state.focus + 1); }
    else if (key === "ArrowUp") { focusQuestion(state.focus - 1); }
    else if (key === "Enter") { save(); }
    else if (key === "Backspace") { previous(); }
    else if (key === "r" || key === "R") { resetView(); }
    else if (key === "ArrowRight" || key === "PageDown") { showSlice(state.slice + 1); }
    else if (key === "ArrowLeft" || key === "PageUp") { showSlice(state.slice - 1); }
    else { return; }
    event.preventDefault();
  });

  next().catch(function (error) { message.textContent = "Could not load the next item: " + JSON.stringify(error); });
})();
