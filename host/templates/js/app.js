// `{{name}}`: counts the words of a text, and keeps it as a note when the
// manifest grants memory (a call without the grant answers `denied`).
//
// Build: `npm install`, then `npm run build` (componentize-js, then
// `darkfactory manifest embed`).

import { log } from "darkfactory:skill/log@0.1.0";
import { store } from "darkfactory:skill/memory@0.1.0";

// Whatever `run` throws is the skill's error: throw `{code, message}`. An
// `Error` has no `code`, so one thrown below is turned into one here.
export function run(input) {
  try {
    return count(JSON.parse(input));
  } catch (e) {
    if (e instanceof Error) {
      throw { code: "exception", message: `${e.name}: ${e.message}` };
    }
    throw e;
  }
}

function count(args) {
  if (typeof args.text !== "string") {
    // The skill's own error: a 422 with this code and message.
    throw { code: "bad-input", message: "`text` must be a string" };
  }
  const words = args.text.split(/\s+/).filter(Boolean).length;
  log("info", `counted ${words} words`);
  const out = { words };
  if (args.keep) {
    try {
      out.note = store(args.text, "agent", []);
    } catch (e) {
      // `denied` unless the manifest grants `memory_write`.
      out.note_error = e.payload ? e.payload.tag : String(e);
    }
  }
  return JSON.stringify(out);
}
