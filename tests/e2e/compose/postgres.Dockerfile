# Postgres from Debian's packages, for the compose test where no registry is reachable. It
# honours what docker-compose.yml gives the official image: POSTGRES_USER, _PASSWORD, _DB,
# data in /var/lib/postgresql/data, pg_isready on the PATH.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-15 \
    && apt-get clean && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
    && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql
COPY postgres-entrypoint.sh /usr/local/bin/
USER postgres
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
CMD ["sh", "/usr/local/bin/postgres-entrypoint.sh"]
