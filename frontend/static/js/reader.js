// The reading room: shows my next item in linked cornerstone viewports (the reference beside
// one reconstruction to score, or beside several of a case to rank or to choose between) and
// records the answers from the keyboard or the mouse. Answers go to the reader API; the
// server decides what comes next, so a reload or another machine resumes where I left off.
(function () {
  "use strict";
  const root = document.getElementById("reader");
  const slug = root.dataset.study;
  const pageCsrfToken = document.querySelector("input[name=csrfmiddlewaretoken]").value;
  const form = document.getElementById("questions");
  const message = document.getElementById("message");
  const allViewports = Array.from(document.querySelectorAll(".viewport"));
  const slotFigures = Array.from(document.querySelectorAll("figure.slot"));
  const reference = document.getElementById("viewport-reference");
  let viewports = allViewports.slice(0, reference ? 2 : 1);  // those the current item shows
  const feedback = document.getElementById("feedback");
  const saveButton = document.getElementById("save");
  const viewerArea = document.querySelector(".viewers");
  const viewState = document.getElementById("view-state");
  // reviewing: a training item's reference answers are on screen after its save; Enter goes on.
  // flicker: the reference shown in the reconstructions' places; actions: how often each
  // viewer tool was used on this item since its last save (sent with the save).
  const state = { item: null, answers: {}, focus: 0, shownAt: 0, slice: 0, reviewing: false,
    flicker: false, actions: {} };
  const LETTERS = "ABCDEF";

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
  allViewports.forEach(function (element) { cornerstone.enable(element); }); // before any tool

  [cornerstoneTools.WwwcTool, cornerstoneTools.ZoomTool, cornerstoneTools.PanTool,
   cornerstoneTools.ZoomMouseWheelTool, cornerstoneTools.MagnifyTool].forEach(function (tool) { cornerstoneTools.addTool(tool); });
  cornerstoneTools.setToolActive("Wwwc", { mouseButtonMask: 1 });
  cornerstoneTools.setToolActive("Zoom", { mouseButtonMask: 2 });
  cornerstoneTools.setToolActive("Pan", { mouseButtonMask: 4 });
  cornerstoneTools.setToolActive("ZoomMouseWheel", {});

  // Linked views: the view the reader last touched (pointer, wheel, key) leads; every render
  // of any view makes the others show the leader's zoom, pan and window. Only the leader's
  // values are ever copied, never a follower's back: cornerstone-tools' synchronizers copy
  // both ways, so a follower's render, one frame late, could write its older zoom back into
  // the view being zoomed and lose notches (seen: one view stopped at 13.75 while the other
  // reached 20). A view without an image yet is left alone; it follows once it has one.
  let leader = viewports[viewports.length - 1];
  function shown(element) { return viewports.indexOf(element) !== -1; }
  function follow(source, target) {
    if (!shown(source) || !shown(target)) { return; }
    if (!cornerstone.getEnabledElement(source).image || !cornerstone.getEnabledElement(target).image) { return; }
    const from = cornerstone.getViewport(source);
    const to = cornerstone.getViewport(target);
    if (to.scale === from.scale && to.translation.x === from.translation.x && to.translation.y === from.translation.y &&
        to.voi.windowWidth === from.voi.windowWidth && to.voi.windowCenter === from.voi.windowCenter && to.invert === from.invert) { return; }
    to.scale = from.scale;
    to.translation = { x: from.translation.x, y: from.translation.y };
    to.voi = { windowWidth: from.voi.windowWidth, windowCenter: from.voi.windowCenter };
    to.invert = from.invert;
    cornerstone.setViewport(target, to);
  }
  allViewports.forEach(function (element) {
    ["pointerdown", "wheel", "touchstart"].forEach(function (type) {
      element.addEventListener(type, function () { leader = element; }, { capture: true, passive: true });
    });
    element.addEventListener(cornerstone.EVENTS.IMAGE_RENDERED, function () {
      if (element === leader) {
        viewports.forEach(function (other) { if (other !== element) { follow(element, other); } });
      } else {
        follow(leader, element);
      }
    });
  });

  // Volumes arrive as multi-frame DICOM: one image id per frame, the same slice in every view.
  // While flickering, every reconstruction's place shows the reference instead.
  function imageUrl(item, element) {
    if (element === reference || state.flicker) { return item.images.reference; }
    const slot = Number(element.closest("figure").dataset.slot);
    return item.images.reconstructions[slot - 1];
  }
  function imageIds(item, element) {
    const base = "wadouri:" + window.location.origin + imageUrl(item, element);
    if (item.slices <= 1) { return [base]; }
    return Array.from({ length: item.slices }, function (_, frame) { return base + "?frame=" + frame; });
  }

  function showSlice(index) {
    state.slice = Math.max(0, Math.min(state.item.slices - 1, index));
    const loads = viewports.map(function (element) {
      const ids = imageIds(state.item, element);
      return cornerstone.loadAndCacheImage(ids[Math.min(state.slice, ids.length - 1)]).then(function (image) {
        const viewport = cornerstone.getEnabledElement(element).image ? cornerstone.getViewport(element) : null;
        cornerstone.displayImage(element, image, viewport || undefined);
      });
    });
    root.dataset.shownSlice = state.slice;
    document.getElementById("slice").textContent =
      state.item.slices > 1 ? "Slice " + (state.slice + 1) + " of " + state.item.slices : "";
    return Promise.all(loads);
  }

  // A comparison's images are named by their place only (A, B, ... left to right); its
  // layout was drawn at random for this reader, so the place says nothing.
  function layOut(item) {
    const count = item.images.reconstructions.length;
    const comparing = item.kind !== "likert";
    slotFigures.forEach(function (figure, index) {
      figure.hidden = index >= count;
      figure.querySelector(".slot-name").textContent = comparing ? LETTERS[index] : "Reconstruction";
      figure.querySelector(".slot-answer").textContent = "";
    });
    viewports = (reference ? [reference] : []).concat(
      slotFigures.slice(0, count).map(function (figure) { return figure.querySelector(".viewport"); }));
    document.querySelector(".viewers").classList.toggle("many", viewports.length > 4);
    viewports.forEach(function (element) { cornerstone.resize(element); });
    if (!shown(leader)) { leader = viewports[viewports.length - 1]; }
  }

  function showImages(item) {
    layOut(item);
    viewports.forEach(function (element) {
      if (cornerstone.getEnabledElement(element).image) { cornerstone.reset(element); }
    });
    return showSlice(Math.floor((item.slices - 1) / 2)).then(function () {
      viewports.forEach(function (element) { cornerstone.reset(element); });
    });
  }

  function resetView() {
    viewports.forEach(function (element) { cornerstone.reset(element); });
    preset = -1;
    delete root.dataset.preset;
    counted("reset");
    viewState.textContent = "View reset: whole image, the image's own window.";
  }

  // --- viewer tools by keyboard: zoom, pan, window, 1:1 pixels, flicker --------------------
  // Each changes the view the reader last touched (the leader); the others follow it, linked.
  function counted(action) { state.actions[action] = (state.actions[action] || 0) + 1; }

  function leadingView() {
    if (shown(leader) && cornerstone.getEnabledElement(leader).image) { return leader; }
    return viewports.find(function (element) { return cornerstone.getEnabledElement(element).image; });
  }

  function changeView(action, change) {
    const element = leadingView();
    if (!element) { return; }
    const viewport = cornerstone.getViewport(element);
    change(viewport, element);
    leader = element;
    cornerstone.setViewport(element, viewport);
    counted(action);
    viewState.textContent = "Zoom " + viewport.scale.toFixed(2) + "× · window " +
      Math.round(viewport.voi.windowWidth) + " / level " + Math.round(viewport.voi.windowCenter);
  }

  function zoom(factor) { changeView("zoom", function (v) { v.scale *= factor; }); }
  function pan(dx, dy) {
    // A tenth of the view per key, in image pixels at the current zoom.
    changeView("pan", function (v, element) {
      v.translation = { x: v.translation.x + dx * element.clientWidth / 10 / v.scale,
        y: v.translation.y + dy * element.clientHeight / 10 / v.scale };
    });
  }
  function windowWidth(factor) {
    changeView("window", function (v) { v.voi.windowWidth = Math.max(1, v.voi.windowWidth * factor); });
  }
  function windowLevel(step) {
    changeView("window", function (v) { v.voi.windowCenter += step * v.voi.windowWidth / 20; });
  }
  // The study's window presets (readerstudy.windows): percent of the case's reference
  // maximum, which the served images hold as 4095 (readerstudy.dicom).
  const presets = JSON.parse(document.getElementById("window-presets").textContent || "[]");
  const STORED_MAX = 4095;
  let preset = -1;
  function nextPreset(step) {
    if (!presets.length) {
      viewState.textContent = "This study has no window presets: [ ] { } change the window.";
      return;
    }
    preset = (preset + step + presets.length) % presets.length;
    const chosen = presets[preset];
    changeView("window", function (v) {
      v.voi.windowCenter = chosen.level / 100 * STORED_MAX;
      v.voi.windowWidth = chosen.width / 100 * STORED_MAX;
    });
    viewState.textContent = "Window preset: " + chosen.name + " (" + chosen.level + "/" + chosen.width + " %)";
    root.dataset.preset = chosen.name;
  }

  // The magnifier (a loupe on the left button, 2x, 200 px) in place of window/level, and back.
  let magnifying = false;
  function magnifier() {
    magnifying = !magnifying;
    if (magnifying) {
      cornerstoneTools.setToolActive("Magnify", { mouseButtonMask: 1 });
    } else {
      cornerstoneTools.setToolActive("Wwwc", { mouseButtonMask: 1 });
    }
    counted("magnifier");
    root.dataset.leftButton = magnifying ? "magnify" : "window";
    viewState.textContent = magnifying ? "Left button: magnifier (G: back to window/level)."
      : "Left button: window/level.";
  }

  // One view only, the reconstruction, as large as the screen allows, the questions kept
  // beside it (and the browser's full screen where it allows); F still flickers in place.
  function solo() {
    if (comparing() && !root.classList.contains("solo")) {
      viewState.textContent = "One view is for a single reconstruction; a comparison needs all its images.";
      return;
    }
    const on = !root.classList.contains("solo");
    root.classList.toggle("solo", on);
    counted("solo");
    if (on && root.requestFullscreen && !document.fullscreenElement) {
      root.requestFullscreen().catch(function () { /* a page may refuse: the layout is enough */ });
    } else if (!on && document.fullscreenElement) {
      document.exitFullscreen().catch(function () {});
    }
    viewState.textContent = on ? "One view (M: back to all views)." : "";
    window.requestAnimationFrame(function () {
      allViewports.forEach(function (element) { cornerstone.resize(element, true); });
    });
  }

  // One image pixel to one screen pixel, or back to the whole image.
  function onePixel() {
    changeView("one_to_one", function (v, element) {
      if (Math.abs(v.scale - 1) < 1e-9) {
        const fitted = cornerstone.getDefaultViewportForImage(element, cornerstone.getEnabledElement(element).image);
        v.scale = fitted.scale;
        v.translation = { x: 0, y: 0 };
      } else {
        v.scale = 1;
      }
    });
  }

  // Flicker: the reference in place of the reconstruction, at the same zoom, pan, window and
  // slice (the way to see subtle artefacts), and back. It shows nothing the reader has not
  // seen: the reference is on screen anyway.
  function flicker() {
    if (!state.item.images.reference) {  // a study read without its reference never shows it
      viewState.textContent = "This study is read without the reference: there is nothing to flicker to.";
      return Promise.resolve();
    }
    state.flicker = !state.flicker;
    counted("flicker");
    root.dataset.flicker = state.flicker ? "on" : "off";
    slotFigures.forEach(function (figure, index) {
      const name = figure.querySelector(".slot-name");
      name.textContent = state.flicker ? "Reference (flicker: F returns)"
        : comparing() ? LETTERS[index] : "Reconstruction";
      figure.classList.toggle("flickered", state.flicker);
    });
    return showSlice(state.slice);
  }

  // --- questions ------------------------------------------------------------------------
  function comparing() { return state.item.kind !== "likert"; }
  function slotCount() { return state.item.images.reconstructions.length; }

  function renderQuestions(item) {
    form.replaceChildren();
    if (item.kind === "rank") { renderRanking(item.questions[0]); }
    else if (item.kind === "choice") { renderChoice(item.questions[0]); }
    else { renderLikert(item); }
    refreshQuestions();
  }

  // Each Likert question is a radio group with real focus: one Tab stop per question (its
  // chosen score, or its first), arrows within it, and the words of the scale on the buttons
  // (for "Artifacts" 5 means none: a reader must not have to guess which end is good).
  function renderLikert(item) {
    item.questions.forEach(function (question, index) {
      const fieldset = document.createElement("fieldset");
      fieldset.className = "question";
      fieldset.dataset.key = question.key;
      fieldset.dataset.index = index;
      const legend = document.createElement("legend");
      legend.id = "question-" + index;
      legend.textContent = (index + 1) + ". " + question.label;
      const choices = document.createElement("div");
      choices.className = "choices";
      choices.setAttribute("role", "radiogroup");
      choices.setAttribute("aria-labelledby", legend.id);
      for (let value = question.scale_min; value <= question.scale_max; value++) {
        const button = document.createElement("button");
        button.type = "button";
        button.setAttribute("role", "radio");
        button.dataset.value = value;
        const number = document.createElement("span");
        number.className = "value";
        number.textContent = value;
        button.appendChild(number);
        const word = question.anchors[String(value)];
        if (word) {
          const label = document.createElement("span");
          label.className = "word";
          label.textContent = word;
          button.appendChild(label);
        }
        button.addEventListener("click", function () { answer(index, value); });
        choices.appendChild(button);
      }
      fieldset.append(legend, choices);
      form.appendChild(fieldset);
    });
  }

  // The Likert question holding the keyboard focus (-1: the focus is elsewhere).
  function focusedQuestion() {
    const fieldset = document.activeElement && document.activeElement.closest
      ? document.activeElement.closest("#questions fieldset[data-index]") : null;
    return fieldset ? Number(fieldset.dataset.index) : -1;
  }

  function firstUnanswered(after) {
    const questions = state.item.questions;
    for (let step = 1; step <= questions.length; step++) {
      const index = (after + step) % questions.length;
      if (state.answers[questions[index].key] === undefined) { return index; }
    }
    return -1;
  }

  // The question a digit answers now: the focused one, or else the first unanswered.
  function targetQuestion() {
    const focused = focusedQuestion();
    return focused >= 0 ? focused : firstUnanswered(-1);
  }

  // A ranking: the digit keys give the focused image its rank (1 best) and focus moves on;
  // or the list is dragged into order. Without ties a rank given twice moves to the new image.
  // A comparison's one question, always focused (the focus moves between its images).
  function comparisonFieldset(question) {
    const fieldset = document.createElement("fieldset");
    fieldset.className = "question focused";
    fieldset.dataset.key = question.key;
    const legend = document.createElement("legend");
    legend.textContent = question.label;
    fieldset.appendChild(legend);
    form.appendChild(fieldset);
    return fieldset;
  }

  function renderRanking(question) {
    const fieldset = comparisonFieldset(question);
    const hint = document.createElement("p");
    hint.className = "muted small";
    hint.textContent = "Rank the " + slotCount() + " images, 1 best" +
      (question.allow_ties ? " (equal ranks allowed)" : "") + ": a digit ranks the focused image, or drag the list.";
    const list = document.createElement("ol");
    list.className = "rank-list";
    list.id = "rank-list";
    fieldset.append(hint, list);
    list.addEventListener("dragover", function (event) {
      event.preventDefault();
      const dragging = list.querySelector(".dragging");
      const after = Array.from(list.children).find(function (li) {
        const box = li.getBoundingClientRect();
        return li !== dragging && event.clientY < box.top + box.height / 2;
      });
      if (dragging) { list.insertBefore(dragging, after || null); }
    });
    list.addEventListener("drop", function (event) {
      event.preventDefault();
      // The dragged order is a complete ranking, top to bottom.
      const ranks = new Array(slotCount()).fill(null);
      Array.from(list.children).forEach(function (li, index) { ranks[Number(li.dataset.slot)] = index + 1; });
      setRanks(ranks);
    });
  }

  function renderChoice(question) {
    const fieldset = comparisonFieldset(question);
    const choices = document.createElement("div");
    choices.className = "choices";
    const options = [["1", "A (left) better", [1, 2]], ["2", "B (right) better", [2, 1]]];
    if (question.allow_ties) { options.push(["0", "No difference", [1, 1]]); }
    options.forEach(function (option) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = option[0] + " · " + option[1];
      button.dataset.ranks = JSON.stringify(option[2]);
      button.addEventListener("click", function () { setRanks(option[2].slice()); });
      choices.appendChild(button);
    });
    fieldset.append(choices);
  }

  function currentRanks() {
    const key = state.item.questions[0].key;
    const ranks = state.answers[key];
    return Array.isArray(ranks) && ranks.length === slotCount() ? ranks : new Array(slotCount()).fill(null);
  }

  function setRanks(ranks) {
    state.answers[state.item.questions[0].key] = ranks;
    keepDraft();
    message.textContent = "";
    refreshQuestions();
  }

  function rankFocused(rank) {
    const question = state.item.questions[0];
    if (state.item.kind === "choice") {
      const options = { 1: [1, 2], 2: [2, 1] };
      if (question.allow_ties) { options[0] = [1, 1]; }
      if (options[rank]) { setRanks(options[rank]); }
      return;
    }
    const count = slotCount();
    if (rank < 1 || rank > count) { return; }
    const ranks = currentRanks().slice();
    if (!question.allow_ties) {
      ranks.forEach(function (given, slot) { if (given === rank) { ranks[slot] = null; } });
    }
    ranks[state.focus] = rank;
    // Without ties, the last image left has the last rank left.
    const missing = ranks.map(function (r, slot) { return r === null ? slot : -1; }).filter(function (slot) { return slot >= 0; });
    if (!question.allow_ties && missing.length === 1) {
      const used = new Set(ranks);
      for (let r = 1; r <= count; r++) { if (!used.has(r)) { ranks[missing[0]] = r; } }
    }
    setRanks(ranks);
    const next = ranks.findIndex(function (r, slot) { return r === null && slot !== state.focus; });
    focusQuestion(next >= 0 ? next : state.focus + 1);
  }

  function refreshQuestions() {
    if (comparing()) { refreshComparison(); return; }
    const target = targetQuestion();
    Array.from(form.children).forEach(function (fieldset, index) {
      const key = fieldset.dataset.key;
      fieldset.classList.toggle("focused", index === target);
      const buttons = Array.from(fieldset.querySelectorAll("button[role=radio]"));
      const chosen = buttons.findIndex(function (b) { return Number(b.dataset.value) === state.answers[key]; });
      buttons.forEach(function (button, position) {
        button.classList.toggle("chosen", position === chosen);
        button.setAttribute("aria-checked", position === chosen ? "true" : "false");
        button.tabIndex = position === Math.max(chosen, 0) ? 0 : -1;
      });
    });
  }

  function refreshComparison() {
    const ranks = currentRanks();
    const choice = state.item.kind === "choice";
    slotFigures.forEach(function (figure, slot) {
      if (slot >= ranks.length) { return; }
      figure.classList.toggle("focused", !choice && slot === state.focus);
      let text = "";
      if (ranks[slot] !== null) {
        text = choice ? (ranks[0] === ranks[1] ? "· no difference" : ranks[slot] === 1 ? "· better" : "")
          : "· rank " + ranks[slot];
      }
      figure.querySelector(".slot-answer").textContent = text;
    });
    form.querySelectorAll("button[data-ranks]").forEach(function (button) {
      button.classList.toggle("chosen", button.dataset.ranks === JSON.stringify(ranks));
    });
    const list = document.getElementById("rank-list");
    if (!list) { return; }
    // The list in rank order, unranked images last, each named by its place and rank.
    const order = ranks.map(function (r, slot) { return slot; }).sort(function (a, b) {
      const ra = ranks[a] === null ? Infinity : ranks[a];
      const rb = ranks[b] === null ? Infinity : ranks[b];
      return ra - rb || a - b;
    });
    list.replaceChildren.apply(list, order.map(function (slot) {
      const li = document.createElement("li");
      li.draggable = true;
      li.dataset.slot = slot;
      li.textContent = LETTERS[slot] + (ranks[slot] === null ? " · not ranked" : " · rank " + ranks[slot]);
      li.classList.toggle("focused", slot === state.focus);
      li.addEventListener("click", function () { focusQuestion(slot); });
      li.addEventListener("dragstart", function () { li.classList.add("dragging"); });
      li.addEventListener("dragend", function () { li.classList.remove("dragging"); });
      return li;
    }));
  }

  // The focus is a question of a Likert item (the keyboard's), or an image of a ranking.
  function focusQuestion(index) {
    if (comparing()) {
      const count = slotCount();
      state.focus = (index + count) % count;
      refreshQuestions();
      return;
    }
    const count = state.item.questions.length;
    const fieldset = form.children[(index + count) % count];
    const stop = fieldset && fieldset.querySelector("button[tabindex='0']");
    if (stop) { stop.focus(); }
  }

  function answer(index, value) {
    if (comparing()) { rankFocused(value); return; }
    const question = state.item.questions[index];
    if (value < question.scale_min || value > question.scale_max) { return; }
    state.answers[question.key] = value;
    keepDraft();
    message.textContent = "";
    refreshQuestions();
  }

  // A digit answers the focused question, or, with the focus elsewhere (the images, a
  // button), the first unanswered one; then the focus goes to the next unanswered question,
  // or to Save. It never changes an answer whose question does not have the focus: "digit,
  // Tab, digit" once wrapped round and overwrote the first answer.
  function answerByKey(value) {
    if (comparing()) { rankFocused(value); return; }
    const index = targetQuestion();
    if (index < 0) {
      message.textContent = "Every question is answered: Enter saves. To change an answer, Tab to its question first.";
      return;
    }
    const question = state.item.questions[index];
    if (value < question.scale_min || value > question.scale_max) {
      message.textContent = question.label + " is scored " + question.scale_min + " to " + question.scale_max + ".";
      return;
    }
    answer(index, value);
    const following = firstUnanswered(index);
    if (following >= 0) { focusQuestion(following); } else { saveButton.focus(); }
  }

  // Left / right within a question: the neighbouring score (the radio group's arrows).
  function stepAnswer(index, step) {
    const question = state.item.questions[index];
    // From the chosen score, or with none from the focused button (the group's first).
    const chosen = state.answers[question.key];
    const from = chosen !== undefined ? chosen : Number(document.activeElement.dataset.value);
    const value = Math.min(question.scale_max, Math.max(question.scale_min, from + step));
    answer(index, value);
    focusQuestion(index);
  }

  // --- drafts: answers not yet saved, kept for this reader only (drafts.js) -------------
  function keepDraft() { window.readerDrafts.keep(state.item.public_id, state.answers); }
  function takeDraft(publicId) { return window.readerDrafts.take(publicId); }
  function dropDraft(publicId) { window.readerDrafts.drop(publicId); }

  // --- items ----------------------------------------------------------------------------
  function csrfToken() {
    // Read at each request: signing in again (another tab) rotates the token.
    const cookie = document.cookie.split("; ").find(function (c) { return c.indexOf("csrftoken=") === 0; });
    return cookie ? decodeURIComponent(cookie.slice("csrftoken=".length)) : pageCsrfToken;
  }

  // Every failure becomes {status, detail}: status 0 when the server could not be reached.
  function api(url, options) {
    return fetch(url, Object.assign({ credentials: "same-origin", headers: {
      "Content-Type": "application/json", "X-CSRFToken": csrfToken(),
    } }, options)).catch(function () {
      throw { status: 0, detail: "The server cannot be reached (network or server down)." };
    }).then(function (response) {
      const isJson = (response.headers.get("Content-Type") || "").indexOf("json") !== -1;
      const body = isJson ? response.json().catch(function () { return {}; }) : Promise.resolve({});
      return body.then(function (data) {
        if (response.ok) { return data; }
        if (!data.detail && !isJson) { data.detail = "The server answered " + response.status + " " + response.statusText + "."; }
        data.status = response.status;
        throw data;
      });
    });
  }

  function transient(error) { return error.status === 0 || error.status === 429 || error.status >= 500; }

  function explain(error) {
    if (error.status === 401 || error.status === 403) {
      return { text: "your session has ended. Your answers are kept here: ", signIn: true };
    }
    if (error.status === 404) { return { text: "This item is no longer assigned to you; reload the page." }; }
    if (error.code === "database_unavailable") { return { text: "the study database cannot be reached right now." }; }
    if (error.detail) { return { text: error.detail }; }
    const fields = Object.keys(error).filter(function (k) { return k !== "status"; });
    return { text: fields.map(function (k) { return k + ": " + [].concat(error[k]).join(" "); }).join("; ") };
  }

  function tell(text, signIn) {
    message.replaceChildren(document.createTextNode(text));
    if (signIn) {
      const link = document.createElement("a");
      link.href = "/accounts/login/?next=" + encodeURIComponent(location.pathname);
      link.target = "_blank";
      link.rel = "noopener";
      link.textContent = "sign in again (new tab)";
      message.append(link, document.createTextNode(", then come back and press Enter to save."));
    }
  }

  // Transient failures (database restarting, server unreachable) are retried with back-off
  // while the answers stay in the tab; the server stores each answer once however often
  // the same request arrives.
  const retry = { timer: null, attempt: 0 };
  function stopRetrying() { clearTimeout(retry.timer); retry.timer = null; }

  // --- training items: the researcher's answer after mine -----------------------------
  function describe(question, value) {
    if (Array.isArray(value)) {
      if (state.item.kind === "choice") {
        return value[0] === value[1] ? "no difference" : (value[0] < value[1] ? "left (A)" : "right (B)") + " better";
      }
      return value.map(function (rank, slot) { return LETTERS[slot] + "·" + rank; }).join(" ");
    }
    const anchor = question.anchors[String(value)];
    return String(value) + (anchor ? " (" + anchor + ")" : "");
  }

  function showReference(reference, mine) {
    const rows = state.item.questions.filter(function (q) { return reference.answers[q.key] !== undefined; });
    const list = document.createElement("dl");
    rows.forEach(function (question) {
      const term = document.createElement("dt");
      term.textContent = question.label;
      const given = document.createElement("dd");
      const same = JSON.stringify(mine[question.key]) === JSON.stringify(reference.answers[question.key]);
      given.className = same ? "agrees" : "differs";
      given.textContent = "reference " + describe(question, reference.answers[question.key]) +
        " · yours " + (mine[question.key] === undefined ? "–" : describe(question, mine[question.key]));
      list.append(term, given);
    });
    const title = document.createElement("h3");
    title.textContent = "Training: the reference answer";
    feedback.replaceChildren(title);
    if (rows.length) { feedback.appendChild(list); }
    else { feedback.appendChild(document.createTextNode("No reference answer was given for this item.")); }
    if (reference.note) {
      const note = document.createElement("p");
      note.className = "note";
      note.textContent = reference.note;
      feedback.appendChild(note);
    }
    feedback.hidden = false;
  }

  function review(reference) {
    state.reviewing = true;
    showReference(reference, state.answers);
    saveButton.textContent = "Continue ↵";
    root.dataset.reviewing = state.item.public_id;
  }

  function endReview() {
    state.reviewing = false;
    delete root.dataset.reviewing;
    saveButton.textContent = "Save and next ↵";
    return next().catch(loadFailed);
  }

  function show(item) {
    stopRetrying();
    if (item.kind !== "likert" && root.classList.contains("solo")) { root.classList.remove("solo"); }
    state.flicker = false;
    state.actions = {};
    root.dataset.flicker = "off";
    viewState.textContent = "";
    retry.attempt = 0;
    state.reviewing = false;
    delete root.dataset.reviewing;
    saveButton.textContent = "Save and next ↵";
    feedback.hidden = true;
    feedback.replaceChildren();
    state.item = item;
    state.answers = Object.assign({}, item.scores, takeDraft(item.public_id));
    state.focus = 0;  // a comparison's first image
    state.shownAt = performance.now();
    document.getElementById("position").textContent = (item.training ? "Training · " : "") +
      "Item " + item.position + " of " + item.total;
    document.getElementById("previous").disabled = !item.previous;
    renderQuestions(item);
    // A new item starts with the keyboard on the images: a digit answers the first
    // unanswered question, Tab goes to the questions.
    viewerArea.focus({ preventScroll: true });
    if (item.reference) { showReference(item.reference, item.scores); }
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

  function unanswered() {
    if (comparing()) {
      const ranks = currentRanks();
      const open = ranks.indexOf(null);
      if (open === -1) { return null; }
      return { text: state.item.kind === "choice" ? "Choose the better image first (1 left, 2 right)."
        : "Rank every image first: " + LETTERS[open] + " has no rank.", focus: open };
    }
    return null;
  }

  function save() {
    if (state.reviewing) { return endReview(); }
    const incomplete = unanswered();
    if (incomplete) {
      message.textContent = incomplete.text;
      focusQuestion(incomplete.focus);
      return Promise.resolve();
    }
    const missing = comparing() ? [] : state.item.questions.filter(function (q) { return state.answers[q.key] === undefined; });
    if (missing.length) {
      message.textContent = "Answer every question first: " + missing.map(function (q) { return q.label; }).join(", ");
      focusQuestion(state.item.questions.indexOf(missing[0]));
      return Promise.resolve();
    }
    stopRetrying();
    const item = state.item.public_id;
    const seconds = (performance.now() - state.shownAt) / 1000;
    root.dataset.saving = item;
    return api("/api/items/" + item + "/scores/", {
      method: "PUT", body: JSON.stringify({ scores: state.answers, seconds_spent: seconds, view_actions: state.actions }),
    }).then(function (saved) {
      state.actions = {};
      dropDraft(item);
      retry.attempt = 0;
      message.textContent = "";
      delete root.dataset.saving;
      if (saved && saved.reference) { review(saved.reference); return; }
      return next().catch(loadFailed);  // saved; only the next item did not come
    }, function (error) {
      delete root.dataset.saving;
      const why = explain(error);
      if (transient(error) && state.item && state.item.public_id === item) {
        const delay = Math.min(2 * Math.pow(2, retry.attempt), 15);
        retry.attempt += 1;
        tell("Not saved yet: " + why.text + " Your answers are kept; trying again in " + delay + " s (Enter tries now).");
        retry.timer = setTimeout(save, delay * 1000);
      } else {
        tell("Not saved: " + why.text, why.signIn);
      }
    });
  }

  function previous() {
    if (!state.item || !state.item.previous) { return Promise.resolve(); }
    delete root.dataset.ready;
    return api("/api/items/" + state.item.previous + "/").then(show).catch(function (error) {
      const why = explain(error);
      root.dataset.ready = state.item.public_id;
      tell("Could not go back: " + why.text, why.signIn);
    });
  }

  saveButton.addEventListener("click", save);
  document.getElementById("previous").addEventListener("click", previous);
  document.getElementById("reset").addEventListener("click", resetView);

  form.addEventListener("focusin", refreshQuestions);
  form.addEventListener("focusout", function () { setTimeout(refreshQuestions, 0); });

  // Keys a text field or a link needs are theirs; Tab and Shift-Tab always move the focus
  // through every control of the page (each question one stop). The images' keys (slices,
  // arrows) act where the focus is on the images or on no control at all.
  function typing(element) {
    return element && (element.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(element.tagName));
  }
  function ownsEnter(element) {
    // A button or link outside the questions does what it says (Previous, Reset, Log out).
    return element && /^(BUTTON|A|SUMMARY)$/.test(element.tagName) && !form.contains(element);
  }

  document.addEventListener("keydown", function (event) {
    if (!state.item || event.altKey || event.ctrlKey || event.metaKey) { return; }
    const target = event.target;
    if (typing(target) || target.closest && target.closest("header, nav")) { return; }
    const key = event.key;
    const question = comparing() ? -1 : focusedQuestion();
    if (state.reviewing && /^[0-9]$/.test(key)) { event.preventDefault(); return; }  // saved already
    if (/^[0-9]$/.test(key)) { answerByKey(Number(key)); }
    else if (key === "Enter") { if (ownsEnter(target)) { return; } save(); }
    else if (key === "Backspace") { previous(); }
    else if (event.shiftKey && /^Arrow/.test(key) && question < 0) {
      pan({ ArrowLeft: -1, ArrowRight: 1 }[key] || 0, { ArrowUp: -1, ArrowDown: 1 }[key] || 0);
    }
    else if (key === "ArrowDown" || key === "ArrowUp") {
      const step = key === "ArrowDown" ? 1 : -1;
      if (comparing()) { focusQuestion(state.focus + step); }
      else if (question >= 0) { focusQuestion(question + step); }
      else { return; }
    }
    else if ((key === "ArrowRight" || key === "ArrowLeft") && question >= 0) {
      stepAnswer(question, key === "ArrowRight" ? 1 : -1);
    }
    else if (key === "r" || key === "R") { resetView(); }
    else if (key === "+" || key === "=") { zoom(1.25); }
    else if (key === "-" || key === "_") { zoom(1 / 1.25); }
    else if (key === "]") { windowWidth(1.15); }
    else if (key === "[") { windowWidth(1 / 1.15); }
    else if (key === "}") { windowLevel(1); }
    else if (key === "{") { windowLevel(-1); }
    else if (key === "o" || key === "O") { onePixel(); }
    else if (key === "f" || key === "F") { flicker(); }
    else if (key === "w" || key === "W") { nextPreset(event.shiftKey ? -1 : 1); }
    else if (key === "g" || key === "G") { magnifier(); }
    else if (key === "m" || key === "M") { solo(); }
    else if (key === "ArrowRight" || key === "PageDown") { showSlice(state.slice + 1); }
    else if (key === "ArrowLeft" || key === "PageUp") { showSlice(state.slice - 1); }
    else { return; }
    event.preventDefault();
  });

  function loadFailed(error) {
    const why = explain(error);
    if (transient(error)) {
      tell("Could not load the next item: " + why.text + " Trying again in 5 s.");
      setTimeout(start, 5000);
    } else {
      tell("Could not load the next item: " + why.text, why.signIn);
    }
  }
  function start() { return next().catch(loadFailed); }
  start();
})();
