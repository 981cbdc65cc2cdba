-- 003_execution: what the paper broker needs (issue 5). Never edit once applied: add a new migration instead.
--
-- Writers (triplegain.store.execution)
-- * An order's status after 'pending' belongs to the broker: accepted ('open') or 'rejected' at submission,
--   'filled' or 'rejected' at its candle, 'cancelled' by a flatten. Orders the broker makes itself (triggered
--   stops and targets, a flatten) have no decision.
-- * A candle's fills, order statuses, positions, portfolio snapshot and mark are written in one transaction.
-- * Balances are not stored: they are the starting balances plus every fill of the account, in seq order.

-- The protective prices of the decision that made the order: the position a buy opens (or a sell, when
-- borrowing) gets them as its stop and target.
ALTER TABLE orders ADD COLUMN stop_price numeric CHECK (stop_price > 0);
ALTER TABLE orders ADD COLUMN target_price numeric CHECK (target_price > 0);
-- Why the broker gave the order its status: a rejection's rule and values, a quantity floored or reduced, a
-- cancellation. reason stays the decision's.
ALTER TABLE orders ADD COLUMN status_reason text;
ALTER TABLE orders ADD CONSTRAINT orders_rejected_has_reason CHECK (status <> 'rejected' OR status_reason IS NOT NULL);

-- The order fills were applied in (several fills of one candle share a ts): balances are recomputed at start by
-- applying every fill in this order, exactly as the broker did.
ALTER TABLE fills ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY;
CREATE UNIQUE INDEX fills_seq ON fills (seq);
-- maker: a limit order that rested on the book; taker: a market order or a triggered stop or target.
ALTER TABLE fills ADD COLUMN liquidity text NOT NULL DEFAULT 'taker' CHECK (liquidity IN ('maker', 'taker'));

-- One snapshot per account and time: a candle processed again (a retry, a replay after a restart) rewrites its
-- snapshot instead of adding one; with several symbols, the last candle of a time writes the portfolio after all.
CREATE UNIQUE INDEX portfolio_snapshots_once ON portfolio_snapshots (account, ts);
ALTER TABLE portfolio_snapshots ADD CONSTRAINT portfolio_snapshots_positions_is_object
    CHECK (jsonb_typeof(positions) = 'object');

-- The last candle the broker processed per account and symbol, and its close: a candle at or before it is not
-- processed again (no fill twice), and a restarted broker values its holdings before the next candle.
CREATE TABLE broker_marks (
    account          text NOT NULL CHECK (account <> ''),
    symbol           text NOT NULL CHECK (symbol <> ''),
    candle_open_time timestamptz NOT NULL,
    price            numeric NOT NULL CHECK (price > 0),
    PRIMARY KEY (account, symbol)
);
