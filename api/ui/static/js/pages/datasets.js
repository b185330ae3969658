// The datasets page: upload, list, delete, train on one.

import { api, getJSON, ProblemError, ROOT } from "../api.js";
import { $, bytes, el, emptyRow, link, number, showError, when } from "../render.js";
import { clearErrors, showFieldErrors } from "../forms.js";

const shapeOf = (dataset) => dataset.sample_shape.join(" × ");

function classesOrRange(dataset) {
  if (dataset.classes) {
    const shown = dataset.classes.slice(0, 8).join(", ");
    return `${dataset.classes.length}: ${shown}${dataset.classes.length > 8 ? ", …" : ""}`;
  }
  const [low, high] = dataset.target_range || [];
  return dataset.target_range ? `${number(low)} to ${number(high)}` : "–";
}

// How an uploaded dataset is named in a picker: the name, its size and a bit of its id.
export const datasetOption = (dataset) =>
  `${dataset.name}: ${dataset.samples} samples of ${shapeOf(dataset)}, ` +
  `${dataset.classes ? `${dataset.classes.length} classes` : "regression"} (…${dataset.id.slice(-6)})`;

const trainLink = (dataset) =>
  el("a", { href: `${ROOT}/new?dataset=${dataset.id}`, text: "Train on this", "aria-label": `Train on ${dataset.name}` });

export async function datasetsPage() {
  const form = $("#upload-form");
  const file = $("#upload-file");
  const tbody = $("#datasets tbody");
  const more = $("#datasets-more");
  const empty = () => emptyRow(9, "No datasets yet: upload one above.");
  let cursor = null;
  const loadPage = async (first) => {
    const query = new URLSearchParams({ limit: "20" });
    if (cursor) query.set("cursor", cursor);
    const page = await getJSON(`/v1/datasets?${query}`);
    if (first) tbody.replaceChildren();
    const seen = new Set([...tbody.querySelectorAll("tr[data-id]")].map((row) => row.dataset.id));
    tbody.append(...page.items.filter((d) => !seen.has(d.id)).map((d) => datasetRow(d, tbody, empty)));
    if (!tbody.children.length) tbody.replaceChildren(empty());
    cursor = page.next_cursor;
    more.hidden = !cursor;
  };
  more.addEventListener("click", () => loadPage(false).catch(showError));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const refuse = (reason) =>
      showFieldErrors(form, file, new ProblemError(400, { errors: [{ field: "file", reason }] }));
    const chosen = file.files[0];
    if (!chosen) return refuse("choose a CSV or NPZ file to upload");
    const limit = Number(form.dataset.maxBytes || Infinity);
    if (chosen.size > limit) {
      return refuse(`${chosen.name} is ${bytes(chosen.size)}, over this service's limit of ${bytes(limit)}`);
    }
    const query = new URLSearchParams({ label: $("#upload-label").value.trim(), task: $("#upload-task").value });
    const name = $("#upload-name").value.trim();
    if (name) query.set("name", name);
    const body = new FormData();
    body.append("file", chosen, chosen.name);
    const button = $("#upload-button");
    button.disabled = true;
    $("#uploaded").hidden = true;
    $("#upload-state").textContent = `Uploading ${chosen.name}…`;
    try {
      const response = await api(`/v1/datasets?${query}`, { method: "POST", body });
      const dataset = await response.json();
      const fresh = response.status === 201;
      $("#upload-state").textContent = fresh ? `Uploaded ${dataset.name}.` : `${dataset.name} was uploaded before.`;
      showUploaded(dataset, fresh);
      tbody.querySelector(`tr[data-id="${dataset.id}"]`)?.remove();
      tbody.querySelector("tr:not([data-id])")?.remove();
      tbody.prepend(datasetRow(dataset, tbody, empty));
    } catch (error) {
      $("#upload-state").textContent = "";
      if (error instanceof ProblemError && error.status !== 401) showFieldErrors(form, file, error);
      else if (error instanceof TypeError) {
        // fetch() itself failed: the service closed the connection mid-upload, or is gone.
        refuse(`the upload got no answer (${error.message}); is the file over the size limit?`);
      } else showError(error);
    } finally {
      button.disabled = false;
    }
  });
  await loadPage(true);
}

function showUploaded(dataset, fresh) {
  const facts = [
    ["id", el("code", { text: dataset.id })],
    ["format, task", `${dataset.format}, ${dataset.task}`],
    ["label column", dataset.label ?? "– (an NPZ's y)"],
    ["samples", String(dataset.samples)],
    ["sample shape", `${shapeOf(dataset)} (${dataset.features} values)`],
    [dataset.classes ? "classes" : "target range", classesOrRange(dataset)],
    ["size", `${bytes(dataset.size)} uploaded, ${bytes(dataset.stored_size)} kept`],
    ["content hash", el("code", { text: dataset.content_hash.slice(0, 16) + "…", title: dataset.content_hash })],
  ];
  $("#uploaded-title").textContent = fresh
    ? `${dataset.name}: uploaded`
    : `${dataset.name}: the same as an upload before, kept once`;
  $("#uploaded-facts").replaceChildren(
    ...facts.flatMap(([term, value]) => [el("dt", { text: term }), el("dd", {}, value)]),
  );
  $("#uploaded-train").href = `${ROOT}/new?dataset=${dataset.id}`;
  $("#uploaded").hidden = false;
}

function datasetRow(dataset, tbody, empty) {
  const problem = el("p", { class: "field-error", role: "alert" });
  const remove = el("button", { type: "button", text: "Delete", "aria-label": `Delete ${dataset.name}` });
  const row = el(
    "tr",
    { "data-id": dataset.id },
    el("th", { scope: "row", text: dataset.name }),
    el("td", {}, el("code", { text: dataset.id })),
    el("td", { text: `${dataset.format}, ${dataset.task}` }),
    el("td", { text: String(dataset.samples) }),
    el("td", { text: shapeOf(dataset) }),
    el("td", { text: classesOrRange(dataset) }),
    el("td", { text: bytes(dataset.size) }),
    el("td", { text: when(dataset.created_at) }),
    el("td", {}, trainLink(dataset), " ", remove, problem),
  );
  remove.addEventListener("click", async () => {
    problem.replaceChildren();
    if (!confirm(`Delete the dataset ${dataset.name} (${dataset.id})? This cannot be undone.`)) return;
    try {
      await api(`/v1/datasets/${dataset.id}`, { method: "DELETE" });
      row.remove();
      if (!tbody.children.length) tbody.replaceChildren(empty());
      $("#upload-state").textContent = `Deleted ${dataset.name}.`;
    } catch (error) {
      if (!(error instanceof ProblemError) || error.status === 401) return showError(error);
      // 409: the experiments still queued or running on it, each a link.
      const jobs = (error.problem.jobs || []).flatMap((id, i) => [i ? ", " : "", link(`/experiments/${id}`, id)]);
      problem.replaceChildren(error.message, ...(jobs.length ? [" Open: ", ...jobs] : []));
      remove.focus();
    }
  });
  return row;
}
