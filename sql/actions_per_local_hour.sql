-- When in their own day are people active? Actions by the user's local hour (activity view);
-- only events whose user has a Canvas time zone have a local_time.
-- Parameters: @start_date, @end_date (DATE, inclusive).
SELECT EXTRACT(HOUR FROM local_time) AS local_hour, COUNT(*) AS actions, COUNT(DISTINCT user_id) AS users
FROM `${PROJECT}.${DATASET}.activity`
WHERE event_date BETWEEN @start_date AND @end_date
  AND local_time IS NOT NULL
GROUP BY local_hour
ORDER BY local_hour
