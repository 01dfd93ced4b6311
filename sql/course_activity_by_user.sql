-- Who did what in one course: actions per user and event type, from either format (activity view).
-- Parameters: @start_date, @end_date (DATE, inclusive), @course_id (STRING).
SELECT user_id, event_name, COUNT(*) AS actions, MIN(event_time) AS first_at, MAX(event_time) AS last_at
FROM `${PROJECT}.${DATASET}.activity`
WHERE event_date BETWEEN @start_date AND @end_date
  AND course_id = @course_id
GROUP BY user_id, event_name
ORDER BY user_id, event_name
