-- Run once per db host as the superuser, before the first migration:
--   sudo -u postgres psql -v engine_password='<the PG password from engine.env>' -f provision.sql
-- The engine connects as an ordinary role (it never needs superuser, and the
-- superuser reserve in postgresql.conf stays free for operators). It owns its
-- database, so migrate-cli can create tables; pg_trgm is a trusted extension,
-- so the database owner may create it (PostgreSQL >= 13).
CREATE ROLE engine LOGIN PASSWORD :'engine_password';
CREATE DATABASE engine OWNER engine ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;
-- Belt and braces next to pg_hba.conf: nobody else may connect to it.
REVOKE CONNECT ON DATABASE engine FROM PUBLIC;
GRANT CONNECT ON DATABASE engine TO engine;
