# Compaction on Google Cloud: the Flex Template's job=compact (README.md, "Compaction").
# Included from the main Makefile after mk/deploy.mk, whose settings and helpers (RUN, require,
# unless_exists, DRY_RUN) it reuses. Both targets honour DRY_RUN=1.
#     make compact PROJECT=my-project [COMPACT_DATES=2024-11-01,2024-11-02]
#     make compact-schedule PROJECT=my-project [COMPACT_SCHEDULE='30 3 * * *']

COMPACT_JOB_NAME ?= canvas-events-compact
COMPACT_DATES ?=
COMPACT_OLDER_THAN_DAYS ?= 2
COMPACT_TARGET_FILE_MB ?= 256
COMPACT_MAX_WORKERS ?= 4
# Cloud Scheduler: cron in COMPACT_TIME_ZONE; the job launches the template through the Dataflow API.
COMPACT_SCHEDULE ?= 30 3 * * *
COMPACT_TIME_ZONE ?= Etc/UTC
COMPACT_SCHEDULER_JOB ?= $(COMPACT_JOB_NAME)-daily
SCHEDULER_SA_NAME ?= canvas-events-scheduler
SCHEDULER_SA ?= $(SCHEDULER_SA_NAME)@$(PROJECT).iam.gserviceaccount.com
COMPACT_LAUNCH_BODY ?= $(DEPLOY_BUILD)/compact-launch.json

COMPACT_PARAMS = \
	job=compact \
	output=$(OUTPUT) \
	dead_letter_output=$(DEAD_LETTER_OUTPUT) \
	older_than_days=$(COMPACT_OLDER_THAN_DAYS) \
	target_file_mb=$(COMPACT_TARGET_FILE_MB) \
	$(if $(COMPACT_DATES),dates=$(COMPACT_DATES)) \
	sdk_container_image=$(IMAGE)

.PHONY: compact compact-schedule

# One batch run of the template with job=compact (no streaming engine: it ends when done).
compact:
	$(call require,PROJECT REGION COMPACT_JOB_NAME TEMPLATE_PATH IMAGE OUTPUT DEAD_LETTER_OUTPUT DATAFLOW_SA STAGING_LOCATION TEMP_LOCATION MACHINE_TYPE COMPACT_MAX_WORKERS COMPACT_OLDER_THAN_DAYS COMPACT_TARGET_FILE_MB)
	$(RUN) gcloud dataflow flex-template run $(COMPACT_JOB_NAME) --project=$(PROJECT) --region=$(REGION) --template-file-gcs-location=$(TEMPLATE_PATH) --service-account-email=$(DATAFLOW_SA) --staging-location=$(STAGING_LOCATION) --temp-location=$(TEMP_LOCATION) --worker-machine-type=$(MACHINE_TYPE) --max-workers=$(COMPACT_MAX_WORKERS) $(foreach p,$(strip $(COMPACT_PARAMS)),--parameters=$(p))

# Cloud Scheduler POSTs the launch request (rendered locally from the same parameters) to the
# Dataflow API every day, as SCHEDULER_SA, which may launch jobs and run them as DATAFLOW_SA only.
compact-schedule:
	$(call require,PROJECT REGION COMPACT_JOB_NAME TEMPLATE_PATH IMAGE OUTPUT DEAD_LETTER_OUTPUT DATAFLOW_SA STAGING_LOCATION TEMP_LOCATION MACHINE_TYPE COMPACT_MAX_WORKERS COMPACT_SCHEDULE COMPACT_TIME_ZONE COMPACT_SCHEDULER_JOB SCHEDULER_SA_NAME SCHEDULER_SA DEPLOY_BUILD)
	@mkdir -p $(DEPLOY_BUILD)
	@$(PYTHON) -c 'import json, sys; name, path, sa, staging, temp, machine, workers, *params = sys.argv[1:]; \
		print(json.dumps({"launchParameter": {"jobName": name, "containerSpecGcsPath": path, \
		"parameters": dict(p.split("=", 1) for p in params), "environment": {"serviceAccountEmail": sa, \
		"stagingLocation": staging, "tempLocation": temp, "machineType": machine, "maxWorkers": int(workers)}}}, indent=2))' \
		$(COMPACT_JOB_NAME) $(TEMPLATE_PATH) $(DATAFLOW_SA) $(STAGING_LOCATION) $(TEMP_LOCATION) $(MACHINE_TYPE) $(COMPACT_MAX_WORKERS) $(strip $(COMPACT_PARAMS)) > $(COMPACT_LAUNCH_BODY)
	$(RUN) gcloud services enable cloudscheduler.googleapis.com --project=$(PROJECT)
	$(call unless_exists,gcloud iam service-accounts describe $(SCHEDULER_SA) --project=$(PROJECT)) $(RUN) gcloud iam service-accounts create $(SCHEDULER_SA_NAME) --project=$(PROJECT)
	$(RUN) gcloud projects add-iam-policy-binding $(PROJECT) --member=serviceAccount:$(SCHEDULER_SA) --role=roles/dataflow.developer --condition=None
	$(RUN) gcloud iam service-accounts add-iam-policy-binding $(DATAFLOW_SA) --project=$(PROJECT) --member=serviceAccount:$(SCHEDULER_SA) --role=roles/iam.serviceAccountUser
	$(call unless_exists,gcloud scheduler jobs describe $(COMPACT_SCHEDULER_JOB) --project=$(PROJECT) --location=$(REGION)) $(RUN) gcloud scheduler jobs create http $(COMPACT_SCHEDULER_JOB) --project=$(PROJECT) --location=$(REGION) --schedule='$(COMPACT_SCHEDULE)' --time-zone=$(COMPACT_TIME_ZONE) --uri=https://dataflow.googleapis.com/v1b3/projects/$(PROJECT)/locations/$(REGION)/flexTemplates:launch --http-method=POST --headers=Content-Type=application/json --message-body-from-file=$(COMPACT_LAUNCH_BODY) --oauth-service-account-email=$(SCHEDULER_SA) --oauth-token-scope=https://www.googleapis.com/auth/cloud-platform
