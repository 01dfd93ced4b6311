CREATE OR REPLACE EXTERNAL TABLE `${PROJECT}.${DATASET}.events`
(
  event_id STRING OPTIONS(description="Stable id of the event: a digest of the decoded event, unchanged by re-signing, key order and retries."),
  source_format STRING OPTIONS(description="Delivery format: canvas or caliper."),
  event_time TIMESTAMP OPTIONS(description="When Canvas raised the event, UTC."),
  received_at TIMESTAMP OPTIONS(description="When the receiver (or the replay) took the delivery, UTC."),
  request_id STRING OPTIONS(description="Canvas request id; shared by every event raised in one request."),
  session_id STRING OPTIONS(description="Canvas login session id."),
  job_id STRING OPTIONS(description="Background job id, for system-generated events."),
  job_tag STRING OPTIONS(description="Background job class#method, for system-generated events."),
  user_id STRING OPTIONS(description="Acting user (global id)."),
  real_user_id STRING OPTIONS(description="The real user when masquerading."),
  user_login STRING OPTIONS(description="Acting user's login (PII: see --pii)."),
  user_sis_id STRING OPTIONS(description="Acting user's SIS id (PII: see --pii)."),
  user_account_id STRING OPTIONS(description="Account the acting user belongs to."),
  root_account_id STRING OPTIONS(description="Root account (institution) id, global form."),
  root_account_uuid STRING OPTIONS(description="Root account uuid."),
  root_account_lti_guid STRING OPTIONS(description="Root account LTI tool-consumer guid."),
  context_type STRING OPTIONS(description="Where it happened: Course, Account, Group, User, CourseSection, ..."),
  context_id STRING OPTIONS(description="Id of that context."),
  context_role STRING OPTIONS(description="Acting user's role in the context (Canvas enrollment type names)."),
  context_account_id STRING OPTIONS(description="Account that directly owns the context."),
  context_sis_source_id STRING OPTIONS(description="SIS id of the context."),
  hostname STRING OPTIONS(description="Canvas host that served the request."),
  http_method STRING OPTIONS(description="HTTP method of the triggering request."),
  url STRING OPTIONS(description="Request URL, with access_token values scrubbed."),
  referrer STRING OPTIONS(description="HTTP referer, with access_token values scrubbed."),
  client_ip STRING OPTIONS(description="Client IP (PII: see --pii)."),
  user_agent STRING OPTIONS(description="Client user agent (PII: see --pii)."),
  time_zone STRING OPTIONS(description="Acting user's IANA time zone (Canvas format only)."),
  developer_key_id STRING OPTIONS(description="Developer key behind the access token, for API/LTI calls."),
  caliper_event_id STRING OPTIONS(description="Caliper event id (urn:uuid:...), Caliper format only."),
  caliper_type STRING OPTIONS(description="Caliper event type, e.g. NavigationEvent."),
  caliper_action STRING OPTIONS(description="Caliper action, e.g. NavigatedTo."),
  object_type STRING OPTIONS(description="Type of the object acted on (Caliper object type, or the Canvas asset/entity type)."),
  object_id STRING OPTIONS(description="Bare id of the object acted on."),
  body STRING OPTIONS(description="The event-specific payload as JSON (Canvas body, or the Caliper event)."),
  metadata STRING OPTIONS(description="The whole envelope as JSON, so that nothing of the input is lost."),
  signed BOOLEAN OPTIONS(description="True when the delivery was a verified JWT."),
  kid STRING OPTIONS(description="Key id that verified the delivery.")
)
WITH PARTITION COLUMNS (
  event_date DATE,
  event_name STRING
)
OPTIONS (
  format = 'PARQUET',
  uris = ['gs://${BUCKET}/events/*'],
  hive_partition_uri_prefix = 'gs://${BUCKET}/events',
  require_hive_partition_filter = true
);
