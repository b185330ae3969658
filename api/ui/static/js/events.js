// Live progress: Server-Sent Events read over fetch() streaming (EventSource cannot send
// the API key's header), one record's stream or many records' on one.

import { FINAL, headers, ProblemError, problemOf, ROOT } from "./api.js";
import { showError } from "./render.js";

// The ids one multiplexed stream follows at most (the service's max_stream_ids default).
const MAX_FOLLOWED = 50;

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Server-Sent Events over fetch(): `onEvent({type, data, id})` until a final state.
// A dropped connection is reopened with Last-Event-ID, a few times in a row at most.
export async function follow(path, onEvent) {
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
export async function followMany(ids, onEvent) {
  for (let start = 0; start < ids.length; start += MAX_FOLLOWED) {
    const some = ids.slice(start, start + MAX_FOLLOWED);
    follow(`/v1/events?ids=${some.join(",")}`, (event) =>
      onEvent(event.data.id, { type: event.type, data: event.data.data })).catch(showError);
  }
}
