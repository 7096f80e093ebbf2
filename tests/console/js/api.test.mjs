import assert from "node:assert/strict";
import { test } from "node:test";
import { js } from "./paths.mjs";

const { ApiError, createApi, session } = await import(js("api.js"));

function memoryStorage() {
  const data = new Map();
  return { getItem: (k) => data.get(k) ?? null, setItem: (k, v) => data.set(k, String(v)), removeItem: (k) => data.delete(k), data };
}

test("every call carries the key as a bearer header, never in the URL", async () => {
  const seen = [];
  const fetchImpl = async (url, init) => {
    seen.push({ url, init });
    return new Response(JSON.stringify({ id: "t1", status: "running" }), { status: 202 });
  };
  const api = createApi({ key: () => "secret-key", fetchImpl });
  await api.start({ instruction: "x" });
  await api.tasks({ status: "", patient: "S1", limit: 50, cursor: null });
  await api.decide("t1", "a/1", { decision: "approve", payload_sha256: "ab" });
  assert.deepEqual(seen.map((s) => [s.init.method, s.url]), [
    ["POST", "/v1/tasks"],
    ["GET", "/v1/tasks?patient=S1&limit=50"],
    ["POST", "/v1/tasks/t1/actions/a%2F1"],
  ]);
  for (const s of seen) {
    assert.equal(s.init.headers.Authorization, "Bearer secret-key");
    assert.ok(!s.url.includes("secret-key"));
  }
  assert.equal(seen[0].init.headers.Prefer, "respond-async");
  assert.equal(seen[0].init.body, '{"instruction":"x"}');
});

test("failures carry status, detail and code; a network failure is status 0", async () => {
  const api = createApi({
    key: () => "k",
    fetchImpl: async () => new Response(JSON.stringify({ detail: "the FHIR server could not be reached", code: "fhir_unreachable" }), { status: 502 }),
  });
  await assert.rejects(api.reread("t", 3), (e) => e instanceof ApiError && e.status === 502 && e.code === "fhir_unreachable");
  const offline = createApi({ key: () => "k", fetchImpl: async () => { throw new TypeError("fetch failed"); } });
  await assert.rejects(offline.me(), (e) => e.status === 0);
});

test("session storage holds the key and hands an MRN to the next page once", () => {
  const storage = memoryStorage();
  session.setKey("k1", storage);
  assert.equal(session.key(storage), "k1");
  session.clear(storage);
  assert.equal(session.key(storage), "");
  session.handPatient("S1", storage);
  assert.equal(session.takePatient(storage), "S1");
  assert.equal(session.takePatient(storage), "");
});
