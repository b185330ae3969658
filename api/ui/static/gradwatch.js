// The pages of the gradwatch web UI: one module, reading the same /v1 API as any client.
//
// The API key (keys mode) is kept in localStorage and sent as an Authorization header,
// never in a URL; so event streams are read with fetch() streaming (EventSource cannot
// send headers), and in keys mode plots are fetched as blobs. Every URL starts from the
// page's root (the service's root_path), so the UI works behind a path prefix.

const ROOT = document.body.dataset.root || "";
const PAGE_ID = document.body.dataset.id || "";
const KEY_STORE = "gradwatch.key";
const FINAL = new Set(["succeeded", "failed", "cancelled"]);
// The ids one multiplexed stream follows at most (the service's max_stream_ids default).
const MAX_FOLLOWED = 50;

// ------------------------------------------------------------------------- the API

class ProblemError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

const storedKey = () => localStorage.getItem(KEY_STORE) || "";

function headers(extra = {}) {
  const key = storedKey();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

// `json` is sent as JSON; `body` (a FormData) as it is, its Content-Type set by the browser.
async function api(path, { method = "GET", json, body, headers: extra = {} } = {}) {
  const init = { method, headers: headers(extra), body };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  const response = await fetch(ROOT + path, init);
  if (!response.ok) throw new ProblemError(response.status, await problemOf(response));
  return response;
}

async function problemOf(response) {
  try {
    return await response.json();
  } catch {
    return { title: response.statusText || `HTTP ${response.status}` };
  }
}

const getJSON = async (path) => (await api(path)).json();
const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Server-Sent Events over fetch(): `onEvent({type, data, id})` until a final state.
// A dropped connection is reopened with Last-Event-ID, a few times in a row at most.
async function follow(path, onEvent) {
  let last = null;
  let failures = 0;
  for (;;) {
    const extra = { Accept: "text/event-stream" };
    if (last) extra["Last-Event-ID"] = last;
    try {
      const response = await fetch(ROOT + path, { headers: headers(extra) });
      if (response.status === 204) return;
      if (!response.ok) throw new ProblemError(response.status, await problemOf(response));
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return; // closed without a final state: the record is gone, or all ended
        buffer += value.replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const event = parseEvent(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
          if (!event) continue;
          // The server stopped serving this stream (Redis went away, a slow reader): resume.
          if (event.type === "interrupted") throw new Error(event.data.detail);
          failures = 0;
          last = event.id || last;
          onEvent(event);
          if (event.type === "state" && FINAL.has(event.data.status)) return;
        }
      }
    } catch (error) {
      if (error instanceof ProblemError || ++failures > 5) throw error;
      await pause(1000 * failures);
    }
  }
}

function parseEvent(block) {
  let type = "message";
  let id = null;
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (name === "event") type = value;
    else if (name === "data") data.push(value);
    else if (name === "id") id = value;
  }
  return data.length ? { type, id, data: JSON.parse(data.join("\n")) } : null;
}

// Many experiments and studies on one stream (GET /v1/events?ids=): `onEvent(id, event)`
// with each record's own event, until every one has ended.
async function followMany(ids, onEvent) {
  for (let start = 0; start < ids.length; start += MAX_FOLLOWED) {
    const some = ids.slice(start, start + MAX_FOLLOWED);
    follow(`/v1/events?ids=${some.join(",")}`, (event) =>
      onEvent(event.data.id, { type: event.type, data: event.data.data })).catch(showError);
  }
}

// ----------------------------------------------------------------------- rendering

const $ = (selector) => document.querySelector(selector);

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

const number = (value, digits = 4) =>
  value === null || value === undefined ? "–" : Number(value).toPrecision(digits);
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "–");
const bytes = (count) =>
  count < 1024 ? `${count} B` : count < 1024 * 1024 ? `${(count / 1024).toFixed(1)} KB`
    : `${(count / (1024 * 1024)).toFixed(1)} MB`;
const link = (path, text) => el("a", { href: ROOT + path, text });
const statusBadge = (status) => el("span", { class: `status ${status}`, text: status });

function showError(error) {
  const box = $("#page-error");
  let text = error.message;
  if (error.status === 401) text = "This service needs an API key: enter it above.";
  box.textContent = text;
  box.hidden = false;
}

function setProgress(done, total, text) {
  $("#progress").max = Math.max(total, 1);
  $("#progress").value = done;
  $("#progress-text").textContent = text;
}

// A plot as <figure>; with a key, fetched with it and shown from a blob.
function plotFigure(url, name, description) {
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

async function showPlots(base, target) {
  const { items } = await getJSON(`${base}/plots`);
  target.replaceChildren(
    ...items.map((item) => plotFigure(`${base}/plots/${item.name}.png`, item.name, item.description)),
  );
  return items;
}

// A uPlot chart of `series` ([{label, values}]) over `x` (named `xName`), in `target`.
// With the mouse: drag to zoom, double-click to zoom out, hover to read the values. From
// the keyboard (`target` is focusable): see chartKeys; what the keys reach is written
// under the chart, in a live region a screen reader announces.
function chart(target, title, x, series, { log = false, xName = "epoch" } = {}) {
  const width = Math.min(target.clientWidth || 900, 1000);
  const clean = (values) => values.map((v) => (v === null || (log && v <= 0) ? null : v));
  const options = {
    title,
    width,
    height: 320,
    scales: { x: { time: false }, y: log ? { distr: 3 } : {} },
    series: [
      { label: "epoch" },
      ...series.map((s, i) => ({
        label: s.label, stroke: PALETTE[i % PALETTE.length], width: 1.5, ...(s.dash ? { dash: s.dash } : {}),
      })),
    ],
    axes: [{}, { size: 70 }],
    cursor: { drag: { x: true, y: false } },
  };
  target.replaceChildren();
  const plot = new window.uPlot(options, [x, ...series.map((s) => clean(s.values))], target);
  const readout = el("p", { class: "chart-readout", "aria-live": "polite" });
  target.append(readout);
  chartKeys(target, plot, readout, x, series, xName);
  return plot;
}

// The keys of a focused chart: Left/Right step one point, Home/End go to the first/last
// point in view, + and - zoom in and out around the point, 0 (or Escape) shows it all.
// Each key writes the point's values (and the range in view) under the chart.
const CHART_KEYS = "Arrow keys step through the points, Home and End go to the first and "
  + "last, + and - zoom in and out, 0 shows all.";

function chartKeys(target, plot, readout, x, series, xName) {
  target.tabIndex = 0;
  target.setAttribute("role", "group");
  target.setAttribute("aria-roledescription", "chart");
  target.title = CHART_KEYS;
  const last = x.length - 1;
  let at = null; // the index of the point the keys are on
  const inView = () => {
    const { min, max } = plot.scales.x;
    let first = x.findIndex((value) => value >= min);
    let end = x.findLastIndex((value) => value <= max);
    if (first < 0 || end < first) [first, end] = [0, last];
    return [first, end];
  };
  const show = (range = false) => {
    const [first, end] = inView();
    const values = series.map((s) => `${s.label} ${number(s.values[at])}`).join(", ");
    const shown = `${xName}s ${x[first]} to ${x[end]} of ${x[0]} to ${x[last]} shown`;
    readout.textContent = range ? `${shown}; ${xName} ${x[at]}: ${values}` : `${xName} ${x[at]}: ${values}`;
    plot.setCursor({ left: plot.valToPos(x[at], "x"), top: plot.over.clientHeight / 2 });
  };
  const zoom = (factor) => {
    const [first, end] = inView();
    const centre = x[at ?? Math.round((first + end) / 2)];
    // The new width around the point, moved back inside the data at either end.
    const width = Math.min((plot.scales.x.max - plot.scales.x.min) * factor, x[last] - x[0]);
    const shift = Math.max(x[0] - (centre - width / 2), 0) - Math.max(centre + width / 2 - x[last], 0);
    const min = centre - width / 2 + shift;
    const max = centre + width / 2 + shift;
    if (x.filter((value) => value >= min && value <= max).length < 2) return;
    scale(min, max);
  };
  // In a batch, so the scale has changed when the key's values are written.
  const scale = (min, max) => plot.batch(() => plot.setScale("x", { min, max }));
  target.onkeydown = (event) => {
    if (event.altKey || event.ctrlKey || event.metaKey || !x.length) return;
    const [first, end] = inView();
    const from = at === null || at < first || at > end ? null : at;
    let range = false;
    switch (event.key) {
      case "ArrowRight": case "ArrowUp": at = from === null ? first : Math.min(from + 1, end); break;
      case "ArrowLeft": case "ArrowDown": at = from === null ? end : Math.max(from - 1, first); break;
      case "Home": at = first; break;
      case "End": at = end; break;
      case "+": case "=": at = from; zoom(0.5); range = true; break;
      case "-": case "_": at = from; zoom(2); range = true; break;
      case "0": case "Escape": scale(x[0], x[last]); range = true; break;
      default: return;
    }
    event.preventDefault();
    const [low, high] = inView();
    at = at === null ? Math.round((low + high) / 2) : Math.min(Math.max(at, low), high);
    show(range);
  };
}

// ----------------------------------------------------------------------- outcomes
//
// A classification run is read by its accuracy. A regression has none: its loss is read
// against its baseline, the loss of always predicting the mean target (summary.baseline_loss);
// under it (a ratio under 1) the run beat that, and one that solved the task is far under it.

const present = (value) => value !== null && value !== undefined;

// A run's summary is a regression's when it has a baseline; one sealed before baselines
// were kept is still told by its loss without an accuracy.
const runKind = (summary) =>
  present(summary.baseline_loss) || (!present(summary.accuracy) && present(summary.loss))
    ? "regression" : "classification";

// A study row's kind from the seeds that succeeded; null when none did.
function rowKind(row) {
  if (row.baseline_loss?.n) return "regression";
  if (row.accuracy.n) return "classification";
  return row.loss.n ? "regression" : null;
}

// Loss ÷ baseline, and whether the loss beat the baseline.
function againstBaseline(loss, baseline) {
  if (!present(loss) || !present(baseline) || !(baseline > 0)) return "–";
  const ratio = loss / baseline;
  return `${number(ratio, 3)} (${ratio < 1 ? "beat it" : "did not beat it"})`;
}

// A run's outcome as [term, value] pairs: its loss, then its accuracy or its baseline.
function outcomeFacts(summary) {
  const loss = ["loss", number(summary.loss)];
  if (runKind(summary) === "classification") return [loss, ["accuracy", number(summary.accuracy)]];
  return [loss,
    ["baseline loss (predicting the mean)", number(summary.baseline_loss)],
    ["loss ÷ baseline", againstBaseline(summary.loss, summary.baseline_loss)]];
}

const factList = (pairs) => pairs.flatMap(([term, value]) => [el("dt", { text: term }), el("dd", { text: value })]);

const PALETTE = ["#1f5fbf", "#c2410c", "#15803d", "#7e22ce", "#be123c", "#0e7490", "#854d0e", "#334155"];

// ---------------------------------------------------------------------- the key form

function keyForm() {
  const state = $("#key-state");
  const show = () => { state.textContent = storedKey() ? "key saved in this browser" : "no key (open mode)"; };
  $("#key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    localStorage.setItem(KEY_STORE, $("#key-input").value.trim());
    $("#key-input").value = "";
    location.reload();
  });
  $("#key-forget").addEventListener("click", () => {
    localStorage.removeItem(KEY_STORE);
    location.reload();
  });
  show();
}

// ------------------------------------------------------------------------- the pages

async function homePage() {
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

const emptyRow = (span, text) => el("tr", {}, el("td", { colspan: span, text }));

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

async function experimentPage() {
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
    el("pre", { class: "json", text: JSON.stringify(fix.patch) }));

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

async function studyPage() {
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
  const spread = (stat) => (!stat || stat.mean === null ? "–" : `${number(stat.mean)} ± ${number(stat.std ?? 0, 2)}`);
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
  $("#remedy-change").textContent = byLoss ? "Loss change" : "Accuracy change";
  $("#remedy-summary tbody").replaceChildren(...fixes.map((fix) => el("tr", {},
    el("th", { scope: "row", text: fix.fix }),
    el("td", { text: fix.verdicts.map((v) => `${v.verdict}: ${v.cleared} of ${v.baseline}`).join(", ") || "–" }),
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

async function comparePage() {
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

// ----------------------------------------------------------------------- datasets

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
const datasetOption = (dataset) =>
  `${dataset.name}: ${dataset.samples} samples of ${shapeOf(dataset)}, ` +
  `${dataset.classes ? `${dataset.classes.length} classes` : "regression"} (…${dataset.id.slice(-6)})`;

const trainLink = (dataset) =>
  el("a", { href: `${ROOT}/new?dataset=${dataset.id}`, text: "Train on this", "aria-label": `Train on ${dataset.name}` });

async function datasetsPage() {
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

// --------------------------------------------------------------------- the new form

function getPath(object, path) {
  return path.split(".").reduce((o, k) => (o && typeof o === "object" ? o[k] : undefined), object);
}

function setPath(object, path, value) {
  const keys = path.split(".");
  const last = keys.pop();
  let node = object;
  for (const key of keys) {
    if (typeof node[key] !== "object" || node[key] === null) node[key] = {};
    node = node[key];
  }
  if (value === undefined) delete node[last];
  else node[last] = value;
}

function fieldValue(input) {
  const text = input.value.trim();
  if (text === "") return undefined;
  if (input.dataset.kind === "list") return text.split(",").map((part) => Number(part.trim()));
  return input.type === "number" ? Number(text) : text;
}

function clearErrors(form) {
  for (const box of form.querySelectorAll(".field-error")) box.textContent = "";
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  $("#page-error").hidden = true;
}

// Each field error of a problem beside the input for its field (the longest path that
// is a prefix of it), else beside the JSON; the first such input gets the focus.
function showFieldErrors(form, json, error) {
  const inputs = [...form.querySelectorAll("[data-path]")];
  const errors = error.problem.errors || [{ field: "", reason: error.message }];
  let first = null;
  for (const { field, reason } of errors) {
    const matched = inputs
      .filter((i) => field === i.dataset.path || field.startsWith(`${i.dataset.path}.`))
      .sort((a, b) => b.dataset.path.length - a.dataset.path.length)[0];
    const input = matched || json;
    const box = document.getElementById(input.getAttribute("aria-describedby"));
    const text = !matched && field ? `${field}: ${reason}` : reason;
    box.textContent = box.textContent ? `${box.textContent} ${text}` : text;
    input.setAttribute("aria-invalid", "true");
    first = first || input;
  }
  first.focus();
}

// The fields an uploaded dataset takes besides its id; a generated set's others would be a 422.
const UPLOADED_KEEPS = ["validation_split", "standardize"];

// The spec's dataset once the picker says `id` ("" : none): the uploaded one, keeping the
// fields it takes; none drops an uploaded dataset and leaves a generated one as it was.
function pickedDataset(current, id) {
  const was = current && typeof current === "object" ? current : {};
  const kept = Object.fromEntries(UPLOADED_KEEPS.filter((key) => key in was).map((key) => [key, was[key]]));
  if (id) return { kind: "uploaded", id, ...kept };
  if (was.kind !== "uploaded") return current;
  return Object.keys(kept).length ? kept : undefined;
}

// A field's value as the spec holds it, and back.
function showField(input, spec) {
  const value = getPath(spec, input.dataset.path);
  if (input.dataset.kind === "uploaded") {
    const id = value?.kind === "uploaded" ? String(value.id ?? "") : "";
    if (id && ![...input.options].some((option) => option.value === id)) {
      input.append(el("option", { value: id, text: `${id} (not among your datasets)` }));
    }
    input.value = id;
  } else {
    input.value = value === undefined ? "" : Array.isArray(value) ? value.join(", ") : value;
  }
}

function setField(input, spec) {
  const path = input.dataset.path;
  const value = input.dataset.kind === "uploaded"
    ? pickedDataset(getPath(spec, path), input.value)
    : fieldValue(input);
  setPath(spec, path, value);
}

function specForm({ form, json, preset, kind, post, page }) {
  const presets = JSON.parse($("#presets").textContent)[kind === "experiments" ? "items" : "studies"];
  const inputs = [...form.querySelectorAll("[data-path]")];
  const parse = () => JSON.parse(json.value || "{}");
  const fillFields = () => {
    let spec;
    try { spec = parse(); } catch { return; }
    for (const input of inputs) showField(input, spec);
  };
  const choose = () => {
    const chosen = presets.find((p) => p.name === preset.value);
    const spec = structuredClone(chosen ? chosen.spec || chosen.study : {});
    // A choice such as the dataset carries over to the next preset.
    for (const input of inputs) if ("sticky" in input.dataset && input.value) setField(input, spec);
    json.value = JSON.stringify(spec, null, 2);
    $(`#${preset.id}-about`).textContent = chosen ? chosen.description : "";
    fillFields();
  };
  preset.addEventListener("change", choose);
  json.addEventListener("input", fillFields);
  for (const input of inputs) {
    input.addEventListener("input", () => {
      try {
        const spec = parse();
        setField(input, spec);
        json.value = JSON.stringify(spec, null, 2);
      } catch { /* the JSON is being edited: it is checked on submit */ }
    });
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    let body;
    try {
      body = parse();
    } catch (error) {
      showFieldErrors(form, json, new ProblemError(400, { errors: [{ field: "", reason: `not JSON: ${error.message}` }] }));
      return;
    }
    try {
      const extra = kind === "experiments" ? { "Idempotency-Key": crypto.randomUUID() } : {};
      const created = await (await api(post, { method: "POST", json: body, headers: extra })).json();
      location.assign(`${ROOT}/${page}/${created.id}`);
    } catch (error) {
      if (error instanceof ProblemError && error.status !== 401) showFieldErrors(form, json, error);
      else showError(error);
    }
  });
  choose();
}

async function newPage() {
  specForm({ form: $("#experiment-form"), json: $("#experiment-json"), preset: $("#experiment-preset"),
    kind: "experiments", post: "/v1/experiments", page: "experiments" });
  specForm({ form: $("#study-form"), json: $("#study-json"), preset: $("#study-preset"),
    kind: "studies", post: "/v1/studies", page: "studies" });
  await datasetPicker($("#f-dataset"), $("#experiment-json"));
}

// The owner's uploaded datasets in the picker; `?dataset=ID` (a "train on this" link) picks one.
async function datasetPicker(select, json) {
  const wanted = new URLSearchParams(location.search).get("dataset") || "";
  const about = $("#f-dataset-about");
  let items = [];
  try {
    items = (await getJSON("/v1/datasets?limit=200")).items;
    if (!items.length) about.prepend("None uploaded yet. ");
  } catch (error) {
    const why = error.status === 401 ? "enter the API key above to list them" : error.message;
    about.prepend(`Your datasets could not be listed: ${why}. `);
  }
  if (/^[0-9A-Za-z]{1,32}$/.test(wanted) && !items.some((d) => d.id === wanted)) {
    try {
      items.unshift(await getJSON(`/v1/datasets/${wanted}`));
    } catch (error) {
      $("#f-dataset-error").textContent = `dataset ${wanted}: ${error.message}`;
    }
  }
  select.append(...items.map((dataset) => el("option", { value: dataset.id, text: datasetOption(dataset) })));
  // The JSON may already name one; a link's choice goes into the JSON as if picked.
  json.dispatchEvent(new Event("input"));
  if (wanted && [...select.options].some((option) => option.value === wanted)) {
    select.value = wanted;
    select.dispatchEvent(new Event("input"));
  }
}

// --------------------------------------------------------------------------- start

const PAGES = {
  home: homePage, new: newPage, experiment: experimentPage, study: studyPage, compare: comparePage,
  datasets: datasetsPage,
};

// A module runs once the document is parsed, after the deferred uPlot script.
keyForm();
Promise.resolve(PAGES[document.body.dataset.page]?.()).catch(showError);
