# Deploy to Google Cloud: the bucket, Pub/Sub, service accounts and roles, the receiver function,
# the Dataflow Flex Template (image + spec) and its job, the BigQuery external table.
# Included from the main Makefile. Every setting is a variable with a default derived from
# PROJECT (table in README.md, "Deploy to Google Cloud"), e.g.
#     make pubsub-setup PROJECT=my-project
#     make template-run PROJECT=my-project DRY_RUN=1    # print the commands, run nothing
# With DRY_RUN=1 each remote command is printed (one shell-quoted line each) instead of run;
# purely local steps (rendering the DDL, staging the function source) still run.

PYTHON ?= python3

# ---- settings -------------------------------------------------------------------------------
PROJECT ?=
REGION ?= us-central1
BUCKET ?= $(PROJECT)-canvas-events
# Pub/Sub
TOPIC ?= canvas-live-events
SUBSCRIPTION ?= $(TOPIC)-pipeline
DEAD_LETTER_TOPIC ?= $(TOPIC)-dead-letter
DEAD_LETTER_SUBSCRIPTION ?= $(DEAD_LETTER_TOPIC)-hold
ARCHIVE_SUBSCRIPTION ?= $(TOPIC)-archive
ARCHIVE_PREFIX ?= raw/
ACK_DEADLINE ?= 60
MESSAGE_RETENTION ?= 7d
MAX_DELIVERY_ATTEMPTS ?= 10
# Looked up only when a target needs it (the Pub/Sub service agent's roles).
PROJECT_NUMBER ?= $(shell gcloud projects describe $(PROJECT) --format='value(projectNumber)' 2>/dev/null)
# Receiver (Cloud Functions gen2)
FUNCTION ?= canvas-events-receiver
RECEIVER_SA_NAME ?= canvas-events-receiver
RECEIVER_SA ?= $(RECEIVER_SA_NAME)@$(PROJECT).iam.gserviceaccount.com
RECEIVER_MEMORY ?= 512Mi
# One instance serves this many requests at once (gen2 needs a whole CPU for more than 1);
# the receiver's gunicorn threads match it (bench/receiver.py: 16 threads was best on one core).
RECEIVER_CPU ?= 1
RECEIVER_CONCURRENCY ?= 16
RECEIVER_MAX_INSTANCES ?= 20
RECEIVER_DIST ?= dist-receiver
# Canvas's public JWKS (previous, current and next signing keys), from the Canvas Data Services docs.
JWKS_URL ?= https://8axpcl50e4.execute-api.us-east-1.amazonaws.com/main/jwks
JWT_ISSUER ?=
# Dataflow
DATAFLOW_SA_NAME ?= canvas-events-dataflow
DATAFLOW_SA ?= $(DATAFLOW_SA_NAME)@$(PROJECT).iam.gserviceaccount.com
REPOSITORY ?= canvas-events
TAG ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo latest)
IMAGE ?= $(REGION)-docker.pkg.dev/$(PROJECT)/$(REPOSITORY)/pipeline:$(TAG)
TEMPLATE_PATH ?= gs://$(BUCKET)/templates/canvas-events-$(TAG).json
JOB_NAME ?= canvas-live-events
OUTPUT ?= gs://$(BUCKET)/events
DEAD_LETTER_OUTPUT ?= gs://$(BUCKET)/dead-letter
STAGING_LOCATION ?= gs://$(BUCKET)/staging
TEMP_LOCATION ?= gs://$(BUCKET)/tmp
MACHINE_TYPE ?= n1-standard-1
MAX_WORKERS ?= 2
# Extra template parameters, space-separated name=value words, e.g. PARAMS="pii=drop window_seconds=600".
PARAMS ?=
# UPDATE=1: replace the running job of the same name in place (keeps its state, e.g. dedupe keys).
UPDATE ?=
# BigQuery
DATASET ?= canvas_live_events
BQ_LOCATION ?= $(REGION)
DEPLOY_BUILD ?= build/deploy

# ---- helpers --------------------------------------------------------------------------------
comma := ,
# Prints a command as one shell-quoted line (a lone < stays a redirect, so the line can be pasted).
DRY_RUN_PRINT := $(PYTHON) -c 'import shlex, sys; print(" ".join(a if a == "<" else shlex.quote(a) for a in sys.argv[1:]))'
RUN = $(if $(DRY_RUN),@$(DRY_RUN_PRINT),)
LT = $(if $(DRY_RUN),'<',<)
# $(call require,VAR ...): stop before running anything when a setting is empty.
require = $(foreach v,$(1),$(if $(strip $($(v))),,$(error $(v) is not set: run e.g. `make $@ $(v)=...` (settings: README.md, "Deploy to Google Cloud"))))
# $(call unless_exists,DESCRIBE-COMMAND): skip a create when the resource is already there.
# Dry runs print only the create command.
unless_exists = $(if $(DRY_RUN),,$(1) >/dev/null 2>&1 ||)
PUBSUB_AGENT = serviceAccount:service-$(PROJECT_NUMBER)@gcp-sa-pubsub.iam.gserviceaccount.com
RECEIVER_ENV = PUBSUB_TOPIC=projects/$(PROJECT)/topics/$(TOPIC)$(comma)THREADS=$(RECEIVER_CONCURRENCY)$(if $(JWKS_URL),$(comma)JWKS_URL=$(JWKS_URL))$(if $(JWT_ISSUER),$(comma)JWT_ISSUER=$(JWT_ISSUER))
TEMPLATE_PARAMS = \
	input_subscription=projects/$(PROJECT)/subscriptions/$(SUBSCRIPTION) \
	output=$(OUTPUT) \
	dead_letter_output=$(DEAD_LETTER_OUTPUT) \
	$(if $(JWKS_URL),jwks_url=$(JWKS_URL),allow_unsigned=true) \
	$(if $(JWT_ISSUER),jwt_issuer=$(JWT_ISSUER)) \
	sdk_container_image=$(IMAGE) \
	$(PARAMS)

APIS ?= pubsub.googleapis.com cloudfunctions.googleapis.com run.googleapis.com cloudbuild.googleapis.com \
	artifactregistry.googleapis.com dataflow.googleapis.com compute.googleapis.com storage.googleapis.com \
	bigquery.googleapis.com

.PHONY: apis bucket artifact-repo pubsub-setup iam deploy-receiver template-build template-run bq-table requirements

apis:
	$(call require,PROJECT APIS)
	$(RUN) gcloud services enable $(APIS) --project=$(PROJECT)

bucket:
	$(call require,PROJECT REGION BUCKET)
	$(call unless_exists,gcloud storage buckets describe gs://$(BUCKET) --project=$(PROJECT)) $(RUN) gcloud storage buckets create gs://$(BUCKET) --project=$(PROJECT) --location=$(REGION) --uniform-bucket-level-access

artifact-repo:
	$(call require,PROJECT REGION REPOSITORY)
	$(call unless_exists,gcloud artifacts repositories describe $(REPOSITORY) --project=$(PROJECT) --location=$(REGION)) $(RUN) gcloud artifacts repositories create $(REPOSITORY) --project=$(PROJECT) --location=$(REGION) --repository-format=docker

# The receiver publishes to TOPIC; the pipeline reads SUBSCRIPTION. Pub/Sub itself moves a
# message that was delivered MAX_DELIVERY_ATTEMPTS times without an ack to DEAD_LETTER_TOPIC
# (a backstop: the pipeline routes bad deliveries to its own dead-letter output and acks them),
# where DEAD_LETTER_SUBSCRIPTION keeps them. ARCHIVE_SUBSCRIPTION writes every raw body, one
# per line, to gs://BUCKET/ARCHIVE_PREFIX for replays (README.md, "Deploy to Google Cloud").
pubsub-setup:
	$(call require,PROJECT TOPIC SUBSCRIPTION DEAD_LETTER_TOPIC DEAD_LETTER_SUBSCRIPTION ARCHIVE_SUBSCRIPTION BUCKET ACK_DEADLINE MESSAGE_RETENTION MAX_DELIVERY_ATTEMPTS PROJECT_NUMBER)
	$(call unless_exists,gcloud pubsub topics describe $(TOPIC) --project=$(PROJECT)) $(RUN) gcloud pubsub topics create $(TOPIC) --project=$(PROJECT)
	$(call unless_exists,gcloud pubsub topics describe $(DEAD_LETTER_TOPIC) --project=$(PROJECT)) $(RUN) gcloud pubsub topics create $(DEAD_LETTER_TOPIC) --project=$(PROJECT)
	$(call unless_exists,gcloud pubsub subscriptions describe $(DEAD_LETTER_SUBSCRIPTION) --project=$(PROJECT)) $(RUN) gcloud pubsub subscriptions create $(DEAD_LETTER_SUBSCRIPTION) --project=$(PROJECT) --topic=$(DEAD_LETTER_TOPIC) --message-retention-duration=$(MESSAGE_RETENTION) --expiration-period=never
	$(call unless_exists,gcloud pubsub subscriptions describe $(SUBSCRIPTION) --project=$(PROJECT)) $(RUN) gcloud pubsub subscriptions create $(SUBSCRIPTION) --project=$(PROJECT) --topic=$(TOPIC) --ack-deadline=$(ACK_DEADLINE) --message-retention-duration=$(MESSAGE_RETENTION) --expiration-period=never --dead-letter-topic=$(DEAD_LETTER_TOPIC) --max-delivery-attempts=$(MAX_DELIVERY_ATTEMPTS)
	$(RUN) gcloud pubsub topics add-iam-policy-binding $(DEAD_LETTER_TOPIC) --project=$(PROJECT) --member=$(PUBSUB_AGENT) --role=roles/pubsub.publisher
	$(RUN) gcloud pubsub subscriptions add-iam-policy-binding $(SUBSCRIPTION) --project=$(PROJECT) --member=$(PUBSUB_AGENT) --role=roles/pubsub.subscriber
	$(RUN) gcloud storage buckets add-iam-policy-binding gs://$(BUCKET) --project=$(PROJECT) --member=$(PUBSUB_AGENT) --role=roles/storage.objectCreator
	$(RUN) gcloud storage buckets add-iam-policy-binding gs://$(BUCKET) --project=$(PROJECT) --member=$(PUBSUB_AGENT) --role=roles/storage.legacyBucketReader
	$(call unless_exists,gcloud pubsub subscriptions describe $(ARCHIVE_SUBSCRIPTION) --project=$(PROJECT)) $(RUN) gcloud pubsub subscriptions create $(ARCHIVE_SUBSCRIPTION) --project=$(PROJECT) --topic=$(TOPIC) --expiration-period=never --cloud-storage-bucket=$(BUCKET) --cloud-storage-file-prefix=$(ARCHIVE_PREFIX) --cloud-storage-file-datetime-format=YYYY-MM-DD/hh_mm_ssZ --cloud-storage-file-suffix=.jsonl --cloud-storage-max-duration=10m --cloud-storage-output-format=text

# Service accounts and the least roles each part needs (README.md, "Deploy to Google Cloud" explains each one).
iam:
	$(call require,PROJECT REGION BUCKET TOPIC SUBSCRIPTION REPOSITORY RECEIVER_SA_NAME RECEIVER_SA DATAFLOW_SA_NAME DATAFLOW_SA)
	$(call unless_exists,gcloud iam service-accounts describe $(RECEIVER_SA) --project=$(PROJECT)) $(RUN) gcloud iam service-accounts create $(RECEIVER_SA_NAME) --project=$(PROJECT)
	$(call unless_exists,gcloud iam service-accounts describe $(DATAFLOW_SA) --project=$(PROJECT)) $(RUN) gcloud iam service-accounts create $(DATAFLOW_SA_NAME) --project=$(PROJECT)
	$(RUN) gcloud pubsub topics add-iam-policy-binding $(TOPIC) --project=$(PROJECT) --member=serviceAccount:$(RECEIVER_SA) --role=roles/pubsub.publisher
	$(RUN) gcloud projects add-iam-policy-binding $(PROJECT) --member=serviceAccount:$(DATAFLOW_SA) --role=roles/dataflow.worker --condition=None
	$(RUN) gcloud pubsub subscriptions add-iam-policy-binding $(SUBSCRIPTION) --project=$(PROJECT) --member=serviceAccount:$(DATAFLOW_SA) --role=roles/pubsub.subscriber
	$(RUN) gcloud pubsub subscriptions add-iam-policy-binding $(SUBSCRIPTION) --project=$(PROJECT) --member=serviceAccount:$(DATAFLOW_SA) --role=roles/pubsub.viewer
	$(RUN) gcloud storage buckets add-iam-policy-binding gs://$(BUCKET) --project=$(PROJECT) --member=serviceAccount:$(DATAFLOW_SA) --role=roles/storage.objectAdmin
	$(RUN) gcloud artifacts repositories add-iam-policy-binding $(REPOSITORY) --project=$(PROJECT) --location=$(REGION) --member=serviceAccount:$(DATAFLOW_SA) --role=roles/artifactregistry.reader

# Canvas cannot authenticate to the endpoint, hence --allow-unauthenticated; deliveries are
# authenticated by their JWT signature instead (JWKS_URL set = verified at the edge too).
deploy-receiver: stage-receiver
	$(call require,PROJECT REGION FUNCTION RECEIVER_SA TOPIC RECEIVER_DIST RECEIVER_MEMORY RECEIVER_CPU RECEIVER_CONCURRENCY RECEIVER_MAX_INSTANCES)
	$(RUN) gcloud functions deploy $(FUNCTION) --gen2 --project=$(PROJECT) --region=$(REGION) --runtime=python311 --source=$(RECEIVER_DIST) --entry-point=receive --trigger-http --allow-unauthenticated --service-account=$(RECEIVER_SA) --memory=$(RECEIVER_MEMORY) --cpu=$(RECEIVER_CPU) --concurrency=$(RECEIVER_CONCURRENCY) --max-instances=$(RECEIVER_MAX_INSTANCES) --timeout=30s --set-env-vars=$(RECEIVER_ENV)

# One image (templates/Dockerfile) is both the template launcher and the workers' SDK container.
template-build:
	$(call require,PROJECT REGION IMAGE TEMPLATE_PATH)
	$(RUN) gcloud builds submit --project=$(PROJECT) --region=$(REGION) --config=templates/cloudbuild.yaml --substitutions=_IMAGE=$(IMAGE) .
	$(RUN) gcloud dataflow flex-template build $(TEMPLATE_PATH) --project=$(PROJECT) --image=$(IMAGE) --sdk-language=PYTHON --metadata-file=templates/metadata.json

template-run:
	$(call require,PROJECT REGION JOB_NAME TEMPLATE_PATH IMAGE SUBSCRIPTION OUTPUT DEAD_LETTER_OUTPUT DATAFLOW_SA STAGING_LOCATION TEMP_LOCATION MACHINE_TYPE MAX_WORKERS)
	$(RUN) gcloud dataflow flex-template run $(JOB_NAME) --project=$(PROJECT) --region=$(REGION) --template-file-gcs-location=$(TEMPLATE_PATH) --service-account-email=$(DATAFLOW_SA) --staging-location=$(STAGING_LOCATION) --temp-location=$(TEMP_LOCATION) --enable-streaming-engine --worker-machine-type=$(MACHINE_TYPE) --max-workers=$(MAX_WORKERS) $(if $(UPDATE),--update) $(foreach p,$(strip $(TEMPLATE_PARAMS)),--parameters=$(p))

# The DDL is generated from schemas/ (python -m schemas.generate); here its placeholders are filled in.
# events_deduped: the view over the table that keeps one row per dedupe key (schemas/views.py).
bq-table:
	$(call require,PROJECT DATASET BUCKET BQ_LOCATION OUTPUT)
	@mkdir -p $(DEPLOY_BUILD)
	@sed -e 's|$${PROJECT}|$(PROJECT)|g' -e 's|$${DATASET}|$(DATASET)|g' -e 's|gs://$${BUCKET}/events|$(OUTPUT)|g' \
		schemas/bigquery/events_external_table.sql > $(DEPLOY_BUILD)/events_external_table.sql
	@sed -e 's|$${PROJECT}|$(PROJECT)|g' -e 's|$${DATASET}|$(DATASET)|g' \
		schemas/bigquery/events_deduped_view.sql > $(DEPLOY_BUILD)/events_deduped_view.sql
	$(RUN) bq --project_id=$(PROJECT) --location=$(BQ_LOCATION) mk --dataset --force $(PROJECT):$(DATASET)
	$(RUN) bq --project_id=$(PROJECT) --location=$(BQ_LOCATION) query --use_legacy_sql=false --nouse_cache $(LT) $(DEPLOY_BUILD)/events_external_table.sql
	$(RUN) bq --project_id=$(PROJECT) --location=$(BQ_LOCATION) query --use_legacy_sql=false --nouse_cache $(LT) $(DEPLOY_BUILD)/events_deduped_view.sql

# Regenerate templates/requirements.txt: the project's runtime dependencies only, resolved in a
# throwaway Python 3.11 virtualenv and frozen. Commit the result; the image installs exactly it.
REQUIREMENTS_VENV ?= $(or $(TMPDIR),/tmp)/canvas-events-requirements-venv
requirements:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { echo "make requirements needs Python 3.11 (the image's); pass PYTHON=python3.11" >&2; exit 1; }
	rm -rf $(REQUIREMENTS_VENV) && $(PYTHON) -m venv $(REQUIREMENTS_VENV)
	$(REQUIREMENTS_VENV)/bin/pip install --quiet --upgrade pip
	$(REQUIREMENTS_VENV)/bin/pip install --quiet .
	{ echo "# Generated by 'make requirements' (mk/deploy.mk): the runtime dependencies of setup.py,"; \
	  echo "# resolved for Python 3.11 and frozen. Do not edit by hand; regenerate instead."; \
	  $(REQUIREMENTS_VENV)/bin/pip freeze --exclude-editable | grep -iv '^canvas-live-events'; } > templates/requirements.txt
	rm -rf $(REQUIREMENTS_VENV)
