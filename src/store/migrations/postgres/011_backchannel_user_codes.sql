-- Version 11: a user's CIBA user code (OpenID Connect CIBA Core 1.0 §7.1 `user_code`), a
-- secret the user sets on their account page and an app passes to prove the request comes
-- from them; kept only as an argon2 PHC string. NULL: none set.

ALTER TABLE users ADD COLUMN backchannel_user_code TEXT;
