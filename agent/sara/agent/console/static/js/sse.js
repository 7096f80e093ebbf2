// Server-Sent Events read with fetch(), so the request can carry the bearer key: EventSource
// cannot send an Authorization header, and a key in the URL would end up in logs.
//
// SseParser follows the WHATWG event-stream rules (CR, LF or CRLF line ends, split anywhere
// across chunks; "data" lines joined by "\n"; comments ignored; "id" kept across events).
// follow() reads one stream and, when it drops, reconnects with Last-Event-ID: the agent
// resumes after that event, so nothing is missed and nothing repeated.

export class SseParser {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buffer = "";
    this.lastEventId = "";
    this.retry = null;
    this.data = [];
    this.type = "";
    this.skipLf = false;
  }

  feed(text) {
    if (this.skipLf && text.startsWith("\n")) text = text.slice(1); // the LF of a split CRLF
    this.skipLf = false;
    this.buffer += text;
    let start = 0;
    for (let i = 0; i < this.buffer.length; i += 1) {
      const ch = this.buffer[i];
      if (ch !== "\n" && ch !== "\r") continue;
      this.line(this.buffer.slice(start, i));
      if (ch === "\r") {
        if (i + 1 === this.buffer.length) this.skipLf = true;
        else if (this.buffer[i + 1] === "\n") i += 1;
      }
      start = i + 1;
    }
    this.buffer = this.buffer.slice(start);
  }

  /** The stream ended: an event without its blank line is dropped (as the standard says). */
  end() {
    this.buffer = "";
    this.data = [];
    this.type = "";
  }

  line(line) {
    if (line === "") {
      this.dispatch();
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "event") this.type = value;
    else if (field === "id" && !value.includes("\0")) this.lastEventId = value;
    else if (field === "retry" && /^\d+$/.test(value)) this.retry = Number(value);
  }

  dispatch() {
    const { data, type } = this;
    this.data = [];
    this.type = "";
    if (data.length === 0) return;
    this.onEvent({ id: this.lastEventId, type: type || "message", data: data.join("\n") });
  }
}

export class StreamError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });

/**
 * Follow an event stream until `shouldContinue()` says it is over.
 *
 * options: headers (e.g. Authorization), lastEventId (resume after it), onEvent({id, type,
 * data}), onState("live" | "reconnecting" | "ended"), shouldContinue(lastEventId) → Promise<bool>
 * (asked whenever a stream ends; the caller checks whether the run has ended), signal,
 * fetchImpl, backoff(attempt) → ms. 401/403/404 answers throw StreamError: retrying won't help.
 */
export async function follow(url, options = {}) {
  const {
    headers = {},
    onEvent,
    onState = () => {},
    shouldContinue = async () => false,
    signal,
    fetchImpl = globalThis.fetch,
    backoff = (attempt) => Math.min(10_000, 500 * 2 ** attempt),
  } = options;
  let lastEventId = options.lastEventId ? String(options.lastEventId) : "";
  let failures = 0;
  while (!signal?.aborted) {
    const parser = new SseParser((event) => {
      lastEventId = event.id || lastEventId;
      failures = 0;
      onEvent(event);
    });
    parser.lastEventId = lastEventId;
    let dropped = false;
    try {
      const sent = { Accept: "text/event-stream", ...headers };
      if (lastEventId) sent["Last-Event-ID"] = lastEventId;
      const response = await fetchImpl(url, { headers: sent, signal, cache: "no-store" });
      if ([401, 403, 404].includes(response.status)) {
        throw new StreamError(response.status, `the stream answered ${response.status}`);
      }
      if (!response.ok || !response.body) {
        dropped = true;
      } else {
        onState("live");
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          parser.feed(value);
        }
        parser.end();
      }
    } catch (error) {
      if (error instanceof StreamError) throw error;
      if (signal?.aborted) break;
      dropped = true;
    }
    if (signal?.aborted) break;
    if (dropped) {
      onState("reconnecting");
      await sleep(backoff(failures), signal);
      failures += 1;
      continue;
    }
    if (!(await shouldContinue(lastEventId))) break;
  }
  onState("ended");
  return lastEventId;
}
