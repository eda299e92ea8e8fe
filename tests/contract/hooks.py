"""What Schemathesis needs to know of the Dark Factory API beyond its
OpenAPI document: the text media types it sends as they are."""

import schemathesis

# A transcript chunk (JSON lines) and a workflow's source are text.
schemathesis.serializer.alias(["application/x-ndjson", "text/markdown"], "text/plain")
