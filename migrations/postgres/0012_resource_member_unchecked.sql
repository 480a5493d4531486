-- `fhir_resource.member_account` names the member a record is about. Its foreign key ran a
-- lookup of `account` (through SPI, a query per row) for every resource written — about 6 % of
-- the database's work in a transfer's page commit. Only the store writes the column, always
-- with an account it read, and accounts are never deleted; the key guarded nothing more.
ALTER TABLE fhir_resource DROP CONSTRAINT fhir_resource_member_account_fkey;
