"""Server-Sent Events for one response: the sink a transport writes a request's notifications to, and the frame.

The SDK's kernel (`app.kernel`) streams a request's progress and log
notifications to the sink its dispatch context holds; the dispatcher
(`app.protocol`) ends the stream with the result. Each HTTP path implements
the three writes (`app.transport` over ASGI, `app.http_protocol` straight to
the connection). Kept apart from the kernel bridge so the HTTP layer depends
on these few lines, not on the SDK internals the bridge reaches.
"""

from __future__ import annotations

from abc import ABC, abstractmethod


class EventSink(ABC):
    """The SSE side of one response, opened on the first event. Transports implement the three writes."""

    started = False

    async def send(self, frame: bytes) -> None:
        """An SSE frame (the SDK's dispatch context calls this for each notification)."""
        if not self.started:
            self.started = True
            await self.open()
        await self.write(frame)

    async def ping(self) -> None:
        await self.send(b": ping\r\n\r\n")

    @abstractmethod
    async def open(self) -> None:
        """Start the response: 200 and the SSE headers."""

    @abstractmethod
    async def write(self, frame: bytes) -> None:
        """One frame."""

    @abstractmethod
    async def close(self, frame: bytes) -> None:
        """Write the last frame (the result) and end the response."""


def sse_frame(message: bytes) -> bytes:
    """One ``event: message`` frame, framed as the SDK's transport frames it."""
    return b"event: message\r\ndata: " + message + b"\r\n\r\n"
