# Cloud Monitoring as code: the dashboard and alert policies in monitoring/, applied by
#     make monitoring PROJECT=my-project [NOTIFICATION_CHANNELS=projects/P/notificationChannels/ID,...]
#     make monitoring PROJECT=my-project DRY_RUN=1     # print the gcloud commands, run nothing
# The JSON files hold ${SUBSCRIPTION}, ${JOB_NAME} and ${FUNCTION} placeholders, filled in from
# the deploy settings (mk/deploy.mk) into $(MONITORING_BUILD). A dashboard or policy whose
# display name already exists in the project is left alone: to change one, delete it (console
# or `gcloud monitoring dashboards delete` / `gcloud alpha monitoring policies delete`) and rerun.
# Included from the main Makefile; uses deploy.mk's settings and helpers (RUN, require, unless_exists).

MONITORING_DIR ?= monitoring
MONITORING_BUILD ?= $(DEPLOY_BUILD)/monitoring
# Comma-separated notification channel names for the alert policies; empty: no notifications
# (incidents still open in the console).
NOTIFICATION_CHANNELS ?=

# file in monitoring/alerts/ -> its displayName (the key `make monitoring` checks for existence).
MONITORING_ALERTS := subscription-backlog dead-letter-rate receiver-5xx dataflow-system-lag no-new-parquet
MONITORING_DASHBOARD_NAME := Canvas Live Events pipeline

monitoring_fill = sed -e 's|$${SUBSCRIPTION}|$(SUBSCRIPTION)|g' -e 's|$${JOB_NAME}|$(JOB_NAME)|g' -e 's|$${FUNCTION}|$(FUNCTION)|g'
monitoring_name = $(shell $(PYTHON) -c 'import json, sys; print(json.load(open(sys.argv[1]))["displayName"])' $(MONITORING_DIR)/alerts/$(1).json)

define monitoring_policy
	$(call unless_exists,gcloud alpha monitoring policies list --project=$(PROJECT) --filter='displayName="$(call monitoring_name,$(1))"' --format='value(name)' | grep -q .) $(RUN) gcloud alpha monitoring policies create --project=$(PROJECT) --policy-from-file=$(MONITORING_BUILD)/alerts/$(1).json $(if $(NOTIFICATION_CHANNELS),--notification-channels=$(NOTIFICATION_CHANNELS))

endef

.PHONY: monitoring

monitoring:
	$(call require,PROJECT SUBSCRIPTION JOB_NAME FUNCTION MONITORING_BUILD)
	@rm -rf $(MONITORING_BUILD) && mkdir -p $(MONITORING_BUILD)/alerts
	@$(monitoring_fill) $(MONITORING_DIR)/dashboard.json > $(MONITORING_BUILD)/dashboard.json
	@for name in $(MONITORING_ALERTS); do $(monitoring_fill) $(MONITORING_DIR)/alerts/$$name.json > $(MONITORING_BUILD)/alerts/$$name.json || exit 1; done
	$(call unless_exists,gcloud monitoring dashboards list --project=$(PROJECT) --filter='displayName="$(MONITORING_DASHBOARD_NAME)"' --format='value(name)' | grep -q .) $(RUN) gcloud monitoring dashboards create --project=$(PROJECT) --config-from-file=$(MONITORING_BUILD)/dashboard.json
	$(foreach a,$(MONITORING_ALERTS),$(call monitoring_policy,$(a)))
