/* The settings and questions page: an error summary, when the server sent one, takes the
   focus (the top of the page, read out); each question shows the fields of its kind only
   (a Likert question's scale and anchors, a ranking's or forced choice's design). */
(function () {
  "use strict";
  const summary = document.getElementById("error-summary");
  if (summary) { summary.focus(); }
  document.querySelectorAll(".question-form").forEach(function (question) {
    const kind = question.querySelector("select[name$='-kind']");
    if (!kind) { return; }
    function showKind() {
      question.querySelectorAll("[data-for-kinds]").forEach(function (part) {
        part.hidden = part.dataset.forKinds.split(" ").indexOf(kind.value) === -1;
      });
      question.querySelectorAll("input[name$='-scale_min'], input[name$='-scale_max']").forEach(function (input) {
        input.closest("div").hidden = kind.value !== "likert";
      });
    }
    kind.addEventListener("change", showKind);
    showKind();
  });
})();
