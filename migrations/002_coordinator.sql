-- 002_coordinator: what the coordinator needs to restart where it stopped (issue 4), and the rest of a decision's
-- record. Never edit once applied: add a new migration instead.
--
-- Writers (triplegain.store)
-- * coordinator_state.state, changed_*, reason belong to the command applier (apply_pending); degradation_level,
--   degradation, breaker_state and last_heartbeat to the coordinator's snapshot (save_snapshot). Neither
--   writes the other's columns, so a snapshot never undoes an operator's pause and a command never rolls back
--   the degradation level.
-- * A decision, its conflicts and its order are stored in one transaction (commit_decision).

-- The whole degradation state, so hysteresis survives a restart: DegradationState.model_dump(mode="json"),
-- i.e. {"level": "limited", "since": …, "pending_recovery_since": … | null, "causes": [...]}. '{}' until the
-- coordinator first saves a snapshot (a row created by the command applier); it then reads as
-- degradation_level since changed_at.
ALTER TABLE coordinator_state ADD COLUMN degradation jsonb NOT NULL DEFAULT '{}';

-- degradation_level stays the column to query by; it must name the level the jsonb holds (the jsonb has the
-- enum's value, lower case; the column its name, upper case), so the two can never disagree.
ALTER TABLE coordinator_state ADD CONSTRAINT coordinator_state_degradation_matches_level
    CHECK (degradation = '{}'::jsonb OR upper(degradation ->> 'level') = degradation_level);
ALTER TABLE coordinator_state ADD CONSTRAINT coordinator_state_degradation_is_object
    CHECK (jsonb_typeof(degradation) = 'object');
ALTER TABLE coordinator_state ADD CONSTRAINT coordinator_state_breaker_state_is_object
    CHECK (jsonb_typeof(breaker_state) = 'object');

-- The trade intent the decision is about (direction, entry/stop/target prices, base confidence, the plan).
ALTER TABLE decisions ADD COLUMN intent jsonb NOT NULL DEFAULT '{}'
    CHECK (jsonb_typeof(intent) = 'object');
-- How the resolver chain settled the decision's conflicts: who answered, the bounded resolution, the clamps
-- applied and every attempt. Null when no conflict went to the resolver.
ALTER TABLE decisions ADD COLUMN resolution jsonb
    CHECK (resolution IS NULL OR jsonb_typeof(resolution) = 'object');
-- The effects of the degradation level that applied to the decision (size multiplier, minimum confidence, …).
ALTER TABLE decisions ADD COLUMN effects jsonb NOT NULL DEFAULT '{}'
    CHECK (jsonb_typeof(effects) = 'object');

-- Events are saved with the snapshot that produced them; a snapshot sent again after a commit whose answer was
-- lost must not record them twice. One level change per account, time and pair of levels; one trip or reset
-- per account, time and rule.
CREATE UNIQUE INDEX degradation_events_once ON degradation_events (account, ts, from_level, to_level);
CREATE UNIQUE INDEX breaker_events_once ON breaker_events (account, ts, rule, state);

-- Orders stored but not yet acknowledged by the broker, oldest first: handed to the broker again at restart
-- (their client_order_id makes that safe).
CREATE INDEX orders_pending ON orders (account, created_at) WHERE status = 'pending';
