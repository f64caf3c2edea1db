/*
 * pgtype.c — PostgreSQL text output -> SQLite values (the mapping and its
 * invariants are in pgtype.h; the user's view is docs/MIGRATE.md).
 *
 * The input forms parsed here are the ones PostgreSQL's output functions
 * print under the session settings of pgsource.c:
 *
 *   timestamptz  1999-01-08 04:05:06.789+00 [BC]   (TimeZone=UTC: always +00)
 *   timestamp    1999-01-08 04:05:06.789 [BC]
 *   date         1999-01-08 [BC]
 *   time         04:05:06.789
 *   timetz       04:05:06.789+05:30  (offset +HH, +HH:MM or +HH:MM:SS)
 *   bytea        \x0aff...
 *   float        shortest exact decimal, or NaN, Infinity, -Infinity
 *   bool         t / f
 *   array        [l:u]={e,"quoted \" e",NULL,{nested}}  (the [l:u]= part only
 *                when a lower bound is not 1; NULL unquoted is SQL NULL)
 *
 * Everything else is kept as printed.
 */
#include "sqlenvfs/pgtype.h"
#include "sqlenvfs/error.h"

#include <math.h>
#include <string.h>

static const struct {
  const char *name;
  SqlenvfsPgKind kind;
} builtin[] = {
  { "bool", SQLENVFS_PG_BOOL },
  { "int2", SQLENVFS_PG_INT },
  { "int4", SQLENVFS_PG_INT },
  { "int8", SQLENVFS_PG_INT },
  { "oid", SQLENVFS_PG_INT },
  { "float4", SQLENVFS_PG_FLOAT },
  { "float8", SQLENVFS_PG_FLOAT },
  { "numeric", SQLENVFS_PG_NUMERIC },
  { "text", SQLENVFS_PG_TEXT },
  { "varchar", SQLENVFS_PG_TEXT },
  { "bpchar", SQLENVFS_PG_TEXT },
  { "name", SQLENVFS_PG_TEXT },
  { "char", SQLENVFS_PG_TEXT },
  { "uuid", SQLENVFS_PG_TEXT },
  { "inet", SQLENVFS_PG_TEXT },
  { "cidr", SQLENVFS_PG_TEXT },
  { "macaddr", SQLENVFS_PG_TEXT },
  { "macaddr8", SQLENVFS_PG_TEXT },
  { "xml", SQLENVFS_PG_TEXT },
  { "bit", SQLENVFS_PG_TEXT },
  { "varbit", SQLENVFS_PG_TEXT },
  { "bytea", SQLENVFS_PG_BYTEA },
  { "timestamptz", SQLENVFS_PG_TIMESTAMPTZ },
  { "timestamp", SQLENVFS_PG_TIMESTAMP },
  { "date", SQLENVFS_PG_DATE },
  { "time", SQLENVFS_PG_TIME },
  { "timetz", SQLENVFS_PG_TIMETZ },
  { "interval", SQLENVFS_PG_INTERVAL },
  { "json", SQLENVFS_PG_JSON },
  { "jsonb", SQLENVFS_PG_JSON },
};

SqlenvfsPgKind
sqlenvfs_pg_kind_from_name(const char *typname)
{
  g_return_val_if_fail(typname != NULL, SQLENVFS_PG_UNSUPPORTED);
  for (gsize i = 0; i < G_N_ELEMENTS(builtin); i++)
    if (strcmp(builtin[i].name, typname) == 0)
      return builtin[i].kind;
  return SQLENVFS_PG_UNSUPPORTED;
}

int
sqlenvfs_pg_time_precision(int typmod)
{
  /* For timestamp[tz], time and timetz the typmod is the precision itself. */
  if (typmod < 0 || typmod > 6)
    return 6;
  return typmod;
}

const char *
sqlenvfs_pg_type_decl(const SqlenvfsPgType *t)
{
  switch (t->kind) {
  case SQLENVFS_PG_BOOL:
  case SQLENVFS_PG_INT:
    return "INTEGER";
  case SQLENVFS_PG_FLOAT:
    return "REAL";
  case SQLENVFS_PG_NUMERIC:
    return t->numeric_as_real ? "REAL" : "TEXT";
  case SQLENVFS_PG_BYTEA:
    return "BLOB";
  default:
    return "TEXT";
  }
}

gboolean
sqlenvfs_pg_type_is_verbatim(const SqlenvfsPgType *t)
{
  switch (t->kind) {
  case SQLENVFS_PG_TEXT:
  case SQLENVFS_PG_INTERVAL:
  case SQLENVFS_PG_JSON:
    return TRUE;
  case SQLENVFS_PG_NUMERIC:
    return !t->numeric_as_real;
  default:
    return FALSE;
  }
}

void
sqlenvfs_pg_value_init(SqlenvfsPgValue *v)
{
  memset(v, 0, sizeof *v);
  v->buf = g_string_sized_new(64);
}

void
sqlenvfs_pg_value_clear(SqlenvfsPgValue *v)
{
  if (v->buf)
    g_string_free(v->buf, TRUE);
  memset(v, 0, sizeof *v);
}

static gboolean
bad(GError **error, const char *what, const char *text, gsize len)
{
  g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
              "unexpected %s value from PostgreSQL: '%.*s' (is a connection pooler "
              "changing session settings?)",
              what, (int)MIN(len, 80), text);
  return FALSE;
}

/* --- scanning ------------------------------------------------------------ */

typedef struct {
  const char *p, *end;
} Scan;

static gsize
scan_digits(Scan *s)
{
  const char *start = s->p;
  while (s->p < s->end && g_ascii_isdigit(*s->p))
    s->p++;
  return (gsize)(s->p - start);
}

static gboolean
scan_char(Scan *s, char c)
{
  if (s->p < s->end && *s->p == c) {
    s->p++;
    return TRUE;
  }
  return FALSE;
}

static gboolean
scan_word(Scan *s, const char *w)
{
  gsize n = strlen(w);
  if ((gsize)(s->end - s->p) >= n && memcmp(s->p, w, n) == 0) {
    s->p += n;
    return TRUE;
  }
  return FALSE;
}

/* "YYYY-MM-DD" (year >= 4 digits); the year digits are returned. */
static gboolean
scan_date(Scan *s, const char **year, gsize *n_year, const char **md)
{
  *year = s->p;
  *n_year = scan_digits(s);
  if (*n_year < 4 || !scan_char(s, '-'))
    return FALSE;
  *md = s->p;
  if (scan_digits(s) != 2 || !scan_char(s, '-') || scan_digits(s) != 2)
    return FALSE;
  return TRUE;
}

/* "HH:MM:SS[.f]"; returns the start of HH and the fraction digits. */
static gboolean
scan_time(Scan *s, const char **hms, const char **frac, gsize *n_frac)
{
  *hms = s->p;
  if (scan_digits(s) != 2 || !scan_char(s, ':') || scan_digits(s) != 2 || !scan_char(s, ':') ||
      scan_digits(s) != 2)
    return FALSE;
  *frac = NULL;
  *n_frac = 0;
  if (scan_char(s, '.')) {
    *frac = s->p;
    *n_frac = scan_digits(s);
    if (*n_frac == 0)
      return FALSE;
  }
  return TRUE;
}

/* A zone offset "+HH[:MM[:SS]]" in seconds. */
static gboolean
scan_offset(Scan *s, int *seconds)
{
  int sign, parts[3] = { 0, 0, 0 };
  if (scan_char(s, '+'))
    sign = 1;
  else if (scan_char(s, '-'))
    sign = -1;
  else
    return FALSE;
  for (int i = 0; i < 3; i++) {
    if (i > 0 && !scan_char(s, ':'))
      break;
    if (s->end - s->p < 2 || !g_ascii_isdigit(s->p[0]) || !g_ascii_isdigit(s->p[1]))
      return FALSE;
    parts[i] = (s->p[0] - '0') * 10 + (s->p[1] - '0');
    s->p += 2;
  }
  *seconds = sign * (parts[0] * 3600 + parts[1] * 60 + parts[2]);
  return TRUE;
}

/* --- writing ------------------------------------------------------------- */

/* The year, in astronomical numbering when @bc (invariant 2). */
static void
put_year(GString *out, const char *year, gsize n_year, gboolean bc)
{
  if (!bc) {
    g_string_append_len(out, year, (gssize)n_year);
    return;
  }
  /* n BC is 1 - n: 1 BC -> 0000, 2 BC -> -0001. */
  gint64 n = g_ascii_strtoll(year, NULL, 10);
  if (n == 1)
    g_string_append(out, "0000");
  else
    g_string_append_printf(out, "-%04" G_GINT64_FORMAT, n - 1);
}

/* The fraction padded to @precision digits (invariant 1). */
static void
put_fraction(GString *out, const char *frac, gsize n_frac, int precision)
{
  if (n_frac == 0 && precision == 0)
    return;
  g_string_append_c(out, '.');
  g_string_append_len(out, frac ? frac : "", (gssize)n_frac);
  for (gsize i = n_frac; i < (gsize)precision; i++)
    g_string_append_c(out, '0');
}

static void
put_offset(GString *out, int seconds)
{
  int a = ABS(seconds);
  g_string_append_printf(out, "%c%02d:%02d", seconds < 0 ? '-' : '+', a / 3600, a / 60 % 60);
  if (a % 60)
    g_string_append_printf(out, ":%02d", a % 60);
}

static gboolean
is_infinity_word(const char *text, gsize len)
{
  return (len == 8 && memcmp(text, "infinity", 8) == 0) ||
         (len == 9 && memcmp(text, "-infinity", 9) == 0);
}

static gboolean
convert_timestamp(const SqlenvfsPgType *t, gboolean tz, const char *text, gsize len, GString *out,
                  GError **error)
{
  Scan s = { text, text + len };
  const char *year, *md, *hms, *frac;
  gsize n_year, n_frac;
  gboolean bc;

  g_string_truncate(out, 0);
  if (is_infinity_word(text, len)) {
    g_string_append_len(out, text, (gssize)len);
    return TRUE;
  }
  if (!scan_date(&s, &year, &n_year, &md) || !scan_char(&s, ' ') ||
      !scan_time(&s, &hms, &frac, &n_frac))
    return bad(error, tz ? "timestamptz" : "timestamp", text, len);
  if (tz) {
    int off;
    if (!scan_offset(&s, &off) || off != 0)
      return bad(error, "timestamptz (not in UTC)", text, len);
  }
  bc = scan_word(&s, " BC");
  if (s.p != s.end)
    return bad(error, tz ? "timestamptz" : "timestamp", text, len);

  put_year(out, year, n_year, bc);
  g_string_append_c(out, '-');
  g_string_append_len(out, md, 5);
  g_string_append_c(out, 'T');
  g_string_append_len(out, hms, 8);
  put_fraction(out, frac, n_frac, t->precision);
  if (tz)
    g_string_append_c(out, 'Z');
  return TRUE;
}

static gboolean
convert_date(const char *text, gsize len, GString *out, GError **error)
{
  Scan s = { text, text + len };
  const char *year, *md;
  gsize n_year;
  gboolean bc;

  g_string_truncate(out, 0);
  if (is_infinity_word(text, len)) {
    g_string_append_len(out, text, (gssize)len);
    return TRUE;
  }
  if (!scan_date(&s, &year, &n_year, &md))
    return bad(error, "date", text, len);
  bc = scan_word(&s, " BC");
  if (s.p != s.end)
    return bad(error, "date", text, len);
  put_year(out, year, n_year, bc);
  g_string_append_c(out, '-');
  g_string_append_len(out, md, 5);
  return TRUE;
}

static gboolean
convert_time(const SqlenvfsPgType *t, gboolean tz, const char *text, gsize len, GString *out,
             GError **error)
{
  Scan s = { text, text + len };
  const char *hms, *frac;
  gsize n_frac;
  int off = 0;

  g_string_truncate(out, 0);
  if (!scan_time(&s, &hms, &frac, &n_frac) || (tz && !scan_offset(&s, &off)) || s.p != s.end)
    return bad(error, tz ? "timetz" : "time", text, len);
  g_string_append_len(out, hms, 8);
  put_fraction(out, frac, n_frac, t->precision);
  if (tz)
    put_offset(out, off);
  return TRUE;
}

static gboolean
convert_bytea(const char *text, gsize len, GString *out, GError **error)
{
  g_string_truncate(out, 0);
  if (len < 2 || text[0] != '\\' || text[1] != 'x' || (len - 2) % 2 != 0)
    return bad(error, "bytea (not hex)", text, len);
  g_string_set_size(out, (len - 2) / 2);
  for (gsize i = 2, o = 0; i < len; i += 2, o++) {
    int hi = g_ascii_xdigit_value(text[i]), lo = g_ascii_xdigit_value(text[i + 1]);
    if (hi < 0 || lo < 0)
      return bad(error, "bytea (not hex)", text, len);
    out->str[o] = (char)(hi << 4 | lo);
  }
  return TRUE;
}

static gboolean
is_nonfinite_word(const char *text, gsize len)
{
  return (len == 3 && memcmp(text, "NaN", 3) == 0) ||
         (len == 8 && memcmp(text, "Infinity", 8) == 0) ||
         (len == 9 && memcmp(text, "-Infinity", 9) == 0);
}

/* A float as printed by float8out/numeric_out; non-finite words included.
 * A finite numeric beyond a double's range (1e400) parses as +-HUGE_VAL:
 * callers tell it from the word "Infinity" with is_nonfinite_word(). */
static gboolean
parse_real(const char *text, gsize len, double *r)
{
  char *endp = NULL;
  if (len == 3 && memcmp(text, "NaN", 3) == 0) {
    *r = NAN;
    return TRUE;
  }
  if (len == 8 && memcmp(text, "Infinity", 8) == 0) {
    *r = INFINITY;
    return TRUE;
  }
  if (len == 9 && memcmp(text, "-Infinity", 9) == 0) {
    *r = -INFINITY;
    return TRUE;
  }
  /* Only what float8out / numeric_out print: sign, digits, '.', exponent. */
  if (len == 0)
    return FALSE;
  for (gsize i = 0; i < len; i++)
    if (!g_ascii_isdigit(text[i]) && !strchr("+-.e", text[i]))
      return FALSE;
  *r = g_ascii_strtod(text, &endp);
  return endp == text + len;
}

/* Whether the number @text has a digit other than 0 before its exponent. */
static gboolean
nonzero_mantissa(const char *text, gsize len)
{
  for (gsize i = 0; i < len && text[i] != 'e' && text[i] != 'E'; i++)
    if (text[i] >= '1' && text[i] <= '9')
      return TRUE;
  return FALSE;
}

static gboolean
convert_real(const char *what, const char *text, gsize len, SqlenvfsPgValue *out,
             GError **error)
{
  double r;
  if (!parse_real(text, len, &r))
    return bad(error, what, text, len);
  if (isinf(r) && !is_nonfinite_word(text, len)) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "%s value %.40s%s (%zu digits) is beyond the range of a REAL (about "
                "1.8e308) and would become Infinity (store numeric as exact TEXT: leave out "
                "--numeric-as-real)",
                what, text, len > 40 ? "..." : "", len);
    return FALSE;
  }
  if (r == 0.0 && nonzero_mantissa(text, len)) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "%s value %.40s%s is too close to zero for a REAL (below about 4.9e-324) and "
                "would become 0 (store numeric as exact TEXT: leave out --numeric-as-real)",
                what, text, len > 40 ? "..." : "");
    return FALSE;
  }
  if (isnan(r)) {
    out->type = SQLENVFS_PG_VALUE_NULL; /* SQLite has no NaN */
    out->was_nan = TRUE;
  } else {
    out->type = SQLENVFS_PG_VALUE_REAL;
    out->r = r;
  }
  return TRUE;
}

/* --- arrays as JSON ------------------------------------------------------ */

static void
json_append_string(GString *out, const char *s, gsize len)
{
  g_string_append_c(out, '"');
  for (gsize i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    switch (c) {
    case '"':
      g_string_append(out, "\\\"");
      break;
    case '\\':
      g_string_append(out, "\\\\");
      break;
    case '\n':
      g_string_append(out, "\\n");
      break;
    case '\r':
      g_string_append(out, "\\r");
      break;
    case '\t':
      g_string_append(out, "\\t");
      break;
    default:
      if (c < 0x20)
        g_string_append_printf(out, "\\u%04x", c);
      else
        g_string_append_c(out, (char)c);
    }
  }
  g_string_append_c(out, '"');
}

static gboolean convert_scalar(const SqlenvfsPgType *t, const char *text, gsize len,
                               SqlenvfsPgValue *out, GError **error);

/* One array element (NUL-terminated @text) as JSON (invariant 3). */
static gboolean
element_to_json(const SqlenvfsPgType *et, const char *text, gsize len, SqlenvfsPgValue *tmp,
                GString *out, GError **error)
{
  double r;
  switch (et->kind) {
  case SQLENVFS_PG_INT:
    if (!convert_scalar(et, text, len, tmp, error))
      return FALSE;
    g_string_append_len(out, text, (gssize)len);
    return TRUE;
  case SQLENVFS_PG_FLOAT:
  case SQLENVFS_PG_NUMERIC:
    if (!parse_real(text, len, &r))
      return bad(error, et->kind == SQLENVFS_PG_FLOAT ? "float" : "numeric", text, len);
    /* By the word, not the double: 1e400 is a finite numeric (invariant 3). */
    if (!is_nonfinite_word(text, len))
      g_string_append_len(out, text, (gssize)len);
    else
      json_append_string(out, text, len);
    return TRUE;
  case SQLENVFS_PG_BOOL:
    if (!convert_scalar(et, text, len, tmp, error))
      return FALSE;
    g_string_append(out, tmp->i ? "true" : "false");
    return TRUE;
  case SQLENVFS_PG_JSON:
    g_string_append_len(out, text, (gssize)len);
    return TRUE;
  case SQLENVFS_PG_BYTEA:
    if (!convert_bytea(text, len, tmp->buf, error))
      return FALSE;
    json_append_string(out, text, len);
    return TRUE;
  default:
    if (!convert_scalar(et, text, len, tmp, error))
      return FALSE;
    json_append_string(out, tmp->buf->str, tmp->buf->len);
    return TRUE;
  }
}

typedef struct {
  Scan s;
  const SqlenvfsPgType *et;
  SqlenvfsPgValue tmp;
  GString *elem;
  GString *out;
  int depth;
} ArrayParse;

static gboolean
parse_array(ArrayParse *a, GError **error)
{
  Scan *s = &a->s;
  if (!scan_char(s, '{') || ++a->depth > 6 + 1)
    return FALSE;
  g_string_append_c(a->out, '[');
  if (scan_char(s, '}')) {
    g_string_append_c(a->out, ']');
    a->depth--;
    return TRUE;
  }
  for (;;) {
    if (s->p < s->end && *s->p == '{') {
      if (!parse_array(a, error))
        return FALSE;
    } else if (scan_char(s, '"')) {
      g_string_truncate(a->elem, 0);
      for (;;) {
        if (s->p >= s->end)
          return FALSE;
        if (*s->p == '"')
          break;
        if (*s->p == '\\' && ++s->p >= s->end)
          return FALSE;
        g_string_append_c(a->elem, *s->p++);
      }
      s->p++;
      if (!element_to_json(a->et, a->elem->str, a->elem->len, &a->tmp, a->out, error))
        return FALSE;
    } else {
      const char *start = s->p;
      while (s->p < s->end && *s->p != ',' && *s->p != '}' && *s->p != '{' && *s->p != '"')
        s->p++;
      if (s->p == start)
        return FALSE;
      if (s->p - start == 4 && g_ascii_strncasecmp(start, "NULL", 4) == 0) {
        g_string_append(a->out, "null");
      } else {
        g_string_truncate(a->elem, 0);
        g_string_append_len(a->elem, start, s->p - start);
        if (!element_to_json(a->et, a->elem->str, a->elem->len, &a->tmp, a->out, error))
          return FALSE;
      }
    }
    if (scan_char(s, ',')) {
      g_string_append_c(a->out, ',');
      continue;
    }
    if (scan_char(s, '}')) {
      g_string_append_c(a->out, ']');
      a->depth--;
      return TRUE;
    }
    return FALSE;
  }
}

static gboolean
convert_array(const SqlenvfsPgType *t, const char *text, gsize len, GString *out, GError **error)
{
  SqlenvfsPgType et = *t;
  ArrayParse a = { .s = { text, text + len }, .et = &et, .out = out };
  GError *elem_error = NULL;
  gboolean ok;

  et.kind = t->elem;
  et.elem = SQLENVFS_PG_UNSUPPORTED;
  g_string_truncate(out, 0);
  /* Dimension decoration "[l:u][l:u]=" when a lower bound is not 1. */
  if (len > 0 && text[0] == '[') {
    const char *eq = memchr(text, '=', len);
    if (eq == NULL)
      return bad(error, "array", text, len);
    a.s.p = eq + 1;
  }
  sqlenvfs_pg_value_init(&a.tmp);
  a.elem = g_string_sized_new(32);
  ok = parse_array(&a, &elem_error) && a.s.p == a.s.end;
  sqlenvfs_pg_value_clear(&a.tmp);
  g_string_free(a.elem, TRUE);
  if (!ok) {
    if (elem_error) {
      g_propagate_prefixed_error(error, elem_error, "in array '%.*s': ", (int)MIN(len, 80), text);
      return FALSE;
    }
    return bad(error, "array", text, len);
  }
  return TRUE;
}

/* --- dispatch ------------------------------------------------------------ */

static gboolean
convert_scalar(const SqlenvfsPgType *t, const char *text, gsize len, SqlenvfsPgValue *out,
               GError **error)
{
  out->was_nan = FALSE;
  switch (t->kind) {
  case SQLENVFS_PG_BOOL:
    if (len != 1 || (text[0] != 't' && text[0] != 'f'))
      return bad(error, "boolean", text, len);
    out->type = SQLENVFS_PG_VALUE_INTEGER;
    out->i = text[0] == 't';
    return TRUE;
  case SQLENVFS_PG_INT: {
    gint64 v;
    if (!g_ascii_string_to_signed(text, 10, G_MININT64, G_MAXINT64, &v, NULL))
      return bad(error, "integer", text, len);
    out->type = SQLENVFS_PG_VALUE_INTEGER;
    out->i = v;
    return TRUE;
  }
  case SQLENVFS_PG_FLOAT:
    return convert_real("float", text, len, out, error);
  case SQLENVFS_PG_NUMERIC:
    if (t->numeric_as_real)
      return convert_real("numeric", text, len, out, error);
    break; /* exact text */
  case SQLENVFS_PG_BYTEA:
    out->type = SQLENVFS_PG_VALUE_BLOB;
    return convert_bytea(text, len, out->buf, error);
  case SQLENVFS_PG_TIMESTAMPTZ:
  case SQLENVFS_PG_TIMESTAMP:
    out->type = SQLENVFS_PG_VALUE_TEXT;
    return convert_timestamp(t, t->kind == SQLENVFS_PG_TIMESTAMPTZ, text, len, out->buf, error);
  case SQLENVFS_PG_DATE:
    out->type = SQLENVFS_PG_VALUE_TEXT;
    return convert_date(text, len, out->buf, error);
  case SQLENVFS_PG_TIME:
  case SQLENVFS_PG_TIMETZ:
    out->type = SQLENVFS_PG_VALUE_TEXT;
    return convert_time(t, t->kind == SQLENVFS_PG_TIMETZ, text, len, out->buf, error);
  case SQLENVFS_PG_ARRAY:
    out->type = SQLENVFS_PG_VALUE_TEXT;
    return convert_array(t, text, len, out->buf, error);
  case SQLENVFS_PG_TEXT:
  case SQLENVFS_PG_INTERVAL:
  case SQLENVFS_PG_JSON:
    break;
  case SQLENVFS_PG_UNSUPPORTED:
  default:
    g_return_val_if_reached(FALSE);
  }
  out->type = SQLENVFS_PG_VALUE_TEXT;
  g_string_truncate(out->buf, 0);
  g_string_append_len(out->buf, text, (gssize)len);
  return TRUE;
}

gboolean
sqlenvfs_pg_value_convert(const SqlenvfsPgType *t, const char *text, gsize len,
                          SqlenvfsPgValue *out, GError **error)
{
  g_return_val_if_fail(t != NULL && text != NULL && out != NULL && out->buf != NULL, FALSE);
  return convert_scalar(t, text, len, out, error);
}
