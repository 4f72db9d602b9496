# One image for web, worker, beat, flower and the demo PACER.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY webapp ./webapp
COPY models ./models
COPY tasks ./tasks
COPY pacer ./pacer
COPY migrations ./migrations
COPY templates ./templates
COPY wsgi.py celeryconfig.py ./
RUN pip install . && useradd --system --home-dir /app dashboard
USER dashboard
EXPOSE 8000 5555
ENV RUN_DIR=/tmp/pacer-dashboard WEB_BIND=0.0.0.0:8000
# Each process starts through its one definition (webapp/processes.py): web, worker, beat, flower.
CMD ["python", "-m", "webapp.processes", "web"]
