// Building the page: elements, formatted values, the page's error box and progress bar,
// and the service's plots as figures.

import { api, getJSON, ROOT, storedKey } from "./api.js";

export const $ = (selector) => document.querySelector(selector);

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

export const number = (value, digits = 4) =>
  value === null || value === undefined ? "–" : Number(value).toPrecision(digits);
export const when = (iso) => (iso ? new Date(iso).toLocaleString() : "–");
export const bytes = (count) =>
  count < 1024 ? `${count} B` : count < 1024 * 1024 ? `${(count / 1024).toFixed(1)} KB`
    : `${(count / (1024 * 1024)).toFixed(1)} MB`;
export const link = (path, text) => el("a", { href: ROOT + path, text });
export const statusBadge = (status) => el("span", { class: `status ${status}`, text: status });

export function showError(error) {
  const box = $("#page-error");
  let text = error.message;
  if (error.status === 401) text = "This service needs an API key: enter it above.";
  box.textContent = text;
  box.hidden = false;
}

export function setProgress(done, total, text) {
  $("#progress").max = Math.max(total, 1);
  $("#progress").value = done;
  $("#progress-text").textContent = text;
}

// A plot as <figure>; with a key, fetched with it and shown from a blob.
export function plotFigure(url, name, description) {
  const img = el("img", { alt: description || name, width: 900, height: 600 });
  if (storedKey()) {
    api(url)
      .then((response) => response.blob())
      .then((blob) => { img.src = URL.createObjectURL(blob); })
      .catch(showError);
  } else {
    img.src = ROOT + url;
  }
  img.dataset.plot = name;
  return el("figure", {}, img, el("figcaption", {}, el("strong", { text: name }), ` ${description || ""}`));
}

export async function showPlots(base, target) {
  const { items } = await getJSON(`${base}/plots`);
  target.replaceChildren(
    ...items.map((item) => plotFigure(`${base}/plots/${item.name}.png`, item.name, item.description)),
  );
  return items;
}

export const emptyRow = (span, text) => el("tr", {}, el("td", { colspan: span, text }));

export const factList = (pairs) => pairs.flatMap(([term, value]) => [el("dt", { text: term }), el("dd", { text: value })]);
