"""Work done off the console readers' threads, as often as it can keep up.

`nvct run` rewrites the run record after every result (a SIGKILL must
leave every result measured so far on disk). Judging and writing the whole
record takes time that grows with the record; done on the thread that read
the result it kept every level's console reader waiting, and a guest whose
console is not read in time loses bytes (docs/protocol.md, "Why records
can arrive damaged"). A Coalescer runs its job on a thread of its own: a
kick() while the job runs makes it run once more when it ends, however
many kicks came; so the last state is always written, soon after it
changed, and a reader never waits for a write.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class Coalescer:
    def __init__(self, job: Callable[[], None], name: str = "nvct-coalesce") -> None:
        self._job = job
        self._wake = threading.Event()
        self._closing = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def kick(self) -> None:
        """Have the job run (again) soon; never waits."""
        self._wake.set()

    def _loop(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._closing:
                return
            try:
                self._job()
            except BaseException as exc:  # handed to close(), on the caller's thread
                self._error = exc
                return

    def close(self) -> None:
        """Stop the thread (a job in progress ends first); raise what the job raised.
        The caller runs the job a last time itself, if it wants the last state."""
        if not self._thread.is_alive() and self._error is None:
            return
        self._closing = True
        self._wake.set()
        self._thread.join()
        error, self._error = self._error, None
        if error is not None:
            raise error
