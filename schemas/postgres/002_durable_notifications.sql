-- The webhook queue made durable through the delivery log: a notification is stored as
-- `pending` (one row per URL, with its payload and the fingerprints of its alerts) before it
-- is queued, and becomes delivered, failed or dropped when done; a starting `chainmap serve`
-- re-queues the rows still pending (oldest first; too old or superseded ones are dropped
-- with the reason in `error`). Idempotent: every statement can run again.

ALTER TABLE chainmap_notification_deliveries
    ADD COLUMN IF NOT EXISTS payload      jsonb,
    ADD COLUMN IF NOT EXISTS fingerprints text[]      NOT NULL DEFAULT '{}',
    ADD COLUMN IF NOT EXISTS updated_at   timestamptz NOT NULL DEFAULT now();

ALTER TABLE chainmap_notification_deliveries
    DROP CONSTRAINT IF EXISTS chainmap_notification_deliveries_outcome_check;
ALTER TABLE chainmap_notification_deliveries
    ADD CONSTRAINT chainmap_notification_deliveries_outcome_check
    CHECK (outcome IN ('pending', 'delivered', 'failed', 'dropped'));

CREATE INDEX IF NOT EXISTS chainmap_notification_deliveries_pending
    ON chainmap_notification_deliveries (id) WHERE outcome = 'pending';
