-- Logins by hour of the day in each user's own time zone: when do people use Canvas?
-- Reads events_deduped: an event counts once however often it was delivered or replayed.
-- Canvas-format events carry the user's IANA time zone; Caliper-format ones do not, and
-- neither do users without one set: those fall back to @default_time_zone (e.g. 'UTC' or
-- your institution's zone). Parameters: @start_date, @end_date (DATE), @default_time_zone.
SELECT
  EXTRACT(HOUR FROM event_time AT TIME ZONE COALESCE(time_zone, @default_time_zone)) AS local_hour,
  COUNT(*) AS logins,
  COUNT(DISTINCT user_id) AS users
FROM `${PROJECT}.${DATASET}.events_deduped`
WHERE event_date BETWEEN @start_date AND @end_date
  AND event_name = 'logged_in'
GROUP BY local_hour
ORDER BY local_hour
