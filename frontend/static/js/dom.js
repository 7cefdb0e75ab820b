/* The DOM helpers of the researcher's pages. el("td", { class: "num" }, "0.91") makes
   <td class="num">0.91</td>; text is never parsed as HTML. refreshFromServer(ids) replaces
   those elements with the server's current rendering of this page. */
"use strict";
window.el = function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "title") node.title = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child));
  return node;
};

// The elements with these ids as the server renders this page now (a page's own figures after
// a worker has changed them); resolves once replaced, rejects when the page could not be read.
window.refreshFromServer = function refreshFromServer(ids) {
  return fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
    .then((response) => (response.ok ? response.text() : Promise.reject(new Error(`HTTP ${response.status}`))))
    .then((html) => {
      const fresh = new DOMParser().parseFromString(html, "text/html");
      for (const id of ids) {
        const now = document.getElementById(id);
        const then = fresh.getElementById(id);
        if (now && then) now.replaceWith(document.importNode(then, true));
      }
    });
};
