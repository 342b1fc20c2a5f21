-- The chain registry, alert state and history, notification deliveries and discovery
-- candidates. Idempotent: every statement can run again on a database that has it.

-- Every stored version of every chain; a deletion is a version with deleted = true.
CREATE TABLE IF NOT EXISTS chainmap_chain_versions (
    chain_id    text        NOT NULL,
    version     integer     NOT NULL CHECK (version > 0),
    definition  json,
    deleted     boolean     NOT NULL DEFAULT false,
    author      text        NOT NULL DEFAULT '',
    comment     text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (chain_id, version)
);

-- The version each live chain is at, and its place in the catalog (nesting pushes in order).
CREATE TABLE IF NOT EXISTS chainmap_chain_current (
    chain_id    text    PRIMARY KEY,
    version     integer NOT NULL,
    position    integer NOT NULL,
    FOREIGN KEY (chain_id, version) REFERENCES chainmap_chain_versions (chain_id, version)
);

-- One row per chain x objective x rule: where its state machine is.
CREATE TABLE IF NOT EXISTS chainmap_alert_state (
    alert_key       text        PRIMARY KEY,
    chain_id        text        NOT NULL,
    objective       text        NOT NULL,
    rule            text        NOT NULL,
    severity        text        NOT NULL,
    state           text        NOT NULL CHECK (state IN ('inactive', 'pending', 'firing', 'resolved')),
    active_since    timestamptz,
    fired_at        timestamptz,
    resolved_at     timestamptz,
    evaluated_at    timestamptz NOT NULL DEFAULT now(),
    labels          jsonb       NOT NULL DEFAULT '{}'::jsonb,
    annotations     jsonb       NOT NULL DEFAULT '{}'::jsonb
);

-- Every transition, for `chainmap alerts --history`.
CREATE TABLE IF NOT EXISTS chainmap_alert_events (
    id          bigserial   PRIMARY KEY,
    alert_key   text        NOT NULL,
    chain_id    text        NOT NULL,
    state       text        NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    labels      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    annotations jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX IF NOT EXISTS chainmap_alert_events_at ON chainmap_alert_events (at);

-- Every webhook delivery attempt series: what was sent where and how it ended.
CREATE TABLE IF NOT EXISTS chainmap_notification_deliveries (
    id           bigserial   PRIMARY KEY,
    url          text        NOT NULL,
    group_key    text        NOT NULL,
    status       text        NOT NULL,
    outcome      text        NOT NULL CHECK (outcome IN ('delivered', 'failed', 'dropped')),
    attempts     integer     NOT NULL,
    http_status  integer,
    error        text        NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- Chain proposals saved by `chainmap discover --save`, promoted by `chainmap registry accept`.
CREATE TABLE IF NOT EXISTS chainmap_discovery_candidates (
    id          bigserial   PRIMARY KEY,
    shape_key   text        NOT NULL UNIQUE,
    definition  json        NOT NULL,
    traces      bigint      NOT NULL DEFAULT 0,
    status      text        NOT NULL DEFAULT 'proposed' CHECK (status IN ('proposed', 'accepted')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    accepted_at timestamptz
);
