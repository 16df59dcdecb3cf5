"""Leases: work that one replica does for the whole fleet, with the database as referee.

Every replica answers Slack, but following runs (the tracker) and delivering the outbox must
happen once: the replica holding the lease named ``worker`` does both, renewing it every
third of its lifetime (``LRBOT_LEASE_SECONDS``). When the holder dies, another replica takes
the lease once it has expired, or at once when the holder is provably dead: a process on
the same kernel and PID namespace (the same *host key*) whose PID no longer exists.

Taking a lease is one transaction that reads the row under a write lock (``FOR UPDATE``
on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), so two replicas never both win it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from bot.store import Store, leases

__all__ = ["Grant", "Leadership", "Lease", "Replica", "provably_dead"]

log = logging.getLogger(__name__)

WORKER = "worker"


def _host_key() -> str:
    """The kernel's boot id and this process's PID namespace: equal keys, one process table."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = str(Path("/proc/self/ns/pid").readlink())
    except OSError:
        # Without /proc nothing proves another process dead: a key nobody else has.
        return f"unknown-{uuid.uuid4().hex}"
    return f"{boot}/{namespace}"


@dataclass(frozen=True)
class Replica:
    """This process, as lease holder: ``host:pid:nonce`` and its host key."""

    holder: str
    host_key: str

    @classmethod
    def this_process(cls) -> Replica:
        holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        return cls(holder=holder, host_key=_host_key())


def provably_dead(holder: str, host_key: str, here: Replica) -> bool:
    """True only when ``holder`` ran in our process table and its PID is gone."""
    if host_key != here.host_key:
        return False
    try:
        pid = int(holder.split(":")[1])
    except (IndexError, ValueError):
        return False
    if pid == os.getpid():
        return False  # another runtime in this process: alive as far as anyone can tell
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # a process we may not signal exists (maybe a reused PID): not proof
    return False


@dataclass(frozen=True)
class Grant:
    """The outcome of one attempt to take or renew a lease."""

    held: bool
    until: float = 0.0
    # Set when this attempt took the lease from another holder.
    previous: str | None = None
    previous_until: float = 0.0
    previous_dead: bool = False


class Lease:
    """One named lease, taken and renewed by this replica."""

    def __init__(
        self,
        store: Store,
        name: str,
        replica: Replica,
        ttl_seconds: float,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.name = name
        self.replica = replica
        self.ttl = ttl_seconds
        self.wall = wall
        self._until = 0.0

    def hold(self) -> Grant:
        """Take the lease if it is free, expired or its holder is provably dead; renew it
        if it is ours. Raises what the database raises (the caller keeps its last grant)."""
        now = self.wall()
        me = self.replica
        with self.store.engine.begin() as conn:
            row = (
                conn.execute(
                    sa.select(leases.c.holder, leases.c.host_key, leases.c.expires_at)
                    .where(leases.c.name == self.name)
                    .with_for_update()
                )
                .mappings()
                .first()
            )
            values = {"holder": me.holder, "host_key": me.host_key, "expires_at": now + self.ttl}
            if row is None:
                try:
                    with conn.begin_nested():
                        conn.execute(
                            leases.insert().values(name=self.name, acquired_at=now, **values)
                        )
                except sa.exc.IntegrityError:
                    return Grant(held=False)  # another replica inserted it first
                grant = Grant(held=True, until=now + self.ttl)
            elif row["holder"] == me.holder:
                conn.execute(
                    leases.update()
                    .where(leases.c.name == self.name)
                    .values(expires_at=now + self.ttl)
                )
                grant = Grant(held=True, until=now + self.ttl)
            else:
                dead = provably_dead(row["holder"], row["host_key"], me)
                if row["expires_at"] > now and not dead:
                    return Grant(held=False)
                conn.execute(
                    leases.update()
                    .where(leases.c.name == self.name)
                    .values(acquired_at=now, **values)
                )
                grant = Grant(
                    held=True,
                    until=now + self.ttl,
                    previous=str(row["holder"]),
                    previous_until=float(row["expires_at"]),
                    previous_dead=dead,
                )
        self._until = grant.until
        return grant

    def valid(self, margin: float = 0.0) -> bool:
        """Still ours for at least ``margin`` seconds, by our last renewal."""
        return self.wall() + margin < self._until

    def release(self) -> None:
        """Give the lease up at once (a clean stop), so another replica need not wait."""
        self._until = 0.0
        with self.store.engine.begin() as conn:
            conn.execute(
                leases.update()
                .where((leases.c.name == self.name) & (leases.c.holder == self.replica.holder))
                .values(expires_at=0.0)
            )


class Leadership:
    """Keeps trying to hold ``lease``; runs ``on_gain`` when it is won and ``on_loss`` when
    it can no longer be renewed in time, on one background thread."""

    def __init__(
        self,
        lease: Lease,
        on_gain: Callable[[Grant], None],
        on_loss: Callable[[], None],
    ) -> None:
        self.lease = lease
        self.on_gain = on_gain
        self.on_loss = on_loss
        self.leading = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.interval = max(0.05, lease.ttl / 3)

    def start(self) -> None:
        self._stop.clear()
        self.step()  # a lone replica starts its work at once, not one interval later
        self._thread = threading.Thread(target=self._loop, name="leadership", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self.leading:
            self.leading = False
            self.on_loss()
            try:
                self.lease.release()
            except sa.exc.SQLAlchemyError:
                log.warning("could not release the %s lease; it expires on its own", WORKER)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.step()

    def step(self) -> None:
        """One attempt to take or renew the lease, and what follows from its outcome."""
        try:
            grant = self.lease.hold()
        except sa.exc.SQLAlchemyError as exc:
            log.warning("could not renew the %s lease: %s", self.lease.name, exc.__class__.__name__)
            grant = Grant(held=self.lease.valid())
        if grant.held and not self.leading:
            self.leading = True
            if grant.previous is not None:
                how = "its process is gone" if grant.previous_dead else "its lease expired"
                log.warning(
                    "taking over the tracker and the outbox from %s: %s", grant.previous, how
                )
            else:
                log.info("this replica runs the tracker and the outbox")
            self.on_gain(grant)
        elif not grant.held and self.leading:
            self.leading = False
            log.warning("lost the %s lease: stopping the tracker and the outbox", self.lease.name)
            self.on_loss()
