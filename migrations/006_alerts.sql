-- 006_alerts: every alert the daemon raised and what became of it at each webhook (issue 17). Never edit once
-- applied: add a new migration instead.
--
-- Writers (triplegain.store.alerts, from the alert dispatcher triplegain.alerts)
-- * One row per alert and webhook, written once its fate is known: 'delivered' (a 2xx answer), 'failed' (a
--   refusal, or every attempt failed), 'undelivered' (still pending when the daemon's stop grace ran out),
--   'dropped' (the webhook's queue was full: never sent).
-- * webhook is the URL's scheme and host only: the rest may hold a secret (a Telegram bot's token) and is never
--   stored. error is masked the same way.
-- * at is the event's time on the system's clock (candle time in a replay); raised_at, delivered_at and
--   finished_at are wall-clock times.

CREATE TABLE alerts (
    id           uuid PRIMARY KEY,                     -- made by the dispatcher: a row stored twice is stored once
    account      text NOT NULL CHECK (account <> ''),
    run_id       bigint REFERENCES daemon_runs (id),
    kind         text NOT NULL CHECK (kind IN ('breaker_tripped', 'halted', 'level_changed', 'database_outage',
                                               'database_back', 'daemon_stopped')),
    at           timestamptz NOT NULL,
    text         text NOT NULL,
    payload      jsonb NOT NULL,
    webhook      text NOT NULL CHECK (webhook ~ '^https?://[^/?#]*$'),
    outcome      text NOT NULL CHECK (outcome IN ('delivered', 'failed', 'undelivered', 'dropped')),
    attempts     integer NOT NULL CHECK (attempts >= 0),
    status_code  integer,                              -- the last answer's HTTP status, if any
    error        text,                                 -- why the last attempt failed, if it did
    raised_at    timestamptz NOT NULL,
    delivered_at timestamptz,
    finished_at  timestamptz NOT NULL,
    CHECK ((outcome = 'delivered') = (delivered_at IS NOT NULL))
);
CREATE INDEX alerts_account_raised_at ON alerts (account, raised_at);
CREATE INDEX alerts_run_id ON alerts (run_id);
