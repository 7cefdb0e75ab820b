/* The study page: while metric values are still being computed, its Metrics card follows
   the workers (the server's own rendering of it, every few seconds) instead of saying
   "reload to update"; it stops once every value is in or failed. */
(function () {
  "use strict";
  const POLL_MS = 3000;
  function follow() {
    const card = document.getElementById("metrics-card");
    if (!card || !card.dataset.pending) { return; }
    window.refreshFromServer(["metrics-card"])
      .catch(function () { /* tried again below */ })
      .then(function () { window.setTimeout(follow, POLL_MS); });
  }
  window.setTimeout(follow, POLL_MS);
})();
