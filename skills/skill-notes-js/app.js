// notes-js: a Dark Factory skill in JavaScript (componentize-js).
//
// Keeps a note in the agent's memory, finds it again, optionally fetches a
// URL with `fetch` (outgoing HTTP through `wasi:http`), and says what the
// board answered a skill that has no board grant (`denied`). Input:
//
//     {"text": "...", "urls": ["http://host:port/path"], "fail": "error" | "crash" | "abort"}
//
// or `{"echo": VALUE}`, answered VALUE (what a call costs, for the benchmarks).
//
// Build: `componentize-js --wit wit --world-name skill -o notes-js.wasm app.js`.

import { store, search } from "darkfactory:skill/memory@0.1.0";
import { lists } from "darkfactory:skill/board@0.1.0";

// A `result` error is thrown as an object whose `payload` is the variant.
function errorTag(e) {
  return e && e.payload && e.payload.tag ? e.payload.tag : String(e);
}

// Whatever `run` throws is the skill's error, so it must be a
// `{code, message}`: an `Error` thrown anywhere below becomes one here.
export async function run(input) {
  try {
    return await notes(JSON.parse(input));
  } catch (e) {
    if (e instanceof Error) {
      throw { code: "exception", message: `${e.name}: ${e.message}\n${e.stack}` };
    }
    throw e;
  }
}

async function notes(args) {
  if ("echo" in args) {
    // Echo-sized work: what a call costs the host (the benchmarks).
    return JSON.stringify(args.echo);
  }
  if (args.fail === "error") {
    // Throwing `{code, message}` answers the skill's own error.
    throw { code: "bad-input", message: "asked to fail" };
  }
  if (args.fail === "crash") {
    throw new Error("notes-js was asked to crash");
  }
  if (args.fail === "abort") {
    // Not a `{code, message}`: the component cannot answer it and traps;
    // what the runtime printed comes back with the trap.
    throw "notes-js threw a string";
  }
  const out = { language: "javascript" };
  if (args.text) {
    out.id = store(args.text, "agent", [["source", "notes-js"]]);
    out.hits = search(args.text, "agent", 5, []).length;
  }
  try {
    lists();
    out.board = "allowed";
  } catch (e) {
    out.board = errorTag(e);
  }
  out.http = [];
  for (const url of args.urls || []) {
    try {
      const response = await fetch(url, { redirect: args.redirect || "follow" });
      out.http.push({ status: response.status, body: await response.text() });
    } catch (e) {
      out.http.push({ error: String(e.message || e) });
    }
  }
  return JSON.stringify(out);
}
