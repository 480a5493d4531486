-- PostgreSQL drops the foreign key of `fhir_resource.member_account` here (see its migration).
-- SQLite cannot drop a constraint without rebuilding the table, and its check is a cheap
-- lookup on the same connection: nothing to do.
SELECT 1;
