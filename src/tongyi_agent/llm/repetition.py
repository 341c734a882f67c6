"""Stop a generation that is stuck repeating itself.

A small model at temperature 0 can fall into a loop: after a worked example it wrote
`Action Input: {"query": "Project Avocet"}` forty times, 1,024 tokens (67 s on two cores) for one
tool call. Greedy decoding never leaves such a loop, so the tokens after the third identical line
are waste. The guard watches the streamed text and says when to stop; the text is cut after the
line's first occurrence, which is what the parsers read anyway.

A protocol may also name line prefixes that occur once per reply (`ChatRequest.once_per_reply`;
ReAct's `Action Input:`): the model also looped on `Action Input:` lines that differ in one argument,
and a second `Action:` starts a turn of its own the parser never reads. The text is cut where such a
line comes a second time.
"""

from __future__ import annotations

import re

REPEATS = 3  # identical lines in a row that count as a loop
_WORDY = re.compile(r"[^\W_]{2}")  # a line worth comparing has letters or digits, not only "----"


class RepetitionGuard:
    """Feed it streamed pieces of text; `stuck` turns true once the same line came REPEATS times in a
    row, or a line opened with one of the `once` prefixes a second time."""

    def __init__(self, repeats: int = REPEATS, once: tuple[str, ...] = ()) -> None:
        self.repeats = repeats
        self.once = once
        self._seen: set[str] = set()
        self.text = ""
        self.stuck = False
        self._scanned = 0  # where the next unfinished line starts
        self._last = ""
        self._run = 0
        self._first_end = 0  # where the first line of the current run ends

    def feed(self, piece: str) -> bool:
        """Add a piece; True when the generation should stop."""
        self.text += piece
        while not self.stuck and (end := self.text.find("\n", self._scanned)) >= 0:
            line = self.text[self._scanned:end].strip()
            prefix = next((p for p in self.once if line.startswith(p)), None)
            if prefix in self._seen:  # a second `Action Input:`: cut before it
                self.stuck, self._first_end = True, max(0, self._scanned - 1)
                break
            if prefix is not None:
                self._seen.add(prefix)
            if line and line == self._last and _WORDY.search(line):
                self._run += 1
            else:
                self._last, self._run, self._first_end = line, 1, end
            self._scanned = end + 1
            self.stuck = self._run >= self.repeats
        return self.stuck

    def result(self) -> str:
        """The text, cut after the first line of the loop when it got stuck."""
        return self.text[:self._first_end] if self.stuck else self.text
