-- service_scopes are the scopes a client holds itself, when it acts for no
-- user (introspecting with its own credentials, RFC 7662 §2.1), separate
-- from scopes, which limit what it may obtain on a user's behalf. '' means
-- none: a client registered before this migration holds nothing itself.
ALTER TABLE clients ADD COLUMN service_scopes TEXT NOT NULL DEFAULT '';
