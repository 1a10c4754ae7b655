"""The client side of one protocol conversation, without I/O (python-websockets style).

Feed it the text of every WebSocket message with :meth:`ClientProtocol.receive_data`; it returns
the parsed server messages and queues the heartbeat echoes. Queue client messages with
:meth:`ClientProtocol.send`. Whatever must go out is returned by
:meth:`ClientProtocol.data_to_send`, one packet per WebSocket message (as every client and the
browser send them). The I/O layer only moves text between this object and the socket.
"""

from __future__ import annotations

import random
import string

from ..errors import FramingError
from .framing import _SPLIT_WHOLE_BELOW, FrameDecoder, encode_heartbeat
from .messages import (
    _BARS_PREFIXES,
    _JSON_ERRORS,
    ClientMessage,
    ServerMessage,
    SessionInfo,
    _decode_bars,
    parse_message,
)

__all__ = ["ClientProtocol", "new_session_id"]

_ID_ALPHABET = string.ascii_lowercase


def new_session_id(prefix: str, rng: random.Random | None = None) -> str:
    """A client-chosen session id: ``prefix`` + ``_`` + 12 random lowercase letters."""
    chooser = rng or random
    return f"{prefix}_" + "".join(chooser.choice(_ID_ALPHABET) for _ in range(12))


class ClientProtocol:
    """State of one client connection: decoding, heartbeat echo, outgoing packets.

    Attributes:
        session_info: the server's first packet, once received.
        heartbeats: number of heartbeats received (and echoed).
    """

    __slots__ = ("_decoder", "_outgoing", "heartbeats", "session_info")

    def __init__(self) -> None:
        self._decoder = FrameDecoder()
        self._outgoing: list[str] = []
        self.session_info: SessionInfo | None = None
        self.heartbeats = 0

    def receive_data(self, data: str | bytes) -> list[ServerMessage]:
        """Decode one WebSocket message into server messages; queue heartbeat echoes.

        Raises:
            FramingError: the text is not valid protocol. Nothing else: whatever goes wrong
                while decoding one message (JSON nested a thousand levels deep raises
                RecursionError in the JSON parser, a number too long for int() ValueError,
                ...) is reported as a FramingError, so that the caller can drop the
                connection instead of dying.
        """
        try:
            return self._receive(data)
        except FramingError:
            raise
        except Exception as exc:
            raise FramingError(f"undecodable message ({type(exc).__name__}: {exc})"[:200]) from exc

    def _receive(self, data: str | bytes) -> list[ServerMessage]:
        decoder = self._decoder
        if (
            data.__class__ is str
            and len(data) < _SPLIT_WHOLE_BELOW
            and data.isascii()
            and not decoder._pending
        ):
            # The live path, inline: nearly every live message is one short packet, usually a
            # du. It is cut as FrameDecoder.feed cuts it and decoded as parse_message decodes
            # it, without their two calls (about 5% of the cost of a du, measured).
            parts = data.split("~m~")
            if len(parts) == 3 and not parts[0]:
                payload = parts[2]
                if str(len(payload)) == parts[1] and payload[:1] != "~":
                    if payload.startswith(_BARS_PREFIXES):
                        try:
                            return [_decode_bars(payload)]
                        except _JSON_ERRORS:
                            pass  # an unusual shape: parse_message decides
                    message = parse_message(payload)
                    if message.__class__ is SessionInfo:
                        self.session_info = message
                    return [message]
            packets = decoder._feed_parts(data, parts)
        else:
            packets = decoder.feed(data)
        messages: list[ServerMessage] = []
        append = messages.append
        for packet in packets:
            if packet.__class__ is not str:  # a Heartbeat (a burst of live updates has none)
                self.heartbeats += 1
                self._outgoing.append(encode_heartbeat(packet))
                continue
            message = parse_message(packet)
            if message.__class__ is SessionInfo:
                self.session_info = message
            append(message)
        return messages

    def send(self, message: ClientMessage) -> None:
        """Queue a client message."""
        self._outgoing.append(message.encode())

    def data_to_send(self) -> list[str]:
        """Take every queued packet (each to be sent as its own WebSocket text message)."""
        outgoing, self._outgoing = self._outgoing, []
        return outgoing
