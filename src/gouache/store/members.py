"""Cluster members: the server processes sharing this database (a Ray cluster's gateway replicas), one row
each, so that any of them can list the others with their nodes. The heartbeat's policy (when to renew, when a
member counts as gone) is `gouache.service.leases.Membership`'s; this repository keeps the rows."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select

from gouache.store.database import Database
from gouache.store.models import ClusterMemberRecord


@dataclass(frozen=True)
class ClusterMember:
    """One member's row: who (`replica`, `role`), where (`node_id`, `node_address`, `pid`), since when and
    when last seen (seconds since the epoch)."""

    replica: str
    role: str
    node_id: str
    node_address: str
    pid: int
    started_at: float
    seen_at: float


class MemberRepository(Database):
    def member_beat(
        self,
        replica: str,
        role: str,
        node_id: str,
        node_address: str,
        pid: int,
        *,
        now: float,
        forget_before: float,
    ) -> None:
        """Record that `replica` is alive at `now` (its row is created with `started_at = now` if missing),
        and delete the rows of members not seen since `forget_before` (they died without stopping)."""
        with self._write() as session:
            session.execute(delete(ClusterMemberRecord).where(ClusterMemberRecord.seen_at < forget_before))
            row = session.get(ClusterMemberRecord, replica)
            if row is None:
                session.add(
                    ClusterMemberRecord(
                        replica=replica, role=role, node_id=node_id, node_address=node_address, pid=pid,
                        started_at=now, seen_at=now,
                    )
                )  # fmt: skip
                return
            row.role, row.node_id, row.node_address, row.pid = role, node_id, node_address, pid
            row.seen_at = now

    def member_leave(self, replica: str) -> None:
        """Delete `replica`'s row at once (a clean stop)."""
        with self._write() as session:
            session.execute(delete(ClusterMemberRecord).where(ClusterMemberRecord.replica == replica))

    def members(self) -> list[ClusterMember]:
        """Every member's row, alive or not, oldest first."""
        with self._read_sessions() as session:
            rows = session.scalars(
                select(ClusterMemberRecord).order_by(
                    ClusterMemberRecord.started_at, ClusterMemberRecord.replica
                )
            )
            return [
                ClusterMember(r.replica, r.role, r.node_id, r.node_address, r.pid, r.started_at, r.seen_at)
                for r in rows
            ]
