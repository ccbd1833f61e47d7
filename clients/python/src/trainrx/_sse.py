"""A small text/event-stream parser (the WHATWG rules the API's stream needs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator


@dataclass
class ServerSentEvent:
    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None


KEEPALIVE = None  # what iter_sse yields for a comment line: the server is alive, nothing happened


def iter_sse(lines: Iterable[str]) -> Iterator[ServerSentEvent | None]:
    """Events from the stream's lines; ``None`` for each comment (keep-alive)."""
    event, data, event_id, retry = "", [], None, None
    for line in lines:
        line = line.rstrip("\r\n")
        if not line:
            if data or event or event_id is not None:
                yield ServerSentEvent(event or "message", "\n".join(data), event_id, retry)
            elif retry is not None:  # a bare "retry:" block: only the reconnect delay
                yield ServerSentEvent("", "", None, retry)
            event, data, event_id, retry = "", [], None, None
            continue
        if line.startswith(":"):
            yield KEEPALIVE
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id" and "\0" not in value:
            event_id = value
        elif name == "retry" and value.isdigit():
            retry = int(value)
