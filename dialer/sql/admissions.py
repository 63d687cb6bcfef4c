"""Admitting a lead's call: idempotency keys, the do-not-call list and the dedupe window,
decided under a per-number lock so two requests for one number cannot both create a call."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from dialer.codec import opt_ts, parse_ts, ts
from dialer.model import Call
from dialer.sql.calls import insert_call
from dialer.sql.campaigns import campaign_state
from dialer.sql.dnc import listed
from dialer.sql.engine import SqlEngine, Tx
from dialer.store import Admission, IdempotencyConflict, IdempotencyKey


class Admissions(SqlEngine):
    def admit(
        self, call: Call, *, idempotency: IdempotencyKey | None, dedupe_since: datetime | None
    ) -> Admission:
        try:
            admission = self._admit(call, idempotency=idempotency, dedupe_since=dedupe_since)
        except Exception as exc:
            if not self.is_unique_violation(exc):
                raise
            # A concurrent request with the same idempotency key won; answer as it did.
            return self._admit(call, idempotency=idempotency, dedupe_since=dedupe_since)
        if admission.outcome == "created" and admission.status == "queued":
            self.wake_dialer()  # committed: the dialer's claim will see it
        return admission

    def admit_many(
        self, calls: Sequence[Call], *, dedupe_since: datetime | None
    ) -> list[Admission]:
        """Admit a batch of calls (a CSV file's rows) in one transaction, each decided exactly as
        ``admit`` decides one, a later row seeing the earlier ones. The numbers are locked in
        sorted order, so two batches cannot deadlock; keep batches small (a lead posted
        meanwhile waits for the batch on SQLite)."""
        with self.transaction() as tx:
            for phone in sorted({call.lead.phone for call in calls}):
                self.lock_phone(tx, phone)
            states = {c.campaign: campaign_state(tx, c.campaign, lock=self.for_share)
                      for c in calls}  # fmt: skip
            admissions = []
            for call in calls:
                if states[call.campaign] == "cancelled":
                    admissions.append(Admission("campaign_cancelled", None))
                    continue
                admission = _decide_admission(tx, call, dedupe_since)
                if admission.outcome == "created":
                    insert_call(tx, call)
                admissions.append(admission)
        if any(a.outcome == "created" and a.status == "queued" for a in admissions):
            self.wake_dialer()
        return admissions

    def _admit(
        self, call: Call, *, idempotency: IdempotencyKey | None, dedupe_since: datetime | None
    ) -> Admission:
        with self.transaction() as tx:
            self.lock_phone(tx, call.lead.phone)
            if idempotency is not None:
                earlier = _idempotent_answer(tx, idempotency)
                if earlier is not None:
                    return earlier
            # Held shared to the commit, so a cancel cannot miss a call admitted meanwhile.
            if campaign_state(tx, call.campaign, lock=self.for_share) == "cancelled":
                return Admission("campaign_cancelled", None)
            admission = _decide_admission(tx, call, dedupe_since)
            if admission.outcome == "created":
                insert_call(tx, call)
            if idempotency is not None:
                _remember_answer(tx, idempotency, admission, at=call.created_at)
            return admission


def _decide_admission(tx: Tx, call: Call, dedupe_since: datetime | None) -> Admission:
    if listed(tx, call.lead.phone):
        return Admission("do_not_call", None)
    if dedupe_since is not None:
        found = tx.rows(
            "SELECT id, status, next_at FROM dialer_calls WHERE phone = ? AND created_at >= ? "
            "ORDER BY created_at DESC LIMIT 1",
            (call.lead.phone, ts(dedupe_since)),
        )
        if found:
            call_id, status, next_at = found[0]
            return Admission("duplicate", call_id, status, parse_ts(next_at))
    return Admission("created", call.id, call.status, call.next_at)


def _idempotent_answer(tx: Tx, key: IdempotencyKey) -> Admission | None:
    rows = tx.rows(
        "SELECT fingerprint, outcome, call_id, status, next_at FROM dialer_idempotency "
        "WHERE scope = ? AND key = ?",
        (key.scope, key.key),
    )
    if not rows:
        return None
    fingerprint, outcome, call_id, status, next_at = rows[0]
    if fingerprint != key.fingerprint:
        raise IdempotencyConflict("this Idempotency-Key was used for a different request")
    return Admission(outcome, call_id, status, parse_ts(next_at), replayed=True)


def _remember_answer(tx: Tx, key: IdempotencyKey, admission: Admission, *, at: datetime) -> None:
    tx.run(
        "INSERT INTO dialer_idempotency (scope, key, fingerprint, outcome, call_id, status, "
        "next_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (key.scope, key.key, key.fingerprint, admission.outcome, admission.call_id,
         admission.status, opt_ts(admission.next_at), ts(at)),
    )  # fmt: skip
