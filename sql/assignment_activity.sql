-- Submissions and grade changes per assignment.
-- Reads events_deduped: an event counts once however often it was delivered or replayed.
-- The assignment id is in the event body: `assignment_id` for the Canvas format, the
-- `object.assignable.id` URN (urn:instructure:canvas:assignment:ID) for Caliper.
-- Parameters: @start_date, @end_date (DATE, inclusive).
WITH assignment_events AS (
  SELECT
    event_name,
    user_id,
    COALESCE(
      JSON_VALUE(body, '$.assignment_id'),
      REGEXP_EXTRACT(JSON_VALUE(body, '$.object.assignable.id'), r'assignment:([0-9]+)$')
    ) AS assignment_id
  FROM `${PROJECT}.${DATASET}.events_deduped`
  WHERE event_date BETWEEN @start_date AND @end_date
    AND event_name IN ('submission_created', 'submission_updated', 'grade_change')
)
SELECT
  assignment_id,
  COUNTIF(event_name = 'submission_created') AS submissions,
  COUNT(DISTINCT IF(event_name = 'submission_created', user_id, NULL)) AS submitters,
  COUNTIF(event_name = 'submission_updated') AS submission_updates,
  COUNTIF(event_name = 'grade_change') AS grade_changes
FROM assignment_events
WHERE assignment_id IS NOT NULL
GROUP BY assignment_id
ORDER BY assignment_id
