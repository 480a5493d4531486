-- PostgreSQL makes the FHIR store's key columns compare byte by byte here (see its migration).
-- SQLite's text columns already use BINARY collation: nothing to do.
SELECT 1;
