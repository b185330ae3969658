// Experiments side by side.

import { getJSON } from "../api.js";
import { $, el, factList, link, number, plotFigure, statusBadge } from "../render.js";
import { chart } from "../chart.js";
import { outcomeFacts } from "../outcomes.js";

export async function comparePage() {
  const ids = JSON.parse($("#compare-ids").textContent);
  const jobs = await Promise.all(ids.map((id) => getJSON(`/v1/experiments/${id}`)));
  const results = await Promise.all(jobs.map((job) =>
    job.status === "succeeded" ? getJSON(`/v1/experiments/${job.id}/result`) : null));
  const done = jobs.filter((job) => job.status === "succeeded");
  const names = done.length ? (await getJSON(`/v1/experiments/${done[0].id}/plots`)).items.map((i) => i.name) : [];
  const select = $("#compare-plot");
  select.replaceChildren(...names.map((name) => el("option", { value: name, text: name })));
  const columns = jobs.map((job, i) => compareColumn(job, results[i]));
  const draw = () => {
    jobs.forEach((job, i) => {
      const slot = columns[i].querySelector(".slot");
      slot.replaceChildren(job.status === "succeeded" && select.value
        ? plotFigure(`/v1/experiments/${job.id}/plots/${select.value}.png`, select.value, `${select.value} of ${job.id}`)
        : el("p", { text: `no plots: ${job.status}` }));
    });
  };
  select.addEventListener("change", draw);
  $("#columns").replaceChildren(...columns);
  draw();
  const withHistory = results.map((r, i) => [r, jobs[i]]).filter(([r]) => r);
  if (withHistory.length) {
    const longest = Math.max(...withHistory.map(([r]) => r.history.epoch.length));
    const x = Array.from({ length: longest }, (_, i) => i + 1);
    chart($("#chart-compare"), "loss by epoch", x, withHistory.map(([r, job]) => ({
      label: job.id.slice(-6), values: x.map((_, i) => r.history.loss[i] ?? null),
    })), { log: true });
  }
}

function compareColumn(job, result) {
  const summary = job.summary || {};
  const spec = job.spec;
  return el("section", { class: "column", "aria-label": `experiment ${job.id}` },
    el("h2", {}, link(`/experiments/${job.id}`, job.id.slice(-6))),
    el("p", {}, statusBadge(job.status)),
    el("dl", {},
      el("dt", { text: "network" }), el("dd", { text: `${(spec.model?.hidden_layers || []).join("-") || "layers"} ${spec.model?.activation || ""}` }),
      ...factList(job.summary ? outcomeFacts(summary) : [["loss", "–"], ["accuracy", "–"]]),
      el("dt", { text: "first/last gradient" }), el("dd", { text: number(summary.gradient_ratio, 3) }),
      el("dt", { text: "verdicts" }), el("dd", { text: result ? result.diagnosis.verdicts.join(", ") || "healthy" : "–" })),
    el("div", { class: "slot" }));
}
