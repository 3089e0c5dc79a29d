# The fhir-service image used by compose.yaml.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY fhir_service ./fhir_service
COPY mappings ./mappings
COPY examples ./examples
RUN pip install --no-cache-dir '.[postgres]'
ENV FHIR_SERVICE_PACKAGE_CACHE=/var/lib/fhir-service/packages
EXPOSE 8000
CMD ["fhir-service", "serve", "--host", "0.0.0.0", "--port", "8000"]
