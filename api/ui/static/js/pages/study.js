// A study's page: progress, then its summary, remedies and plots.

import { api, FINAL, getJSON, PAGE_ID } from "../api.js";
import { follow } from "../events.js";
import { $, el, link, number, setProgress, showError, showPlots, statusBadge } from "../render.js";
import { againstBaseline, present, rowKind } from "../outcomes.js";

export async function studyPage() {
  const base = `/v1/studies/${PAGE_ID}`;
  let study = await getJSON(base);
  const cancel = $("#cancel");
  cancel.addEventListener("click", () => api(`${base}/cancel`, { method: "POST" }).catch(showError));
  const finished = new Set();
  const showStudy = () => {
    $("#study-name").textContent = study.name || study.preset || "";
    $("#status").replaceWith(Object.assign(statusBadge(study.status), { id: "status" }));
    const p = study.progress;
    setProgress(Math.max(p.finished, finished.size), p.children,
      `${Math.max(p.finished, finished.size)} of ${p.children} experiments finished`);
    cancel.hidden = FINAL.has(study.status);
    showConfigs(study);
  };
  showStudy();
  if (!FINAL.has(study.status)) {
    await follow(`${base}/events`, (event) => {
      if (event.type === "child" && FINAL.has(event.data.status)) finished.add(event.data.child);
      if (event.type === "state") study.status = event.data.status;
      showStudy();
    });
    study = await getJSON(base);
    showStudy();
  }
  if (!study.summary) return;
  const summary = await getJSON(`${base}/summary`);
  showSummary(summary.rows, study);
  if (summary.remedies) showRemedies(summary.remedies.fixes);
  downloadLink($("#summary-csv"), `${base}/summary.csv`, `study-${study.id}.csv`);
  await showPlots(base, $("#plots"));
}

function showConfigs(study) {
  $("#configs tbody").replaceChildren(...study.configs.map((config) => {
    const ids = config.children.map((child) => child.id);
    return el("tr", {},
      el("th", { scope: "row", text: config.label }),
      el("td", {}, ...config.children.flatMap((child) => [link(`/experiments/${child.id}`, child.status), " "])),
      el("td", {}, ids.length > 1 ? link(`/compare?ids=${ids.join(",")}`, "side by side") : null));
  }));
}

// One row per configuration. A classification's columns are its loss and accuracy; a
// regression's its loss, its baseline and the ratio of the two; a study over both kinds
// has all of them, each row filled by its own kind.
function showSummary(rows, study) {
  const axes = Object.keys(study.axes);
  // The S.D. over seeds where there are two or more (the summary's std is null for one).
  const spread = (stat) => (!stat || stat.mean === null ? "–"
    : number(stat.mean) + (present(stat.std) ? ` ± ${number(stat.std, 2)}` : ""));
  const kinds = rows.map(rowKind);
  const regression = kinds.includes("regression");
  const classification = kinds.includes("classification") || !regression;
  const notFor = (kind) => el("td", { class: "hint", text: `n/a (${kind})` });
  const outcome = [
    ...(classification ? [["accuracy", (row, kind) =>
      (kind === "regression" ? notFor(kind) : el("td", { text: spread(row.accuracy) }))]] : []),
    ...(regression ? [
      ["baseline loss", (row, kind) =>
        (kind === "classification" ? notFor(kind) : el("td", { text: spread(row.baseline_loss) }))],
      ["loss ÷ baseline", (row, kind) => (kind === "classification" ? notFor(kind)
        : el("td", { text: againstBaseline(row.loss.mean, row.baseline_loss?.mean) }))],
    ] : []),
  ];
  $("#summary thead").replaceChildren(el("tr", {},
    ...[...axes, "seeds", "succeeded", "loss", ...outcome.map(([name]) => name), "verdicts"]
      .map((name) => el("th", { scope: "col", text: name }))));
  $("#summary tbody").replaceChildren(...rows.map((row, i) => el("tr", { "data-kind": kinds[i] },
    ...axes.map((axis) => el("td", { text: JSON.stringify(row.values[axis]) })),
    el("td", { text: row.seeds }),
    el("td", { text: row.succeeded }),
    el("td", { text: spread(row.loss) }),
    ...outcome.map(([, cell]) => cell(row, kinds[i])),
    el("td", { text: Object.entries(row.verdicts).map(([v, n]) => `${v} ×${n}`).join(", ") || "healthy" }))));
  $("#summary-regression").hidden = !regression;
}

function showRemedies(fixes) {
  const change = (stat) => (stat && stat.mean !== null ? `${stat.mean >= 0 ? "+" : ""}${number(stat.mean, 3)}` : "–");
  // A regression's fixes have no accuracy to change: their loss change instead.
  const byLoss = !fixes.some((fix) => fix.accuracy_change?.n) && fixes.some((fix) => fix.loss_change?.n);
  $("#remedy-change").textContent = byLoss ? "Loss change (lower is better)" : "Accuracy change";
  $("#remedy-summary tbody").replaceChildren(...fixes.map((fix) => el("tr", {},
    el("th", { scope: "row", text: fix.fix }),
    el("td", { text: fix.verdicts.map((v) => `${v.verdict}: cleared in ${v.cleared} of the ${v.baseline} seeds that had it`).join(", ") || "–" }),
    el("td", { text: Object.entries(fix.new_verdicts || {}).map(([v, n]) => `${v} ×${n}`).join(", ") || "none" }),
    el("td", { text: change(byLoss ? fix.loss_change : fix.accuracy_change) }),
    el("td", { text: fix.gradient_ratio ? `${number(fix.gradient_ratio.before, 3)} → ${number(fix.gradient_ratio.after, 3)}` : "–" }))));
  $("#remedy-summary").hidden = false;
}

function downloadLink(anchor, path, filename) {
  api(path)
    .then((response) => response.blob())
    .then((blob) => {
      Object.assign(anchor, { href: URL.createObjectURL(blob), download: filename, hidden: false });
    })
    .catch(showError);
}
