// A server-sent events parser over fetch() + ReadableStream.
//
// Hand-written because EventSource cannot POST (our send and ChatKit requests are POSTs with
// JSON bodies) and cannot set Last-Event-ID on a first connection; the framing rules are the
// WHATWG ones: lines end in CRLF, LF or CR; "field: value"; a blank line dispatches; comment
// lines start with ":"; multi-line data joins with "\n"; "id" persists as the last event id.

/**
 * Yields {event, data, id} for each event in the response body. `id` is the last event id
 * seen so far (as EventSource would report it). Throws whatever the body read throws (a
 * network drop surfaces as a TypeError; an abort as an AbortError).
 */
export async function* readEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder("utf-8");
  let buffer = "";
  let event = "";
  let data = [];
  let hasData = false;
  let lastId = null;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let start = 0;
      for (;;) {
        let end = -1;
        let skip = 1;
        for (let k = start; k < buffer.length; k++) {
          const ch = buffer[k];
          if (ch === "\n") { end = k; break; }
          if (ch === "\r") {
            // A CR at the very end may be the first half of a CRLF: wait for the next chunk.
            if (k + 1 >= buffer.length) { end = -2; break; }
            end = k;
            skip = buffer[k + 1] === "\n" ? 2 : 1;
            break;
          }
        }
        if (end < 0) break;
        const line = buffer.slice(start, end);
        start = end + skip;
        if (line === "") {
          if (hasData) yield { event: event || "message", data: data.join("\n"), id: lastId };
          event = "";
          data = [];
          hasData = false;
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon === -1 ? line : line.slice(0, colon);
        let value = colon === -1 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "event") event = value;
        else if (field === "data") { data.push(value); hasData = true; }
        else if (field === "id" && !value.includes("\u0000")) lastId = value;
      }
      buffer = buffer.slice(start);
    }
  } finally {
    reader.releaseLock();
  }
}
