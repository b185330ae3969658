// The new page: an experiment's and a study's spec forms, and the dataset picker.

import { getJSON } from "../api.js";
import { $, el } from "../render.js";
import { specForm } from "../forms.js";
import { datasetOption } from "./datasets.js";

export async function newPage() {
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
