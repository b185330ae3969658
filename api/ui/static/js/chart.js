// The interactive charts: uPlot, read by mouse or keyboard.

import { el, number } from "./render.js";

const PALETTE = ["#1f5fbf", "#c2410c", "#15803d", "#7e22ce", "#be123c", "#0e7490", "#854d0e", "#334155"];

// A uPlot chart of `series` ([{label, values}]) over `x` (named `xName`), in `target`.
// With the mouse: drag to zoom, double-click to zoom out, hover to read the values. From
// the keyboard (`target` is focusable): see chartKeys; what the keys reach is written
// under the chart, in a live region a screen reader announces.
export function chart(target, title, x, series, { log = false, xName = "epoch" } = {}) {
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
