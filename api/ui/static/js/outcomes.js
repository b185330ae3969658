// A classification run is read by its accuracy. A regression has none: its loss is read
// against its baseline, the loss of always predicting the mean target (summary.baseline_loss);
// under it (a ratio under 1) the run beat that, and one that solved the task is far under it.

import { number } from "./render.js";

export const present = (value) => value !== null && value !== undefined;

// A run's summary is a regression's when it has a baseline; one sealed before baselines
// were kept is still told by its loss without an accuracy.
export const runKind = (summary) =>
  present(summary.baseline_loss) || (!present(summary.accuracy) && present(summary.loss))
    ? "regression" : "classification";

// A study row's kind from the seeds that succeeded; null when none did.
export function rowKind(row) {
  if (row.baseline_loss?.n) return "regression";
  if (row.accuracy.n) return "classification";
  return row.loss.n ? "regression" : null;
}

// Loss ÷ baseline, and whether the loss beat the baseline.
export function againstBaseline(loss, baseline) {
  if (!present(loss) || !present(baseline) || !(baseline > 0)) return "–";
  const ratio = loss / baseline;
  return `${number(ratio, 3)} (${ratio < 1 ? "beat it" : "did not beat it"})`;
}

// A run's outcome as [term, value] pairs: its loss, then its accuracy or its baseline.
export function outcomeFacts(summary) {
  const loss = ["loss", number(summary.loss)];
  if (runKind(summary) === "classification") return [loss, ["accuracy", number(summary.accuracy)]];
  return [loss,
    ["baseline loss (predicting the mean)", number(summary.baseline_loss)],
    ["loss ÷ baseline", againstBaseline(summary.loss, summary.baseline_loss)]];
}
