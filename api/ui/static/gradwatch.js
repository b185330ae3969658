// The pages of the gradwatch web UI, reading the same /v1 API as any client. This module
// starts the page named by <body data-page>; the rest lives in js/, one concern a module:
//   js/api.js       the HTTP calls, the API key, a failed response as a ProblemError
//   js/events.js    live progress from the event streams
//   js/render.js    elements, formatted values, the error box, the service's plots
//   js/chart.js     the interactive charts (uPlot)
//   js/outcomes.js  a run's outcome: accuracy, or loss against a regression's baseline
//   js/forms.js     the spec forms and a problem's field errors
//   js/pages/*.js   each page's behaviour
// Plain native modules with relative imports, served as they are: no build step.
//
// The API key (keys mode) is kept in localStorage and sent as an Authorization header,
// never in a URL; so event streams are read with fetch() streaming (EventSource cannot
// send headers), and in keys mode plots are fetched as blobs. Every URL starts from the
// page's root (the service's root_path), so the UI works behind a path prefix.

import { KEY_STORE, storedKey } from "./js/api.js";
import { $, showError } from "./js/render.js";
import { comparePage } from "./js/pages/compare.js";
import { datasetsPage } from "./js/pages/datasets.js";
import { experimentPage } from "./js/pages/experiment.js";
import { homePage } from "./js/pages/home.js";
import { newPage } from "./js/pages/new.js";
import { studyPage } from "./js/pages/study.js";

// The key form: a key saved in this browser, or forgotten; either reloads the page.
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

const PAGES = {
  home: homePage, new: newPage, experiment: experimentPage, study: studyPage, compare: comparePage,
  datasets: datasetsPage,
};

// A module runs once the document is parsed, after the deferred uPlot script.
keyForm();
Promise.resolve(PAGES[document.body.dataset.page]?.()).catch(showError);
