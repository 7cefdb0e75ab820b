// The invitation link's Copy button (the page's scripts are files: the CSP allows no inline ones).
(function () {
  "use strict";
  const button = document.getElementById("copy-link");
  if (!button) { return; }
  button.addEventListener("click", function () {
    const field = document.getElementById(button.dataset.target);
    field.select();
    const done = function () { button.textContent = "Copied"; };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(done, function () { document.execCommand("copy"); done(); });
    } else {
      document.execCommand("copy");
      done();
    }
  });
})();
