-- Version 9: tags an administrator gives self-registered clients (to group and filter
-- them beside the declared apps' spec.tags); never taken from the client's metadata.

ALTER TABLE registered_clients ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
