CREATE OR REPLACE VIEW `${PROJECT}.${DATASET}.events_deduped`
OPTIONS (description="The events table with one row per dedupe key (request or job id + event_id): the copy received first. Generated from schemas/ (python -m schemas.generate).")
AS
SELECT
  event_id,
  source_format,
  event_time,
  received_at,
  request_id,
  session_id,
  job_id,
  job_tag,
  user_id,
  real_user_id,
  user_login,
  user_sis_id,
  user_account_id,
  root_account_id,
  root_account_uuid,
  root_account_lti_guid,
  context_type,
  context_id,
  context_role,
  context_account_id,
  context_sis_source_id,
  hostname,
  http_method,
  url,
  referrer,
  client_ip,
  user_agent,
  time_zone,
  developer_key_id,
  caliper_event_id,
  caliper_type,
  caliper_action,
  object_type,
  object_id,
  body,
  metadata,
  signed,
  kid,
  actor_iri,
  ed_app_id,
  federated_session_id,
  sensor,
  subscription_id,
  delivery_extra,
  event_date,
  event_name
FROM `${PROJECT}.${DATASET}.events`
WHERE TRUE
QUALIFY ROW_NUMBER() OVER (
  PARTITION BY event_date, event_name, CASE
      WHEN request_id IS NOT NULL AND request_id != '' THEN CONCAT('r:', request_id, '|', event_id)
      WHEN job_id IS NOT NULL AND job_id != '' THEN CONCAT('j:', job_id, '|', event_id)
      ELSE CONCAT('-|', event_id)
    END
  ORDER BY received_at ASC NULLS LAST, signed DESC, kid
) = 1;
