-- Identifier and reference rows are the store's own index of each resource: written with it
-- and removed with it by the store (crates/store/src/write.rs, purge_resource), never by
-- anyone else. Their foreign keys checked every row written against fhir_resource — about
-- five checks per resource a transfer stores, a fifth of a page commit's time — and
-- guaranteed nothing the store does not already do.
ALTER TABLE fhir_identifier DROP CONSTRAINT fhir_identifier_resource_seq_fkey;
ALTER TABLE fhir_reference DROP CONSTRAINT fhir_reference_resource_seq_fkey;
