-- PostgreSQL drops the foreign keys of fhir_identifier and fhir_reference here (see its
-- migration). On SQLite they cost next to nothing and dropping one means rebuilding the
-- table: they stay. The migration keeps both backends' versions in step.
SELECT 1;
