"""How the app client's workflows report what they do: output lines and progress of transfers.

The workflows only call a ``Reporter``; the CLI passes one that draws rich progress bars, tests
and library callers the ``SilentReporter`` (or one that records).
"""

from __future__ import annotations

from typing import Protocol


class Task(Protocol):
    def advance(self, amount: int) -> None: ...

    def finish(self) -> None: ...


class Reporter(Protocol):
    def line(self, text: str) -> None:
        """A line of the command's output (``HOST/NS/REPO:TAG-invoc``, ``Successfully pushed …``)."""

    def task(self, description: str, total: int | None) -> Task:
        """A transfer of ``total`` bytes (``None`` when unknown) that is about to start."""


class _SilentTask:
    def advance(self, amount: int) -> None:
        pass

    def finish(self) -> None:
        pass


class SilentReporter:
    """Reports nothing; ``lines`` keeps the output lines for whoever wants them."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def line(self, text: str) -> None:
        self.lines.append(text)

    def task(self, description: str, total: int | None) -> Task:
        return _SilentTask()
