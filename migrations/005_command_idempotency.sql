-- Commands sent over HTTP carry a client's idempotency key: the same key on the same account is one command,
-- whatever how many times the request is retried (POST /api/commands answers with that command's outcome).
ALTER TABLE coordinator_commands ADD COLUMN idempotency_key text CHECK (idempotency_key <> '');
CREATE UNIQUE INDEX coordinator_commands_idempotency_key
    ON coordinator_commands (account, idempotency_key) WHERE idempotency_key IS NOT NULL;
