// The images page: send files (or a folder, with each file's relative path) to the import
// endpoint with an upload progress bar, then follow the background import until it ends and
// show what it added or every problem with its manifest line or file name.
(function () {
  "use strict";
  const root = document.getElementById("uploader");
  if (!root) { return; }
  const filesInput = document.getElementById("files");
  const folderInput = document.getElementById("folder");
  const button = document.getElementById("upload");
  const status = document.getElementById("upload-status");
  const phase = document.getElementById("phase");
  const phaseCount = document.getElementById("phase-count");
  const bar = document.getElementById("upload-progress");
  const result = document.getElementById("result");
  const maxBytes = Number(root.dataset.maxBytes);
  let chosen = [];

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }
  function megabytes(bytes) { return (bytes / 1048576).toFixed(1) + " MB"; }

  function choose(list) {
    chosen = Array.from(list);
    const size = chosen.reduce(function (sum, f) { return sum + f.size; }, 0);
    result.textContent = "";
    if (size > maxBytes) {
      result.innerHTML = "";
      const p = document.createElement("p");
      p.className = "error";
      p.id = "too-large";
      p.textContent = "These files are " + megabytes(size) + "; an upload may be at most " + megabytes(maxBytes) + ". Upload them in parts.";
      result.appendChild(p);
      button.disabled = true;
      return;
    }
    button.disabled = chosen.length === 0;
    button.textContent = "Upload and import " + chosen.length + " file" + (chosen.length === 1 ? "" : "s") + " (" + megabytes(size) + ")";
  }
  filesInput.addEventListener("change", function () { folderInput.value = ""; choose(filesInput.files); });
  folderInput.addEventListener("change", function () { filesInput.value = ""; choose(folderInput.files); });

  function show(name, done, total, unit) {
    status.hidden = false;
    phase.textContent = name;
    bar.max = Math.max(total, 1);
    bar.value = Math.min(done, bar.max);
    phaseCount.textContent = total ? (unit === "bytes" ? megabytes(done) + " / " + megabytes(total) : done + " / " + total + " " + unit) : "";
  }

  function report(job) {
    result.innerHTML = "";
    if (job.state === "done") {
      const p = document.createElement("p");
      p.id = "import-done";
      p.textContent = "Imported: " + job.cases_added + " case" + (job.cases_added === 1 ? "" : "s") + ", " +
        job.reconstructions_added + " reconstructions. Metrics are being computed.";
      result.appendChild(p);
      // What a successful import should know: the metrics a small case will lack.
      if (job.notes && job.notes.length) result.appendChild(listOf(job.notes, "import-notes"));
      refreshCounts();
    } else {
      const p = document.createElement("p");
      p.className = "error";
      p.textContent = "Nothing was imported. Fix these and upload again:";
      const list = listOf(job.problems, "import-problems");
      list.className = "problems";
      result.appendChild(p);
      result.appendChild(list);
    }
    button.disabled = false;
  }

  // The page's own figures (the case count, the earlier uploads) as the server now has them:
  // after an import they said "0 cases" until a reload. Should it fail, a reload shows them.
  function refreshCounts() {
    window.refreshFromServer(["case-count", "earlier-uploads"]).catch(function () {});
  }

  function listOf(lines, id) {
    const list = document.createElement("ul");
    list.id = id;
    lines.forEach(function (line) {
      const item = document.createElement("li");
      item.textContent = line;
      list.appendChild(item);
    });
    return list;
  }

  function follow(url) {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.json(); })
      .then(function (job) {
        if (job.state === "unpacking") { show("Unpacking", job.steps_done, job.steps_total, "bytes"); }
        else if (job.state === "checking") { show("Checking and storing images", job.steps_done, job.steps_total, "rows"); }
        else if (job.state === "queued") { show("Waiting for a worker", 0, 0, ""); }
        if (job.finished) {
          show(job.state === "done" ? "Imported" : "Failed", 1, 1, "");
          report(job);
        } else {
          window.setTimeout(function () { follow(url); }, 700);
        }
      })
      .catch(function () { window.setTimeout(function () { follow(url); }, 2000); });
  }

  button.addEventListener("click", function () {
    if (!chosen.length) { return; }
    const form = new FormData();
    chosen.forEach(function (file) {
      form.append("files", file);
      form.append("paths", file.webkitRelativePath || file.name);
    });
    const request = new XMLHttpRequest();
    request.open("POST", root.dataset.url);
    request.setRequestHeader("X-CSRFToken", csrfToken());
    request.setRequestHeader("Accept", "application/json");
    request.upload.addEventListener("progress", function (event) {
      if (event.lengthComputable) { show("Uploading", event.loaded, event.total, "bytes"); }
    });
    request.addEventListener("load", function () {
      let body = {};
      try { body = JSON.parse(request.responseText); } catch (e) { body = {}; }
      if (request.status === 202) {
        follow(root.dataset.url + body.id + "/");
      } else {
        const detail = body.detail || Object.values(body).flat().join(" ") || ("the server answered " + request.status);
        report({ state: "failed", problems: [detail] });
      }
    });
    request.addEventListener("error", function () {
      report({ state: "failed", problems: ["The upload was interrupted (network). Nothing was imported; try again."] });
    });
    button.disabled = true;
    result.textContent = "";
    show("Uploading", 0, 1, "bytes");
    request.send(form);
  });
})();
