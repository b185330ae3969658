// The forms: a spec's fields kept in step with its JSON, and a problem's field errors shown
// beside the inputs they name.

import { api, ProblemError, ROOT } from "./api.js";
import { $, el, showError } from "./render.js";

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

export function clearErrors(form) {
  for (const box of form.querySelectorAll(".field-error")) box.textContent = "";
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  $("#page-error").hidden = true;
}

// Each field error of a problem beside the input for its field (the longest path that
// is a prefix of it), else beside the JSON; the first such input gets the focus.
export function showFieldErrors(form, json, error) {
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

export function specForm({ form, json, preset, kind, post, page }) {
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
