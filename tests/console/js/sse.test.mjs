import assert from "node:assert/strict";
import { test } from "node:test";
import { js } from "./paths.mjs";

const { SseParser, follow, StreamError } = await import(js("sse.js"));

function collect() {
  const events = [];
  return { events, parser: new SseParser((e) => events.push(e)) };
}

test("frames as the agent writes them", () => {
  const { events, parser } = collect();
  parser.feed('id: 1\nevent: round_started\ndata: {"type":"round_started","round":1}\n\n');
  assert.deepEqual(events, [{ id: "1", type: "round_started", data: '{"type":"round_started","round":1}' }]);
});

test("chunks split anywhere, CRLF and CR line ends, comments and keep-alives", () => {
  const text = ": keep-alive\r\n\r\nid: 7\r\nevent: a\r\ndata: x\r\n\r\nid: 8\revent: b\rdata: y\r\r";
  for (let size = 1; size <= text.length; size += 1) {
    const { events, parser } = collect();
    for (let i = 0; i < text.length; i += size) parser.feed(text.slice(i, i + size));
    assert.deepEqual(events.map((e) => [e.id, e.type, e.data]), [["7", "a", "x"], ["8", "b", "y"]], `chunk size ${size}`);
  }
});

test("data lines join with newlines; the id persists; no data, no event", () => {
  const { events, parser } = collect();
  parser.feed("id: 3\ndata: one\ndata:two\n\nevent: nothing\n\ndata: three\n\n");
  assert.deepEqual(events, [
    { id: "3", type: "message", data: "one\ntwo" },
    { id: "3", type: "message", data: "three" },
  ]);
});

test("an event cut off by the end of the stream is dropped", () => {
  const { events, parser } = collect();
  parser.feed("id: 1\ndata: whole\n\nid: 2\ndata: cut");
  parser.end();
  parser.feed("\n\n");
  assert.deepEqual(events.map((e) => e.data), ["whole"]);
});

test("retry and odd fields", () => {
  const { parser } = collect();
  parser.feed("retry: 2500\nretry: soon\nfoo: bar\nid: a\0b\n\n");
  assert.equal(parser.retry, 2500);
  assert.equal(parser.lastEventId, "");
});

function stream(chunks, { fail = false } = {}) {
  const queue = [...chunks];
  return new ReadableStream({
    pull(controller) {
      if (queue.length) controller.enqueue(new TextEncoder().encode(queue.shift()));
      else if (fail) controller.error(new TypeError("network"));
      else controller.close();
    },
  });
}

test("follow resumes after a drop with Last-Event-ID: nothing missed, nothing repeated", async () => {
  const calls = [];
  const answers = [
    () => new Response(stream(["id: 1\nevent: a\ndata: 1\n\nid: 2\nevent: b\ndata: 2\n\nid: 3\nev"], { fail: true })),
    () => { throw new TypeError("connection refused"); },
    () => new Response(stream(["id: 3\nevent: c\ndata: 3\n\n", "id: 4\nevent: finished\ndata: 4\n\n"])),
  ];
  const fetchImpl = async (url, init) => {
    calls.push({ url, last: init.headers["Last-Event-ID"] ?? null, auth: init.headers.Authorization });
    return answers[calls.length - 1]();
  };
  const seen = [];
  const states = [];
  const last = await follow("/v1/tasks/t/events", {
    headers: { Authorization: "Bearer k" },
    fetchImpl,
    backoff: () => 1,
    onEvent: (e) => seen.push(e.id),
    onState: (s) => states.push(s),
    shouldContinue: async () => false,
  });
  assert.deepEqual(seen, ["1", "2", "3", "4"]);
  assert.deepEqual(calls.map((c) => c.last), [null, "2", "2"]);
  assert.ok(calls.every((c) => c.auth === "Bearer k"));
  assert.equal(last, "4");
  assert.deepEqual(states, ["live", "reconnecting", "reconnecting", "live", "ended"]);
});

test("a clean end asks whether to go on (a run waiting for a signature continues)", async () => {
  let n = 0;
  const fetchImpl = async () => {
    n += 1;
    return new Response(stream([`id: ${n}\ndata: x\n\n`]));
  };
  const asked = [];
  await follow("/e", { fetchImpl, onEvent: () => {}, shouldContinue: async (id) => (asked.push(id), n < 3) });
  assert.equal(n, 3);
  assert.deepEqual(asked, ["1", "2", "3"]);
});

test("401, 403 and 404 stop: retrying cannot help", async () => {
  for (const status of [401, 403, 404]) {
    const fetchImpl = async () => new Response("{}", { status });
    await assert.rejects(follow("/e", { fetchImpl, onEvent: () => {} }), (e) => e instanceof StreamError && e.status === status);
  }
});

test("a 5xx answer is retried; an abort stops", async () => {
  const controller = new AbortController();
  let n = 0;
  const fetchImpl = async () => {
    n += 1;
    if (n === 3) controller.abort();
    return new Response("busy", { status: 503 });
  };
  await follow("/e", { fetchImpl, onEvent: () => {}, backoff: () => 1, signal: controller.signal });
  assert.equal(n, 3);
});
