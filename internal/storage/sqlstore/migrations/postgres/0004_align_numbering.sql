-- Nothing to change: SQLite's 0004 (token_epoch) is PostgreSQL's 0003,
-- since PostgreSQL's 0001 covered SQLite's 0001 and 0002. From 0005 on,
-- one number is one change on both engines.
SELECT 1;
