"""Reasons for a reply, counted in full and listed up to a cap.

A request with 200,000 bad items must not answer 200,000 reasons (a 139 MB reply, and the
memory to build it): a reply lists the first MAX_LISTED and says how many there were in all
(`error_count`, `warning_count`: docs/api.md).
"""

from __future__ import annotations

MAX_LISTED = 1_000
UNLISTED = "refused (its reason is past the first 1,000 and not kept)"


class Problems:
    """Reasons found: every one counted (`len`), the first MAX_LISTED kept (iteration)."""

    def __init__(self, problems=()):
        self.listed: list = []
        self.total = 0
        self.extend(problems)

    def append(self, problem):
        self.total += 1
        if len(self.listed) < MAX_LISTED:
            self.listed.append(problem)

    def extend(self, problems):
        for problem in problems:
            self.append(problem)

    def merge(self, other: Problems):
        """Add `other`'s problems: its listed ones, and its count of all."""
        unlisted = other.total - len(other.listed)
        self.extend(other.listed)
        self.total += unlisted

    def __len__(self):
        return self.total

    def __iter__(self):
        return iter(self.listed)


class Rejections(Problems):
    """Rejected customers, {"id", "reason"} each: all their ids kept (`ids`, the seed's
    `fail`), the first MAX_LISTED reasons listed."""

    def __init__(self, problems=()):
        self.ids: list[str] = []
        super().__init__(problems)

    def append(self, problem):
        self.ids.append(problem["id"])
        super().append(problem)
