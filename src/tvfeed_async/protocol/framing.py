"""The ``~m~<length>~m~<payload>`` packet codec.

Facts this module is built on:

* One WebSocket message may carry several packets; heartbeats (``~h~<n>``) may sit anywhere
  among them, including between two data packets.
* The length counts **UTF-16 code units** (JavaScript ``String.length``), not bytes and not
  Python code points: a Korean description is one unit per character, an emoji two.
  Python's ``len()`` agrees whenever the text has no character beyond U+FFFF, which is the
  fast path here; otherwise the text is viewed as UTF-16 units.
* The parser is length-driven, never a regex split, so a payload containing ``~m~12~m~`` is
  fine.
* The server's first packet is a JSON object without ``m`` (handled in ``messages``); very old
  servers prefixed JSON with ``~j~``, which is stripped here.
* Client packets are ASCII-only JSON, so every length convention agrees.

The decoder buffers an incomplete trailing packet until more text arrives, so any split of a
stream into messages decodes to the same packets. Whatever the input, the only error it raises
is :class:`~tvfeed_async.errors.FramingError`.
"""

from __future__ import annotations

import json
import re
from array import array
from typing import Any, NamedTuple

from ..errors import FramingError

__all__ = [
    "MAX_PACKET_LENGTH",
    "FrameDecoder",
    "Heartbeat",
    "Packet",
    "decode_packets",
    "encode_heartbeat",
    "encode_json",
    "encode_packet",
    "utf16_len",
]

_HEARTBEAT_PREFIX = "~h~"
_new_tuple = tuple.__new__
_JSON_PREFIX = "~j~"
# A complete header. Real packets are at most a few MB; ten digits is far beyond that and
# bounds garbage headers. [0-9], because \d would also take other scripts' digits.
_HEADER = re.compile(r"~m~([0-9]{1,10})~m~")
#: The longest packet accepted (UTF-16 units). The largest real packets are history batches,
#: about 100 characters per bar: 40,000 bars (the largest plan's bar limit) are
#: about 4 MB. A longer declared length is garbage; waiting for it would swallow every later
#: packet (heartbeats included) without end.
MAX_PACKET_LENGTH = 64 * 1024 * 1024
# Messages shorter than this (characters) are split on every marker at once (see feed).
_SPLIT_WHOLE_BELOW = 8192
# An incomplete header at the end of the buffer: "~", "~m", "~m~", "~m~12", "~m~12~", "~m~12~m".
_PARTIAL_HEADER = re.compile(r"~(?:m(?:~(?:[0-9]{0,10}(?:~m?)?)?)?)?\Z")


class Heartbeat(NamedTuple):
    """A heartbeat packet ``~h~<number>``; the client must echo it unchanged.

    A named tuple (built in one C call) rather than a frozen dataclass: every heartbeat in the
    live stream builds one.

    Attributes:
        number: the text after ``~h~`` (a decimal counter on real servers).
    """

    number: str

    @property
    def payload(self) -> str:
        """The packet payload, ``~h~<number>``."""
        return _HEARTBEAT_PREFIX + self.number


#: What the decoder yields: the JSON text of a message, or a heartbeat.
Packet = str | Heartbeat


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units, as JavaScript's ``String.length`` counts it."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def encode_packet(payload: str) -> str:
    """Frame one payload as ``~m~<utf16 length>~m~<payload>``."""
    return f"~m~{utf16_len(payload)}~m~{payload}"


def encode_json(message: dict[str, Any]) -> str:
    """Serialise a client message as ASCII-only compact JSON and frame it."""
    return encode_packet(json.dumps(message, ensure_ascii=True, separators=(",", ":")))


def encode_heartbeat(heartbeat: Heartbeat | str | int) -> str:
    """Frame a heartbeat (to echo one received, pass the :class:`Heartbeat` itself)."""
    number = heartbeat.number if isinstance(heartbeat, Heartbeat) else str(heartbeat)
    return encode_packet(_HEARTBEAT_PREFIX + number)


def _classify(payload: str) -> Packet:
    if payload.startswith("~"):
        if payload.startswith(_HEARTBEAT_PREFIX):
            return _new_tuple(Heartbeat, (payload[3:],))
        if payload.startswith(_JSON_PREFIX):
            return payload[3:]
    return payload


def _has_astral(text: str) -> bool:
    return len(text.encode("utf-16-le", "surrogatepass")) != 2 * len(text)


def _to_units(text: str) -> str:
    """A string with one Python character per UTF-16 unit (astral chars become pairs)."""
    return "".join(map(chr, array("H", text.encode("utf-16-le", "surrogatepass"))))


def _from_units(units: str) -> str:
    try:
        return units.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
    except UnicodeDecodeError as exc:
        raise FramingError(
            "packet length splits a character in two (is the length counted in bytes?)"
        ) from exc


def _garbage(text: str, position: int) -> FramingError:
    excerpt = text[position : position + 40]
    return FramingError(f"not a ~m~<length>~m~ packet at offset {position}: {excerpt!r}")


def _split(text: str, units: bool) -> tuple[list[Packet], int]:
    """Cut complete packets off ``text``; return them and where the incomplete rest begins.

    With ``units`` set, ``text`` holds one character per UTF-16 unit and payloads are turned
    back into ordinary strings.
    """
    # This loop runs once per packet on the live path (hundreds of thousands per second), so
    # it is written flat, and one compiled regex reads the header (measured faster than
    # startswith + find + isdigit).
    packets: list[Packet] = []
    append = packets.append
    header = _HEADER.match
    position = 0
    size = len(text)
    while position < size:
        found = header(text, position)
        if found is None:
            if _PARTIAL_HEADER.match(text, position):
                break
            raise _garbage(text, position)
        start = found.end()
        length = int(found[1])
        if length > MAX_PACKET_LENGTH:
            raise FramingError(
                f"packet at offset {position} declares {length} characters, more than "
                f"the {MAX_PACKET_LENGTH} accepted"
            )
        stop = start + length
        if stop > size:
            break
        payload = _from_units(text[start:stop]) if units else text[start:stop]
        append(_classify(payload) if payload[:1] == "~" else payload)
        position = stop
    return packets, position


class FrameDecoder:
    """Incremental decoder: feed it WebSocket text messages, get packets back.

    Example::

        decoder = FrameDecoder()
        for packet in decoder.feed(message):
            if isinstance(packet, Heartbeat):
                await ws.send(encode_heartbeat(packet))
            else:
                handle(parse_message(packet))
    """

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending = ""

    @property
    def pending(self) -> str:
        """Text of an incomplete packet waiting for the rest of its data."""
        return self._pending

    def _feed_parts(self, text: str, parts: list[str]) -> list[Packet]:
        """Cut the packets off ``text`` (one character per UTF-16 unit), already split on the
        marker into ``parts``.

        One ``str.split`` on the marker cuts every packet of a message in one C call; it is
        right exactly when every piece is as long as its header says. A payload that itself
        contains ``~m~`` is cut short by it, so that packet's length check fails (a piece of a
        payload is always shorter than the payload), and so does an incomplete packet at the
        end: then the position-driven :func:`_split` does the work, and it also decides what a
        bad header is (garbage or incomplete). The check compares each header with the
        decimal form of its piece's length, which also rules out anything but ASCII digits
        ("٣".isdigit() is True); a header with leading zeros fails it and is read by
        :func:`_split`.
        """
        if len(parts) & 1 and not parts[0]:
            # The payloads, in place: a heartbeat among them is replaced by its Heartbeat.
            packets: list[Any] = parts[2::2]
            for index, digits in enumerate(parts[1::2]):
                payload = packets[index]
                if str(len(payload)) != digits:
                    break
                if payload[:1] == "~":
                    packets[index] = _classify(payload)
            else:
                return packets
        packets, rest = _split(text, units=False)
        if rest < len(text):
            self._pending = text[rest:]
        return packets

    def feed(self, data: str | bytes) -> list[Packet]:
        """Decode every complete packet in the buffered text plus ``data``.

        Args:
            data: one WebSocket message; binary messages are taken as UTF-8 text
                (some clients and servers send the same packets in binary frames).

        Raises:
            FramingError: the text is not a sequence of packets (the decoder is then unusable).
        """
        if data.__class__ is not str and not isinstance(data, str):
            try:
                data = bytes(data).decode("utf-8")
            except (UnicodeDecodeError, TypeError) as exc:
                raise FramingError("binary message is not UTF-8 text") from exc
        if self._pending:
            text = self._pending + data
            self._pending = ""
        else:
            text = data
        # isascii() is O(1) (a flag of the string object). In ASCII text, and in any text
        # without characters beyond U+FFFF, one character is one UTF-16 unit.
        if text.isascii():
            # A long message (a history batch) is cut after its first header first: searching
            # all of its text for the marker costs about 0.7 ns per character (0.6 ms for a
            # 5,000-bar batch), and it is nearly always one packet.
            short = len(text) < _SPLIT_WHOLE_BELOW
            parts = text.split("~m~") if short else text.split("~m~", 2)
            if len(parts) == 3:
                # Most live messages are exactly one packet: cut it here, inline, with as few
                # steps as possible (this runs for every message). The header must be the
                # decimal length of the payload, with nothing before it (see _feed_parts).
                payload = parts[2]
                if not parts[0] and str(len(payload)) == parts[1]:
                    return [payload if payload[:1] != "~" else _classify(payload)]
            # Several packets, an incomplete one, or garbage.
            return self._feed_parts(text, parts if short else text.split("~m~"))
        if not _has_astral(text):
            return self._feed_parts(text, text.split("~m~"))
        unit_text = _to_units(text)
        packets, rest = _split(unit_text, units=True)
        self._pending = _from_units(unit_text[rest:])
        return packets


def decode_packets(message: str | bytes) -> list[Packet]:
    """Decode one complete WebSocket message; a trailing incomplete packet is an error.

    Raises:
        FramingError: the message is not a whole number of valid packets.
    """
    decoder = FrameDecoder()
    packets = decoder.feed(message)
    if decoder.pending:
        raise FramingError(f"message ends inside a packet: {decoder.pending[:40]!r}")
    return packets
