-- Paging a patient's or a member's whole record in `seq` order across every type (as
-- `$everything` and the transfer's bookkeeping do) without sorting what the page skips.
CREATE INDEX fhir_resource_patient_seq ON fhir_resource (patient_id, seq);
CREATE INDEX fhir_resource_member_seq ON fhir_resource (member_account, seq);
