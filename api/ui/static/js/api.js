// The /v1 API as the pages call it: the page's root and id, the stored API key (sent as an
// Authorization header, never in a URL), and a failed response as a ProblemError.

export const ROOT = document.body.dataset.root || "";
export const PAGE_ID = document.body.dataset.id || "";
export const KEY_STORE = "gradwatch.key";
export const FINAL = new Set(["succeeded", "failed", "cancelled"]);

export class ProblemError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

export const storedKey = () => localStorage.getItem(KEY_STORE) || "";

export function headers(extra = {}) {
  const key = storedKey();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

// `json` is sent as JSON; `body` (a FormData) as it is, its Content-Type set by the browser.
export async function api(path, { method = "GET", json, body, headers: extra = {} } = {}) {
  const init = { method, headers: headers(extra), body };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  const response = await fetch(ROOT + path, init);
  if (!response.ok) throw new ProblemError(response.status, await problemOf(response));
  return response;
}

export async function problemOf(response) {
  try {
    return await response.json();
  } catch {
    return { title: response.statusText || `HTTP ${response.status}` };
  }
}

export const getJSON = async (path) => (await api(path)).json();
