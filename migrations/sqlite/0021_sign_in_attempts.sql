-- A sign-in reserves its place among the failures before the password is checked, so that
-- parallel attempts cannot all pass the limit; `attempt` names the reservation, to take it
-- back when the attempt is throttled or succeeds.
ALTER TABLE sign_in_failure ADD COLUMN attempt TEXT;
CREATE INDEX sign_in_failure_attempt ON sign_in_failure (attempt);
