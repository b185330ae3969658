// An experiment's page: progress, then its verdicts, prescriptions, charts and plots.

import { api, FINAL, getJSON, PAGE_ID, ProblemError, ROOT } from "../api.js";
import { follow } from "../events.js";
import { $, el, factList, link, number, setProgress, showError, showPlots, statusBadge } from "../render.js";
import { chart } from "../chart.js";
import { outcomeFacts, present, runKind } from "../outcomes.js";
import { clearErrors, showFieldErrors } from "../forms.js";

export async function experimentPage() {
  const base = `/v1/experiments/${PAGE_ID}`;
  let job = await getJSON(base);
  $("#spec").textContent = JSON.stringify(job.spec, null, 2);
  showDataset(job.spec);
  const cancel = $("#cancel");
  cancel.addEventListener("click", () => api(`${base}/cancel`, { method: "POST" }).catch(showError));
  const showJob = () => {
    $("#status").replaceWith(Object.assign(statusBadge(job.status), { id: "status" }));
    const { epoch, epochs } = job.progress;
    setProgress(epoch, epochs, `epoch ${epoch} of ${epochs}`);
    cancel.hidden = FINAL.has(job.status);
  };
  showJob();
  if (!FINAL.has(job.status)) {
    await follow(`${base}/events`, (event) => {
      if (event.type === "progress") job.progress = { epoch: event.data.epoch, epochs: event.data.epochs };
      if (event.type === "state") job.status = event.data.status;
      showJob();
    });
    job = await getJSON(base);
    showJob();
  }
  if (job.status === "failed" && job.error) showError(new Error(`${job.error.type}: ${job.error.message}`));
  if (job.status !== "succeeded") return;
  const result = await getJSON(`${base}/result`);
  $("#finished").hidden = false;
  if (job.summary) {
    $("#outcome").replaceChildren(...factList(outcomeFacts(job.summary)));
    $("#outcome-regression").hidden = runKind(job.summary) !== "regression";
  }
  showDataset(job.spec, result.dataset);
  showVerdicts(result.diagnosis);
  remediesForm(base, job, result.diagnosis);
  showSeries(result);
  await showPlots(base, $("#plots"));
}

function showVerdicts(diagnosis) {
  const explanations = diagnosis.explanations || {};
  const prescriptions = diagnosis.prescriptions || {};
  const blocks = diagnosis.verdicts.map((verdict) => {
    const about = explanations[verdict] || {};
    const fixes = prescriptions[verdict] || [];
    return el(
      "article",
      { class: "verdict", "data-verdict": verdict },
      el("h3", { text: about.title || verdict }),
      about.meaning ? el("p", { text: about.meaning }) : null,
      about.cause ? el("p", { class: "hint", text: about.cause }) : null,
      fixes.length ? el("h4", { text: "Prescriptions" }) : null,
      fixes.length ? el("ol", {}, ...fixes.map(prescription)) : null,
      about.read_more?.length ? el("h4", { text: "Read more" }) : null,
      about.read_more?.length
        ? el("ul", {}, ...about.read_more.map((r) => el("li", {}, el("a", { href: r.url, text: `${r.authors} (${r.year}), ${r.title}` }))))
        : null,
    );
  });
  if (!blocks.length) blocks.push(el("p", { class: "verdict healthy", text: "No verdict: the gradients flowed." }));
  const evidence = el("details", {}, el("summary", { text: "Evidence" }),
    el("pre", { class: "json", text: JSON.stringify(diagnosis.evidence, null, 2) }));
  $("#verdicts").replaceChildren(...blocks, evidence);
}

// Prove the run's prescriptions (POST .../remedies): a study, opened once accepted.
function remediesForm(base, job, diagnosis) {
  const studies = job.remedy_studies || [];
  $("#remedy-studies").replaceChildren(...studies.map((id) => el("li", {}, link(`/studies/${id}`, `study ${id}`))));
  $("#remedies").hidden = !Object.keys(diagnosis.prescriptions || {}).length && !studies.length;
  const form = $("#remedies");
  $("#prove").addEventListener("click", async () => {
    clearErrors(form);
    try {
      const body = { seeds: Number($("#remedy-seeds").value) };
      const study = await (await api(`${base}/remedies`, { method: "POST", json: body })).json();
      location.assign(`${ROOT}/studies/${study.id}`);
    } catch (error) {
      if (error instanceof ProblemError && error.status !== 401) showFieldErrors(form, $("#remedy-seeds"), error);
      else showError(error);
    }
  });
}

const prescription = (fix) =>
  el("li", {}, el("strong", { text: fix.title || fix.fix }), ` ${fix.rationale || ""} `,
    fix.expected ? el("em", { text: fix.expected }) : null,
    el("p", { class: "measured", "data-support": fix.support, text: measuredText(fix) }),
    el("pre", { class: "json", text: JSON.stringify(fix.patch) }));

const SUPPORT = {
  helps: "Helps", partly: "Helps partly", does_not_help: "Did not help", untested: "Not measured",
};

// What the fix did where it was measured (the ranking's evidence), in one sentence.
function measuredText(fix) {
  const m = fix.measured;
  if (!m) return `${SUPPORT.untested}: no network like this one was measured with this fix.`;
  const change = m.accuracy_change;
  const facts = [`the verdict cleared in ${m.cleared} of the ${m.had} seeds that had it`];
  if (present(change.mean)) {
    const spread = present(change.std) ? ` ± ${change.std.toFixed(3)}` : "";
    facts.push(`accuracy ${change.mean >= 0 ? "+" : ""}${change.mean.toFixed(3)}${spread}`);
  }
  const ratio = m.gradient_ratio;
  if (present(ratio.after)) facts.push(`gradient ratio ${number(ratio.before, 2)} → ${number(ratio.after, 2)}`);
  const brought = Object.entries(m.new_verdicts).map(([verdict, seeds]) => `${verdict} in ${seeds}`);
  if (brought.length) facts.push(`it brought ${brought.join(", ")}`);
  return `${SUPPORT[fix.support] || fix.support} — measured on ${m.network}, ${m.seeds} seeds: ${facts.join("; ")}.`;
}

// The per-layer series of the result as one chart, the quantity chosen from a list.
const QUANTITIES = [
  ["kernel.grad_norm", "gradient norm (kernel)", true],
  ["kernel.grad_max_abs", "largest |gradient| (kernel)", true],
  ["kernel.update_ratio", "update / weight ratio (kernel)", true],
  ["kernel.weight_norm", "weight norm (kernel)", false],
  ["kernel.weight_std", "weight S.D. (kernel)", false],
  ["activation.mean", "activation mean", false],
  ["activation.saturated", "saturated fraction", false],
  ["activation.dead", "dead fraction", false],
];

function showSeries(result) {
  const x = result.capture.every === "step" ? result.capture.step : result.capture.epoch;
  const layers = Object.keys(result.series);
  const pick = (path) => layers
    .map((layer) => ({ label: layer, values: path.split(".").reduce((o, k) => o?.[k], result.series[layer]) }))
    .filter((s) => Array.isArray(s.values));
  const select = $("#series-quantity");
  const available = QUANTITIES.filter(([path]) => pick(path).length);
  select.replaceChildren(...available.map(([path, label]) => el("option", { value: path, text: label })));
  const draw = () => {
    const [path, label, log] = available.find(([p]) => p === select.value);
    const xName = result.capture.every === "step" ? "step" : "epoch";
    chart($("#chart-series"), `${label} by layer`, x, pick(path), { log, xName });
  };
  select.addEventListener("change", draw);
  draw();
  const history = result.history;
  // A regression's accuracy is all null: left out, and its baseline drawn dashed instead.
  const curves = ["loss", "accuracy", "val_loss", "val_accuracy"]
    .filter((name) => Array.isArray(history[name]) && history[name].some(present))
    .map((name) => ({ label: name, values: history[name] }));
  const baseline = result.metrics?.baseline?.loss;
  if (present(baseline)) {
    curves.push({ label: "baseline loss", values: history.epoch.map(() => baseline), dash: [6, 4] });
  }
  const title = curves.some((c) => c.label.endsWith("accuracy")) ? "loss and accuracy by epoch"
    : present(baseline) ? "loss and baseline loss by epoch" : "loss by epoch";
  $("#chart-history").setAttribute("aria-label", title[0].toUpperCase() + title.slice(1));
  chart($("#chart-history"), title, history.epoch, curves);
}

// The dataset a run trains on: from its spec while it runs, from its result once done.
function showDataset(spec, section) {
  const dataset = spec.dataset || {};
  const uploaded = dataset.kind === "uploaded";
  const name = section?.name || dataset.data?.name || dataset.kind || "circles";
  const parts = [el("strong", { text: name })];
  if (uploaded) parts.push(" (uploaded dataset ", el("code", { text: dataset.id }), ")");
  else parts.push(" (generated)");
  if (section) {
    const classes = section.task === "regression" ? "regression" : `${section.n_classes} classes`;
    parts.push(`: ${section.n_train} training and ${section.n_validation} validation samples, ${classes}` +
      `${section.standardized ? ", standardized" : ""}`);
  }
  $("#dataset").replaceChildren("Data: ", ...parts);
}
