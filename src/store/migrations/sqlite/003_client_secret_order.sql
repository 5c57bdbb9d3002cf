-- Version 3: client secrets issued within the same second keep their issuing order.

-- Nothing to change on SQLite: every row has a rowid in insertion order, and secrets are
-- listed by it (dialect: INSERTION_ORDER). PostgreSQL has no such column and adds `seq`.
--
-- SQLite files written before this numbering was shared with PostgreSQL recorded the
-- registered_clients table (now version 4) as version 3; the migration runner maps them
-- (dialect: SQLite's BOOKKEEPING).
