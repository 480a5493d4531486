-- Which permissions (member consents) brought each received record: consent ids, space
-- separated. A record brought again under another permission belongs to that one too, so a
-- member who withdraws one permission and asks to delete what it brought loses only records no
-- other permission of theirs brought (`origin_transfer` names only the latest transfer).
ALTER TABLE fhir_resource ADD COLUMN permissions TEXT NOT NULL DEFAULT '';

-- Records received before this column: every permission of the same member for the same plan
-- under which a transfer started may have brought them (deleting less, never more).
UPDATE fhir_resource SET permissions = COALESCE((
    SELECT replace(group_concat(DISTINCT other.consent_id), ',', ' ')
    FROM transfer t
    JOIN payer_link l ON l.id = t.link_id
    JOIN payer_link other ON other.member_account = l.member_account AND other.fhir_base = l.fhir_base
    WHERE t.id = fhir_resource.origin_transfer
      AND other.consent_id IS NOT NULL
      AND EXISTS (SELECT 1 FROM transfer started WHERE started.link_id = other.id AND started.started_at IS NOT NULL)
), '')
WHERE origin_transfer IS NOT NULL;

-- When a member withdrew a permission and asked for what arrived to be deleted: how many
-- records were deleted, how many stayed because another permission of theirs brought them too,
-- and how many directory entries stayed because other members' records name them.
ALTER TABLE member_consent ADD COLUMN records_deleted BIGINT;
ALTER TABLE member_consent ADD COLUMN records_kept BIGINT;
ALTER TABLE member_consent ADD COLUMN records_shared BIGINT;
