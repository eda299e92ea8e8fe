"""notes-py: a Dark Factory skill in Python (componentize-py).

Keeps a note in the agent's memory, finds it again, optionally fetches a
URL over outgoing HTTP (`wasi:http`), and says what the board answered a
skill that has no board grant (`denied`). Input:

    {"text": "...", "urls": ["http://host:port/path"], "fail": "error" | "crash"}

or `{"echo": VALUE}`, answered VALUE (what a call costs, for the benchmarks).

Build: `darkfactory new` writes this project's `wit/`; then
`componentize-py -d wit -w skill componentize app -o notes-py.wasm`.
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import board, memory, outgoing_handler
from wit_world.imports import wasi_http_types as http
from wit_world.imports.darkfactory_skill_types import SkillError


def fetch(url: str) -> dict:
    """GET `url`; the status and body, or the HTTP error the host answered."""
    scheme, rest = url.split("://", 1)
    authority, _, path = rest.partition("/")
    request = http.OutgoingRequest(http.Fields.from_list([]))
    request.set_scheme(http.Scheme_Https() if scheme == "https" else http.Scheme_Http())
    request.set_authority(authority)
    request.set_path_with_query("/" + path)
    try:
        future = outgoing_handler.handle(request, None)
    except Err as e:
        return {"error": type(e.value).__name__.removeprefix("ErrorCode_")}
    while True:
        answer = future.get()
        if answer is not None:
            break
        future.subscribe().block()
    if isinstance(answer.value, Err) or isinstance(answer.value.value, Err):
        error = answer.value.value if not isinstance(answer.value, Err) else answer.value
        return {"error": type(error.value).__name__.removeprefix("ErrorCode_")}
    response = answer.value.value
    body = response.consume()
    stream = body.stream()
    data = b""
    while True:
        try:
            data += stream.blocking_read(65536)
        except Err:
            break
    return {"status": response.status(), "body": data.decode()}


class WitWorld(wit_world.WitWorld):
    def run(self, input: str) -> str:
        args = json.loads(input)
        if "echo" in args:
            # Echo-sized work: what a call costs the host (the benchmarks).
            return json.dumps(args["echo"])
        if args.get("fail") == "error":
            raise Err(SkillError(code="bad-input", message="asked to fail"))
        if args.get("fail") == "crash":
            raise ValueError("notes-py was asked to crash")
        text = args.get("text", "")
        out = {"language": "python"}
        if text:
            out["id"] = memory.store(text, "agent", [("source", "notes-py")])
            out["hits"] = len(memory.search(text, "agent", 5, []))
        try:
            board.lists()
            out["board"] = "allowed"
        except Err as e:
            out["board"] = type(e.value).__name__.removeprefix("BoardError_").lower()
        out["http"] = [fetch(url) for url in args.get("urls", [])]
        return json.dumps(out)
