/*
 * pgtype.h — PostgreSQL column types as SQLite values (docs/MIGRATE.md).
 *
 * migrate-pg reads every value in PostgreSQL's text output form, produced by
 * a session with fixed settings (pgsource.h):
 *
 *   DateStyle=ISO, TimeZone=UTC, IntervalStyle=iso_8601,
 *   extra_float_digits=3, bytea_output=hex, client_encoding=UTF8
 *
 * so that each type has exactly one text form, and this module turns that
 * text into the SQLite value the mapping promises:
 *
 *   PostgreSQL                          SQLite   value
 *   bool                                INTEGER  1 / 0
 *   int2 int4 int8 oid                  INTEGER
 *   float4 float8                       REAL     NaN -> NULL (counted), +-Infinity kept
 *   numeric                             TEXT     exact decimal text ('NaN', 'Infinity')
 *     ... with numeric_as_real          REAL     NaN -> NULL (counted)
 *   text varchar bpchar name "char"     TEXT     as stored (char(n) keeps its padding)
 *   bytea                               BLOB
 *   timestamptz                         TEXT     YYYY-MM-DDTHH:MM:SS[.f]Z in UTC
 *   timestamp                           TEXT     YYYY-MM-DDTHH:MM:SS[.f] taken as is
 *   date                                TEXT     YYYY-MM-DD
 *   time                                TEXT     HH:MM:SS[.f]
 *   timetz                              TEXT     HH:MM:SS[.f]+HH:MM
 *   interval                            TEXT     ISO 8601 duration, e.g. P1Y2M3DT4H5M6.5S
 *   uuid json jsonb enum                TEXT     as PostgreSQL prints them
 *   inet cidr macaddr macaddr8 xml
 *   bit varbit                          TEXT     as PostgreSQL prints them
 *   domain                              as its base type
 *   one- or more-dimensional arrays     TEXT     JSON array (nested per dimension)
 *   NULL                                NULL
 *   anything else                       refused before anything is written
 *
 * Invariants:
 *   (1) The fraction of a time has exactly the column's precision in digits
 *       (6 when undeclared, none for precision 0), so that text order is time
 *       order within a column.
 *   (2) Years before 1 AD use ISO 8601's astronomical numbering: 1 BC is
 *       0000, 2 BC is -0001. 'infinity' and '-infinity' stay words.
 *   (3) In a JSON array, numbers (integers, floats, numeric) are written as
 *       PostgreSQL printed them (exact), non-finite ones as the strings "NaN",
 *       "Infinity", "-Infinity"; bool as true/false; json/jsonb embedded as
 *       JSON; bytea as its "\x..." hex string; everything else as a JSON
 *       string of its scalar form above. Lower bounds other than 1 are not
 *       kept.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef enum {
  SQLENVFS_PG_UNSUPPORTED = 0,
  SQLENVFS_PG_BOOL,
  SQLENVFS_PG_INT,
  SQLENVFS_PG_FLOAT,
  SQLENVFS_PG_NUMERIC,
  SQLENVFS_PG_TEXT,     /* text-like: kept as printed */
  SQLENVFS_PG_BYTEA,
  SQLENVFS_PG_TIMESTAMPTZ,
  SQLENVFS_PG_TIMESTAMP,
  SQLENVFS_PG_DATE,
  SQLENVFS_PG_TIME,
  SQLENVFS_PG_TIMETZ,
  SQLENVFS_PG_INTERVAL,
  SQLENVFS_PG_JSON,     /* json, jsonb: TEXT, embedded raw in arrays */
  SQLENVFS_PG_ARRAY,
} SqlenvfsPgKind;

/* A resolved column type. For arrays, @kind is ARRAY and @elem the element's
 * kind (never ARRAY: PostgreSQL arrays are flat with dimensions). @precision
 * is the fractional-second digits of time types (0-6). */
typedef struct {
  SqlenvfsPgKind kind;
  SqlenvfsPgKind elem;
  int precision;
  gboolean numeric_as_real;
} SqlenvfsPgType;

/* The kind of a built-in (pg_catalog) base type by its name, e.g. "int4",
 * "timestamptz"; UNSUPPORTED for any other name. */
SqlenvfsPgKind sqlenvfs_pg_kind_from_name(const char *typname);

/* Fractional digits of a time type from its typmod (-1: undeclared -> 6). */
int sqlenvfs_pg_time_precision(int typmod);

/* The declared SQLite type `--create-tables` gives a column of type @t:
 * "INTEGER", "REAL", "TEXT" or "BLOB" (static string). */
const char *sqlenvfs_pg_type_decl(const SqlenvfsPgType *t);

/* Values of type @t become TEXT exactly as PostgreSQL printed them (the
 * caller may bind the text without calling sqlenvfs_pg_value_convert). */
gboolean sqlenvfs_pg_type_is_verbatim(const SqlenvfsPgType *t);

/* SQLite storage classes, as SQLITE_INTEGER etc. (kept free of sqlite3.h). */
typedef enum {
  SQLENVFS_PG_VALUE_NULL,
  SQLENVFS_PG_VALUE_INTEGER,
  SQLENVFS_PG_VALUE_REAL,
  SQLENVFS_PG_VALUE_TEXT,
  SQLENVFS_PG_VALUE_BLOB,
} SqlenvfsPgValueType;

/* One converted value. @buf holds TEXT (NUL-terminated, len without it) or
 * BLOB bytes; it is owned by the caller and reused from value to value. */
typedef struct {
  SqlenvfsPgValueType type;
  gint64 i;
  double r;
  GString *buf;
  gboolean was_nan; /* a NaN became NULL */
} SqlenvfsPgValue;

void sqlenvfs_pg_value_init(SqlenvfsPgValue *v);
void sqlenvfs_pg_value_clear(SqlenvfsPgValue *v);

/* Convert PostgreSQL's text output @text (@len bytes, NUL-terminated as
 * libpq returns it; the caller handles SQL NULL itself) of a value of type @t
 * into @out. FALSE and SQLENVFS_ERROR_INVALID quoting the text when it is
 * not in the form the session settings guarantee; @out is then undefined. */
gboolean sqlenvfs_pg_value_convert(const SqlenvfsPgType *t, const char *text, gsize len,
                                   SqlenvfsPgValue *out, GError **error);

G_END_DECLS
