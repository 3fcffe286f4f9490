"""Each topic's recent messages for `latest()` and `history()`, bounded, and cheap when they have expired.

Every entry remembers the latest deadline of all messages published up to it, so a newest-first search
stops as soon as everything older has expired: on a history that expired as a whole, a query returns at
once, however long the history (the reference scanned all of it).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from datetime import datetime

from triplegain.bus.messages import Message


class TopicHistory:
    """One topic's newest messages (at most `limit`), oldest first, with their deadlines."""

    __slots__ = ("_entries", "_reach")

    def __init__(self, limit: int) -> None:
        self._entries: deque[tuple[Message, datetime, datetime]] = deque(maxlen=limit)
        self._reach: datetime | None = None

    def add(self, message: Message, deadline: datetime) -> None:
        """Keep `message` (dropping the oldest beyond the limit)."""
        if self._reach is None or deadline > self._reach:
            self._reach = deadline
        self._entries.append((message, deadline, self._reach))

    def alive(self, now: datetime) -> Iterator[Message]:
        """Unexpired messages, newest first; stops where every older message has expired."""
        for message, deadline, reach in reversed(self._entries):
            if now > reach:
                return
            if now <= deadline:
                yield message

    def purge(self, now: datetime) -> int:
        """Drop expired messages from the front (the oldest); returns how many."""
        purged = 0
        entries = self._entries
        while entries and now > entries[0][1]:
            entries.popleft()
            purged += 1
        return purged

    def __len__(self) -> int:
        return len(self._entries)
