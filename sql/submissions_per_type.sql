-- Submissions per day and submission type, from both formats (submission_created view).
-- Parameters: @start_date, @end_date (DATE, inclusive).
SELECT event_date, submission_type, source_format, COUNT(*) AS submissions, COUNT(DISTINCT user_id) AS students
FROM `${PROJECT}.${DATASET}.submission_created`
WHERE event_date BETWEEN @start_date AND @end_date
GROUP BY event_date, submission_type, source_format
ORDER BY event_date, submission_type, source_format
