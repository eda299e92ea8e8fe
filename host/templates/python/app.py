"""`{{name}}`: counts the words of a text, and keeps it as a note when the
manifest grants memory (a call without the grant answers `denied`).

Build: `componentize-py -d wit -w skill componentize app -o {{name}}.wasm`,
then `darkfactory manifest embed {{name}}.wasm --from {{name}}.toml -o {{name}}.wasm`.
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import log, memory
from wit_world.imports.darkfactory_skill_types import SkillError


class WitWorld(wit_world.WitWorld):
    def run(self, input: str) -> str:
        args = json.loads(input)
        text = args.get("text")
        if not isinstance(text, str):
            # The skill's own error: a 422 with this code and message.
            raise Err(SkillError(code="bad-input", message="`text` must be a string"))
        words = len(text.split())
        log.log(log.Level.INFO, f"counted {words} words")
        out = {"words": words}
        if args.get("keep"):
            try:
                out["note"] = memory.store(text, "agent", [])
            except Err as e:
                # `denied` unless the manifest grants `memory_write`.
                out["note_error"] = type(e.value).__name__
        return json.dumps(out)
