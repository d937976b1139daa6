"""Who owns each job the backend holds, and who hears about it.

Two different things, kept apart on purpose:
- the *owner* (a principal) is who may cancel the job: with CurveZMQ the client's public key,
  so the same key holder can cancel after its host restarted; without it the client's
  routing id (`b"c" + client_id`, kept across reconnects, see PROTOCOL.md "Transport"). It is
  fixed at submit and written into the queue folder, so it survives a restart;
- the routing id *told* about the job (progress and its end): the submitter, or whoever last
  fetched it after a reconnect. Clients that cancelled a running job are told its end too,
  so every cancel gets an answer even when the one told is someone else.

Only the server thread uses this (no locking).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dreamwire.shared.errors import DreamwireError, ErrorCode

ANYONE = ""  # a job restored from an entry that names no owner: anyone may cancel it


@dataclass
class JobOwner:
    principal: str
    told: bytes | None  # None: restored, and nobody has fetched it yet
    waiting: set[bytes] = field(default_factory=set)  # cancelled it; told its end


class Owners:
    def __init__(self) -> None:
        self._jobs: dict[str, JobOwner] = {}
        self._keys: dict[bytes, str] = {}  # routing id -> CurveZMQ key (Z85) it last used

    def note_key(self, identity: bytes, key: str) -> None:
        """The CurveZMQ key the peer `identity` authenticated with (ZAP User-Id)."""
        if key:
            self._keys[identity] = key

    def principal(self, identity: bytes) -> str:
        key = self._keys.get(identity)
        return f"key:{key}" if key else f"id:{identity.hex()}"

    def submitted(self, job_id: str, identity: bytes) -> str:
        """`identity` submitted `job_id`; returns its principal (to be stored with the job)."""
        principal = self.principal(identity)
        self._jobs[job_id] = JobOwner(principal, identity)
        return principal

    def restored(self, job_id: str, principal: str) -> None:
        self._jobs[job_id] = JobOwner(principal, None)

    def reattach(self, job_id: str, identity: bytes) -> None:
        """`identity` fetched `job_id`: its progress and end now go there."""
        owner = self._jobs.get(job_id)
        if owner is None:
            self._jobs[job_id] = JobOwner(ANYONE, identity)
        else:
            owner.told = identity

    def told(self, job_id: str) -> bytes | None:
        owner = self._jobs.get(job_id)
        return owner.told if owner is not None else None

    def check_cancel(self, job_id: str, identity: bytes) -> None:
        """Raise `not_owner` unless `identity` may cancel `job_id`."""
        owner = self._jobs.get(job_id)
        if owner is not None:
            self.check_principal(job_id, owner.principal, identity)

    def check_principal(self, job_id: str, principal: str, identity: bytes) -> None:
        """Raise `not_owner` unless `identity` is `principal`, the owner of `job_id`."""
        if principal != ANYONE and principal != self.principal(identity):
            raise DreamwireError(
                ErrorCode.NOT_OWNER,
                "this job belongs to another client; only the client that submitted it "
                "(the same client id, or with CurveZMQ the same key) can cancel it",
                job_id,
            )

    def wait_for_end(self, job_id: str, identity: bytes) -> None:
        owner = self._jobs.get(job_id)
        if owner is not None and identity != owner.told:
            owner.waiting.add(identity)

    def end(self, job_id: str) -> list[bytes]:
        """The job is over: forget it; everyone to tell its end."""
        owner = self._jobs.pop(job_id, None)
        if owner is None:
            return []
        told = [owner.told] if owner.told is not None else []
        return told + sorted(owner.waiting - set(told))
