# The key archive on Google Cloud: `canvas-events archive-keys` once a day, so signed deliveries
# stay verifiable after Canvas rotates its keys (README.md, "Replaying archived deliveries").
# Included from the main Makefile; uses the settings of mk/deploy.mk (PROJECT, REGION, BUCKET,
# IMAGE, JWKS_URL, RUN, require, unless_exists). Honours DRY_RUN=1 like every deploy target.
#
#   make keys-schedule PROJECT=my-project     # after template-build (the job runs its image)
#
# What runs: a Cloud Run job on the Flex Template image (it has `canvas-events` installed),
# command `canvas-events archive-keys --jwks_url=JWKS_URL --archive=KEYS_ARCHIVE`, under its own
# service account that may only use objects in BUCKET; Cloud Scheduler starts the job daily
# through the Cloud Run Admin API (jobs.run), authenticated as that service account.
# A failed run (kid conflict: exit 1) shows as a failed execution of the job; retried
# KEYS_MAX_RETRIES times, then it waits for an operator (the archive is left unchanged).

KEYS_ARCHIVE ?= gs://$(BUCKET)/keys/jwks-archive.json
KEYS_JOB ?= canvas-events-archive-keys
KEYS_SCHEDULER_JOB ?= $(KEYS_JOB)-daily
KEYS_SCHEDULE ?= 17 4 * * *
KEYS_TIME_ZONE ?= Etc/UTC
KEYS_SA_NAME ?= canvas-events-keys
KEYS_SA ?= $(KEYS_SA_NAME)@$(PROJECT).iam.gserviceaccount.com
KEYS_MAX_RETRIES ?= 3

.PHONY: keys-job keys-schedule keys-run

# The job and its service account: read the live JWKS (public), read and replace the archive object.
keys-job:
	$(call require,PROJECT REGION BUCKET IMAGE JWKS_URL KEYS_ARCHIVE KEYS_JOB KEYS_SA_NAME KEYS_SA KEYS_MAX_RETRIES)
	$(RUN) gcloud services enable run.googleapis.com cloudscheduler.googleapis.com --project=$(PROJECT)
	$(call unless_exists,gcloud iam service-accounts describe $(KEYS_SA) --project=$(PROJECT)) $(RUN) gcloud iam service-accounts create $(KEYS_SA_NAME) --project=$(PROJECT)
	$(RUN) gcloud storage buckets add-iam-policy-binding gs://$(BUCKET) --project=$(PROJECT) --member=serviceAccount:$(KEYS_SA) --role=roles/storage.objectUser
	$(RUN) gcloud run jobs deploy $(KEYS_JOB) --project=$(PROJECT) --region=$(REGION) --image=$(IMAGE) --command=canvas-events --args=archive-keys,--jwks_url=$(JWKS_URL),--archive=$(KEYS_ARCHIVE) --service-account=$(KEYS_SA) --max-retries=$(KEYS_MAX_RETRIES) --task-timeout=300s
	$(RUN) gcloud run jobs add-iam-policy-binding $(KEYS_JOB) --project=$(PROJECT) --region=$(REGION) --member=serviceAccount:$(KEYS_SA) --role=roles/run.invoker

# Daily at KEYS_SCHEDULE (cron, KEYS_TIME_ZONE). An existing scheduler job is left as it is;
# change it with `gcloud scheduler jobs update http` or delete it and run this again.
keys-schedule: keys-job
	$(call require,PROJECT REGION KEYS_JOB KEYS_SCHEDULER_JOB KEYS_SCHEDULE KEYS_TIME_ZONE KEYS_SA)
	$(call unless_exists,gcloud scheduler jobs describe $(KEYS_SCHEDULER_JOB) --project=$(PROJECT) --location=$(REGION)) $(RUN) gcloud scheduler jobs create http $(KEYS_SCHEDULER_JOB) --project=$(PROJECT) --location=$(REGION) --schedule='$(KEYS_SCHEDULE)' --time-zone=$(KEYS_TIME_ZONE) --uri=https://run.googleapis.com/v2/projects/$(PROJECT)/locations/$(REGION)/jobs/$(KEYS_JOB):run --http-method=POST --oauth-service-account-email=$(KEYS_SA)

# One run now (e.g. right after keys-schedule, or after fixing a conflict).
keys-run:
	$(call require,PROJECT REGION KEYS_JOB)
	$(RUN) gcloud run jobs execute $(KEYS_JOB) --project=$(PROJECT) --region=$(REGION) --wait
