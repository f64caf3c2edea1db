-- Fixture for tests/integration/migrate_pg.sh: every mapped type, NULLs,
-- unicode, edge values, and :rows rows. Run with psql -v rows=N.
--
-- public.*  the tables a plain `migrate-pg` (no --tables) copies
-- bad.*     tables that must be refused, or fail halfway
-- chk.*     helpers that compute the expected SQLite values independently
--           of migrate-pg (PostgreSQL's own to_char / extract / to_json)

CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy ☺');
CREATE DOMAIN posint AS int4 CHECK (VALUE > 0);

CREATE TABLE everything (
  id    int8 PRIMARY KEY,
  i2    int2,
  i4    int4 NOT NULL,
  i8    int8,
  num   numeric,
  numf  numeric(12, 4),
  f4    float4,
  f8    float8,
  b     bool,
  t     text,
  vc    varchar(40),
  ch    char(5),
  nm    name,
  by    bytea,
  ts    timestamp,
  ts0   timestamp(0),
  tstz  timestamptz,
  tstz3 timestamptz(3),
  d     date,
  tm    time,
  tmtz  timetz,
  iv    interval,
  u     uuid,
  j     json,
  jb    jsonb,
  e     mood,
  dom   posint,
  ai    int4[],
  a2    int4[][],
  at    text[],
  af    float8[],
  an    numeric[],
  ab    bool[],
  ats   timestamptz[],
  aj    jsonb[],
  aby   bytea[],
  au    uuid[]
);

INSERT INTO everything
SELECT i,
  CASE i % 7 WHEN 0 THEN NULL WHEN 1 THEN -32768 WHEN 2 THEN 32767 ELSE (i % 30000)::int2 END,
  CASE i % 11 WHEN 1 THEN -2147483648 WHEN 2 THEN 2147483647 ELSE ((i::int8 * 7919) % 2000000000)::int4 END,
  CASE i % 13 WHEN 0 THEN NULL WHEN 1 THEN -9223372036854775808 WHEN 2 THEN 9223372036854775807
    ELSE i::int8 * 1000003 * 1000003 END,
  CASE i % 9 WHEN 0 THEN NULL WHEN 1 THEN 'NaN'::numeric WHEN 4 THEN 'Infinity'::numeric
    WHEN 5 THEN '-Infinity'::numeric
    WHEN 2 THEN ('1' || repeat('0', 30) || '.' || repeat('0', 20) || '1')::numeric
    WHEN 3 THEN -0.000000000000000000000001 ELSE (i::numeric / 7)::numeric(30, 20) END,
  CASE i % 4 WHEN 0 THEN NULL WHEN 1 THEN 1.5 ELSE (i::numeric / 3)::numeric(12, 4) END,
  CASE i % 10 WHEN 0 THEN NULL WHEN 1 THEN 'NaN'::float4 WHEN 2 THEN 'Infinity'::float4
    WHEN 3 THEN '-Infinity'::float4 WHEN 4 THEN 1.17549435e-38::float4
    WHEN 5 THEN 3.4028235e38::float4 ELSE (i / 3.0)::float4 END,
  CASE i % 10 WHEN 0 THEN NULL WHEN 1 THEN 'NaN'::float8 WHEN 2 THEN 'Infinity'::float8
    WHEN 3 THEN '-Infinity'::float8 WHEN 4 THEN 2.2250738585072014e-308
    WHEN 5 THEN '-0'::float8 WHEN 6 THEN 5e-324::float8 ELSE i * 0.1 + 1 / i::float8 END,
  CASE i % 3 WHEN 0 THEN NULL WHEN 1 THEN true ELSE false END,
  CASE i % 8 WHEN 0 THEN NULL WHEN 1 THEN ''
    WHEN 2 THEN E'tab\there\nnewline\r\\backslash "dq" ''sq'' \x01'
    WHEN 3 THEN 'ünïcødé ✓ 日本語 🎉 ' || i WHEN 4 THEN repeat('long ', 300) || i
    WHEN 5 THEN 'NULL' WHEN 6 THEN E'\\N' ELSE 'row ' || i END,
  left(md5(i::text), i % 40),
  CASE i % 5 WHEN 0 THEN NULL WHEN 1 THEN 'ü' ELSE chr(65 + i % 26) END,
  ('name_' || i)::name,
  CASE i % 6 WHEN 0 THEN NULL WHEN 1 THEN ''::bytea WHEN 2 THEN '\x00'::bytea
    WHEN 3 THEN decode(md5(i::text), 'hex') || '\x00ff'::bytea
    ELSE convert_to('bytes ✓ ' || i, 'UTF8') END,
  CASE i % 9 WHEN 0 THEN NULL WHEN 1 THEN 'infinity'::timestamp WHEN 2 THEN '-infinity'::timestamp
    WHEN 3 THEN '0044-03-15 12:00:00.5 BC'::timestamp WHEN 4 THEN '0001-12-31 23:59:59 BC'::timestamp
    WHEN 5 THEN '10000-01-01 00:00:00'::timestamp
    ELSE '2000-01-01'::timestamp + i * interval '1 hour 1.123457 second' END,
  '2020-02-29 12:34:56'::timestamp(0) + i * interval '17 minutes',
  CASE i % 7 WHEN 0 THEN NULL WHEN 1 THEN 'infinity'::timestamptz
    WHEN 2 THEN '0100-06-01 00:00:00+00 BC'::timestamptz
    ELSE '2024-03-10 01:59:59.999999-08'::timestamptz + i * interval '37.000001 seconds' END,
  '1970-01-01 00:00:00+05:30'::timestamptz + i * interval '1 day 1.5 ms',
  CASE i % 6 WHEN 0 THEN NULL WHEN 1 THEN 'infinity'::date WHEN 2 THEN '4713-01-01 BC'::date
    WHEN 3 THEN '5874897-12-31'::date ELSE date '2000-01-01' + i END,
  CASE i % 5 WHEN 0 THEN NULL WHEN 1 THEN '24:00:00'::time WHEN 2 THEN '00:00:00'::time
    ELSE time '00:00' + i * interval '1.000001 s' END,
  CASE i % 4 WHEN 0 THEN NULL WHEN 1 THEN '12:34:56.5+05:30'::timetz
    WHEN 2 THEN '23:59:59-08'::timetz ELSE '01:02:03+01:02:03'::timetz END,
  CASE i % 4 WHEN 0 THEN NULL WHEN 1 THEN '-1 year -2 months +3 days -04:05:06.789'::interval
    ELSE i * interval '1 day 1 sec' END,
  CASE WHEN i % 10 = 0 THEN NULL ELSE md5(i::text)::uuid END,
  CASE i % 5 WHEN 0 THEN NULL WHEN 1 THEN '{"a" :  1, "a": 2}'::json
    ELSE json_build_object('i', i, 's', 'ü "q" ' || i, 'a', json_build_array(1, 2.5, null, true)) END,
  CASE i % 5 WHEN 0 THEN NULL
    ELSE jsonb_build_object('i', i, 's', E'tab\t✓', 'n', 1.50, 'o', jsonb_build_object('x', null)) END,
  CASE i % 4 WHEN 0 THEN NULL WHEN 1 THEN 'sad'::mood WHEN 2 THEN 'ok'::mood ELSE 'happy ☺'::mood END,
  CASE WHEN i % 3 = 0 THEN NULL ELSE i END::posint,
  CASE i % 6 WHEN 0 THEN NULL WHEN 1 THEN '{}'::int4[] WHEN 2 THEN ARRAY[1, NULL, -3]
    WHEN 3 THEN '[0:2]={7,8,9}'::int4[] ELSE ARRAY[i, i + 1] END,
  CASE i % 3 WHEN 0 THEN NULL ELSE ARRAY[[i, 2], [3, NULL]] END,
  CASE i % 4 WHEN 0 THEN NULL
    WHEN 1 THEN ARRAY['a', 'b c', 'NULL', NULL, E'q"x\\y', '{}', '', ',', 'ü✓', E'line\nbreak']
    ELSE ARRAY['row ' || i] END,
  CASE i % 3 WHEN 0 THEN NULL ELSE ARRAY[0.1, 'NaN', 'Infinity', '-Infinity', 1e100, i / 7.0]::float8[] END,
  CASE i % 3 WHEN 0 THEN NULL ELSE ARRAY[1.50, 'NaN', '-Infinity', i / 3.0]::numeric[] END,
  CASE i % 3 WHEN 0 THEN NULL ELSE ARRAY[true, false, NULL] END,
  CASE i % 3 WHEN 0 THEN NULL
    ELSE ARRAY['2024-01-01 00:00:00+00'::timestamptz + i * interval '1.25 s', NULL, 'infinity'] END,
  CASE i % 3 WHEN 0 THEN NULL ELSE ARRAY['{"a": [1, "ü"]}'::jsonb, NULL, 'null'::jsonb, to_jsonb(i)] END,
  CASE i % 3 WHEN 0 THEN NULL ELSE ARRAY['\x00ff'::bytea, NULL, convert_to(i::text, 'UTF8')] END,
  CASE i % 3 WHEN 0 THEN NULL ELSE ARRAY[md5(i::text)::uuid] END
FROM generate_series(1, :rows) AS i;

-- A table loaded into an existing SQLite table: columns in another order and
-- case, an extra SQLite column with a default.
CREATE TABLE orders (
  id int4 PRIMARY KEY,
  "Customer" text NOT NULL,
  amount numeric(10, 2),
  placed timestamptz
);
INSERT INTO orders
SELECT i, 'customer ' || (i % 97), (i * 1.25)::numeric(10, 2),
       '2025-01-01 00:00:00+00'::timestamptz + i * interval '1 minute'
FROM generate_series(1, 5000) AS i;

-- No primary key: appended twice.
CREATE TABLE events (kind text, at timestamp);
INSERT INTO events SELECT 'k' || (i % 3), '2025-06-01'::timestamp + i * interval '1 s'
FROM generate_series(1, 300) AS i;

CREATE SCHEMA bad;
CREATE TABLE bad.geo (id int4, pos point);
INSERT INTO bad.geo VALUES (1, '(1,2)');
-- 30000 rows; id 15000 twice: a unique violation halfway through.
CREATE TABLE bad.dupes (id int4);
INSERT INTO bad.dupes SELECT i FROM generate_series(1, 15000) AS i;
INSERT INTO bad.dupes SELECT i FROM generate_series(15000, 29999) AS i;
CREATE TABLE bad.extra (id int4, newcol text);
INSERT INTO bad.extra VALUES (1, 'x');
CREATE TABLE bad.nowhere (id int4);
CREATE TABLE bad.needy (id int4);
INSERT INTO bad.needy VALUES (1);
-- The documented way around an unmappable type: a view that casts it.
CREATE SCHEMA migrate;
CREATE VIEW migrate.geo AS SELECT id, pos::text AS pos FROM bad.geo;
-- Loaded into SQLite columns whose declared type has an affinity that
-- converts values: refused where the value would change (10.00 -> 10,
-- 2^53 + 1 -> 2^53, '007' -> 7), kept where it would not.
CREATE TABLE bad.decimals (id int4, amount numeric(12, 2));
INSERT INTO bad.decimals VALUES (1, 10), (2, 12.5);
CREATE TABLE bad.wide (id int4, big int8, label text);
INSERT INTO bad.wide VALUES (1, 9007199254740992, '42'), (2, 9007199254740993, 'x');
CREATE TABLE bad.labels (id int4, big int8, label text);
INSERT INTO bad.labels VALUES (1, -5, '42'), (2, 6, '007');
CREATE TABLE bad.numbers (id int4 PRIMARY KEY, n numeric);
INSERT INTO bad.numbers VALUES (1, 1.25), (2, 'NaN'), (3, 123456789.123456789), (4, NULL);

-- Inheritance: child's rows are its own table's, not parent's too.
CREATE SCHEMA inh;
CREATE TABLE inh.parent (id int4 PRIMARY KEY, v text);
CREATE TABLE inh.child (extra int4) INHERITS (inh.parent);
INSERT INTO inh.parent VALUES (1, 'p');
INSERT INTO inh.child VALUES (2, 'c', 9);

CREATE SCHEMA chk;
-- ISO 8601 with astronomical years, computed with to_char / extract only.
CREATE FUNCTION chk.pad4(n int) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN n < 10000 THEN lpad(n::text, 4, '0') ELSE n::text END $$;
CREATE FUNCTION chk.year(y int) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN y >= 0 THEN chk.pad4(y) WHEN y = -1 THEN '0000'
              ELSE '-' || chk.pad4(-(y + 1)) END $$;
CREATE FUNCTION chk.ts(t timestamp, frac text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN t IS NULL THEN NULL WHEN NOT isfinite(t) THEN t::text
              ELSE chk.year(extract(year FROM t)::int) || to_char(t, '-MM-DD"T"HH24:MI:SS' || frac)
         END $$;
CREATE FUNCTION chk.d(t date) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN t IS NULL THEN NULL WHEN NOT isfinite(t) THEN t::text
              ELSE chk.year(extract(year FROM t)::int) || '-' ||
                   lpad(extract(month FROM t)::text, 2, '0') || '-' ||
                   lpad(extract(day FROM t)::text, 2, '0') END $$;
CREATE FUNCTION chk.off(s int) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN s < 0 THEN '-' ELSE '+' END || lpad((abs(s) / 3600)::text, 2, '0') || ':' ||
         lpad((abs(s) / 60 % 60)::text, 2, '0') ||
         CASE WHEN abs(s) % 60 <> 0 THEN ':' || lpad((abs(s) % 60)::text, 2, '0') ELSE '' END $$;
