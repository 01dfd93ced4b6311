-- Rows sharing an event_id: the pipeline dedupes within --dedupe_ttl_seconds, so a
-- non-empty answer means a delivery came back later than that (or a job was replayed over
-- data already written). An event and its copies share event_time, hence event_date.
-- Parameters: @start_date, @end_date (DATE, inclusive).
SELECT
  event_id,
  event_date,
  event_name,
  COUNT(*) AS copies,
  MIN(received_at) AS first_received_at,
  MAX(received_at) AS last_received_at
FROM `${PROJECT}.${DATASET}.events`
WHERE event_date BETWEEN @start_date AND @end_date
GROUP BY event_id, event_date, event_name
HAVING COUNT(*) > 1
ORDER BY copies DESC, event_id
