-- 001_initial: the base schema (DESIGN §7). Never edit once applied: add a new migration instead.
--
-- Conventions
-- * Times are timestamptz written by the application from its injected clock: no DEFAULT now(), so a replay
--   records candle time. Money, prices and quantities are numeric; confidences are double precision in 0..1.
-- * Enumerations are text with a CHECK; structured details are jsonb.
-- * Rows the application identifies itself (it writes logs in batches) have uuid ids; operational rows have
--   identity ids.
-- * An account is the paper portfolio one coordinator trades; run_id links a row to the daemon run that
--   wrote it and is null for work outside a daemon (a one-off command, a notebook).
-- * References from the decision log to decisions and LLM calls are checked at commit (DEFERRABLE INITIALLY
--   DEFERRED): a batching writer may insert a decision, its LLM calls and its conflicts in one transaction in
--   any order.

-- One row per daemon start: what ran, with which settings, where, and why it stopped.
CREATE TABLE daemon_runs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account     text NOT NULL CHECK (account <> ''),
    started_at  timestamptz NOT NULL,
    ended_at    timestamptz,                          -- null while running, or after a crash
    config_hash text NOT NULL,
    version     text NOT NULL,                        -- triplegain's version
    host        text NOT NULL,
    pid         integer NOT NULL CHECK (pid > 0),
    exit_reason text,                                 -- why it stopped: a signal, a halt, an error, a crash
    CHECK (ended_at IS NULL OR ended_at >= started_at)
);
CREATE INDEX daemon_runs_account_started_at ON daemon_runs (account, started_at);

-- The coordinator of each account: state, degradation level and breaker state, saved on every change and
-- restored at start. A halt stays halted across restarts.
CREATE TABLE coordinator_state (
    account           text PRIMARY KEY CHECK (account <> ''),
    state             text NOT NULL CHECK (state IN ('RUNNING', 'PAUSED', 'HALTED')),
    changed_at        timestamptz NOT NULL,
    changed_by        text NOT NULL,                  -- who changed it: the daemon, a breaker rule, an operator
    reason            text NOT NULL,
    degradation_level text NOT NULL DEFAULT 'NORMAL'
        CHECK (degradation_level IN ('NORMAL', 'REDUCED', 'LIMITED', 'EMERGENCY')),
    breaker_state     jsonb NOT NULL DEFAULT '{}',
    last_heartbeat    timestamptz                     -- null until a daemon has run for this account
);

-- Operator commands. The CLI inserts a pending row and sends NOTIFY; the daemon settles the row: applied,
-- refused (not allowed now, e.g. resume from HALTED without force) or rejected (invalid). A command given
-- while no daemon runs stays pending until the next start.
CREATE TABLE coordinator_commands (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account      text NOT NULL CHECK (account <> ''),
    verb         text NOT NULL CHECK (verb IN ('pause', 'resume', 'halt')),
    args         jsonb NOT NULL DEFAULT '{}',         -- e.g. {"force": true}
    requested_by text NOT NULL,
    requested_at timestamptz NOT NULL,
    status       text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'applied', 'refused', 'rejected')),
    outcome      text,                                -- what the daemon did, or why not; the CLI prints it
    applied_at   timestamptz,                         -- when the daemon settled it, whatever the status
    CHECK ((status = 'pending') = (applied_at IS NULL))
);
CREATE INDEX coordinator_commands_pending ON coordinator_commands (account, id) WHERE status = 'pending';
CREATE INDEX coordinator_commands_account_requested_at ON coordinator_commands (account, requested_at);

-- The last run of every scheduled task, per account and symbol, so a restarted daemon knows what is due.
CREATE TABLE task_runs (
    account     text NOT NULL CHECK (account <> ''),
    task        text NOT NULL CHECK (task <> ''),
    symbol      text NOT NULL DEFAULT '',             -- '' for a task that is not about one symbol
    started_at  timestamptz NOT NULL,
    finished_at timestamptz,                          -- null while running
    status      text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'skipped')),
    error       text,
    PRIMARY KEY (account, task, symbol),
    CHECK ((status = 'running') = (finished_at IS NULL)),
    CHECK (finished_at IS NULL OR finished_at >= started_at),
    CHECK (status <> 'failed' OR error IS NOT NULL)
);

-- Coordinator decisions on trade intents, with the consensus inputs, the formula's terms and its result, so
-- every decision can be reviewed and recomputed.
CREATE TABLE decisions (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    run_id            bigint REFERENCES daemon_runs (id),
    account           text NOT NULL CHECK (account <> ''),
    symbol            text NOT NULL CHECK (symbol <> ''),
    ts                timestamptz NOT NULL,
    action            text NOT NULL CHECK (action IN ('buy', 'sell', 'hold')),
    confidence        double precision NOT NULL CHECK (confidence BETWEEN 0 AND 1),
    consensus_inputs  jsonb NOT NULL,                 -- the agent views that counted
    consensus_terms   jsonb NOT NULL,                 -- the formula's constants and each view's term
    consensus_result  jsonb NOT NULL,
    risk_checks       jsonb NOT NULL DEFAULT '{}',    -- sizing and the rules that cut or vetoed the trade
    degradation_level text NOT NULL CHECK (degradation_level IN ('NORMAL', 'REDUCED', 'LIMITED', 'EMERGENCY')),
    coordinator_state text NOT NULL CHECK (coordinator_state IN ('RUNNING', 'PAUSED', 'HALTED')),
    reason            text NOT NULL                   -- why this action, in a sentence
);
CREATE INDEX decisions_ts ON decisions (ts);
CREATE INDEX decisions_symbol_ts ON decisions (symbol, ts);
CREATE INDEX decisions_account_ts ON decisions (account, ts);
CREATE INDEX decisions_run_id ON decisions (run_id);

-- Every attempt at an LLM provider — answered, failed, skipped (budget spent, breaker open) or served from the
-- cache: both prompts, the raw response, the validated answer or why it did not validate, tokens, cost, latency.
-- The columns follow triplegain.llm.LLMCallRecord. API keys are never stored.
CREATE TABLE llm_calls (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    request_id       uuid NOT NULL,                   -- groups the attempts of one call (retries, fallbacks)
    decision_id      uuid REFERENCES decisions (id) DEFERRABLE INITIALLY DEFERRED,  -- null for an agent's call
    run_id           bigint REFERENCES daemon_runs (id),
    provider         text NOT NULL CHECK (provider <> ''),  -- deepseek, anthropic, openai, ollama, offline
    model            text NOT NULL CHECK (model <> ''),
    purpose          text NOT NULL CHECK (purpose <> ''),   -- e.g. conflict_resolution, sentiment, regime
    symbol           text,
    answer_model     text NOT NULL,                   -- the pydantic model the answer was validated against
    prompt_digest    text NOT NULL,                   -- sha256 of both prompts and the answer model (cache key)
    system_prompt    text NOT NULL,
    user_prompt      text NOT NULL,
    raw_response     text,                            -- null when no answer came
    parsed           jsonb,                           -- the validated answer
    validation_error text,                            -- why the answer did not validate
    input_tokens     integer NOT NULL DEFAULT 0 CHECK (input_tokens >= 0),
    output_tokens    integer NOT NULL DEFAULT 0 CHECK (output_tokens >= 0),
    cost_usd         numeric NOT NULL DEFAULT 0 CHECK (cost_usd >= 0),
    latency_ms       double precision NOT NULL CHECK (latency_ms >= 0),
    attempt          integer NOT NULL CHECK (attempt >= 1),
    cached           boolean NOT NULL DEFAULT false,
    error_class      text,                            -- e.g. ProviderTimeout, LLMOutputError, BudgetExceeded
    error_message    text,
    started_at       timestamptz NOT NULL,
    CHECK (parsed IS NOT NULL OR error_class IS NOT NULL),
    CHECK ((error_class IS NULL) = (error_message IS NULL))
);
CREATE INDEX llm_calls_started_at ON llm_calls (started_at);
CREATE INDEX llm_calls_decision_id ON llm_calls (decision_id);
CREATE INDEX llm_calls_request_id ON llm_calls (request_id);
CREATE INDEX llm_calls_provider_started_at ON llm_calls (provider, started_at);
CREATE INDEX llm_calls_cache_key ON llm_calls (provider, model, prompt_digest);

-- Every view an agent published: its structured body, its reasoning, and the LLM call behind it, if any.
CREATE TABLE agent_outputs (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    run_id      bigint REFERENCES daemon_runs (id),
    agent       text NOT NULL CHECK (agent IN ('technical', 'regime', 'sentiment', 'portfolio')),
    symbol      text,                                 -- null for a view of the whole portfolio
    ts          timestamptz NOT NULL,
    confidence  double precision CHECK (confidence BETWEEN 0 AND 1),  -- null for views without one
    body        jsonb NOT NULL,
    reasoning   text,
    llm_call_id uuid REFERENCES llm_calls (id) DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX agent_outputs_ts ON agent_outputs (ts);
CREATE INDEX agent_outputs_symbol_ts ON agent_outputs (symbol, ts);
CREATE INDEX agent_outputs_agent_ts ON agent_outputs (agent, ts);

-- Conflicts found while deciding (e.g. TA against sentiment at close confidence) and how the resolver chain
-- settled each: which resolver answered, and its answer.
CREATE TABLE conflicts (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    decision_id uuid NOT NULL REFERENCES decisions (id) DEFERRABLE INITIALLY DEFERRED,
    ts          timestamptz NOT NULL,
    rule        text NOT NULL CHECK (rule <> ''),     -- the conflict rule that fired
    details     jsonb NOT NULL,
    resolution  text CHECK (resolution IN ('proceed', 'modify', 'wait', 'abort')),  -- null until settled
    resolved_by text,                                 -- a provider and model, or the conservative rule
    CHECK ((resolution IS NULL) = (resolved_by IS NULL))
);
CREATE INDEX conflicts_decision_id ON conflicts (decision_id);
CREATE INDEX conflicts_ts ON conflicts (ts);

-- Paper orders. client_order_id is the idempotency key: retrying a submission can never create a second order.
CREATE TABLE orders (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    client_order_id text NOT NULL UNIQUE CHECK (client_order_id <> ''),
    account         text NOT NULL CHECK (account <> ''),
    decision_id     uuid REFERENCES decisions (id),   -- null for orders no decision made (a stop, a flatten)
    symbol          text NOT NULL CHECK (symbol <> ''),
    side            text NOT NULL CHECK (side IN ('buy', 'sell')),
    type            text NOT NULL CHECK (type IN ('market', 'limit', 'stop_loss', 'take_profit')),
    qty             numeric NOT NULL CHECK (qty > 0),
    price           numeric CHECK (price > 0),        -- limit or trigger price; null for a market order
    status          text NOT NULL
        CHECK (status IN ('pending', 'open', 'partially_filled', 'filled', 'cancelled', 'rejected', 'expired')),
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    reason          text NOT NULL,
    CHECK (type = 'market' OR price IS NOT NULL),
    CHECK (updated_at >= created_at)
);
CREATE INDEX orders_decision_id ON orders (decision_id);
CREATE INDEX orders_symbol_created_at ON orders (symbol, created_at);
CREATE INDEX orders_account_created_at ON orders (account, created_at);
CREATE INDEX orders_open ON orders (account, symbol) WHERE status IN ('pending', 'open', 'partially_filled');

-- Executions of orders, with fees. client_fill_id makes recording a fill idempotent too.
CREATE TABLE fills (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    order_id       uuid NOT NULL REFERENCES orders (id),
    client_fill_id text NOT NULL UNIQUE CHECK (client_fill_id <> ''),
    qty            numeric NOT NULL CHECK (qty > 0),
    price          numeric NOT NULL CHECK (price > 0),
    fee            numeric NOT NULL CHECK (fee >= 0),
    fee_currency   text NOT NULL CHECK (fee_currency <> ''),
    ts             timestamptz NOT NULL
);
CREATE INDEX fills_order_id ON fills (order_id);
CREATE INDEX fills_ts ON fills (ts);

-- Current paper positions per account and symbol; qty is signed (negative is short).
CREATE TABLE positions (
    account      text NOT NULL CHECK (account <> ''),
    symbol       text NOT NULL CHECK (symbol <> ''),
    qty          numeric NOT NULL,
    avg_price    numeric NOT NULL CHECK (avg_price > 0),
    stop_price   numeric CHECK (stop_price > 0),
    target_price numeric CHECK (target_price > 0),
    opened_at    timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (account, symbol),
    CHECK (updated_at >= opened_at)
);

-- The paper portfolio over time: equity, cash, positions and drawdown, for reports and the breaker.
CREATE TABLE portfolio_snapshots (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account   text NOT NULL CHECK (account <> ''),
    ts        timestamptz NOT NULL,
    equity    numeric NOT NULL,
    cash      numeric NOT NULL,
    positions jsonb NOT NULL,
    drawdown  numeric NOT NULL CHECK (drawdown BETWEEN 0 AND 1)  -- fraction below the equity peak
);
CREATE INDEX portfolio_snapshots_account_ts ON portfolio_snapshots (account, ts);

-- Every change of degradation level and what caused it.
CREATE TABLE degradation_events (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account    text NOT NULL CHECK (account <> ''),
    ts         timestamptz NOT NULL,
    from_level text NOT NULL CHECK (from_level IN ('NORMAL', 'REDUCED', 'LIMITED', 'EMERGENCY')),
    to_level   text NOT NULL CHECK (to_level IN ('NORMAL', 'REDUCED', 'LIMITED', 'EMERGENCY')),
    cause      jsonb NOT NULL,
    CHECK (from_level <> to_level)
);
CREATE INDEX degradation_events_account_ts ON degradation_events (account, ts);

-- Circuit-breaker rules tripping and resetting, with the figures that made them.
CREATE TABLE breaker_events (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account text NOT NULL CHECK (account <> ''),
    ts      timestamptz NOT NULL,
    rule    text NOT NULL CHECK (rule IN ('daily_loss', 'weekly_loss', 'max_drawdown', 'consecutive_losses')),
    state   text NOT NULL CHECK (state IN ('tripped', 'reset')),
    details jsonb NOT NULL
);
CREATE INDEX breaker_events_account_ts ON breaker_events (account, ts);

-- Bus messages that were not delivered to a subscription, with why (the bus's DeadLetterReason).
CREATE TABLE dead_letters (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ts           timestamptz NOT NULL,
    topic        text NOT NULL CHECK (topic <> ''),
    subscription text NOT NULL,
    reason       text NOT NULL
        CHECK (reason IN ('expired', 'handler_error', 'filter_error', 'dropped', 'unsubscribed', 'closed')),
    message_id   uuid NOT NULL,
    message      jsonb NOT NULL,
    error        text,                                -- "Type: text" when a handler or filter raised
    traceback    text
);
CREATE INDEX dead_letters_ts ON dead_letters (ts);
CREATE INDEX dead_letters_topic_ts ON dead_letters (topic, ts);
CREATE INDEX dead_letters_message_id ON dead_letters (message_id);
