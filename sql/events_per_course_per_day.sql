-- Activity per course per UTC day: events and distinct acting users.
-- Reads events_deduped: an event counts once however often it was delivered or replayed.
-- Only events raised in a course context (context_type 'Course'); both formats fill it.
-- Parameters: @start_date, @end_date (DATE, inclusive).
SELECT
  event_date,
  context_id AS course_id,
  COUNT(*) AS events,
  COUNT(DISTINCT user_id) AS active_users
FROM `${PROJECT}.${DATASET}.events_deduped`
WHERE event_date BETWEEN @start_date AND @end_date
  AND context_type = 'Course'
GROUP BY event_date, course_id
ORDER BY event_date, events DESC, course_id
