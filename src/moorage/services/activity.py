"""Who may read which events and jobs: the activity of a repository, a namespace, the registry.

``EventLog`` and ``JobService`` are plumbing that every capability uses; this is the use case
of reading them, with the same access rules as the rest of the registry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from moorage.db.events import EventRow
from moorage.db.jobs import JobRow, ScheduleRow
from moorage.oci.errors import NameInvalid
from moorage.oci.reference import validate_name
from moorage.services.access import AccessService, Level, Principal
from moorage.services.errors import Conflict, Forbidden, NotFound
from moorage.services.events import EventLog
from moorage.services.jobs import JobService


@dataclass
class ActivityService:
    events: EventLog
    jobs: JobService
    access: AccessService

    async def repository_events(
        self, actor: Principal | None, repository: str, types: Sequence[str], offset: int, limit: int
    ) -> tuple[list[EventRow], int]:
        """A repository's activity, for anyone who may read the repository."""
        try:
            validate_name(repository)
        except NameInvalid:
            raise NotFound(f"repository {repository!r} does not exist (not a valid name)") from None
        if (await self.access.repository(actor, repository)).level < Level.READ_ONLY:
            raise NotFound(f"repository {repository!r} does not exist")
        return await self.events.recent(repository=repository, types=types, offset=offset, limit=limit)

    async def events_for(
        self,
        actor: Principal | None,
        *,
        repository: str | None,
        namespace: str | None,
        types: Sequence[str],
        offset: int,
        limit: int,
    ) -> tuple[list[EventRow], int]:
        """Events across the registry: administrators see all; namespace administrators their
        namespace's; anyone a repository's they may read."""
        if repository is not None:
            return await self.repository_events(actor, repository, types, offset, limit)
        if namespace is not None:
            if await self.access.namespace_level(actor, namespace) < Level.ADMIN:
                raise Forbidden(f"only administrators of namespace {namespace!r} may read all its events")
        elif actor is None or not actor.is_admin:
            raise Forbidden("only administrators may read every event; name a repository or namespace")
        return await self.events.recent(namespace=namespace, types=types, offset=offset, limit=limit)

    def _require_admin(self, actor: Principal | None) -> None:
        if actor is None or not actor.is_admin:
            raise Forbidden("only administrators may read background jobs and schedules")

    async def jobs_for(
        self,
        actor: Principal | None,
        kinds: tuple[str, ...],
        statuses: tuple[str, ...],
        offset: int,
        limit: int,
    ) -> tuple[list[JobRow], int]:
        self._require_admin(actor)
        return await self.jobs.jobs(kinds, statuses, offset, limit)

    async def job_for(self, actor: Principal | None, job_id: int) -> JobRow:
        self._require_admin(actor)
        return await self.jobs.get(job_id)

    async def cancel_job(self, actor: Principal | None, job_id: int) -> JobRow:
        """Cancel a job that has not started; ``InvalidInput`` when it has."""
        self._require_admin(actor)
        if not await self.jobs.cancel(job_id):
            job = await self.jobs.get(job_id)
            raise Conflict(f"job {job_id} is {job.status}: only pending jobs can be cancelled", "status")
        return await self.jobs.get(job_id)

    async def schedules_for(self, actor: Principal | None) -> list[ScheduleRow]:
        self._require_admin(actor)
        return await self.jobs.schedules()

    async def queue_status(self, actor: Principal | None) -> dict[str, dict[str, int]]:
        self._require_admin(actor)
        return await self.jobs.status_counts()
