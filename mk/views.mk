# Typed BigQuery views (schemas/views.py, generated into schemas/bigquery/views.sql by
# python -m schemas.generate): one view per Canvas event type and the `activity` view, all over
# the events_deduped view that `make bq-table` creates. Included from the main Makefile; uses
# the settings of mk/deploy.mk (PROJECT, DATASET, BQ_LOCATION, DEPLOY_BUILD, DRY_RUN), e.g.
#     make bq-views PROJECT=my-project
#     make bq-views PROJECT=my-project DRY_RUN=1    # print the bq command, run nothing

.PHONY: bq-views

# One BigQuery script (one CREATE OR REPLACE VIEW per view), run as one query job.
bq-views:
	$(call require,PROJECT DATASET BQ_LOCATION)
	@mkdir -p $(DEPLOY_BUILD)
	@sed -e 's|$${PROJECT}|$(PROJECT)|g' -e 's|$${DATASET}|$(DATASET)|g' \
		schemas/bigquery/views.sql > $(DEPLOY_BUILD)/views.sql
	$(RUN) bq --project_id=$(PROJECT) --location=$(BQ_LOCATION) query --use_legacy_sql=false --nouse_cache $(LT) $(DEPLOY_BUILD)/views.sql
