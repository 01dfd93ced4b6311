-- Daily active users: distinct acting users per UTC day (event_date).
-- Reads events_deduped: an event counts once however often it was delivered or replayed.
-- System-generated events (background jobs) carry no user and are left out.
-- Parameters: @start_date, @end_date (DATE, inclusive).
SELECT
  event_date,
  COUNT(DISTINCT user_id) AS active_users,
  COUNT(*) AS events
FROM `${PROJECT}.${DATASET}.events_deduped`
WHERE event_date BETWEEN @start_date AND @end_date
  AND user_id IS NOT NULL
GROUP BY event_date
ORDER BY event_date
