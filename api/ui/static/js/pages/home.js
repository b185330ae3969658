// The home page: experiments and studies, newest first, followed live.

import { FINAL, getJSON } from "../api.js";
import { followMany } from "../events.js";
import { $, el, emptyRow, link, number, statusBadge, when } from "../render.js";
import { againstBaseline, runKind } from "../outcomes.js";

export async function homePage() {
  const [jobs, studies] = await Promise.all([
    getJSON("/v1/experiments?limit=50"),
    getJSON("/v1/studies?limit=20"),
  ]);
  const rows = new Map();
  $("#experiments tbody").replaceChildren(
    ...jobs.items.map((job) => {
      const row = experimentRow(job);
      rows.set(job.id, row);
      return row;
    }),
  );
  if (!jobs.items.length) $("#experiments tbody").replaceChildren(emptyRow(8, "No experiments yet."));
  $("#studies tbody").replaceChildren(...studies.items.map(studyRow));
  if (!studies.items.length) $("#studies tbody").replaceChildren(emptyRow(5, "No studies yet."));
  compareForm();
  const live = [...jobs.items, ...studies.items].filter((r) => !FINAL.has(r.status)).map((r) => r.id);
  followMany(live, (id, event) => {
    const row = rows.get(id) || document.querySelector(`#studies tr[data-id="${id}"]`);
    if (!row) return;
    if (event.type === "progress") {
      row.querySelector("progress").max = event.data.epochs;
      row.querySelector("progress").value = event.data.epoch;
      row.querySelector(".epochs").textContent = `${event.data.epoch}/${event.data.epochs}`;
    } else if (event.type === "state") {
      row.querySelector(".status").replaceWith(statusBadge(event.data.status));
    }
  });
}

function experimentRow(job) {
  const summary = job.summary || {};
  const { epoch, epochs } = job.progress;
  return el(
    "tr",
    { "data-id": job.id },
    el("td", {}, el("input", { type: "checkbox", value: job.id, "aria-label": `compare ${job.id}` })),
    el("td", {}, link(`/experiments/${job.id}`, job.id)),
    el("td", {}, statusBadge(job.status)),
    el("td", {}, el("progress", { max: epochs, value: epoch, "aria-label": "epochs" }), " ",
      el("span", { class: "epochs", text: `${epoch}/${epochs}` })),
    el("td", { text: number(summary.loss) }),
    job.summary && runKind(summary) === "regression"
      ? el("td", { text: `regression: loss ÷ baseline ${againstBaseline(summary.loss, summary.baseline_loss)}`,
        title: `baseline loss ${number(summary.baseline_loss)}: the loss of always predicting the mean` })
      : el("td", { text: number(summary.accuracy) }),
    el("td", { text: (summary.verdicts || []).join(", ") || (job.summary ? "healthy" : "") }),
    el("td", { text: when(job.created_at) }),
  );
}

function studyRow(study) {
  const p = study.progress;
  return el(
    "tr",
    { "data-id": study.id },
    el("td", {}, link(`/studies/${study.id}`, study.name || study.preset || study.id)),
    el("td", {}, statusBadge(study.status)),
    el("td", { text: `${p.finished}/${p.children}` }),
    el("td", { text: Object.keys(study.axes).join(" × ") }),
    el("td", { text: when(study.created_at) }),
  );
}

function compareForm() {
  const boxes = () => [...document.querySelectorAll("#experiments input[type=checkbox]:checked")];
  $("#experiments").addEventListener("change", () => {
    $("#compare-button").disabled = boxes().length < 2;
  });
  $("#compare-form").addEventListener("submit", () => {
    $("#compare-ids").value = boxes().map((box) => box.value).join(",");
  });
}
