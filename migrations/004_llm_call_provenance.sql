-- 004_llm_call_provenance: where each LLM attempt stands in its resolution, when it was made on the wall clock,
-- and which run's stored answer served it (issue 14). Never edit once applied: add a new migration instead.
--
-- Writers (triplegain.store.llm_calls, through the batching writer)
-- * step: the attempt's place in its resolution: 1 for the first attempt at the first provider of a chain,
--   counting on through retries and fallbacks (an agent's review is a chain of one provider). Attempts are
--   listed in this order: their started_at is candle time in a replay, the same for every attempt.
-- * wall_started_at: when the attempt started on the wall clock, whatever the simulated clock said; the daily
--   budget is counted by its UTC day. started_at stays the time the system ran at (candle time in a replay).
-- * served_from_run: the daemon run whose stored call answered this attempt (triplegain run --answers-from);
--   no provider was asked and nothing was paid. Null for an attempt made here.

ALTER TABLE llm_calls ADD COLUMN step integer CHECK (step >= 1);
ALTER TABLE llm_calls ADD COLUMN wall_started_at timestamptz;
ALTER TABLE llm_calls ADD COLUMN served_from_run bigint REFERENCES daemon_runs (id);

-- Rows stored before: the attempts of a decision (an agent's call) numbered in the order they were listed,
-- and started_at as their wall-clock time (it was, except in replays).
UPDATE llm_calls AS c SET step = numbered.step
FROM (
    SELECT id, row_number() OVER (
        PARTITION BY coalesce(decision_id, request_id) ORDER BY started_at, attempt, id
    ) AS step
    FROM llm_calls
) AS numbered
WHERE numbered.id = c.id;
UPDATE llm_calls SET wall_started_at = started_at;

ALTER TABLE llm_calls ALTER COLUMN step SET NOT NULL;
ALTER TABLE llm_calls ALTER COLUMN wall_started_at SET NOT NULL;

-- Today's spend of a provider, summed at start; a run's calls, read to serve them again.
CREATE INDEX llm_calls_provider_wall_started_at ON llm_calls (provider, wall_started_at);
CREATE INDEX llm_calls_run_id ON llm_calls (run_id);
