/* The DOM builder of the researcher's pages (the dashboard, the study page's metric lab):
   el("td", { class: "num" }, "0.91") makes <td class="num">0.91</td>; text is never parsed
   as HTML. */
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
