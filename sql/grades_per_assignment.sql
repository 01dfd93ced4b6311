-- Grade changes per assignment: how many, for how many students, the mean new score (grade_change view).
-- Parameters: @start_date, @end_date (DATE, inclusive).
SELECT assignment_id, COUNT(*) AS grade_changes, COUNT(DISTINCT body_user_id) AS students, AVG(score) AS mean_score
FROM `${PROJECT}.${DATASET}.grade_change`
WHERE event_date BETWEEN @start_date AND @end_date
  AND assignment_id IS NOT NULL
GROUP BY assignment_id
ORDER BY assignment_id
