// The reading room: shows my next item (reference | reconstruction) in linked cornerstone
// viewports and records Likert scores from the keyboard. Scores go to the reader API; the
// server decides what comes next, so a reload or another machine resumes where I left off.
(function () {
  "use strict";
  const root = document.getElementById("reader");
  const slug = root.dataset.study;
  const pageCsrfToken = document.querySelector("input[name=csrfmiddlewaretoken]").value;
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

  // Linked views: the view the reader last touched (pointer, wheel, key) leads; every render
  // of any view makes the others show the leader's zoom, pan and window. Only the leader's
  // values are ever copied, never a follower's back: cornerstone-tools' synchronizers copy
  // both ways, so a follower's render, one frame late, could write its older zoom back into
  // the view being zoomed and lose notches (seen: one view stopped at 13.75 while the other
  // reached 20). A view without an image yet is left alone; it follows once it has one.
  let leader = viewports[viewports.length - 1];
  function follow(source, target) {
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
  viewports.forEach(function (element) {
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
    keepDraft();
    message.textContent = "";
    if (index === state.focus && index < state.item.questions.length - 1) { state.focus = index + 1; }
    refreshQuestions();
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

  function show(item) {
    stopRetrying();
    retry.attempt = 0;
    state.item = item;
    state.answers = Object.assign({}, item.scores, takeDraft(item.public_id));
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
    stopRetrying();
    const item = state.item.public_id;
    const seconds = (performance.now() - state.shownAt) / 1000;
    root.dataset.saving = item;
    return api("/api/items/" + item + "/scores/", {
      method: "PUT", body: JSON.stringify({ scores: state.answers, seconds_spent: seconds }),
    }).then(function () {
      dropDraft(item);
      retry.attempt = 0;
      message.textContent = "";
      delete root.dataset.saving;
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
