-- A user's token epoch: every change that ends the user's tokens raises it
-- in the same transaction that revokes them, and tokens are stored only
-- while it still has the value read when the grant was authorised.
ALTER TABLE users ADD COLUMN token_epoch BIGINT NOT NULL DEFAULT 0;
