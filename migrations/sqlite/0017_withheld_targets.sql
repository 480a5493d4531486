-- A record a transfer left out because it is sensitive and the member said so, noted with the
-- page that left it out (`withheld` = why, e.g. `label:hiv`; `source_id` empty): a transfer
-- resumed after a crash still knows that a Provenance naming it must be left out too, and
-- does not fetch it again as a record that did not come.
ALTER TABLE transfer_target ADD COLUMN withheld TEXT;
