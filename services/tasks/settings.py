"""The tasks service's knobs (environment variables `LABELHIVE_<FIELD>`)."""

from __future__ import annotations

from shared.settings import PlatformSettings


class TasksSettings(PlatformSettings):
    # The time-out worker: how often it looks for annotators past `total_time_limit`, and how long
    # its Redis lock (one worker per deployment) lives without being renewed.
    timeout_scan_seconds: float = 2.0
    worker_lock_seconds: float = 15.0
    # The outbox of calls to other services (escrow payouts and refunds, grow value, credit, dataset
    # status): how often it is polled when idle, and the longest wait between two tries of one call.
    outbox_interval_seconds: float = 1.0
    outbox_max_backoff_seconds: float = 10.0
    # Auto acceptance: the share of standard-answer questions an annotator must get right.
    auto_accept_threshold: float = 0.8
    # Annotators below this credit score are never given a task and cannot accept one.
    min_credit_score: int = 60
    # Credit deducted from the reportee when an admin accepts a report.
    report_credit_penalty: int = 10
    # 003's grow value for publishing a task and for a completed (accepted) labelling.
    grow_value_per_task: int = 10
    # Texts fetched from the dataset service at once (taginfo, manual check, batch data).
    text_fetch_concurrency: int = 16
