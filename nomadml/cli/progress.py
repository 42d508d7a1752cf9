"""Show rollout events: JSON lines for automation, plain lines when not a
terminal, and on a terminal a live line that progress updates rewrite."""

from __future__ import annotations

import json
import sys
import time
from typing import TextIO

from nomadml.events import Event


class Printer:
    def __init__(self, mode: str = "auto", stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.mode = ("tty" if tty else "plain") if mode == "auto" else mode
        # True once the run reached Nomad beyond planning: it registered, or it is
        # following a deployment an earlier run started (a resume).
        self.past_plan = False
        self._live = False

    def __call__(self, event: Event) -> None:
        self.past_plan = self.past_plan or event.kind != "plan"
        if self.mode == "json":
            self.stream.write(json.dumps(event.as_dict(), sort_keys=True) + "\n")
        elif self.mode == "tty" and event.kind == "progress":
            self.stream.write(f"\r\x1b[K{self._line(event)}")
            self._live = True
        else:
            if self._live:
                self.stream.write("\n")
                self._live = False
            self.stream.write(self._line(event) + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._live:
            self.stream.write("\n")
            self._live = False

    @staticmethod
    def _line(event: Event) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(event.at))
        text = f"[{stamp}] {event.job_id}: {event.message}"
        data = event.data
        if event.kind == "progress" and data.get("groups"):
            parts = [
                f"{name} canaries {g['healthy']}/{g['canaries']} healthy"
                if g["canaries"] and not g["promoted"]
                else f"{name} healthy {g['healthy']}"
                for name, g in data["groups"].items()
            ]
            text += f" [{', '.join(parts)}; {data.get('seconds_left', 0)}s left]"
        return text
