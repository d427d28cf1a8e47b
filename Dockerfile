# The OneCMS Flow Bridge service. It connects to the PostgreSQL and Flowable named by
# DATABASE_URL and FLOWABLE_URL, so `bridge up` starts neither: it migrates, then serves.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bridge bridge
RUN pip install --no-cache-dir .
COPY migrations migrations
COPY bpmn bpmn
ENV BRIDGE_MIGRATIONS_DIR=/app/migrations \
    BRIDGE_DEPLOY_ON_START=/app/bpmn/OneCMS_Nextgen_WF.bpmn20.xml \
    BRIDGE_HOST=0.0.0.0 \
    BRIDGE_PORT=8080
EXPOSE 8080
USER nobody
CMD ["bridge", "up"]
